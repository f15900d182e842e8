"""Host layers: base, firewall, docker. Each failure message says what drifted."""

import json

import pytest
from pyinfra.facts.deb import DebArch
from pyinfra.facts.server import LinuxDistribution, Sysctl

from platform_deploy import access, base, docker_engine, firewall

from conftest import ROOT, run_fact


@pytest.fixture(scope="module")
def docker_plan(host, cfg):
    os_name, major, codename = base.check_os(run_fact(host, LinuxDistribution))
    return docker_engine.plan(os_name, major, codename, run_fact(host, DebArch), cfg.docker.docker_source)


def test_packages_installed(host, docker_plan):
    wanted = base.PACKAGES + tuple(docker_plan["install"])
    missing = [p for p in wanted if not host.package(p).is_installed]
    assert not missing, f"packages missing: {missing}"


def test_sysctls_live_and_persisted(host):
    # Keys this kernel lacks (IPv6 turned off at boot) are skipped, as the deploy skips them.
    live = run_fact(host, Sysctl)
    drifted = {key: (live[key], value) for key, value in base.SYSCTLS.items() if key in live and live[key] != value}
    assert not drifted, f"live sysctls drifted (live, wanted): {drifted}"
    persisted = host.file(base.SYSCTL_FILE).content_string
    missing = [f"{k} = {v}" for k, v in base.SYSCTLS.items() if f"{k} = {v}" not in persisted.splitlines()]
    assert not missing, f"{base.SYSCTL_FILE} lacks {missing}: they would be lost at reboot"


def test_time_sync_and_security_upgrades(host):
    assert host.service("systemd-timesyncd").is_enabled, "systemd-timesyncd is not enabled"
    auto = host.file(base.AUTO_UPGRADES_FILE)
    assert auto.exists and auto.content_string == (ROOT / "files" / "20auto-upgrades").read_text(), (
        f"{base.AUTO_UPGRADES_FILE} differs from files/20auto-upgrades"
    )
    for timer in base.UPGRADE_TIMERS:
        assert host.service(timer).is_enabled, f"{timer} is not enabled"


def test_sysstat_collects(host):
    state = run_fact(host, base.HostState, None)
    assert state["sysstat"] == 'ENABLED="true"', f"{base.SYSSTAT_DEFAULTS}: {state['sysstat'] or 'no ENABLED line'}"
    for timer in ("sysstat-collect.timer", "sysstat-summary.timer"):
        assert host.service(timer).is_enabled and host.service(timer).is_running, f"{timer} is not enabled and active"


def test_ssh_hardening(host, cfg):
    drift = access.sshd_drift(cfg, run_fact(host, base.HostState, None))
    assert not drift, f"sshd's effective settings (sshd -T) differ (live, wanted): {drift}"


def test_kernel_modules_login_defaults_and_banner(host):
    assert host.file(base.MODPROBE_FILE).content_string == base.modprobe_file(), f"{base.MODPROBE_FILE} drifted"
    login_defs = run_fact(host, base.HostState, None)["login_defs"]
    assert login_defs == base.LOGIN_DEFS, f"/etc/login.defs: {login_defs}, wanted {base.LOGIN_DEFS}"
    banner = (ROOT / "files" / "login-banner").read_text()
    for path in base.BANNER_FILES:
        assert host.file(path).content_string == banner, f"{path} is not the login banner"


def test_core_dumps_off_and_idle_shells_closed(host):
    for path, src in base.HARDENING_FILES.items():
        assert host.file(path).content_string == (ROOT / src).read_text(), f"{path} differs from {src}"


def test_docker_audited(host):
    rules = host.file(docker_engine.AUDIT_RULES_FILE)
    assert rules.exists and rules.content_string == docker_engine.audit_rules(), (
        f"{docker_engine.AUDIT_RULES_FILE} drifted"
    )
    auditd = host.service("auditd")
    assert auditd.is_enabled, "auditd is not enabled"
    if not run_fact(host, base.HostState, None)["container"]:
        assert auditd.is_running, "auditd is not running"
        missing = docker_engine.missing_audit_rules(run_fact(host, docker_engine.AuditRules))
        assert not missing, f"audit rules not loaded for: {missing}"


def test_admin_user(host, cfg):
    if not cfg.host.admin_user:
        pytest.skip("no admin_user in group data")
    user = host.user(cfg.host.admin_user)
    assert user.exists and "sudo" in user.groups, f"{cfg.host.admin_user} missing or not in sudo"
    keys = host.file(f"{user.home}/.ssh/authorized_keys").content_string.splitlines()
    assert sorted(keys) == sorted(cfg.host.admin_ssh_keys), (
        f"{cfg.host.admin_user}'s authorized_keys differ from admin_ssh_keys"
    )


def test_ufw_active_with_default_deny(host):
    state = run_fact(host, firewall.FirewallState)
    assert state["active"], "UFW is not active"
    got = {d: state["defaults"].get(d) for d in firewall.DEFAULT_POLICY}
    assert got == firewall.DEFAULT_POLICY, f"UFW default policies drifted: {got}"


def test_ufw_rules_exactly_as_configured(host, cfg):
    state = run_fact(host, firewall.FirewallState)
    rules = state["rules"]
    wanted = firewall.wanted_rules(cfg, state["sshd_ports"])
    extra = [r for r in rules if r not in wanted]
    missing = [r for r in wanted if r not in rules]
    assert not extra and not missing, f"UFW rules drifted: extra {extra}, missing {missing}"


def test_ufw_rules_loaded_in_kernel(host):
    # `ufw status` reads its files; the kernel's tables are what filters packets.
    assert "-P INPUT DROP" in host.check_output("iptables -S INPUT").splitlines(), "iptables INPUT policy is not DROP"
    assert host.run("iptables -S ufw-user-input").rc == 0, "UFW's chains are not loaded in iptables"


def test_docker_running_and_enabled(host):
    docker = host.service("docker")
    assert docker.is_running, "Docker is not running"
    assert docker.is_enabled, "Docker is not enabled at boot"


def test_docker_daemon_settings(host, cfg):
    wanted = docker_engine.daemon_settings(cfg)
    daemon_json = host.file(docker_engine.DAEMON_JSON)
    assert daemon_json.exists, f"{docker_engine.DAEMON_JSON} is missing"
    got = json.loads(daemon_json.content_string)
    assert got == wanted, f"{docker_engine.DAEMON_JSON} drifted: {got}, wanted {wanted}"
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LiveRestoreEnabled"] is True, "the running dockerd has live-restore off (restart it)"
    assert info["LoggingDriver"] == wanted["log-driver"], f"the running dockerd logs with {info['LoggingDriver']}"


def test_compose_v2(host):
    version = host.check_output("docker compose version --short")
    assert version.lstrip("v").split(".")[0] == "2", f"docker compose is {version}, not v2"
