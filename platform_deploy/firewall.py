"""The firewall layer: UFW denies everything inbound but SSH (rate-limited), 80 and 443,
plus the tunnel ports when Pangolin's tunnels are on.

Rules are kept in the form `ufw show added` prints them, so the host's rules and the
wanted ones compare as plain strings: extras are deleted, missing ones added, and a
converged host gets no command at all.
"""

from pyinfra.api import FactBase
from pyinfra.operations import files, server

from . import cluster, converge
from .base import SYSCTL_FILE
from .model import Cidr, ConfigError, Items, Section, setting
from .topology import Role


class Settings(Section):
    ssh_allow_cidrs: Items[Cidr] = setting(
        (),
        doc='Networks allowed to SSH, e.g. ["203.0.113.0/24"]; empty: anywhere. '
        "SSH always stays open, or you lock yourself out.",
        problem="not a list",
        fix='set ssh_allow_cidrs = ["203.0.113.0/24"], or [] for anywhere',
    )
    ssh_rate_limit: bool = setting(
        True,
        doc='UFW "limit" on SSH: a source opening 6 connections in 30 s is refused for a while.',
        problem="not a boolean",
        fix="set ssh_rate_limit = True or False",
    )


TUNNEL_PORTS_UDP = (51820, 21820)  # Gerbil's WireGuard and relay ports
EDGE_PORTS_TCP = (80, 443)
DEFAULT_POLICY = {"incoming": "deny", "outgoing": "allow"}
AFTER_RULES = "/etc/ufw/after.rules"
# UFW applies a sysctl file at every start and reload; its own turns martian logging off.
# It applies the base layer's instead, so the two never disagree.
UFW_DEFAULTS = "/etc/default/ufw"
UFW_SYSCTL = f"IPT_SYSCTL={SYSCTL_FILE}"
GUARD_MARKER = "# {mark} PLATFORM DOCKER-USER GUARD"


def docker_guard_rules(cfg):
    """DOCKER-USER, in `iptables -S` form. Docker DNATs published ports before UFW's INPUT
    chain ever sees them, so UFW alone cannot stop a published port. This chain, which
    Docker consults first and never flushes, lets in new connections from outside only to
    the edge's host ports (by the port the client asked for, before DNAT); container
    traffic and replies pass."""
    primary = cfg.topology.role == Role.PRIMARY
    allowed = [("tcp", port) for port in EDGE_PORTS_TCP] if primary else []
    if cfg.edge.tunnels_enabled and primary:
        allowed += [("udp", port) for port in TUNNEL_PORTS_UDP]
    return [
        "-N DOCKER-USER",
        "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A DOCKER-USER -i docker0 -j RETURN",
        "-A DOCKER-USER -i br-+ -j RETURN",
        *(f"-A DOCKER-USER -p {proto} -m conntrack --ctorigdstport {port} -j RETURN" for proto, port in allowed),
        *cluster.guard_rules(cfg),
        "-A DOCKER-USER -m conntrack --ctstate NEW -j DROP",
        "-A DOCKER-USER -j RETURN",
    ]


def docker_guard_block(cfg):
    """The guard as a section of UFW's after.rules, so every UFW start and reload (boot
    included) restores it."""
    rules = docker_guard_rules(cfg)
    return "\n".join(["*filter", ":DOCKER-USER - [0:0]", *rules[1:], "COMMIT"])


def wanted_rules(cfg, sshd_ports):
    action = "limit" if cfg.firewall.ssh_rate_limit else "allow"
    rules = []
    for port in sshd_ports:
        if cfg.firewall.ssh_allow_cidrs:
            rules += [f"{action} from {cidr} to any port {port} proto tcp" for cidr in cfg.firewall.ssh_allow_cidrs]
        else:
            rules.append(f"{action} {port}/tcp")
    if cfg.topology.role != Role.PRIMARY:  # peers serve nothing on the web
        return rules
    rules += ["allow 80/tcp", "allow 443/tcp"]
    if cfg.edge.tunnels_enabled:
        rules += [f"allow {port}/udp" for port in TUNNEL_PORTS_UDP]
    return rules


# ufw's default policies as `ufw default` names them (ufw's backend: accept, reject, else deny).
UFW_POLICY = {"accept": "allow", "reject": "reject"}


