"""Inbound benchmark on the sandbox host (make sandbox); not a test: it prints figures.

    .venv/bin/python bench/inbound.py [--steady-seconds 120] [--messages 200] [--concurrency 10] [--no-deploy]
    .venv/bin/python bench/inbound.py --quick [--name sandbox-1 --port 2222]

The quick mode (5 steady messages, then 6, 3 at a time, on the host as it is) is what the suite runs.

Signed WhatsApp messages across the configured numbers (one new customer each) go to n8n over TLS,
delivered again as Meta does while not answered 2xx, in two phases, with the simulator's Claude
answering after 1 s:
- steady: one message a second for `--steady-seconds`: the time until each conversation is routed
  (in its department's inbox with its label) and until the AI reply reaches WhatsApp;
- burst: `--messages` at once (`--concurrency` in flight): the webhook's answer time, the routing
  time, and the drain rate (messages routed a second from the burst's start to its last routing,
  per queue worker).
Then how many were lost or duplicated, and each n8n container's peak RSS (its cgroup, sampled every
second) against its limit and its restarts (platform_deploy/memory.py sizes the worker from them).
Targets (issue 22): none lost or duplicated; steady routed p95 <= 3 s and AI reply p95 <= 8 s;
burst routed p95 <= 60 s. The last line sums them up.
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

from tools.inbound_client import GROUP_DATA, Host, container_memory

ROOT = Path(__file__).resolve().parents[1]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def figures(label, values):
    if not values:
        return f"{label}: none"
    return (
        f"{label}: p50 {statistics.median(values):.2f} s, p95 {percentile(values, 95):.2f} s, max {max(values):.2f} s"
    )


N8N_CONTAINERS = ("msgplatform-n8n-1", "msgplatform-n8n-worker-1")


def memory(host):
    """n8n's containers: (RSS MiB, limit MiB, restarts) of each."""
    return {name: m for name, m in container_memory(host.sh).items() if name in N8N_CONTAINERS}


def sample_memory(host, stop, peaks):
    """Until `stop` is set: the highest RSS seen of each n8n container, sampled every second."""
    while not stop.is_set():
        try:
            for name, (rss, _, _) in memory(host).items():
                peaks[name] = max(peaks.get(name, 0), rss)
        except (RuntimeError, ValueError):  # a container being restarted has no cgroup for a moment
            pass
        stop.wait(1)


class Phase:
    """Messages of new customers, each delivered again as Meta does while not answered 2xx (1 s, doubling
    to 10 s, for 300 s); then the time until each is routed."""

    def __init__(self, host, prefix, count):
        departments = GROUP_DATA["departments"]
        stamp = f"{int(time.time()) % 10000:04d}"
        self.host, self.since = host, int(time.time()) - 5
        self.senders = {f"{prefix}{stamp}{i:04d}": departments[i % len(departments)] for i in range(count)}
        self.sent, self.answers, self.retries, self.statuses, self.routed = {}, [], [], [], {}
        self.deadline = float("inf")

    def one(self, sender):
        self.sent[sender] = time.time()
        pause, wamid = 1, f"wamid.BENCH{sender}{time.time_ns()}"
        while True:
            start = time.monotonic()
            try:
                status, _ = self.host.send(self.senders[sender]["name"], "What are your opening hours?", sender, wamid)
            except OSError as e:  # no answer within the client's 30 s
                status = type(e).__name__
            self.answers.append(time.monotonic() - start)
            if status == 200 or time.time() - self.sent[sender] > 300:
                self.statuses.append(status)
                return
            self.retries.append(status)
            time.sleep(pause)
            pause = min(pause * 2, 10)

    def watch(self):
        """Notes when each message sent is routed, until all are or 300 s after the last was sent: the few
        customers still waiting one by one (Chatwoot's contact search), or else the recent conversations."""
        while len(self.routed) < len(self.senders) and time.time() < self.deadline:
            waiting, now = [s for s in list(self.sent) if s not in self.routed], time.time()
            try:
                if len(waiting) <= 5:
                    found = {s: self.host.conversations_of(s, messages=False) for s in waiting}
                else:
                    found = self.host.conversations_by_sender(self.senders, self.since)
            except RuntimeError as e:  # Chatwoot busy: the next poll
                print(f"a poll failed: {str(e)[:200]}", file=sys.stderr)
                found = {}
            for phone, conversations in found.items():
                label = self.senders[phone]["name"].lower()
                if phone not in self.routed and any(label in (c.get("labels") or []) for c in conversations):
                    self.routed[phone] = now
            time.sleep(0.5)

    def run(self, send):
        """`send()` delivers the messages while `watch` runs beside it."""
        watcher = threading.Thread(target=self.watch)
        watcher.start()
        try:
            send()
        finally:
            self.deadline = time.time() + 300
        watcher.join()

    def routing_times(self):
        return [self.routed[s] - self.sent[s] for s in self.routed] or [float("nan")]

    def reply_times(self):
        first = {}
        for r in self.host.simulator("GET", "/_sim/requests"):
            to = (r.get("body") or {}).get("to") if r["service"] == "whatsapp" and r["method"] == "POST" else None
            if to in self.sent and to not in first:
                first[to] = r["at"] - self.sent[to]
        return list(first.values()) or [float("nan")]

    def lost_and_duplicated(self):
        found = self.host.conversations_by_sender(self.senders, self.since)
        return [s for s, cs in found.items() if not cs], [s for s, cs in found.items() if len(cs) > 1]


