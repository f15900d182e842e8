"""Converge benchmark on a fresh sandbox host of its own (not a test: it prints figures).

    .venv/bin/python bench/converge.py [--keep]

Prints: fresh converge time, no-op rerun time, the floor (`pyinfra ... exec -- true`:
connect plus one command), rerun / floor, and how many operations changed on the rerun.
Targets: 0 changed; rerun no more than 3x the floor.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME, PORT = "sandbox-bench", "2224"
ENV = {**os.environ, "SANDBOX_NAME": NAME, "SANDBOX_SSH_PORT": PORT}
PYINFRA = str(Path(sys.executable).parent / "pyinfra")


def timed(cmd):
    start = time.monotonic()
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return elapsed, out.stdout


def deploy():
    elapsed, stdout = timed([PYINFRA, "inventory/sandbox.py", "deploy.py", "-y", "--json"])
    operations = json.loads(stdout)["results"]["operations"]
    return elapsed, [op["name"] for op in operations if op["success"]]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true", help="keep the bench host afterwards")
    args = parser.parse_args()
    tool = [sys.executable, "tools/sandbox.py", "--name", NAME, "--port", PORT]
    subprocess.run([*tool, "destroy"], cwd=ROOT, check=True)
    subprocess.run([*tool, "up"], cwd=ROOT, check=True)
    try:
        fresh, fresh_changed = deploy()
        reruns = [deploy() for _ in range(5)]
        floors = [timed([PYINFRA, "inventory/sandbox.py", "-y", "exec", "--", "true"])[0] for _ in range(5)]
    finally:
        if not args.keep:
            subprocess.run([*tool, "destroy"], cwd=ROOT)

    rerun = statistics.median(r[0] for r in reruns)
    floor = statistics.median(floors)
    rerun_changed = sorted({name for _, names in reruns for name in names})
    print()
    print(f"fresh converge:        {fresh:7.1f} s  ({len(fresh_changed)} operations changed)")
    print(f"no-op rerun (median):  {rerun:7.1f} s")
    print(f"floor, exec -- true:   {floor:7.1f} s")
    print(f"rerun / floor:         {rerun / floor:7.2f}   (target <= 3)")
    print(f"changed on reruns:     {len(rerun_changed):7d}   (target 0) {rerun_changed or ''}")


if __name__ == "__main__":
    main()
