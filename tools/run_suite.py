"""`make test`: lint and types first, then the unit tests, then the end-to-end tests.

The scale-out tests (tests/e2e/test_5_cluster.py, four sandbox hosts of their own) run in a
second pytest beside the one-host tests, which share one sandbox host; their output follows
the one-host tests' in the log. Prints the time of each part and of the whole suite.

    .venv/bin/python tools/run_suite.py [--e2e-only] [pytest arguments for the one-host tests]
"""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLUSTER_TESTS = "tests/e2e/test_5_cluster.py"
CHECKS = {
    "ruff check": [PY, "-m", "ruff", "check", "."],
    "ruff format": [PY, "-m", "ruff", "format", "--check", "."],
    "mypy": [PY, "-m", "mypy"],
}


def step(name, cmd, **kw):
    start = time.monotonic()
    code = subprocess.run(cmd, cwd=ROOT, **kw).returncode
    return name, code, time.monotonic() - start


def main():
    args = sys.argv[1:]
    e2e_only = "--e2e-only" in args
    args = [a for a in args if a != "--e2e-only"]
    start, results = time.monotonic(), []
    if not e2e_only:
        for name, cmd in CHECKS.items():
            results.append(step(name, cmd))
        results.append(step("unit tests", [PY, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider"]))
        if any(code for _, code, _ in results):
            return report(results, start)
    log = ROOT / ".sandbox" / "cluster-tests.log"
    log.parent.mkdir(exist_ok=True)
    cluster_start = time.monotonic()
    with open(log, "w") as out:
        cluster = subprocess.Popen([PY, "-m", "pytest", CLUSTER_TESTS], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            results.append(
                step("one-host end-to-end tests", [PY, "-m", "pytest", "tests/e2e", "--ignore", CLUSTER_TESTS, *args])
            )
        finally:
            code = cluster.wait()
    results.append(("scale-out tests (beside them)", code, time.monotonic() - cluster_start))
    print(f"\n===== {CLUSTER_TESTS} (run beside the one-host tests) =====\n{log.read_text()}", flush=True)
    return report(results, start)


def report(results, start):
    print("\nsuite:")
    for name, code, took in results:
        print(f"  {name:<34}{'passed' if code == 0 else 'FAILED':<8}{took:>8.0f} s")
    print(f"  {'total':<42}{time.monotonic() - start:>8.0f} s")
    return 1 if any(code for _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
