"""Scale-out on four sandbox hosts on one Docker network (make sandbox-cluster): one
pyinfra run deploys a primary, a replica and a worker host from inventory/sandbox_cluster.py;
sandbox-outsider is on the same network but in no group. PostgreSQL streams to the
replica over its slot, Redis replicates, n8n's queue reaches the worker host, strangers
reach neither database, and the README's promotion ends with the apps on the replica."""

import json
import os
import re
import sys
import time

import pytest

from tools.pitr_drill import archived_now, restore

from cluster_helpers import (
    ADDRESS,
    OUTSIDER,
    PRIMARY,
    QUEUED,
    REPLICA,
    TOOL,
    WORKER,
    audit,
    audit_failed,
    booted,
    call_webhook,
    deploy,
    finished,
    psql,
    publish,
    reaches,
    redis,
    sh,
    wait_until,
)
from conftest import DC, changed, run, run_detached
from test_3_apps import WORKFLOW


@pytest.fixture(scope="module")
def cluster():
    if not os.environ.get("E2E_REUSE"):
        run([*TOOL, "cluster-destroy", "--in-background"])
    up = run([*TOOL, "cluster-up", "--seeded"], timeout=3600)
    assert up.returncode == 0, f"the cluster did not come up:\n{up.stdout}\n{up.stderr}"
    rc, results, log = deploy()
    assert rc == 0, log[-5000:]
    yield results
    if not os.environ.get("KEEP_SANDBOX"):
        run_detached([*TOOL, "cluster-destroy", "--in-background"])


def test_one_run_converges_every_host_and_a_rerun_changes_nothing(cluster):
    rc, results, log = deploy()
    assert rc == 0, log[-3000:]
    assert changed(results) == [], f"a second run changed: {changed(results)}"


def test_each_host_passes_the_audit_of_its_role(cluster):
    rc, log = audit()
    assert rc == 0, log[-4000:]
    # Each host is checked for its role only: the worker host has no databases, the replica no edge.
    assert re.search(r"\d+ passed, \d+ skipped", log), log[-500:]


def test_a_row_written_on_the_primary_is_on_the_replica_within_10_s(cluster):
    psql(
        PRIMARY, "create table if not exists e2e_rows (v text); insert into e2e_rows values ('written on the primary')"
    )
    wait_until(
        lambda: (
            psql(
                REPLICA,
                "select count(*) from e2e_rows where v = 'written on the primary'",
            )
            == "1"
        ),
        "the row replicated",
        timeout=10,
    )


def test_the_replica_refuses_writes(cluster):
    out = run(
        [
            "docker",
            "exec",
            REPLICA,
            "sh",
            "-c",
            f"{DC} exec -T postgres psql -U postgres -d n8n -c \"insert into e2e_rows values ('x')\"",
        ]
    )
    assert out.returncode != 0 and "read-only transaction" in out.stderr, out.stderr


def test_a_vector_query_works_on_the_replica(cluster):
    psql(
        PRIMARY,
        "create table if not exists e2e_vectors (id int, v vector(3)); "
        "insert into e2e_vectors values (1, '[1,0,0]'), (2, '[0,1,0]'); "
        "create index if not exists e2e_vectors_hnsw on e2e_vectors using hnsw (v vector_l2_ops)",
        db="chatwoot",
    )
    wait_until(
        lambda: psql(REPLICA, "select id from e2e_vectors order by v <-> '[0.9,0.1,0]' limit 1", db="chatwoot") == "1",
        "the nearest vector on the replica",
    )


def test_a_redis_key_replicates_and_the_replica_is_read_only(cluster):
    redis(PRIMARY, "-n", "2", "set", "e2e-key", "from-the-primary")
    wait_until(
        lambda: redis(REPLICA, "-n", "2", "get", "e2e-key") == "from-the-primary", "the key replicated", timeout=10
    )
    assert redis(REPLICA, "-n", "2", "set", "e2e-key", "x").startswith("READONLY")


