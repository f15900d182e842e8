"""Scale-out, per role: the primary serves each replica its slot within the lag threshold;
a replica is a hot standby streaming from the primary and a Redis replica with its link
up; a worker host runs as many queue workers as its group data says. A one-host
inventory's primary has none of these to check."""

import pytest

from platform_deploy import services


def _psql(host, cfg, sql):
    return host.check_output(
        f"docker exec {cfg.stack.stack_name}-postgres-1 psql -U postgres -d postgres -tA -F '|' -c \"{sql}\""
    )


@pytest.mark.roles("primary")
def test_each_replica_streams_within_the_lag_threshold(host, cfg):
    if not cfg.topology.replicas:
        pytest.skip("no replicas in the inventory")
    # replay_lag is NULL once a replica has caught up and the primary is idle.
    rows = _psql(
        host,
        cfg,
        "select s.slot_name, s.active, coalesce(extract(epoch from r.replay_lag), 0) from pg_replication_slots s "
        "left join pg_stat_replication r on r.pid = s.active_pid",
    )
    slots = {name: (active == "t", float(lag)) for name, active, lag in (line.split("|") for line in rows.splitlines())}
    for replica in cfg.topology.replicas:
        assert replica.slot in slots, f"no replication slot for {replica.name}"
        active, lag = slots[replica.slot]
        assert active, f"{replica.name} is not streaming from its slot {replica.slot}"
        assert lag <= cfg.cluster.replica_lag_max_s, (
            f"{replica.name} replays {lag:.1f} s behind (replica_lag_max_s = {cfg.cluster.replica_lag_max_s})"
        )


@pytest.mark.roles("replica")
def test_replica_is_a_streaming_hot_standby(host, cfg):
    recovery, status, sender = _psql(
        host,
        cfg,
        "select pg_is_in_recovery(), coalesce((select status from pg_stat_wal_receiver), 'none'), "
        "coalesce((select sender_host from pg_stat_wal_receiver), '')",
    ).split("|")
    assert recovery == "t", "the replica is not in recovery: it would take writes (promoted?)"
    assert status == "streaming" and sender == cfg.topology.primary.address, f"WAL receiver {status} from {sender!r}"


@pytest.mark.roles("replica")
def test_redis_replicates_the_primary(host, cfg):
    info = host.check_output(
        f"docker exec {cfg.stack.stack_name}-redis-1 "
        "sh -c 'REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli info replication'"
    )
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    assert fields.get("role") == "slave" and fields.get("master_host") == cfg.topology.primary.address, (
        f"Redis role {fields.get('role')}"
    )
    assert fields.get("master_link_status") == "up", (
        f"Redis's link to the primary is {fields.get('master_link_status')}"
    )


@pytest.mark.roles("worker")
def test_worker_host_runs_its_queue_workers(host, cfg):
    running = host.check_output(
        f"docker ps -q --filter label=com.docker.compose.project={cfg.stack.stack_name} "
        "--filter label=com.docker.compose.service=n8n-worker --filter health=healthy"
    ).split()
    assert len(running) == cfg.n8n.n8n_workers, (
        f"{len(running)} healthy queue workers, n8n_workers = {cfg.n8n.n8n_workers}"
    )
    assert set(services.compose_services(cfg)) == {"n8n-worker"}
