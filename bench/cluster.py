"""Scale-out figures on the sandbox cluster (tools/sandbox.py cluster-up; it is destroyed and
started again here, twice):

1. converge time: a fresh primary alone (`--limit sandbox-primary`), then all three hosts of
   inventory/sandbox_cluster.py fresh in one run; the ratio (target at most 1.3: pyinfra
   works on the hosts in parallel); then the no-op rerun of the three against the one.
2. replication lag under a burst of 10,000 row writes on the primary (one transaction
   each): the replica's replay lag as the primary sees it (pg_stat_replication), sampled
   through the burst: p95 and maximum; and the time until the replica has every row.

    .venv/bin/python bench/cluster.py [--rows 10000] [--skip-converge]
    .venv/bin/python bench/cluster.py --quick    # 200 rows on the running cluster, as the suite runs it
"""

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from tools.sandbox_host.common import run_exec

ROOT = Path(__file__).resolve().parents[1]
PYINFRA = [str(ROOT / ".venv" / "bin" / "pyinfra"), "inventory/sandbox_cluster.py", "deploy.py", "-y"]
TOOL = [sys.executable, "tools/sandbox.py"]
PSQL = "docker exec -i msgplatform-postgres-1 psql -U postgres -d postgres -tA"


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)


def timed(cmd):
    start = time.monotonic()
    out = run(cmd)
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}")
    return time.monotonic() - start


def fresh_cluster():
    run([*TOOL, "cluster-destroy"])
    out = run([*TOOL, "cluster-up"])
    if out.returncode:
        sys.exit(out.stderr[-2000:])


def psql(host, sql, stdin=None):
    command = ["docker", "exec", "-i", host, "sh", "-c", f'{PSQL} -c "{sql}"' if sql else f"{PSQL} -q"]
    return run_exec(command, input=stdin, cwd=ROOT).stdout.strip()


def converge():
    fresh_cluster()
    one = timed([*PYINFRA, "--limit", "sandbox-primary"])
    fresh_cluster()
    three = timed(PYINFRA)
    print(
        f"fresh converge: primary alone {one:.0f} s, primary + replica + worker {three:.0f} s: "
        f"ratio {three / one:.2f} (target <= 1.3)"
    )
    reruns = {
        name: [timed([*PYINFRA, *extra]) for _ in range(3)]
        for name, extra in (("three", []), ("one", ["--limit", "sandbox-primary"]))
    }
    ratio = statistics.median(reruns["three"]) / statistics.median(reruns["one"])
    print(
        f"no-op rerun (median of 3): three hosts {statistics.median(reruns['three']):.1f} s, the primary alone "
        f"{statistics.median(reruns['one']):.1f} s: ratio {ratio:.2f}"
    )


def lag(rows):
    psql(
        "sandbox-primary", "drop table if exists bench_lag; create table bench_lag (id int primary key, at timestamptz)"
    )
    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            value = psql(
                "sandbox-primary", "select coalesce(extract(epoch from replay_lag), 0) from pg_stat_replication"
            )
            if value:
                samples.append(float(value.split()[0]))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    inserts = "".join(f"insert into bench_lag values ({i}, clock_timestamp());\n" for i in range(rows))
    start = time.monotonic()
    psql("sandbox-primary", None, stdin=inserts)
    burst = time.monotonic() - start
    while psql("sandbox-replica", "select count(*) from bench_lag") != str(rows):
        if time.monotonic() - start > 300:
            done.set()
            sys.exit(f"the replica did not have the {rows} rows 300 s after the burst began")
        time.sleep(0.05)
    caught_up = time.monotonic() - start
    time.sleep(1)
    done.set()
    sampler.join()
    psql("sandbox-primary", "drop table bench_lag")
    ordered = sorted(samples) or [0.0]
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    print(
        f"{rows} single-row transactions on the primary in {burst:.1f} s ({rows / burst:.0f}/s); "
        f"the replica had them all {caught_up:.1f} s after the first"
    )
    print(f"replay lag over {len(samples)} samples: p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--skip-converge", action="store_true", help="use the running cluster as it is")
    parser.add_argument("--quick", action="store_true", help="200 rows on the running cluster")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.skip_converge = 200, True
    if not args.skip_converge:
        converge()
    lag(args.rows)


if __name__ == "__main__":
    main()