def test_strangers_reach_neither_database_while_the_peers_do(cluster):
    for port in (5432, 6379):
        assert reaches(WORKER, port) and reaches(REPLICA, port), f"a peer cannot reach port {port} on the primary"
        assert not reaches(OUTSIDER, port), f"the outsider reaches port {port} on the primary"


def test_a_peer_logs_in_to_the_primary_only_as_its_role_needs(cluster):
    """pg_hba.conf: the replica streams as the replication role, and nothing more; even
    with the right passwords it cannot log in as the superuser or as an app."""

    def login(user, secret, conninfo, sql):
        return run(
            [
                "docker",
                "exec",
                REPLICA,
                "sh",
                "-c",
                f"PGPASSWORD=$(cat /opt/msgplatform/secrets/{secret}) {DC} exec -T -e PGPASSWORD postgres "
                f"psql 'host={ADDRESS[PRIMARY]} user={user} {conninfo}' -tAc '{sql}'",
            ]
        )

    for user, secret, db in (("postgres", "postgres_password", "postgres"), ("n8n", "n8n_db_password", "n8n")):
        out = login(user, secret, f"dbname={db}", "select 1")
        assert (
            out.returncode != 0 and f'no pg_hba.conf entry for host "{ADDRESS[REPLICA]}", user "{user}"' in out.stderr
        ), out.stderr
    stream = login("replicator", "replication_password", "dbname=postgres replication=true", "IDENTIFY_SYSTEM")
    assert stream.returncode == 0, stream.stderr


def test_drift_on_each_role_fails_its_checks_and_one_run_repairs_it(cluster):
    """As tests/e2e/test_3_x_drift.py, on the cluster: a Redis replica detached, a queue worker
    stopped, a peer's hole in the primary's guard closed by hand."""
    expected = [
        "test_docker_user_guard_in_place",
        "test_every_service_running_and_healthy",
        "test_redis_replicates_the_primary",
        "test_redis_requires_its_password_and_never_evicts",
        "test_worker_host_runs_its_queue_workers",
    ]
    try:
        redis(REPLICA, "replicaof", "no", "one")
        sh(WORKER, "docker stop msgplatform-n8n-worker-2 >/dev/null")
        sh(
            PRIMARY,
            f"iptables -D DOCKER-USER -s {ADDRESS[WORKER]}/32 -p tcp -m conntrack --ctorigdstport 6379 -j RETURN",
        )
        rc, log = audit()
        if audit_failed(log) != expected:
            # Once more: a `docker exec` of the audit can fail under load (runc's "read init-p"), the drifts stay.
            rc, log = audit()
        assert audit_failed(log) == expected, log[-4000:]
    finally:
        rc, results, log = deploy()
    assert rc == 0, log[-3000:]
    rc, log = audit()
    assert rc == 0, log[-3000:]
    rc, results, log = deploy()
    assert rc == 0 and changed(results) == [], f"a second run changed: {changed(results)}"


def test_a_host_taken_out_of_the_inventory_loses_access_on_the_next_run(cluster):
    rc, results, log = deploy(env={"CLUSTER_WITHOUT_WORKER": "1"})
    try:
        assert rc == 0, log[-3000:]
        assert not reaches(WORKER, 5432) and not reaches(WORKER, 6379), (
            "the worker host, out of the inventory, still reaches the primary"
        )
    finally:
        rc, results, log = deploy()
    assert rc == 0 and reaches(WORKER, 5432) and reaches(WORKER, 6379), log[-3000:]


def test_an_execution_runs_on_the_worker_host(cluster):
    publish(WORKFLOW)
    publish(QUEUED)
    sh(PRIMARY, f"{DC} stop n8n-worker")  # the primary's own worker: only the worker host's can take it
    try:
        assert json.loads(call_webhook("e2e-queue-probe"))["sum"] == "42"
        execution = re.findall(r"Enqueued execution (\d+)", sh(PRIMARY, f"{DC} logs --no-log-prefix n8n"))[-1]
        logs = sh(WORKER, f"{DC} logs --no-log-prefix n8n-worker")
        assert f"Worker finished execution {execution} " in logs, logs[-2000:]
    finally:
        sh(PRIMARY, f"{DC} up -d --wait n8n-worker")


