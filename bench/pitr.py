"""Point-in-time recovery benchmark on the sandbox host (make sandbox); not a test: it prints figures.

    .venv/bin/python bench/pitr.py [--gb 1] [--rpo-runs 3] [--messages 200]
    .venv/bin/python bench/pitr.py --quick [--name sandbox-1 --port 2222]

On the host as it is (deployed, PITR on):
- the WAL archive's growth at the burst bench's load (bench/inbound.py's burst of `--messages`), per hour;
- the RPO: a row committed every 200 ms for 90 s, PostgreSQL killed and its data volume removed, restored
  to the end of the archive (bin/pitr-restore.py latest); the last acknowledged commit minus the newest
  restored row, `--rpo-runs` times;
- the restore time of `--gb` of data: a table filled until the databases hold that much, a full backup
  taken, then the data lost and restored to the end of the archive (the whole script: the apps stopped,
  the restore, the promotion, the apps healthy again). The table is dropped afterwards.
The last line: `RPO X s, restore N GB Y s` (the median RPO). Target (issue 24): RPO at most 60 s.
--quick (the suite runs it on the PITR drill's host): the inbound bench's quick burst, one RPO run of 45 s,
0.1 GB.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tools.pitr_drill import PG, REPO, fresh_probe, lose_the_data, restore, restored, rpo_seconds, sql, write_for
from tools.sandbox_host.common import run_exec

ROOT = Path(__file__).resolve().parents[1]


def on_host(host, script):
    out = run_exec(["docker", "exec", host, "sh", "-c", script])
    if out.returncode:
        sys.exit(f"{script[:120]!r} failed on {host}: {out.stderr[-1000:]}")
    return out.stdout.strip()


def archived_since(host, marker):
    """Bytes of the WAL files archived since `marker` (a file on the host) was touched; an expire in between
    takes nothing off."""
    sizes = f"find {REPO}/archive -type f -name '*.gz' -newer {marker} -printf '%s\\n'"
    script = f"{sizes} | awk '{{ s += $1 }} END {{ print s + 0 }}'"
    return int(on_host(host, script))


def wal_per_hour(host, port, messages, quick):
    fresh_probe(host)  # everything written before is archived
    marker = "/tmp/pitr-bench-start"
    on_host(host, f"touch {marker}")
    start = time.monotonic()
    inbound = [sys.executable, "bench/inbound.py", "--name", host, "--port", port]
    inbound += ["--quick"] if quick else ["--no-deploy", "--steady-seconds", "1", "--messages", str(messages)]
    out = subprocess.run(inbound, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"bench/inbound.py failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    elapsed = time.monotonic() - start
    fresh_probe(host)
    grown = archived_since(host, marker)
    print(f"inbound bench: {out.stdout.strip().splitlines()[-1]}")
    # The whole run of the inbound bench, of which the burst is most (a lower bound of the burst's own rate).
    print(
        f"WAL archived at the burst's load: {grown / 2**20:.2f} MB in {elapsed:.0f} s, "
        f"{grown / 2**20 / elapsed * 3600:.0f} MB an hour (compressed, encrypted; the inbound bench's whole run)"
    )


def rpo_run(host, seconds):
    fresh_probe(host)
    acknowledged = write_for(host, seconds)
    lose_the_data(host)
    rc, out = restore(host, "latest")
    if rc:
        sys.exit(f"the restore failed:\n{out[-3000:]}")
    rpo = rpo_seconds(acknowledged, restored(host))
    print(f"RPO {rpo:.1f} s ({len(acknowledged)} commits acknowledged in {seconds} s)")
    return rpo


def databases_gb(host):
    return float(sql(host, "select sum(pg_database_size(datname)) / 2^30 from pg_database"))


def restore_time(host, gb):
    sql(host, "create table if not exists pitr_fill (id int, pad text)")
    # Some 100 MB a round, of random hex text: gzip halves it, about as it does real rows (a text repeated
    # would shrink to nothing and flatter the backup and the restore).
    pad = " || ".join(["md5(random()::text)"] * 16)
    while databases_gb(host) < gb:
        sql(host, f"insert into pitr_fill select g, {pad} from generate_series(1, 180000) g")
    size = databases_gb(host)
    start = time.monotonic()
    on_host(host, f"docker exec -u postgres {PG} pgbackrest --stanza=main --type=full --log-level-console=warn backup")
    print(f"full backup of {size:.2f} GB: {time.monotonic() - start:.0f} s")
    lose_the_data(host)
    start = time.monotonic()
    rc, out = restore(host, "latest")
    took = time.monotonic() - start
    if rc:
        sys.exit(f"the restore failed:\n{out[-3000:]}")
    print(f"restore of {size:.2f} GB after losing the data (apps stopped, restored, promoted, healthy): {took:.0f} s")
    sql(host, "drop table pitr_fill")
    return size, took


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0, help="the data restored, in GB")
    parser.add_argument("--rpo-runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=200, help="the inbound burst's messages")
    parser.add_argument("--quick", action="store_true", help="a quick burst, one RPO run of 45 s, 0.1 GB")
    parser.add_argument("--name", default=os.environ.get("SANDBOX_NAME", "sandbox-1"), help="the sandbox host")
    parser.add_argument("--port", default=os.environ.get("SANDBOX_SSH_PORT", "2222"), help="its SSH port")
    args = parser.parse_args()
    seconds = 45 if args.quick else 90  # more than archive_timeout (30 s)
    if args.quick:
        args.gb, args.rpo_runs = 0.1, 1
    wal_per_hour(args.name, args.port, args.messages, args.quick)
    rpos = [rpo_run(args.name, seconds) for _ in range(args.rpo_runs)]
    size, took = restore_time(args.name, args.gb)
    sql(args.name, "drop table if exists pitr_probe")
    print(f"RPO {statistics.median(rpos):.1f} s, restore {size:.1f} GB {took:.0f} s")


if __name__ == "__main__":
    main()
