"""Point-in-time recovery drill (pitr.py, bin/pitr-restore.py) on a host of its own, run beside the one-host tests
after the scale-out ones (tools/run_suite.py): rows written every 200 ms for 90 s, each acknowledged commit
recorded; PostgreSQL killed and its data volume deleted; restored to the end of the archive (RPO at most 60 s),
then to a moment in the middle (exactly the commits up to it); a moment past the end refused, nothing changed."""

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest

from tools.pitr_drill import (
    PG,
    archived_now,
    fresh_probe,
    lose_the_data,
    restore,
    restored,
    rpo_seconds,
    sql,
    write_for,
)
from tools.sandbox_host.common import run_exec

from conftest import NAME, changed, psql, run

WRITE_SECONDS = 90


def pgbackrest(*args):
    command = ["docker", "exec", NAME, "docker", "exec", "-u", "postgres", PG, "pgbackrest", "--stanza=main"]
    out = run_exec([*command, *args])
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def backups():
    """pgBackRest's backups, oldest first."""
    return json.loads(pgbackrest("info", "--output=json"))[0]["backup"]


def restore_from_here(host, target):
    """tools/pitr_restore.py, as an operator runs it from their machine: the restore, then the audit."""
    out = run(
        [sys.executable, "tools/pitr_restore.py", "--inventory", "inventory/sandbox.py", target],
        env=host.env,
        timeout=1800,
    )
    host.outputs.append(out.stdout + out.stderr)
    return out.returncode, out.stdout + out.stderr


@pytest.fixture(scope="module")
def host(sandbox):
    rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    rc, results, log = sandbox.deploy()
    assert rc == 0 and changed(results) == [], f"a second deploy changed: {changed(results)}"
    fresh_probe(NAME)
    return sandbox


