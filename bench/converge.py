"""Converge benchmark on a fresh sandbox host of its own (not a test: it prints figures).

    .venv/bin/python bench/converge.py [--keep]

Prints: fresh converge time, no-op rerun time, the floor (`pyinfra ... exec -- true`:
connect plus one command), rerun / floor, how many operations changed on the rerun
(targets: 0 changed, rerun at most 3x the floor); the stack layer's own converge time
(stack removed, host layers and images kept); and each container's idle memory against
its limit (real PostgreSQL and Redis; the apps are stand-ins, so their figures say
nothing about the real apps); a backup's time (median of 3) and size, and a full
restore's time (the stand-ins' data is small: these are the fixed costs).
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


def host_sh(script):
    out = subprocess.run(["docker", "exec", NAME, "sh", "-c", script], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{script} failed on {NAME}: {out.stderr}")
    return out.stdout


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
        host_sh("cd /opt/msgplatform && docker compose down -v --remove-orphans && rm -rf /opt/msgplatform")
        stack_converge, _ = deploy()
        time.sleep(30)  # let the services settle before reading idle memory
        stats = host_sh("docker stats --no-stream --format '{{.Name}}\t{{.MemUsage}}\t{{.MemPerc}}'")
        backups = [timed(["docker", "exec", NAME, "systemctl", "start", "msgplatform-backup.service"])[0] for _ in range(3)]
        backup_size = host_sh("du -sh $(ls -1d /var/backups/msgplatform/[0-9]*Z | tail -n 1) | cut -f1").strip()
        restore, _ = timed(["docker", "exec", NAME, "/opt/msgplatform/bin/restore.sh", "latest"])
        _, changed_after_restore = deploy()
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
    print(f"stack layer converge:  {stack_converge:7.1f} s  (compose project, secrets, databases; images on host)")
    print(f"backup (median of 3):  {statistics.median(backups):7.1f} s  ({backup_size})")
    print(f"full restore:          {restore:7.1f} s  (then a rerun changed {len(changed_after_restore)} operations)")
    print()
    print("idle memory per container (used / limit, share):")
    for line in sorted(stats.splitlines()):
        name, usage, share = line.split("\t")
        print(f"  {name:<34}{usage:>24}{share:>9}")


if __name__ == "__main__":
    main()
