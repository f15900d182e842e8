"""Hardening as rendered, and the drift the deploy reads back (the live e2e proof is
tests/e2e/test_3_x_drift.py): containers, Redis, sshd, backups, the apps, audit rules."""

from pathlib import Path

import pytest

from platform_deploy import access, backup, base, containers, data, docker_engine, firewall, stack
from platform_deploy.apps import bootstrap
from tests.unit.test_config import load, refused

ROOT = Path(__file__).resolve().parents[2]


def inspected(cfg, service, **changes):
    """A `docker inspect` of `service` as compose.yaml would create it, with `changes`."""
    wanted = containers.wanted_runtime(cfg, stack.compose_document(cfg)["services"][service])
    live = {**wanted, **changes}
    return {
        "Config": {"Labels": {"com.docker.compose.service": service}},
        "HostConfig": {
            "Memory": live["memory"],
            "MemorySwap": live["memory+swap"],
            "PidsLimit": live["pids_limit"],
            "RestartPolicy": {"Name": live["restart"]},
            "CpuShares": live["cpu_shares"],
            "CapDrop": live["cap_drop"],
            "CapAdd": [f"CAP_{c}" for c in live["cap_add"]] or None,
            "ReadonlyRootfs": live["read_only"],
            "SecurityOpt": ["no-new-privileges:true"] if live["no_new_privileges"] else None,
            "LogConfig": {"Config": {"max-size": live["log_max_size"]}},
        },
        "NetworkSettings": {"Networks": {n: {} for n in live["networks"]}},
    }


def test_every_container_drops_all_capabilities_and_gets_back_only_its_own():
    cfg = load()
    services = stack.compose_document(cfg)["services"]
    for name, service in services.items():
        assert service["cap_drop"] == ["ALL"], name
        assert service.get("cap_add", []) == containers.CAPABILITIES[name], name
        assert service["cpu_shares"] == containers.CPU_SHARES[name], name
        assert service.get("read_only", False) == (name in containers.READ_ONLY_WRITABLE), name
    assert [name for name, service in services.items() if "user" in service] == [
        "redis"
    ]  # the rest: the images' own users
    assert services["traefik"]["cap_add"] == ["NET_BIND_SERVICE"]
    assert services["postgres"]["tmpfs"] == ["/var/run/postgresql:mode=1777", "/tmp:mode=1777"]


def test_runtime_drift_names_what_docker_update_changed():
    cfg = load()
    services = stack.compose_document(cfg)["services"]
    same = {f"msgplatform-{s}-1": inspected(cfg, s) for s in services}
    assert containers.runtime_drift(cfg, services, same) == {}
    changed = {
        **same,
        "msgplatform-redis-1": inspected(
            cfg, "redis", memory=300 * 2**20, networks=["msgplatform_data", "msgplatform_edge"]
        ),
        "msgplatform-n8n-1": inspected(cfg, "n8n", cpu_shares=2, cap_drop=[]),
    }
    drift = containers.runtime_drift(cfg, services, changed)
    assert drift["msgplatform-redis-1"] == (
        "redis",
        {
            "memory": (300 * 2**20, 512 * 2**20),
            "networks": (["msgplatform_data", "msgplatform_edge"], ["msgplatform_data"]),
        },
    )
    assert drift["msgplatform-n8n-1"] == ("n8n", {"cpu_shares": (2, 768), "cap_drop": ([], ["ALL"])})
    assert set(drift) == {"msgplatform-redis-1", "msgplatform-n8n-1"}
    # Docker 28's client writes CAP_NET_BIND_SERVICE (the fake above too): the same capability.
    assert "msgplatform-traefik-1" not in drift
    # A kernel without swap accounting or CPU shares: Docker drops them; not drift.
    unsupported = {"msgplatform-postgres-1": inspected(cfg, "postgres", **{"memory+swap": -1, "cpu_shares": 0})}
    assert containers.runtime_drift(cfg, services, unsupported) == {}
    loose = {"msgplatform-directus-1": inspected(cfg, "directus", no_new_privileges=False, log_max_size=None)}
    assert set(containers.runtime_drift(cfg, services, loose)["msgplatform-directus-1"][1]) == {
        "no_new_privileges",
        "log_max_size",
    }


def redis_output(anonymous, users=("default",), **live):
    """What RedisState's command prints: the anonymous ping, the ACL users, then key=value lines."""
    return (
        [f"anonymous {anonymous}", "anonymous "]
        + [f"acl-user {user}" for user in users]
        + [f"{key}={value}" for key, value in live.items()]
    )


def test_redis_drift():
    cfg = load()
    wanted = data.redis_settings(cfg)
    state = data.RedisState().process(redis_output("NOAUTH Authentication required.", **wanted))
    assert data.redis_drift(cfg, state) == []
    state = data.RedisState().process(
        redis_output(
            "PONG",
            ("default", "intruder"),
            **{**wanted, "maxmemory-policy": "allkeys-lru", "replicaof": "10.0.0.9 6379"},
        )
    )
    assert data.redis_drift(cfg, state) == [
        "answers without its password",
        "ACL user intruder not allowed (only default)",
        "maxmemory-policy 'allkeys-lru', wanted 'noeviction'",
        "replicaof '10.0.0.9 6379', wanted ''",
    ]
    assert data.RedisState().process([]) == {} and data.redis_drift(cfg, {}) == []  # not running: nothing to compare


