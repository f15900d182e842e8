"""`make test`: lint and types first, then the unit tests, then the end-to-end tests: the
one-host modules on one sandbox host and, beside them once that host is deployed and has passed
test_1_foundation, the scale-out module on four hosts of its own (its output goes to
.sandbox/cluster-tests.log and is printed when it ends).

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
CLUSTER_LOG = ROOT / ".sandbox" / "cluster-tests.log"
TIMES_LOG = ROOT / ".sandbox" / "test-times.log"
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
    return name, finish(name, subprocess.Popen(cmd, cwd=ROOT)), time.monotonic() - start


def finish(name, process):
    """The process's exit code, once it ends or, past the suite's budget, once interrupted (124)."""
    try:
        return process.wait(timeout=max(1.0, DEADLINE - time.monotonic()))
    except subprocess.TimeoutExpired:
        print(f"\n[suite] the budget of the suite ran out during {name}: interrupting it", flush=True)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return 124


def end_to_end(args):
    """The one-host modules; the scale-out module started beside them once the first host's fresh deploy and
    foundation tests are done (the two fresh deploys, CPU-bound image extraction both, do not overlap; the rest
    of each waits on its hosts about half the time, measured on 2 cores)."""
    one_host_name, cluster_name = "one-host end-to-end tests", "scale-out end-to-end tests"
    start = time.monotonic()
    one_host = subprocess.Popen([PY, "-m", "pytest", "tests/e2e", "--ignore", CLUSTER_TESTS, *args], cwd=ROOT)
    while one_host.poll() is None and not past_foundation() and time.monotonic() < DEADLINE:
        time.sleep(5)
    cluster_start = time.monotonic()
    with open(CLUSTER_LOG, "w") as log:
        cluster = subprocess.Popen([PY, "-m", "pytest", CLUSTER_TESTS], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        print(f"\n[suite] {cluster_name} started beside, output in {CLUSTER_LOG.relative_to(ROOT)}", flush=True)
        one_host_code = finish(one_host_name, one_host)
        one_host_took = time.monotonic() - start
        cluster_code = finish(cluster_name, cluster)
    print(f"\n[suite] {cluster_name}:\n{CLUSTER_LOG.read_text()}", flush=True)
    return [
        (one_host_name, one_host_code, one_host_took),
        (cluster_name, cluster_code, time.monotonic() - cluster_start),
    ]


def past_foundation():
    """Whether a test after test_1_foundation has ended (tools/pytest_module_times.py logs each)."""
    try:
        lines = TIMES_LOG.read_text().splitlines()
    except FileNotFoundError:
        return False
    return any("tests/e2e/" in line and "test_1_foundation" not in line for line in lines)


def main():
    args = sys.argv[1:]
    e2e_only = "--e2e-only" in args
    args = [a for a in args if a != "--e2e-only"]
    results = []
    (ROOT / ".sandbox").mkdir(exist_ok=True)
    TIMES_LOG.unlink(missing_ok=True)
    if not e2e_only:
        for name, cmd in CHECKS.items():
            results.append(step(name, cmd))
        results.append(step("unit tests", [PY, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider"]))
        if any(code for _, code, _ in results):
            return report(results)
    results += end_to_end(args)
    return report(results)


def report(results):
    print("\nsuite:")
    for name, code, took in results:
        print(f"  {name:<34}{'passed' if code == 0 else 'FAILED':<8}{took:>8.0f} s")
    print(f"  {'total':<42}{time.monotonic() - START:>8.0f} s")
    return 1 if any(code for _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
