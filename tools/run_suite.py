"""`make test`: lint and types first, then the unit tests, then the end-to-end tests: the
one-host modules on one sandbox host, then the scale-out module on four hosts of its own.

Prints the time of each part and of the whole suite. The end-to-end tests get what is left of
SUITE_BUDGET_MINUTES (default 80, under CI's 90 with the set-up before): past it, pytest is
interrupted so that it still prints what failed and where the time went.

    .venv/bin/python tools/run_suite.py [--e2e-only] [pytest arguments for the one-host tests]
"""

import os
import signal
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
START = time.monotonic()
DEADLINE = START + 60 * float(os.environ.get("SUITE_BUDGET_MINUTES", "80"))


def step(name, cmd):
    """Runs `cmd`; interrupted (SIGINT, as Ctrl-C) when the suite's budget runs out."""
    start = time.monotonic()
    process = subprocess.Popen(cmd, cwd=ROOT)
    try:
        code = process.wait(timeout=max(1.0, DEADLINE - start))
    except subprocess.TimeoutExpired:
        print(f"\n[suite] the budget of the suite ran out during {name}: interrupting it", flush=True)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        code = 124
    return name, code, time.monotonic() - start


def main():
    args = sys.argv[1:]
    e2e_only = "--e2e-only" in args
    args = [a for a in args if a != "--e2e-only"]
    results = []
    (ROOT / ".sandbox").mkdir(exist_ok=True)
    (ROOT / ".sandbox" / "test-times.log").unlink(missing_ok=True)
    if not e2e_only:
        for name, cmd in CHECKS.items():
            results.append(step(name, cmd))
        results.append(step("unit tests", [PY, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider"]))
        if any(code for _, code, _ in results):
            return report(results)
    results.append(
        step("one-host end-to-end tests", [PY, "-m", "pytest", "tests/e2e", "--ignore", CLUSTER_TESTS, *args])
    )
    results.append(step("scale-out end-to-end tests", [PY, "-m", "pytest", CLUSTER_TESTS]))
    return report(results)


def report(results):
    print("\nsuite:")
    for name, code, took in results:
        print(f"  {name:<34}{'passed' if code == 0 else 'FAILED':<8}{took:>8.0f} s")
    print(f"  {'total':<42}{time.monotonic() - START:>8.0f} s")
    return 1 if any(code for _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