OPENSSH_10_KEX = {
    "kex": ["mlkem768x25519-sha256", "sntrup761x25519-sha512", *access.SSHD_KEX[2:], "ecdh-sha2-nistp256"]
}


def test_sshd_baseline_always_and_key_only_with_hardening():
    plain = access.sshd_settings(load(), OPENSSH_10_KEX)
    assert (
        plain["MaxAuthTries"] == "3" and plain["AllowTcpForwarding"] == "no" and "PasswordAuthentication" not in plain
    )
    assert "cbc" not in plain["Ciphers"] and "sha1" not in plain["MACs"]
    hardened = access.sshd_settings(load(ssh_hardening=True), OPENSSH_10_KEX)
    assert (hardened["PasswordAuthentication"], hardened["PermitRootLogin"]) == ("no", "prohibit-password")
    assert access.sshd_effective(hardened)["permitrootlogin"] == "without-password"
    state = {**OPENSSH_10_KEX, "sshd": access.sshd_effective(hardened)}
    assert access.sshd_drift(load(ssh_hardening=True), state) == {}
    state["sshd"] = {**state["sshd"], "passwordauthentication": "yes"}
    assert access.sshd_drift(load(ssh_hardening=True), state) == {"passwordauthentication": ("yes", "no")}
    assert access.sshd_dropin(load(), OPENSSH_10_KEX).splitlines()[2] == f"Ciphers {plain['Ciphers']}"


def test_sshd_serves_only_ed25519_and_prefers_post_quantum_key_exchange():
    plain = access.sshd_settings(load(), OPENSSH_10_KEX)
    assert (plain["HostKey"], plain["HostKeyAlgorithms"]) == ("/etc/ssh/ssh_host_ed25519_key", "ssh-ed25519")
    kex = plain["KexAlgorithms"].split(",")
    assert kex[0] == "mlkem768x25519-sha256" and "ecdh-sha2-nistp256" not in kex
    # paramiko (pyinfra, testinfra) has no hybrid: X25519 stays, as paramiko names it.
    assert "curve25519-sha256@libssh.org" in kex
    # OpenSSH 8.9 to 9.8 have no ML-KEM: only what `ssh -Q kex` lists is set, so sshd -t passes.
    openssh_9_6 = {"kex": ["sntrup761x25519-sha512@openssh.com", "curve25519-sha256", "curve25519-sha256@libssh.org"]}
    assert access.sshd_kex(openssh_9_6) == ",".join(openssh_9_6["kex"]) == access.sshd_kex({})
    state = base.HostState().process(["sshd kexalgorithms x", "kex mlkem768x25519-sha256", "kex curve25519-sha256"])
    assert state["kex"] == ["mlkem768x25519-sha256", "curve25519-sha256"] and state["sshd"]["kexalgorithms"] == "x"


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps ops@laptop"


def test_root_login_off_only_with_an_admin_user_the_deploy_logs_in_as():
    message = refused(ssh_root_login="no")
    assert "ssh_root_login" in message and "needs ssh_hardening = True and an admin_user" in message
    message = refused(ssh_root_login="no", ssh_hardening=True, admin_user="ops", admin_ssh_keys=[KEY])
    assert "locks root out while this deploy logs in as root" in message and "--user ... --sudo" in message
    cfg = load(ssh_root_login="no", ssh_hardening=True, admin_user="ops", admin_ssh_keys=[KEY], ssh_user="ops")
    assert access.sshd_settings(cfg, {})["PermitRootLogin"] == "no"


def test_a_backup_is_taken_when_none_stale_or_the_last_run_failed():
    cfg = load()
    now = 1_800_000_000  # 2027-01-15T08:00:00Z
    fresh = {"backups": ["20270115T020000Z"], "result": "success", "now": now}
    assert backup.backup_needed(cfg, fresh) == ""
    assert backup.backup_needed(cfg, {**fresh, "backups": []}) == "the first one on this host"
    assert "older than backup_max_age_hours" in backup.backup_needed(cfg, {**fresh, "backups": ["20270110T020000Z"]})
    assert backup.backup_needed(cfg, {**fresh, "result": "exit-code"}) == "the last run ended in exit-code"


def poster(schedule, timezone):
    return {
        "nodes": [
            {
                "type": "n8n-nodes-base.scheduleTrigger",
                "parameters": {"rule": {"interval": [{"field": "cronExpression", "expression": schedule}]}},
            }
        ],
        "settings": {"timezone": timezone},
    }


