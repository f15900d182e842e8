"""UFW rules as data: what is wanted, how the host's state is read, what converges it."""

import pytest

from platform_deploy import config, firewall
from tests.unit.test_config import load

# Captured from ufw 0.36.2 on Debian 13: the settings files (grep) and `ufw show added`.
UFW_OUTPUT = """ufw-setting IPV6=yes
ufw-setting DEFAULT_INPUT_POLICY="DROP"
ufw-setting DEFAULT_OUTPUT_POLICY="ACCEPT"
ufw-setting DEFAULT_FORWARD_POLICY="DROP"
ufw-setting MANAGE_BUILTINS=no
ufw-setting ENABLED=yes
ufw-setting LOGLEVEL=low
Added user rules (see 'ufw status' for running firewall):
ufw limit 22/tcp
ufw allow 80/tcp
ufw allow 8080/tcp
port 22
""".splitlines()


def test_default_rules_are_ssh_and_web_only():
    assert firewall.wanted_rules(load(), [22]) == ["limit 22/tcp", "allow 80/tcp", "allow 443/tcp"]


def test_ssh_restricted_to_admin_networks():
    rules = firewall.wanted_rules(load(ssh_allow_cidrs=["203.0.113.0/24", "2001:db8::/32"]), [2200])
    assert rules[:2] == [
        "limit from 203.0.113.0/24 to any port 2200 proto tcp",
        "limit from 2001:db8::/32 to any port 2200 proto tcp",
    ]
    assert not any("limit 2200/tcp" == r for r in rules)


def test_tunnel_ports_only_with_tunnels():
    assert "allow 51820/udp" not in firewall.wanted_rules(load(), [22])
    assert firewall.wanted_rules(load(tunnels_enabled=True), [22])[-2:] == ["allow 51820/udp", "allow 21820/udp"]


def test_parse_state():
    state = firewall.parse_state(UFW_OUTPUT)
    assert state == {
        "active": True,
        "defaults": {"incoming": "deny", "outgoing": "allow"},
        "rules": ["limit 22/tcp", "allow 80/tcp", "allow 8080/tcp"],
        "sshd_ports": [22],
        "docker_user": [],
        "guard_block": [],
        "loaded": False,
        "input_policy": "",
        "sysctl_file": "",
    }


def test_fresh_host_without_ufw():
    assert firewall.parse_state(["port 2200", "port 22"]) == {
        "active": False,
        "defaults": {},
        "rules": [],
        "sshd_ports": [22, 2200],
        "docker_user": [],
        "guard_block": [],
        "loaded": False,
        "input_policy": "",
        "sysctl_file": "",
    }


def test_unknown_sshd_port_stops_the_deploy():
    with pytest.raises(config.ConfigError, match="lock SSH out"):
        firewall.FirewallState().process(["ufw-setting ENABLED=no"])


def test_converge_adds_before_it_deletes():
    state = firewall.parse_state(UFW_OUTPUT)
    commands = firewall.converge_commands(state, ["limit 22/tcp", "allow 80/tcp", "allow 443/tcp"])
    assert commands == ["ufw allow 443/tcp", "ufw delete allow 8080/tcp"]


def test_converged_host_gets_no_command():
    state = firewall.parse_state(UFW_OUTPUT)
    assert firewall.converge_commands(state, state["rules"]) == []


def test_fresh_host_is_set_up_and_enabled():
    commands = firewall.converge_commands(firewall.parse_state(["port 22"]), ["limit 22/tcp"])
    assert commands == [
        "ufw limit 22/tcp",
        "ufw default deny incoming",
        "ufw default allow outgoing",
        "ufw --force enable",
    ]


def test_ssh_without_rate_limit():
    assert firewall.wanted_rules(load(ssh_rate_limit=False), [22])[0] == "allow 22/tcp"


def test_docker_guard_lets_in_only_the_edge_ports():
    rules = firewall.docker_guard_rules(load())
    allowed = [r for r in rules if "--ctorigdstport" in r]
    assert allowed == [
        "-A DOCKER-USER -p tcp -m conntrack --ctorigdstport 80 -j RETURN",
        "-A DOCKER-USER -p tcp -m conntrack --ctorigdstport 443 -j RETURN",
    ]
    assert rules[-2:] == ["-A DOCKER-USER -m conntrack --ctstate NEW -j DROP", "-A DOCKER-USER -j RETURN"]
    tunnels = firewall.docker_guard_rules(load(tunnels_enabled=True))
    assert "-A DOCKER-USER -p udp -m conntrack --ctorigdstport 51820 -j RETURN" in tunnels


def test_docker_guard_block_is_an_iptables_restore_section():
    block = firewall.docker_guard_block(load()).splitlines()
    assert block[:2] == ["*filter", ":DOCKER-USER - [0:0]"] and block[-1] == "COMMIT"


def test_guard_drift_is_read_from_the_chain():
    state = firewall.parse_state(["-N DOCKER-USER", "-A DOCKER-USER -j RETURN", "port 22"])
    assert state["docker_user"] == ["-N DOCKER-USER", "-A DOCKER-USER -j RETURN"]


def test_guard_block_read_as_written():
    # The fact prefixes each line of the block in after.rules with "guard ".
    block = [
        firewall.GUARD_MARKER.format(mark="BEGIN"),
        *firewall.docker_guard_block(load()).splitlines(),
        firewall.GUARD_MARKER.format(mark="END"),
    ]
    state = firewall.parse_state(["port 22", *(f"guard {line}" for line in block)])
    assert state["guard_block"] == block and state["docker_user"] == []
