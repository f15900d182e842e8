"""Stack, data and apps: containers, limits, isolation, databases, Redis, secrets."""

import json
import shlex
import time

import pytest

from platform_deploy import cluster, converge, data, postgres_access, services, stack, stack_state
from platform_deploy.containers import (
    CAPABILITIES,
    READ_ONLY_WRITABLE,
    RUN_AS_ROOT,
    Containers,
    capability_names,
    runtime_drift,
)

from conftest import run_fact


@pytest.fixture(scope="module")
def dc(cfg):
    return f"docker compose -f {cfg.stack.stack_root}/compose.yaml -p {cfg.stack.stack_name}"


@pytest.fixture(scope="module")
def all_containers(host, cfg):
    """container name -> `docker inspect` of it, as the deploy reads them."""
    return run_fact(host, Containers, cfg.stack.stack_name)


@pytest.fixture(scope="module")
def containers(all_containers):
    """compose service -> `docker inspect` of its container (of several, the least healthy)."""

    def rank(c):
        return (c["State"]["Status"], c["State"].get("Health", {}).get("Status")) == ("running", "healthy")

    return {
        c["Config"]["Labels"]["com.docker.compose.service"]: c
        for c in sorted(all_containers.values(), key=rank, reverse=True)
    }


def test_compose_file_is_valid(host, dc):
    result = host.run(f"{dc} config --quiet")
    assert result.rc == 0, f"compose.yaml does not validate: {result.stderr}"


def test_every_service_running_and_healthy(cfg, containers):
    missing = [s for s in services.compose_services(cfg) if s not in containers]
    assert not missing, f"services without a container: {missing}"
    bad = {
        s: (c["State"]["Status"], c["State"].get("Health", {}).get("Status"))
        for s, c in containers.items()
        if (c["State"]["Status"], c["State"].get("Health", {}).get("Status")) != ("running", "healthy")
    }
    assert not bad, f"services not running and healthy: {bad}"


def test_memory_limits_follow_the_profile(cfg, containers):
    wrong = {
        s: c["HostConfig"]["Memory"] // 2**20
        for s, c in containers.items()
        if c["HostConfig"]["Memory"] != cfg.memory_limits_mb[s] * 2**20
    }
    assert not wrong, f"memory limits (MB) differ from the {cfg.memory_profile} profile {cfg.memory_limits_mb}: {wrong}"


def test_restart_policy_pids_limit_and_no_new_privileges(containers):
    for service, c in containers.items():
        hc = c["HostConfig"]
        assert hc["RestartPolicy"]["Name"] == "unless-stopped", f"{service} restart policy {hc['RestartPolicy']}"
        assert hc.get("PidsLimit"), f"{service} has no pids limit"
        assert "no-new-privileges:true" in (hc.get("SecurityOpt") or []), f"{service} lacks no-new-privileges"
        assert hc["LogConfig"]["Config"].get("max-size"), f"{service} logs are not rotated"


def test_cpu_shares_as_compose_says(cfg, all_containers):
    # `docker update` changes them without compose noticing (the deploy compares them all, runtime_drift).
    drift = {
        name: differs["cpu_shares"]
        for name, (_, differs) in runtime_drift(cfg, stack.compose_document(cfg)["services"], all_containers).items()
        if "cpu_shares" in differs
    }
    assert not drift, f"CPU shares (live, wanted): {drift}"


def test_least_privilege_per_container(host, cfg, containers):
    apparmor = host.file("/sys/module/apparmor/parameters/enabled")
    apparmor_on = apparmor.exists and apparmor.content_string.strip() == "Y"
    for service, c in containers.items():
        hc = c["HostConfig"]
        assert capability_names(hc["CapDrop"]) == ["ALL"] and capability_names(hc["CapAdd"]) == sorted(
            CAPABILITIES[service]
        ), (
            f"{service} capabilities: drop {hc['CapDrop']}, add {hc['CapAdd']}, "
            f"wanted all dropped and {CAPABILITIES[service]} added"
        )
        assert hc["ReadonlyRootfs"] == (service in READ_ONLY_WRITABLE), (
            f"{service} read-only root filesystem: {hc['ReadonlyRootfs']}"
        )
        if service not in RUN_AS_ROOT and c["State"]["Running"]:  # (a stopped one fails the check that it runs)
            # With init (tini as PID 1, which only reaps), the main process is its first child (orphans it
            # adopts come later).
            main = "$(tr ' ' '\\n' < /proc/1/task/1/children | sort -n | head -n 1)" if hc.get("Init") else "1"
            script = f"awk '/^Uid:/ {{print $3}}' /proc/{main}/status"
            uid = host.check_output(f"docker exec {c['Name'].lstrip('/')} sh -c {shlex.quote(script)}")
            assert uid != "0", f"{service}'s main process runs as root"
        if apparmor_on:
            assert c["AppArmorProfile"] == "docker-default", (
                f"{service} runs under AppArmor profile {c['AppArmorProfile']!r}"
            )