def test_webhooks_are_taken_while_the_worker_host_is_down_and_finish_when_it_is_back(cluster):
    before = finished(0)
    sh(PRIMARY, f"{DC} stop n8n-worker")  # the primary's own worker: the worker host is the only one
    run(["docker", "stop", WORKER])
    try:
        for _ in range(3):
            call_webhook("e2e-queued", timeout=20)  # answered at once: the primary keeps taking webhooks
        time.sleep(5)
        assert finished(before) == 0, "an execution finished with every worker down"
        booted(WORKER)
        wait_until(lambda: finished(before) == 3, "the 3 queued executions finished on the worker host", timeout=180)
    finally:
        booted(WORKER)
        sh(PRIMARY, f"{DC} up -d --wait n8n-worker")


def test_a_replica_down_past_the_bound_costs_the_primary_no_more_wal_and_a_rerun_seeds_it_again(cluster):
    run(["docker", "stop", REPLICA])
    # ~150 MB of WAL, past max_slot_wal_keep_size_mb = 64 (group_data/sandbox_cluster.py);
    # the primary keeps taking writes.
    psql(
        PRIMARY,
        "create table e2e_wal (v text); insert into e2e_wal select repeat('x', 1000) from generate_series(1, 150000)",
    )
    psql(PRIMARY, "checkpoint")
    status = psql(
        PRIMARY,
        "select wal_status from pg_replication_slots where slot_name = 'replica_sandbox_replica'",
        db="postgres",
    )
    assert status in ("unreserved", "lost"), f"the slot of the stopped replica still holds the WAL: {status}"
    psql(PRIMARY, "select pg_switch_wal()", db="postgres")
    psql(PRIMARY, "checkpoint", db="postgres")
    assert (
        psql(
            PRIMARY,
            "select wal_status from pg_replication_slots where slot_name = 'replica_sandbox_replica'",
            db="postgres",
        )
        == "lost"
    )
    wal_mb = int(sh(PRIMARY, f"{DC} exec -T postgres du -sm /var/lib/postgresql/data/pg_wal").split()[0])
    print(f"pg_wal after 150 MB of writes with the replica down: {wal_mb} MB")
    booted(REPLICA)
    rc, results, log = deploy()
    assert rc == 0, log[-3000:]
    # Seeded from the bucket's newest backup, it replays the 150 MB archived since before it has the table.
    started = time.monotonic()
    wait_until(
        lambda: (
            psql(REPLICA, "select count(*) from pg_tables where tablename = 'e2e_wal'") == "1"
            and psql(REPLICA, "select count(*) from e2e_wal") == "150000"
        ),
        "the replica seeded again and caught up",
        timeout=300,
    )
    print(f"the replica seeded from the bucket caught up {time.monotonic() - started:.0f} s after the deploy")
    # From the primary's pgBackRest bucket (group_data/sandbox_cluster.py), not by a base backup.
    assert "seeded from pgBackRest's repository" in sh(REPLICA, "docker logs msgplatform-postgres-1 2>&1")
    auto = sh(REPLICA, f"{DC} exec -T postgres cat /var/lib/postgresql/data/postgresql.auto.conf")
    assert re.search(r"^restore_command = 'pgbackrest .*--stanza=main archive-get %f", auto, re.M), auto
    rc, log = audit()
    assert rc == 0, log[-3000:]


