"""Converge benchmark on a fresh sandbox host of its own (not a test: it prints figures).

    .venv/bin/python bench/converge.py [--keep]
    .venv/bin/python bench/converge.py --quick [--name sandbox-1 --port 2222]

--quick (the suite runs it, tests/e2e/test_3_z_bench.py): on a host already deployed, changing
nothing on it: the no-op rerun against the floor, what the reruns changed, each container's
memory against its limit.

Prints: fresh converge time, no-op rerun time, the floor (`pyinfra ... exec -- true`:
connect plus one command), rerun / floor, how many operations changed on the rerun
(targets: 0 changed, rerun at most 3x the floor); the stack layer's own converge time
(stack removed, host layers and images kept); each container's memory (RSS, from its
cgroup: `docker stats` shows 0 for limited containers on this engine) against its limit,
idle and after a small load (100 executions of a webhook workflow through n8n's queue,
100 Directus item writes); a backup's time (median of 3) and size, and a full restore's
time; then the minimum profile (a 4 GB host's limits): deployed, audited, its memory.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tools import inbound_client
from tools.sandbox_host.common import run_exec

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
    out = run_exec(["docker", "exec", NAME, "sh", "-c", script])
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
    parser.add_argument("--quick", action="store_true", help="on a deployed host: rerun / floor and memory only")
    parser.add_argument("--name", default="sandbox-1", help="with --quick: the sandbox host (make sandbox's)")
    parser.add_argument("--port", default="2222", help="with --quick: its SSH port")
    args = parser.parse_args()
    if args.quick:
        return quick(args.name, args.port)
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
        idle = container_memory()
        load_seconds = small_load()
        loaded = container_memory()
        print(f"memory (MiB RSS, limit, restarts) idle: {idle}\nafter the load: {loaded}", flush=True)
        backups = [
            timed(["docker", "exec", NAME, "systemctl", "start", "msgplatform-backup.service"])[0] for _ in range(3)
        ]
        backup_size = host_sh("du -sh $(ls -1d /var/backups/msgplatform/[0-9]*Z | tail -n 1) | cut -f1").strip()
        restore, _ = timed(["docker", "exec", NAME, "/opt/msgplatform/bin/restore.sh", "latest"])
        _, changed_after_restore = deploy()
        minimum = minimum_profile()
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
    print(f"memory per container, RSS in MiB (idle / after the load of {load_seconds:.0f} s) of its limit:")
    for name, (rss, limit, _) in sorted(idle.items()):
        print(f"  {name:<34}{rss:>7.0f} / {loaded.get(name, (0, 0, 0))[0]:>5.0f}  of {limit:>5.0f}")
    print()
    print(
        f"minimum profile: deploy {'ok' if minimum['deployed'] else 'FAILED'}, "
        f"audit {'ok' if minimum['audited'] else 'FAILED'}"
    )
    for name, (rss, limit, _) in sorted(minimum["memory"].items()):
        print(f"  {name:<34}{rss:>7.0f}          of {limit:>5.0f}")


def quick(name, port):
    global NAME
    NAME = name
    ENV.update(SANDBOX_NAME=name, SANDBOX_SSH_PORT=str(port))
    reruns = [deploy() for _ in range(2)]
    floors = [timed([PYINFRA, "inventory/sandbox.py", "-y", "exec", "--", "true"])[0] for _ in range(3)]
    memory = container_memory()
    rerun, floor = statistics.median(r[0] for r in reruns), statistics.median(floors)
    rerun_changed = sorted({op for _, names in reruns for op in names})
    print(f"no-op rerun (median of 2): {rerun:7.1f} s")
    print(f"floor, exec -- true:       {floor:7.1f} s")
    print(f"rerun / floor:             {rerun / floor:7.2f}   (target <= 3)")
    print(f"changed on reruns:         {len(rerun_changed):7d}   (target 0) {rerun_changed or ''}")
    print("memory per container, RSS in MiB of its limit:")
    for container, (rss, limit, _) in sorted(memory.items()):
        print(f"  {container:<34}{rss:>7.0f}  of {limit:>5.0f}")


def container_memory():
    return inbound_client.container_memory(host_sh)


DC = "docker compose -p msgplatform -f /opt/msgplatform/compose.yaml"
PROBE = {
    "id": "benchQueueProbe1",
    "name": "bench probe",
    "active": False,
    "settings": {"executionOrder": "v1"},
    "nodes": [
        {
            "id": "a1",
            "name": "Webhook",
            "type": "n8n-nodes-base.webhook",
            "typeVersion": 2,
            "position": [0, 0],
            "parameters": {"httpMethod": "POST", "path": "bench-probe", "responseMode": "lastNode"},
            "webhookId": "bench-probe",
        },
        {
            "id": "a2",
            "name": "Set",
            "type": "n8n-nodes-base.set",
            "typeVersion": 3.4,
            "position": [200, 0],
            "parameters": {
                "assignments": {
                    "assignments": [{"id": "b1", "name": "sum", "value": "={{ 20 + 22 }}", "type": "string"}]
                }
            },
        },
    ],
    "connections": {"Webhook": {"main": [[{"node": "Set", "type": "main", "index": 0}]]}},
}
COLLECTION = {
    "collection": "bench_items",
    "schema": {},
    "meta": {},
    "fields": [
        {
            "field": "id",
            "type": "integer",
            "meta": {"hidden": True},
            "schema": {"is_primary_key": True, "has_auto_increment": True},
        },
        {"field": "note", "type": "string", "meta": {}, "schema": {}},
    ],
}


def small_load():
    """100 workflow executions through the queue and 100 Directus item writes; its duration."""
    host_sh(
        f"cat > /tmp/probe.json <<'EOF'\n{json.dumps([PROBE])}\nEOF\n"
        # Through stdin into the container's /tmp (a tmpfs): `docker cp` cannot write to a read-only root file system.
        f"{DC} exec -T n8n sh -c 'cat > /tmp/probe.json' < /tmp/probe.json "
        f"&& {DC} exec -T n8n n8n import:workflow --input=/tmp/probe.json "
        f"&& {DC} exec -T n8n n8n publish:workflow --id={PROBE['id']} && {DC} restart n8n && {DC} up -d --wait n8n"
    )
    scripts = {
        "n8n": "for i in $(seq 100); do wget -T 30 -qO- --post-data='{}' --header 'Content-Type: application/json' "
        "http://127.0.0.1:5678/webhook/bench-probe >/dev/null || echo failed; done",
        "directus": "json='Content-Type: application/json'; auth=\"Authorization: Bearer $ADMIN_TOKEN\"\n"
        f'wget -qO- --header "$auth" --header "$json" --post-data=\'{json.dumps(COLLECTION)}\' '
        "http://127.0.0.1:8055/collections >/dev/null || exit 1\n"
        'for i in $(seq 100); do wget -qO- --header "$auth" --header "$json" '
        '--post-data="{\\"note\\": \\"item $i\\"}" http://127.0.0.1:8055/items/bench_items '
        ">/dev/null || echo failed; done",
    }
    start, failed = time.monotonic(), 0
    for service, script in scripts.items():
        failed += host_sh(
            f"cat > /tmp/load.sh <<'EOF'\n{script}\nEOF\n{DC} exec -T {service} sh -s < /tmp/load.sh"
        ).count("failed")
    print(f"load: {failed} of 200 requests failed", flush=True)
    return time.monotonic() - start


def minimum_profile():
    """The minimum profile's limits on the same host: does the platform start and pass the audit?"""
    out = subprocess.run(
        [PYINFRA, "inventory/sandbox.py", "deploy.py", "-y", "--data", "memory_profile=minimum"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    deployed = out.returncode == 0
    time.sleep(30)
    audit = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/audit",
            "-q",
            "--inventory",
            "inventory/sandbox.py",
            "--data",
            'memory_profile="minimum"',
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    return {"deployed": deployed, "audited": audit.returncode == 0, "memory": container_memory()}


if __name__ == "__main__":
    main()
