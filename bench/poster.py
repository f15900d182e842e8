"""Auto-poster benchmark on the sandbox host (make sandbox); not a test: it prints figures.

    .venv/bin/python bench/poster.py [--promotions 20]
    .venv/bin/python bench/poster.py --quick [--name sandbox-1 --port 2222]

The quick mode (one promotion) is what the suite runs.

Writes N active promotions (Facebook, Instagram and TikTok each) to Directus and times
one run of 02-social-media-auto-poster by n8n's CLI: the whole command (a one-off n8n
container, as an operator's run by hand), the execution itself (n8n's startedAt to
stoppedAt), the time per post, and the peak memory of the one-off container. Then a
second run in the same slot, which must post nothing. The promotions are archived
afterwards.
"""

import argparse
import json
import os
import threading
import time
from datetime import datetime

from tools.inbound_client import Host


def peak_memory(host, stop, found):
    """The largest memory use `docker stats` shows for the poster's one-off container."""
    while not stop.is_set():
        out = host.sh("docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' 2>/dev/null | grep n8n-run || true")
        for line in out.splitlines():
            used = line.split()[1]
            mib = float(used[:-3]) * (1024 if used.endswith("GiB") else 1) if used[-3:] in ("MiB", "GiB") else 0
            found.append(mib)


def timed_run(host):
    stop, memory = threading.Event(), []
    watcher = threading.Thread(target=peak_memory, args=(host, stop, memory), daemon=True)
    watcher.start()
    start = time.monotonic()
    out = host.run_poster()
    wall = time.monotonic() - start
    stop.set()
    watcher.join()
    execution = json.loads(out[out.index("{") :])
    took = (
        datetime.fromisoformat(execution["stoppedAt"]) - datetime.fromisoformat(execution["startedAt"])
    ).total_seconds()
    return wall, took, max(memory, default=0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--promotions", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="one promotion")
    parser.add_argument("--name", default=os.environ.get("SANDBOX_NAME", "sandbox-1"), help="the sandbox host")
    parser.add_argument("--port", default=os.environ.get("SANDBOX_SSH_PORT", "2222"), help="its SSH port")
    args = parser.parse_args()
    if args.quick:
        args.promotions = 1
    host = Host(args.name, args.port)
    host.simulator("POST", "/_sim/reset")
    made = []
    for _ in range(args.promotions):
        status, answer = host.directus_as(
            "directus_admin_token",
            "POST",
            "/items/promotions",
            {
                "title": f"Bench promotion {time.time_ns()}",
                "body": "Benchmark post.",
                "status": "active",
                "image": "https://cdn.example.com/bench.jpg",
                "channels": ["facebook", "instagram", "tiktok"],
            },
        )
        assert status == 200, answer
        made.append(answer["data"]["id"])
    try:
        posts = 3 * args.promotions
        wall, took, peak = timed_run(host)
        rows = sum(len(host.post_logs(i)) for i in made)
        print(
            f"first run, {args.promotions} promotions x 3 platforms: command {wall:.1f} s, execution {took:.1f} s, "
            f"{took / posts:.2f} s per post, {rows}/{posts} logged, one-off n8n container peak {peak:.0f} MiB"
        )
        wall, took, _ = timed_run(host)
        again = sum(len(host.post_logs(i)) for i in made) - rows
        print(
            f"second run in the same slot: command {wall:.1f} s, execution {took:.1f} s, "
            f"{again} new log rows (target: 0)"
        )
    finally:
        for i in made:
            host.directus_as("directus_admin_token", "PATCH", f"/items/promotions/{i}", {"status": "archived"})


if __name__ == "__main__":
    main()
