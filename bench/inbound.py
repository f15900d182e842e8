"""Inbound burst benchmark on the sandbox host (make sandbox); not a test: it prints figures.

    .venv/bin/python bench/inbound.py [--messages 200] [--concurrency 10] [--no-deploy]
    .venv/bin/python bench/inbound.py --quick [--name sandbox-1 --port 2222]

The quick mode (6 messages, 3 at a time, on the host as it is) is what the suite runs.

Sends a burst of signed WhatsApp messages across the configured numbers (one new
customer each) to n8n over TLS, and reports: the webhook's answer time (p50, p95, max),
the time until each conversation is routed (in its department's inbox with its label;
p50, p95, max), and how many were lost or duplicated (targets: none; answer < 1 s and
routed < 5 s at p95).
"""

import argparse
import os
import statistics
import subprocess
import sys
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

    burst_start = time.monotonic()
    with ThreadPoolExecutor(args.concurrency) as pool:
        statuses = list(pool.map(one, senders))
    print(
        f"{args.messages} messages sent in {time.monotonic() - burst_start:.1f} s ({args.concurrency} at a time); "
        f"last answers: {sorted(set(map(str, statuses)))}; delivered again: {len(retries)} times"
    )
    routed, deadline = {}, time.monotonic() + 300
    while len(routed) < len(senders) and time.monotonic() < deadline:
        now = time.monotonic()
        for conversation in host.conversations():
            phone = str(((conversation.get("meta") or {}).get("sender") or {}).get("phone_number", "")).lstrip("+")
            if (
                phone in senders
                and phone not in routed
                and senders[phone]["name"].lower() in (conversation.get("labels") or [])
            ):
                routed[phone] = now - sent[phone]
        time.sleep(0.5)
    counts = {}
    for conversation in host.conversations():
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


if __name__ == "__main__":
    main()
