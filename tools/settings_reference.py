"""Write docs/settings.md, the settings reference, from the settings models."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from platform_deploy import config  # noqa: E402

(ROOT / "docs" / "settings.md").write_text(config.reference() + "\n")
print("docs/settings.md written")
