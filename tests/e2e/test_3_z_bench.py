"""`make bench`'s quick mode on the suite's host: it runs to the end and prints its figures
(the figures themselves are read by people, never asserted as times)."""

import re
import subprocess
import sys

from conftest import NAME, PORT, ROOT


def test_the_quick_benchmark_prints_its_figures(sandbox):
    out = subprocess.run(
        [sys.executable, "bench/converge.py", "--quick", "--name", NAME, "--port", str(PORT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(out.stdout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert re.search(r"^rerun / floor: +\d+\.\d\d", out.stdout, re.M), out.stdout
    assert re.search(r"^changed on reruns: +0 ", out.stdout, re.M), out.stdout  # idempotence, as the suite's own rerun
    assert re.search(r"^  \S+-postgres-1 +\d+  of +\d+", out.stdout, re.M), out.stdout