def test_the_primary_restored_from_its_bucket_and_the_replica_seeded_from_it_along_the_new_timeline(cluster):
    """docs/operations.md, point-in-time recovery "With replicas": the primary restored to the end of the archive
    in its bucket; the replica's data removed and the deploy run, which seeds it from the bucket again."""
    psql(PRIMARY, "create table e2e_restore (v text); insert into e2e_restore values ('archived before the restore')")
    assert archived_now(PRIMARY), "the WAL switch was not archived in the bucket within 120 s"
    rc, out = restore(PRIMARY, "latest")
    assert rc == 0, out[-3000:]
    assert psql(PRIMARY, "select v from e2e_restore") == "archived before the restore"
    sh(REPLICA, f"{DC} rm -sf postgres && docker volume rm msgplatform_postgres-data")
    rc, results, log = deploy()
    assert rc == 0, log[-3000:]
    assert "seeded from pgBackRest's repository" in sh(REPLICA, "docker logs msgplatform-postgres-1 2>&1")
    psql(PRIMARY, "insert into e2e_restore values ('written after the restore')")
    # It replays the WAL archived since the bucket's newest backup first (this module wrote 150 MB of it).
    started = time.monotonic()
    try:
        wait_until(
            lambda: (
                psql(REPLICA, "select count(*) from pg_tables where tablename = 'e2e_restore'") == "1"
                and psql(REPLICA, "select count(*) from e2e_restore") == "2"
            ),
            "the replica followed the new timeline and streams again",
            timeout=300,
        )
    finally:
        print(sh(REPLICA, "docker logs msgplatform-postgres-1 2>&1 | tail -n 15"))
    print(f"the replica caught up {time.monotonic() - started:.0f} s after the deploy")
    rc, log = audit()
    assert rc == 0, log[-3000:]


def test_the_quick_cluster_benchmark_prints_its_figures(cluster):
    """`bench/cluster.py --quick` on this cluster, so a change that breaks the benchmark fails here."""
    out = run([sys.executable, "bench/cluster.py", "--quick"], timeout=600)
    print(out.stdout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert re.search(r"^200 single-row transactions on the primary in \d+\.\d s", out.stdout, re.M), out.stdout
    assert re.search(r"^replay lag over \d+ samples: p95 \d+ ms, max \d+ ms$", out.stdout, re.M), out.stdout


def test_promotion_ends_with_the_apps_on_the_replica_with_every_row(cluster):
    """README, "Promoting the replica": promote it, swap the inventory, rerun."""
    psql(PRIMARY, "insert into e2e_rows values ('last row before the failover')")
    wait_until(
        lambda: (
            psql(
                REPLICA,
                "select count(*) from e2e_rows",
            )
            == psql(PRIMARY, "select count(*) from e2e_rows")
        ),
        "the replica caught up",
    )
    rows = {
        db: psql(PRIMARY, "select count(*) from pg_tables where schemaname = 'public'", db=db)
        for db in ("chatwoot", "n8n", "directus")
    }
    run(["docker", "stop", PRIMARY])  # the primary is lost
    sh(REPLICA, f"{DC} exec -T postgres psql -U postgres -tAc 'select pg_promote()'")
    promoted = {"CLUSTER_PROMOTED": "1"}
    rc, results, log = deploy(env=promoted)
    assert rc == 0, log[-5000:]
    assert psql(REPLICA, "select pg_is_in_recovery()") == "f"
    assert psql(REPLICA, "select v from e2e_rows order by v").splitlines() == [
        "last row before the failover",
        "written on the primary",
    ]
    assert {
        db: psql(REPLICA, "select count(*) from pg_tables where schemaname = 'public'", db=db) for db in rows
    } == rows
    # The apps run on the promoted host with their data: n8n decrypts its credentials with the copied key.
    states = sh(REPLICA, f"{DC} ps --format '{{{{.Service}}}} {{{{.Health}}}}'").splitlines()
    assert states and all(line.endswith(" healthy") for line in states), states
    assert WORKFLOW["id"] in sh(REPLICA, f"{DC} run --rm --no-deps -T --entrypoint sh n8n -c 'n8n list:workflow'")
    assert f"={ADDRESS[REPLICA]}" in sh(WORKER, "cat /opt/msgplatform/env/n8n.env | grep DB_POSTGRESDB_HOST")
    rc, results, log = deploy(env=promoted)
    assert rc == 0 and changed(results) == [], f"a second run after the promotion changed: {changed(results)}"
    rc, log = audit(env=promoted)
    assert rc == 0, log[-4000:]