def steady(host, seconds, rate=1.0):
    phase = Phase(host, "59271", int(seconds * rate))

    def send():
        threads, start = [], time.time()
        for i, sender in enumerate(phase.senders):
            time.sleep(max(0.0, start + i / rate - time.time()))
            threads.append(threading.Thread(target=phase.one, args=(sender,)))
            threads[-1].start()
        for thread in threads:
            thread.join()

    phase.run(send)
    time.sleep(10)  # the last replies
    print(f"steady: {len(phase.senders)} messages, {rate:g} a second; delivered again: {len(phase.retries)} times")
    print(figures("steady conversation routed", phase.routing_times()))
    print(figures("steady AI reply on WhatsApp (Claude answering in 1 s)", phase.reply_times()))
    return phase


def burst(host, messages, concurrency):
    phase, start = Phase(host, "59272", messages), time.time()

    def send():
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(phase.one, phase.senders))
        print(
            f"{messages} messages sent in {time.time() - start:.1f} s ({concurrency} at a time); "
            f"last answers: {sorted(set(map(str, phase.statuses)))}; delivered again: {len(phase.retries)} times"
        )

    phase.run(send)
    lost, duplicated = phase.lost_and_duplicated()
    print(figures("webhook answered", phase.answers))
    print(figures("conversation routed (inbox, team, label; polled every 0.5 s)", phase.routing_times()))
    print(f"routed: {len(phase.routed)} of {messages}; lost: {len(lost)}; duplicated conversations: {len(duplicated)}")
    workers = max(1, int(host.sh("docker ps -q --filter name=msgplatform-n8n-worker | wc -l")))
    drain = len(phase.routed) / max(0.001, max(phase.routed.values(), default=start) - start)
    print(
        f"drain: {drain:.2f} messages routed a second with {workers} queue worker(s), {drain / workers:.2f} per worker"
    )
    return phase, drain


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steady-seconds", type=int, default=120, help="one message a second for this long")
    parser.add_argument("--messages", type=int, default=200, help="the burst's messages")
    parser.add_argument("--concurrency", type=int, default=10, help="the burst's messages in flight")
    parser.add_argument("--no-deploy", action="store_true", help="use the host as it is")
    parser.add_argument("--quick", action="store_true", help="5 steady messages, a burst of 6, on the host as it is")
    parser.add_argument("--name", default=os.environ.get("SANDBOX_NAME", "sandbox-1"), help="the sandbox host")
    parser.add_argument("--port", default=os.environ.get("SANDBOX_SSH_PORT", "2222"), help="its SSH port")
    args = parser.parse_args()
    if args.quick:
        args.steady_seconds, args.messages, args.concurrency, args.no_deploy = 5, 6, 3, True
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
    host.simulator("POST", "/_sim/anthropic", {"rules": [{"match": "", "delay": 1}]})
    before, peaks, stop = memory(host), {}, threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(host, stop, peaks), daemon=True)
    sampler.start()
    try:
        calm = steady(host, args.steady_seconds)
        rush, drain = burst(host, args.messages, args.concurrency)
    finally:
        stop.set()
        host.simulator("POST", "/_sim/reset")
    sampler.join()
    for name, (_, limit, restarts) in memory(host).items():
        print(
            f"{name}: peak RSS {peaks.get(name, 0):.0f} MiB of its {limit:.0f} MiB limit, "
            f"restarted {restarts - before[name][2]} times (OOM-killed or crashed)"
        )
    (calm_lost, calm_twice), (rush_lost, rush_twice) = calm.lost_and_duplicated(), rush.lost_and_duplicated()
    lost, duplicated = len(calm_lost) + len(rush_lost), len(calm_twice) + len(rush_twice)
    print(
        f"lost {lost}, duplicated {duplicated}, steady routed p95 {percentile(calm.routing_times(), 95):.1f} s, "
        f"burst routed p95 {percentile(rush.routing_times(), 95):.1f} s, drain {drain:.2f} msg/s"
    )


if __name__ == "__main__":
    main()
