"""The benchmarks' quick modes on the suite's host: each runs to the end and prints its figures
in the formats docs/benchmarks.md quotes (the figures are read by people, never asserted as
times), so a change that breaks a benchmark fails here."""

import re
import subprocess
import sys

from conftest import NAME, PORT, ROOT


def quick(bench):
    out = subprocess.run(
        [sys.executable, f"bench/{bench}.py", "--quick", "--name", NAME, "--port", str(PORT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(out.stdout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out


def test_the_quick_converge_benchmark_prints_its_figures(sandbox):
    out = quick("converge")
    assert re.search(r"^rerun / floor: +\d+\.\d\d", out.stdout, re.M), out.stdout
    assert re.search(r"^changed on reruns: +0 ", out.stdout, re.M), out.stdout  # idempotence, as the suite's own rerun
    assert re.search(r"^  \S+-postgres-1 +\d+  of +\d+", out.stdout, re.M), out.stdout


def test_the_quick_inbound_benchmark_prints_its_figures(sandbox):
    out = quick("inbound")
    assert re.search(r"^webhook answered: p50 \d+\.\d\d s, p95 \d+\.\d\d s, max \d+\.\d\d s$", out.stdout, re.M)
    assert re.search(r"^conversation routed .*: p50 \d+\.\d\d s, p95 \d+\.\d\d s", out.stdout, re.M), out.stdout
    assert re.search(r"^routed: 6 of 6; lost: 0; duplicated conversations: 0$", out.stdout, re.M), out.stdout
    worker = r"^msgplatform-n8n-worker-1: peak RSS [1-9]\d* MiB of its \d+ MiB limit, restarted 0 times"
    assert re.search(worker, out.stdout, re.M), out.stdout
    steady = r"^steady AI reply on WhatsApp .*: p50 \d+\.\d\d s, p95 \d+\.\d\d s"
    assert re.search(steady, out.stdout, re.M), out.stdout
    last = r"lost 0, duplicated 0, steady routed p95 \d+\.\d s, burst routed p95 \d+\.\d s, drain \d+\.\d\d msg/s"
    assert re.fullmatch(last, out.stdout.strip().splitlines()[-1]), out.stdout


def test_the_quick_poster_benchmark_prints_its_figures(sandbox):
    out = quick("poster")
    assert re.search(r"^first run, 1 promotions x 3 platforms: .* 3/3 logged, .* peak \d+ MiB$", out.stdout, re.M)
    assert re.search(r"^second run in the same slot: .* 0 new log rows", out.stdout, re.M), out.stdout
