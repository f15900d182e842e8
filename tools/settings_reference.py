"""Write docs/settings.md, the settings reference, from the settings models."""

from pathlib import Path

from platform_deploy import config

ROOT = Path(__file__).resolve().parent.parent

(ROOT / "docs" / "settings.md").write_text(config.reference() + "\n")
print("docs/settings.md written")
