"""`make test`: lint and types first, then the unit tests, then the end-to-end tests: the
one-host modules on one sandbox host and, beside them, the scale-out module on four hosts of
its own, started once the first module is done, its host's images kept as the seed the
scale-out hosts start with (tools/sandbox_host/seed.py). Its output goes to
.sandbox/scale-out.log, printed when it ends.

Prints the time of each part and of the whole suite. The end-to-end tests get what is left of
SUITE_BUDGET_MINUTES (default 80, under CI's 90 with the set-up before): past it, pytest is
interrupted so that it still prints what failed and where the time went.

    .venv/bin/python tools/run_suite.py [--e2e-only] [pytest arguments for the one-host tests]
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLUSTER_TESTS = "tests/e2e/test_5_cluster.py"
# The point-in-time recovery drill: on a host of its own, after the scale-out tests, in the same lane.
PITR_TESTS = "tests/e2e/test_6_pitr.py"
PITR_HOST = {"E2E_SANDBOX_NAME": "sandbox-pitr", "E2E_SANDBOX_SSH_PORT": "2250", "E2E_SEED_KEEP": "1"}
CHECKS = {
    "ruff check": [PY, "-m", "ruff", "check", "."],
    "ruff format": [PY, "-m", "ruff", "format", "--check", "."],
    "mypy": [PY, "-m", "mypy"],
}
START = time.monotonic()
DEADLINE = START + 60 * float(os.environ.get("SUITE_BUDGET_MINUTES", "80"))


def step(name, cmd):
    start = time.monotonic()
    code = finish(subprocess.Popen(cmd, cwd=ROOT), name)
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
    results.extend(end_to_end(args))
    return report(results)


TIMES = ROOT / ".sandbox" / "test-times.log"
SCALE_OUT_LOG = ROOT / ".sandbox" / "scale-out.log"
# The first module is done: its host is deployed, and its drift tests, which change a setting
# of the kernel all hosts share (vm.overcommit_memory), no longer meet a scale-out deploy.
PAST_FOUNDATION = re.compile(r" tests/e2e/test_(?!1_)\w+\.py::", re.M)


def end_to_end(args):
    """The one-host tests, and the scale-out tests beside them once the first module is done (after
    the one-host tests if it never ends)."""
    one_host = [PY, "-m", "pytest", "tests/e2e", "--ignore", CLUSTER_TESTS, "--ignore", PITR_TESTS, *args]
    pitr = " ".join(f"{k}={v}" for k, v in PITR_HOST.items())
    scale_out = [
        "sh",
        "-c",
        f"{PY} -m pytest {CLUSTER_TESTS}; a=$?; {pitr} {PY} -m pytest {PITR_TESTS}; b=$?; exit $((a | b))",
    ]
    start = time.monotonic()
    first = subprocess.Popen(one_host, cwd=ROOT)
    beside, beside_start, beside_end, done = None, 0.0, None, {}
    while first.poll() is None and time.monotonic() < DEADLINE:
        if beside is None and TIMES.exists() and PAST_FOUNDATION.search(TIMES.read_text()):
            subprocess.run([PY, "tools/sandbox.py", "seed-save", "--name", host_name()], cwd=ROOT, check=False)
            beside_start = time.monotonic()
            with open(SCALE_OUT_LOG, "w") as log:
                beside = subprocess.Popen(scale_out, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            print(
                f"\n[suite] the scale-out tests started beside the one-host tests (output: {SCALE_OUT_LOG})", flush=True
            )
        if beside is not None and beside_end is None and beside.poll() is not None:
            beside_end = time.monotonic()
        time.sleep(2)
    done["one-host end-to-end tests"] = (finish(first, "the one-host tests"), time.monotonic() - start)
    if beside is None:
        return [*((n, c, t) for n, (c, t) in done.items()), step("scale-out end-to-end tests", scale_out)]
    code = finish(beside, "the scale-out tests")
    print(f"\n[suite] the scale-out tests ({SCALE_OUT_LOG}):\n{SCALE_OUT_LOG.read_text()}", flush=True)
    done["scale-out tests, beside"] = (code, (beside_end or time.monotonic()) - beside_start)
    return [(name, code, took) for name, (code, took) in done.items()]


def host_name():
    return os.environ.get("E2E_SANDBOX_NAME", "sandbox-e2e")  # tests/e2e/conftest.py's


def finish(process, what):
    """Its exit code once it ends; interrupted (SIGINT, as Ctrl-C) when the suite's budget runs out."""
    try:
        return process.wait(timeout=max(1.0, DEADLINE - time.monotonic()))
    except subprocess.TimeoutExpired:
        print(f"\n[suite] the budget of the suite ran out during {what}: interrupting them", flush=True)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return 124


def report(results):
    print("\nsuite:")
    for name, code, took in results:
        print(f"  {name:<34}{'passed' if code == 0 else 'FAILED':<8}{took:>8.0f} s")
    print(f"  {'total':<42}{time.monotonic() - START:>8.0f} s")
    return 1 if any(code for _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
