"""The point-in-time recovery drill's steps on a sandbox host (a systemd container running the stack), shared by
tests/e2e/test_6_pitr.py and bench/pitr.py: commits recorded as PostgreSQL acknowledged them, the data lost,
the restore script run on the host, the rows read back."""

import subprocess
import time
from datetime import datetime

from tools.sandbox_host.common import run_exec

RESTORE = "/opt/msgplatform/bin/pitr-restore.py"
PG = "msgplatform-postgres-1"
REPO = "/var/backups/msgplatform-pitr"
PROBE = "create table if not exists pitr_probe (id serial primary key, ts timestamptz default clock_timestamp())"


def sql(host, statement, db="postgres"):
    """One statement through psql in PostgreSQL's container: its rows, `|`-separated."""
    out = run_exec(
        ["docker", "exec", host, "docker", "exec", PG, "psql", "-U", "postgres", "-d", db, "-tAXc", statement]
    )
    if out.returncode:
        raise AssertionError(f"{statement[:80]!r} failed on {host}: {out.stderr[-500:]}")
    return out.stdout.strip()


def archived_now(host, timeout=120):
    """Whether a WAL switch made now reaches the repository within `timeout` s, nothing else run on the host."""
    switched = sql(host, "select pg_walfile_name(pg_switch_wal())")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Read through pgBackRest: the repository may be the host's directory or a bucket.
        listed = run_exec(
            ["docker", "exec", host, "docker", "exec", "-u", "postgres", PG, "pgbackrest", "--stanza=main", "repo-ls"]
            + ["--recurse", "archive/main", f"--filter=/{switched}-"]
        )
        if listed.stdout.strip():
            return True
        time.sleep(1)
    return False


def fresh_probe(host, timeout=120):
    """pitr_probe made again, empty, and archived: a restore has it, with only the rows written after this."""
    sql(host, "drop table if exists pitr_probe")
    sql(host, PROBE)
    if not archived_now(host, timeout):
        raise AssertionError(f"the WAL was not archived within {timeout} s on {host}")


def write_for(host, seconds, every=0.2):
    """[(id, commit time as PostgreSQL saw it)] of each insert into pitr_probe PostgreSQL acknowledged, one
    every `every` s for `seconds`, through one psql session."""
    session = subprocess.Popen(
        ["docker", "exec", "-i", host, "docker", "exec", "-i", PG, "psql", "-U", "postgres", "-qtAX"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    acknowledged, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        session.stdin.write("insert into pitr_probe default values returning id, ts;\n")
        session.stdin.flush()
        row_id, ts = session.stdout.readline().strip().split("|")
        acknowledged.append((int(row_id), datetime.fromisoformat(ts)))
        time.sleep(every)
    session.stdin.close()
    session.wait(timeout=30)
    return acknowledged


def lose_the_data(host):
    """PostgreSQL killed, its container and its data volume removed: a lost disk."""
    out = run_exec(
        [
            "docker",
            "exec",
            host,
            "sh",
            "-c",
            f"docker kill {PG} && docker rm -f {PG} && docker volume rm msgplatform_postgres-data",
        ]
    )
    if out.returncode:
        raise AssertionError(f"the data could not be removed on {host}: {out.stderr[-500:]}")


def restore(host, target):
    """bin/pitr-restore.py on the host: (exit code, what it printed)."""
    out = run_exec(["docker", "exec", host, RESTORE, target])
    return out.returncode, out.stdout + out.stderr


def restored(host):
    rows = sql(host, "select id, ts from pitr_probe order by id").splitlines()
    return [(int(i), datetime.fromisoformat(t)) for i, t in (row.split("|", 1) for row in rows)]


def rpo_seconds(acknowledged, rows):
    """The last acknowledged commit's time minus the newest restored row's (the first acknowledged one's, when
    none was restored: at least that much was lost)."""
    return (acknowledged[-1][1] - (rows[-1][1] if rows else acknowledged[0][1])).total_seconds()
