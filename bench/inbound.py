"""Inbound burst benchmark on the sandbox host (make sandbox); not a test: it prints figures.

    .venv/bin/python bench/inbound.py [--messages 200] [--concurrency 10] [--no-deploy]
    .venv/bin/python bench/inbound.py --quick [--name sandbox-1 --port 2222]

The quick mode (6 messages, 3 at a time, on the host as it is) is what the suite runs.

Sends a burst of signed WhatsApp messages across the configured numbers (one new
customer each) to n8n over TLS, and reports: the webhook's answer time (p50, p95, max),
the time until each conversation is routed (in its department's inbox with its label;
p50, p95, max), how many were lost or duplicated (targets: none; answer < 1 s and
routed < 5 s at p95), and the memory the n8n containers took: the peak of each one's cgroup
against its limit, and how many times the kernel OOM-killed it (the figures the memory
profile's worker limit and concurrency are set from, platform_deploy/memory.py).
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools.inbound_client import GROUP_DATA, Host

ROOT = Path(__file__).resolve().parents[1]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def figures(label, values):
    return (
        f"{label}: p50 {statistics.median(values):.2f} s, p95 {percentile(values, 95):.2f} s, max {max(values):.2f} s"
    )


N8N_CONTAINERS = ("msgplatform-n8n-1", "msgplatform-n8n-worker-1")
# Each container's memory cgroup (v1, as on the sandbox): its anonymous memory (RSS, what the
# limit must hold; the page cache is given back under pressure), its limit and its restarts.
MEMORY = """for c in {names}; do
  pid=$(docker inspect -f '{{{{.State.Pid}}}}' $c)
  cg=/sys/fs/cgroup/memory$(awk -F: '$2 ~ /memory/ {{print $3}}' /proc/$pid/cgroup)
  echo $c $(awk '$1 == "total_rss" {{print $2}}' $cg/memory.stat) $(cat $cg/memory.limit_in_bytes) \\
    $(docker inspect -f '{{{{.RestartCount}}}}' $c)
done"""


def memory(host):
    """container -> (RSS bytes, limit bytes, restarts)."""
    out = host.sh(MEMORY.format(names=" ".join(N8N_CONTAINERS)))
    return {name: tuple(map(int, rest)) for name, *rest in (line.split() for line in out.splitlines() if line.strip())}


def sample_memory(host, stop, peaks):
    """Until `stop` is set: the highest RSS seen of each n8n container, sampled every second."""
    while not stop.is_set():
        try:
            for name, (rss, _, _) in memory(host).items():
                peaks[name] = max(peaks.get(name, 0), rss)
        except (RuntimeError, ValueError):  # a container being restarted has no cgroup for a moment
            pass
        stop.wait(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--no-deploy", action="store_true", help="use the host as it is")
    parser.add_argument("--quick", action="store_true", help="6 messages, 3 at a time, on the host as it is")
    parser.add_argument("--name", default=os.environ.get("SANDBOX_NAME", "sandbox-1"), help="the sandbox host")
    parser.add_argument("--port", default=os.environ.get("SANDBOX_SSH_PORT", "2222"), help="its SSH port")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.concurrency, args.no_deploy = 6, 3, True
    env = {**os.environ, "SANDBOX_NAME": args.name, "SANDBOX_SSH_PORT": args.port}
    if not args.no_deploy:
        subprocess.run([sys.executable, "tools/sandbox.py", "up"], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [str(Path(sys.executable).parent / "pyinfra"), "inventory/sandbox.py", "deploy.py", "-y"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
    host = Host(args.name, args.port)
    host.simulator("POST", "/_sim/reset")  # the vendors' default answers, whatever a test scripted before
    departments = GROUP_DATA["departments"]
    stamp = str(int(time.time()))[-4:]
    senders = {f"5927{stamp}{i:04d}": departments[i % len(departments)] for i in range(args.messages)}
    sent, answers = {}, []

    retries = []

    def one(sender):
        """One message, delivered again as Meta does while not answered 2xx (1 s, doubling to 10 s, for 300 s)."""
        sent[sender] = time.monotonic()
        pause, wamid = 1, f"wamid.BENCH{sender}{time.time_ns()}"
        while True:
            start = time.monotonic()
            try:
                status, _ = host.send(senders[sender]["name"], "What are your opening hours?", sender, wamid)
            except OSError as e:  # no answer within the client's 30 s
                status = type(e).__name__
            answers.append(time.monotonic() - start)
            if status == 200 or time.monotonic() - sent[sender] > 300:
                return status
            retries.append(status)
            time.sleep(pause)
            pause = min(pause * 2, 10)

    before, peaks, stop = memory(host), {}, threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(host, stop, peaks), daemon=True)
    sampler.start()
    burst_start, since = time.monotonic(), int(time.time()) - 5
    with ThreadPoolExecutor(args.concurrency) as pool:
        statuses = list(pool.map(one, senders))
    print(
        f"{args.messages} messages sent in {time.monotonic() - burst_start:.1f} s ({args.concurrency} at a time); "
        f"last answers: {sorted(set(map(str, statuses)))}; delivered again: {len(retries)} times"
    )
    routed, deadline = {}, time.monotonic() + 300
    while len(routed) < len(senders) and time.monotonic() < deadline:
        now = time.monotonic()
        for conversation in host.conversations(since=since):
            phone = str(((conversation.get("meta") or {}).get("sender") or {}).get("phone_number", "")).lstrip("+")
            if (
                phone in senders
                and phone not in routed
                and senders[phone]["name"].lower() in (conversation.get("labels") or [])
            ):
                routed[phone] = now - sent[phone]
        time.sleep(0.5)
    counts = {}
    for conversation in host.conversations(since=since):
        phone = str(((conversation.get("meta") or {}).get("sender") or {}).get("phone_number", "")).lstrip("+")
        if phone in senders:
            counts[phone] = counts.get(phone, 0) + 1
    lost = [s for s in senders if s not in counts]
    duplicated = [s for s, n in counts.items() if n > 1]
    print(figures("webhook answered", answers))
    print(
        figures("conversation routed (inbox, team, label; polled every 0.5 s)", list(routed.values()) or [float("nan")])
    )
    print(f"routed: {len(routed)} of {len(senders)}; lost: {len(lost)}; duplicated conversations: {len(duplicated)}")
    stop.set()
    sampler.join()
    for name, (_, limit, restarts) in memory(host).items():
        print(
            f"{name}: peak RSS {peaks.get(name, 0) >> 20} MiB of its {limit >> 20} MiB limit, "
            f"restarted {restarts - before[name][2]} times (OOM-killed or crashed)"
        )


if __name__ == "__main__":
    main()