@pytest.mark.roles("primary", "replica")
def test_only_the_apps_reach_the_data_network(host, cfg, containers):
    if cfg.topology.role == "primary":
        network = json.loads(host.check_output(f"docker network inspect {cfg.stack.stack_name}_data"))[0]
        assert network["Internal"] is True, "the data network is not internal"
    wanted = stack.compose_document(cfg)["services"]
    for service in ("postgres", "redis"):
        networks = set(containers[service]["NetworkSettings"]["Networks"])
        assert networks == {f"{cfg.stack.stack_name}_{n}" for n in wanted[service]["networks"]}, (
            f"{service} is attached to {networks}"
        )


@pytest.mark.roles("primary")
def test_databases_and_roles(host, cfg):
    drift = data.database_drift(cfg, run_fact(host, data.DatabaseState, f"{cfg.stack.stack_name}-postgres-1"))
    assert not drift, f"databases drifted: {drift}"


@pytest.mark.roles("primary", "replica")
def test_postgresql_lets_in_only_by_the_managed_rules(host, cfg):
    """The rules PostgreSQL reads now (pg_hba_file_rules), line by line, against templates/pg_hba.conf.j2."""
    state = run_fact(host, data.DatabaseState, f"{cfg.stack.stack_name}-postgres-1")
    wanted = postgres_access.wanted_hba(
        converge.render(stack.COMPOSE_TEMPLATE.parent / "pg_hba.conf.j2", **stack.template_vars(cfg))
    )
    drift = postgres_access.hba_drift(state, wanted)
    assert not drift, f"PostgreSQL's client authentication drifted (a deploy rewrites it): {drift}"


def _login(host, cfg, dc, role, database):
    # The password goes from the secret file into the environment, never into an argument.
    for attempt in range(3):
        result = host.run(
            f'PGPASSWORD="$(cat {cfg.stack.stack_root}/secrets/{role}_db_password)" '
            f"{dc} exec -T -e PGPASSWORD postgres psql -h 127.0.0.1 -U {role} -d {database} -tAc 'select 1'"
        )
        # runc's "OCI runtime ... read init-p: connection reset by peer", seen now and then on a busy host:
        # the exec never started (nothing ran), so it is tried again, as the bootstrap's compose() does.
        if "OCI runtime" not in result.stdout + result.stderr or attempt == 2:
            return result
        time.sleep(3)


@pytest.mark.roles("primary")
def test_each_role_opens_its_own_database_only(host, cfg, dc):
    for role in cfg.stack.apps:
        own = _login(host, cfg, dc, role, role)
        assert own.rc == 0 and own.stdout.strip() == "1", f"{role} cannot open its own database: {own.stderr}"
        for other in [a for a in cfg.stack.apps if a != role] + ["postgres"]:
            result = _login(host, cfg, dc, role, other)
            assert result.rc != 0 and "permission denied" in result.stderr, f"{role} can open database {other}"


@pytest.mark.roles("primary", "replica")
def test_redis_requires_its_password_and_never_evicts(host, cfg):
    live = run_fact(host, data.RedisState, f"{cfg.stack.stack_name}-redis-1", tuple(data.redis_settings(cfg)))
    assert live, "Redis does not answer"
    drift = data.redis_drift(cfg, live)
    assert not drift, f"live Redis drifted from its configuration (a deploy restarts it): {drift}"


def test_secret_files_are_root_only(host, cfg):
    directory = host.file(f"{cfg.stack.stack_root}/secrets")
    assert (directory.user, directory.mode) == ("root", 0o700), (
        f"secrets directory is {directory.user} {oct(directory.mode)}"
    )
    state = run_fact(
        host, stack_state.StackState, cfg.stack.stack_root, cfg.stack.stack_name
    )  # as the deploy reads them
    assert not state["loose"], f"secret files readable beyond root: {state['loose']}"
    missing = set(cluster.secret_names(cfg)) - state["secrets"]
    assert not missing, f"secrets missing: {missing}"


def test_no_secret_value_outside_the_secrets_directory(host, cfg):
    # grep -f reads the secrets as patterns from the files themselves, on the host.
    leaks = host.run(
        f"cd {cfg.stack.stack_root} && for s in {' '.join(cluster.secret_names(cfg))}; do "
        "grep -rlF -f secrets/$s compose.yaml env config bin state edge/traefik edge/pangolin-config.yml.in "
        "2>/dev/null; done"
    )
    assert not leaks.stdout.strip(), f"secret values found in: {leaks.stdout.split()}"


@pytest.mark.roles("primary")
def test_chatwoot_prepared_for_its_image(host, cfg):
    if "chatwoot" not in cfg.stack.apps:
        pytest.skip("chatwoot is not in apps")
    prepared = host.file(f"{cfg.stack.stack_root}/state/chatwoot-prepared").content_string.strip()
    assert prepared == cfg.stack.images["chatwoot"], f"db:chatwoot_prepare last ran for {prepared!r}"


def test_services_run_their_current_configuration(host, cfg, containers):
    """A container started before its mounted configuration file last changed runs a stale one."""
    stale = {}
    for service, paths in stack_state.MOUNTED_CONFIG.items():
        if service not in services.compose_services(cfg):
            continue
        started = host.check_output(f"date -d {containers[service]['State']['StartedAt']} +%s%N")
        for path in paths:
            changed = host.check_output(f"date -r {cfg.stack.stack_root}/{path} +%s%N")
            if int(changed) > int(started):
                stale[service] = path
    assert not stale, f"services started before their configuration changed (restart them): {stale}"