def test_the_archive_after_losing_the_data_and_a_moment_in_the_middle(host):
    acknowledged = write_for(NAME, WRITE_SECONDS)
    lose_the_data(NAME)
    rc, out = restore(NAME, "latest")
    assert rc == 0, out[-3000:]
    rows = restored(NAME)
    newest = rows[-1][1]
    rpo = rpo_seconds(acknowledged, rows)
    print(f"RPO {rpo:.1f} s ({len(acknowledged)} commits acknowledged, {len(rows)} restored)")
    assert rpo <= 60, out
    assert rows == [row for row in acknowledged if row[1] <= newest], "a commit before the newest restored is missing"

    middle = acknowledged[len(acknowledged) // 2]
    target = middle[1] + timedelta(milliseconds=100)  # after its commit, before the next insert
    rc, out = restore_from_here(host, target.isoformat(sep=" "))
    assert rc == 0 and "restored; the audit:" in out and " passed" in out, out[-3000:]
    assert restored(NAME) == [row for row in acknowledged if row[0] <= middle[0]]
    # The restore took a backup on its new timeline: a replica seeded from the repository can follow it.
    timeline = int(sql(NAME, "select pg_walfile_name(pg_current_wal_lsn())")[:8], 16)
    assert int(backups()[-1]["archive"]["start"][:8], 16) == timeline, backups()[-1]


def test_a_moment_past_the_end_of_the_archive_is_refused(host):
    before = restored(NAME)
    rc, out = restore(NAME, (datetime.now().astimezone() + timedelta(hours=1)).isoformat(sep=" "))
    assert rc != 0 and "past the end of the archive" in out and "nothing was changed" in out, out
    assert restored(NAME) == before
    rc, failed, log = host.audit()
    assert rc == 0, f"the audit after the restores failed: {failed}\n{log[-3000:]}"


def test_after_a_crash_the_archive_keeps_archive_timeout(host):
    """PostgreSQL's postmaster killed: Docker starts it again through crash recovery, and with nothing run on
    the host a write is archived within archive_timeout (30 s), not after checkpoint_timeout (5 min)."""
    started = host.sh(f"docker inspect -f '{{{{.State.StartedAt}}}}' {PG}")
    host.sh(f"docker exec -u postgres {PG} sh -c 'kill -9 $(head -n 1 /var/lib/postgresql/data/postmaster.pid)'")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = host.sh(f"docker inspect -f '{{{{.State.StartedAt}}}} {{{{.State.Health.Status}}}}' {PG}", check=False)
        if state.split()[:1] != started.split() and state.strip().endswith(" healthy"):
            break
        time.sleep(2)
    else:
        raise AssertionError(f"PostgreSQL did not come back healthy: {state}")
    log = host.sh(f"docker logs --since {state.split()[0]} {PG} 2>&1", check=False)
    assert "automatic recovery in progress" in log, log[-2000:]  # it went through crash recovery
    sql(NAME, "insert into pitr_probe default values")
    written = sql(NAME, "select pg_walfile_name(pg_current_wal_lsn())")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if host.sh(f"find /var/backups/msgplatform-pitr/archive -name '{written}-*'", check=False).strip():
            return
        time.sleep(2)
    raise AssertionError(f"{written} was not archived within 90 s of a write after the crash")


QUEUE_MB = 64  # pitr_queue_max_mb for the fault drill: a few WAL files, so that the drill writes past it


def pending_wal():
    """WAL files PostgreSQL holds for the archiver (pg_wal/archive_status/*.ready)."""
    return int(
        subprocess.run(
            [
                "docker",
                "exec",
                NAME,
                "docker",
                "exec",
                PG,
                "sh",
                "-c",
                "ls /var/lib/postgresql/data/pg_wal/archive_status | grep -c ready$",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        or 0
    )


def test_a_repository_that_takes_no_wal_stops_neither_the_database_nor_holds_pg_wal(host):
    rc, results, log = host.deploy("--data", f"pitr_queue_max_mb={QUEUE_MB}")
    assert rc == 0, log[-3000:]
    psql(host, "postgres", "create table if not exists wal_filler (id int, pad text)")
    repo = "/var/backups/msgplatform-pitr/archive"
    host.sh(f"chmod -R a-w {repo}")  # read-only to pgBackRest (PostgreSQL's user in the container)
    try:
        most_pending = 0
        for _ in range(16):  # some 16 x 20 MB of WAL: the database keeps taking writes
            psql(host, "postgres", "insert into wal_filler select g, repeat('x', 400) from generate_series(1, 40000) g")
            psql(host, "postgres", "select pg_switch_wal()")
            most_pending = max(most_pending, pending_wal())
        rc, failed, log = host.audit("tests/audit/test_backup.py")
        # Failing, or (past the queue's maximum) dropping: either way it says why.
        assert failed == ["test_wal_archive_is_current"] and "not writable or unreachable?" in log, log[-3000:]
    finally:
        host.sh(f"chmod -R u+w {repo}")
    print(f"WAL held for the archiver at most: {most_pending} files of 16 MB (queue max {QUEUE_MB} MB)")
    # Some 320 MB written: held back, it would be 20 files and more. The queue's maximum, plus what a few rounds
    # write before the archiver next asks pgBackRest (which then drops the queue) on a busy machine.
    assert 0 < most_pending * 16 <= QUEUE_MB + 96, "pg_wal held more WAL than pitr_queue_max_mb"
    psql(host, "postgres", "drop table wal_filler")

    # Writable again: archiving resumes by itself; what was dropped is a gap the audit names, and a deploy closes.
    assert archived_now(NAME), "archiving did not resume by itself"
    rc, failed, log = host.audit("tests/audit/test_backup.py")
    assert failed == ["test_wal_archive_has_no_gap_since_the_newest_backup"], log[-3000:]
    rc, results, log = host.deploy("--data", f"pitr_queue_max_mb={QUEUE_MB}")
    assert rc == 0 and "pgBackRest stanza ready, with a full backup (gap)" in changed(results), log[-3000:]
    rc, failed, log = host.audit("tests/audit/test_backup.py")
    assert rc == 0, log[-3000:]
    rc, results, log = host.deploy("--data", f"pitr_queue_max_mb={QUEUE_MB}")
    assert rc == 0 and changed(results) == [], changed(results)


def test_retention_keeps_pitr_keep_full_full_backups_and_the_wal_from_the_oldest_of_them(host):
    """Two full backups more, each by the weekly timer's unit as it runs: with pitr_keep_full = 2 the oldest full
    backup is expired, with its differential ones and the WAL before the oldest full backup kept."""

    oldest = next(b for b in backups() if b["type"] == "full")
    for _ in range(2):
        started = run_exec(["docker", "exec", NAME, "systemctl", "start", "msgplatform-pitr-full.service"])
        assert started.returncode == 0, started.stderr
    kept = backups()
    fulls = {b["label"] for b in kept if b["type"] == "full"}
    assert len(fulls) == 2 and oldest["label"] not in fulls, [b["label"] for b in kept]
    # A differential backup's label starts with its full one's: none is left of the expired one.
    assert all(b["label"].split("_")[0] in fulls for b in kept), [b["label"] for b in kept]
    assert pgbackrest("repo-ls", "--recurse", "archive/main", f"--filter=/{oldest['archive']['start']}-") == ""
    first = kept[0]["archive"]["start"]
    assert pgbackrest("repo-ls", "--recurse", "archive/main", f"--filter=/{first}-").strip(), f"{first} expired"


def test_the_quick_pitr_benchmark_prints_its_figures(host):
    """bench/pitr.py --quick on this host (the figures are read by people, never asserted as times)."""
    out = run([sys.executable, "bench/pitr.py", "--quick", "--name", NAME, "--port", str(host.port)], timeout=1200)
    print(out.stdout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert re.search(r"^WAL archived at the burst's load: \d+\.\d\d MB in \d+ s, \d+ MB an hour", out.stdout, re.M)
    assert re.fullmatch(r"RPO \d+\.\d s, restore \d+\.\d GB \d+ s", out.stdout.strip().splitlines()[-1]), out.stdout