def parse_state(lines):
    """UFW's settings files, `ufw show added`, sshd's `port` lines and the DOCKER-USER
    chain -> {active, defaults, rules, sshd_ports, docker_user}. UFW's settings are read as
    ufw reads them (KEY=value, the later file winning), which saves the Python start-up of
    `ufw status` on every run."""
    state = {
        "active": False,
        "defaults": {},
        "rules": [],
        "sshd_ports": [],
        "docker_user": [],
        "guard_block": [],
        "loaded": False,
        "input_policy": "",
        "sysctl_file": "",
    }
    settings = {}
    for line in lines:
        if line.startswith("guard "):
            state["guard_block"].append(line[len("guard ") :])
            continue
        line = line.strip()
        if line.startswith("ufw-setting "):
            key, _, value = line[len("ufw-setting ") :].partition("=")
            settings[key.lower()] = value.strip().strip("\"'").lower()
        elif line.startswith("ufw "):
            state["rules"].append(line[len("ufw ") :])
        elif line.startswith("port "):
            state["sshd_ports"].append(int(line.split()[1]))
        elif line.startswith("ufw-sysctl "):
            state["sysctl_file"] = line.split(" ", 1)[1]
        elif line == "ufw-chains-loaded":
            state["loaded"] = True
        elif line.startswith("-P INPUT "):
            state["input_policy"] = line.split()[2]
        elif line.startswith("-N DOCKER-USER") or line.startswith("-A DOCKER-USER"):
            state["docker_user"].append(line)
    state["sshd_ports"] = sorted(set(state["sshd_ports"]))
    if settings:
        state["active"] = settings.get("enabled") == "yes"
        for direction, key in (("incoming", "default_input_policy"), ("outgoing", "default_output_policy")):
            state["defaults"][direction] = UFW_POLICY.get(settings.get(key, ""), "deny")
    return state


class FirewallState(FactBase):
    """UFW's status, default policies and user rules (active or not, absent before the
    first deploy), and the ports sshd listens on, which behind NAT are not ssh_port."""

    def command(self):
        return (
            "if command -v ufw >/dev/null; then "
            f"grep -h '^[A-Z_]*=' {UFW_DEFAULTS} /etc/ufw/ufw.conf 2>/dev/null | sed 's/^/ufw-setting /'; "
            "LANG=C ufw show added; fi; "
            "$(command -v sshd || echo /usr/sbin/sshd) -T | grep '^port '; "
            # Ubuntu 24.04 starts sshd from ssh.socket, whose ports sshd -T does not show.
            "systemctl show ssh.socket -p Listen --value 2>/dev/null | tr ' ' '\\n' | grep -o ':[0-9]*$' "
            "| sed 's/^:/port /'; "
            f"grep '^IPT_SYSCTL=' {UFW_DEFAULTS} 2>/dev/null | sed 's/^/ufw-sysctl /'; "
            "iptables -S DOCKER-USER 2>/dev/null; "
            # What the kernel filters with: UFW's chains loaded, INPUT's policy.
            "iptables -S INPUT 2>/dev/null | head -n 1; "
            "iptables -S ufw-user-input >/dev/null 2>&1 && echo ufw-chains-loaded; "
            # The guard's block in after.rules, between its markers.
            f"sed -n '/^{GUARD_MARKER.format(mark='BEGIN')}$/,"
            f"/^{GUARD_MARKER.format(mark='END')}$/p' {AFTER_RULES} 2>/dev/null "
            "| sed 's/^/guard /'; true"
        )

    def process(self, output):
        state = parse_state(output)
        if not state["sshd_ports"]:
            raise ConfigError(
                "could not read sshd's port (sshd -T); the firewall would lock SSH out. Nothing was changed."
            )
        return state


def converge_commands(state, wanted):
    """The ufw commands that take `state` to `wanted`; empty when already there."""
    # Add before deleting, so a changed SSH rule never leaves SSH closed in between.
    commands = [f"ufw {rule}" for rule in wanted if rule not in state["rules"]]
    commands += [f"ufw delete {rule}" for rule in state["rules"] if rule not in wanted]
    for direction, policy in DEFAULT_POLICY.items():
        if state["defaults"].get(direction) != policy:
            commands.append(f"ufw default {policy} {direction}")
    if not state["active"]:
        commands.append("ufw --force enable")
    return commands


def reads(cfg):
    """The facts this layer reads, for converge.read_ahead."""
    return [(FirewallState, {})]


def apply(cfg):
    state = converge.fact(FirewallState)
    commands = converge_commands(state, wanted_rules(cfg, state["sshd_ports"]))
    guard = converge.Unchanged()
    wanted_block = [
        GUARD_MARKER.format(mark="BEGIN"),
        *docker_guard_block(cfg).splitlines(),
        GUARD_MARKER.format(mark="END"),
    ]
    if state["guard_block"] != wanted_block:
        guard = files.block(
            name="Docker bypass guard in UFW's after.rules",
            path=AFTER_RULES,
            content=docker_guard_block(cfg),
            marker=GUARD_MARKER,
        )
    if state["sysctl_file"] != UFW_SYSCTL:
        server.shell(
            name="UFW applies the platform's sysctl settings",
            commands=[f"sed -i 's|^IPT_SYSCTL=.*|{UFW_SYSCTL}|' {UFW_DEFAULTS}"],
        )
    if commands:
        server.shell(name="UFW: only SSH and web traffic in", commands=commands)
    # UFW's files say "active" while the kernel's tables may hold something else.
    kernel_drifted = state["active"] and (
        state["docker_user"] != docker_guard_rules(cfg) or not state["loaded"] or state["input_policy"] != "DROP"
    )
    server.shell(
        name="UFW reloaded with the Docker bypass guard",
        commands=["ufw reload"],
        _if=lambda: guard.did_change() or kernel_drifted,
    )