def test_app_drift_names_each_departure():
    cfg = load()
    email = bootstrap.n8n_directus_email(cfg)
    good = {
        "published": {i for i in bootstrap.shipped_workflows() if i != bootstrap.LEAD_CAPTURE},
        "error_workflows": {
            i: w["settings"].get("errorWorkflow", "-") for i, w in bootstrap.shipped_workflows().items()
        },
        "checks_signature": set(bootstrap.SIGNATURE_CHECKS),
        "poster": poster(cfg.social.social_schedule, cfg.n8n.timezone),
        "users": {email: [("-", bootstrap.N8N_POLICY)]},
        "permissions": set(bootstrap.N8N_DIRECTUS_PERMISSIONS),
        "policy_access": {("f", "f")},
    }
    assert bootstrap.app_drift(cfg, good) == {}
    bad = {
        **good,
        "published": good["published"] - {bootstrap.POSTER},
        "error_workflows": {**good["error_workflows"], bootstrap.TRIAGE: "-"},
        "checks_signature": set(),
        "poster": poster(cfg.social.social_schedule, "Asia/Tokyo"),
        "users": {email: [("some-role", bootstrap.N8N_POLICY)]},
        "permissions": good["permissions"] | {("directus_users", "read")},
    }
    departures = {"published", "error_workflow", "signature", "schedule", "user", "permissions"}
    assert set(bootstrap.app_drift(cfg, bad)) == departures
    assert set(bootstrap.app_drift(cfg, bootstrap.AppState.default())) == departures


def test_app_state_reads_psql_rows():
    rows = [
        "published|platformPoster02",
        "error_workflow|platformTriage01|platformSafetyNt",
        "checks_signature|platformTriage01",
        'poster|{"nodes": [], "settings": "{\\"timezone\\": \\"UTC\\"}"}',
        "user|n8n-automation@example.com|-|n8n automation",
        "permission|f|f|promotions|read",
    ]
    state = bootstrap.AppState().process(rows)
    assert state["published"] == {"platformPoster02"} and state["poster"]["settings"] == {"timezone": "UTC"}
    assert state["error_workflows"] == {"platformTriage01": "platformSafetyNt"}
    assert state["checks_signature"] == {"platformTriage01"}
    assert state["users"] == {"n8n-automation@example.com": [("-", "n8n automation")]}
    assert state["permissions"] == {("promotions", "read")} and state["policy_access"] == {("f", "f")}


def test_docker_audit_rules_watch_what_the_cis_benchmark_names():
    rules = docker_engine.audit_rules().splitlines()
    for path in (
        "/usr/bin/dockerd",
        "/usr/sbin/dockerd",
        "/run/containerd",
        "/var/lib/docker",
        "/etc/docker",
        "/etc/docker/daemon.json",
        "/usr/lib/systemd/system/docker.service",
        "/usr/lib/systemd/system/docker.socket",
        "/usr/bin/containerd-shim-runc-v2",
        "/usr/bin/runc",
        "/etc/containerd/config.toml",
    ):
        assert f"-w {path} -k docker" in rules, path
    assert rules[1] == "-i"


def test_missing_audit_rules():
    assert (
        docker_engine.AuditRules.default() == {} and docker_engine.missing_audit_rules({}) == []
    )  # a container: none read
    state = docker_engine.AuditRules().process(
        ["rule -w /etc/docker -p rwxa -k docker", "exists /etc/docker", "exists /run/containerd"]
    )
    assert docker_engine.missing_audit_rules(state) == ["/run/containerd"]


@pytest.mark.parametrize("module", base.UNUSED_PROTOCOLS + base.UNUSED_DRIVERS)
def test_unused_protocols_and_drivers_never_load(module):
    assert f"install {module} /bin/false" in base.modprobe_file().splitlines()


def test_the_kernel_state_of_ufw_is_read():
    state = firewall.parse_state(
        [
            "ufw-setting ENABLED=yes",
            "-P INPUT ACCEPT",
            "ufw-chains-loaded",
            "port 22",
            f"ufw-sysctl {firewall.UFW_SYSCTL}",
        ]
    )
    assert (state["input_policy"], state["loaded"], state["sysctl_file"]) == ("ACCEPT", True, firewall.UFW_SYSCTL)


def test_lynis_items_in_files_the_deploy_writes():
    hardening = {path: (ROOT / src).read_text() for path, src in base.HARDENING_FILES.items()}
    assert "Storage=none\nProcessSizeMax=0" in hardening["/etc/systemd/coredump.conf.d/60-platform.conf"]
    assert "* hard core 0" in hardening["/etc/security/limits.d/60-platform.conf"]
    assert "readonly TMOUT" in hardening["/etc/profile.d/60-platform.sh"]
    assert {"libpam-pwquality", "debsums", "sysstat", "apt-listchanges"} <= set(base.PACKAGES)
    # A new host has no sysstat settings yet: the read says so, and the deploy writes them.
    assert base.HostState().process([])["sysstat"] == "" == base.HostState.default()["sysstat"]
    # libpam-tmpdir would give root a $TMPDIR a sudo user cannot write: pyinfra uploads there.
    assert "libpam-tmpdir" not in base.PACKAGES
    assert base.SYSCTLS["fs.protected_fifos"] == 2 and base.SYSCTLS["dev.tty.ldisc_autoload"] == 0
    # Lynis counts a banner's legal words and wants 5.
    banner = (ROOT / "files" / "login-banner").read_text().lower()
    assert sum(word in banner for word in ("access", "authori", "consent", "log", "monitor", "prohibited")) >= 5
