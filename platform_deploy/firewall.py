"""Layer 2, firewall: UFW denies everything inbound but SSH (rate-limited), 80 and 443,
plus the tunnel ports when Pangolin's tunnels are on.

Rules are kept in the form `ufw show added` prints them, so the host's rules and the
wanted ones compare as plain strings: extras are deleted, missing ones added, and a
converged host gets no command at all.
"""

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import server

from .config import ConfigError

TUNNEL_PORTS_UDP = (51820, 21820)  # Gerbil's WireGuard and relay ports
DEFAULT_POLICY = {"incoming": "deny", "outgoing": "allow"}


def wanted_rules(cfg, sshd_ports):
    action = "limit" if cfg.ssh_rate_limit else "allow"
    rules = []
    for port in sshd_ports:
        if cfg.ssh_allow_cidrs:
            rules += [f"{action} from {cidr} to any port {port} proto tcp" for cidr in cfg.ssh_allow_cidrs]
        else:
            rules.append(f"{action} {port}/tcp")
    rules += ["allow 80/tcp", "allow 443/tcp"]
    if cfg.tunnels_enabled:
        rules += [f"allow {port}/udp" for port in TUNNEL_PORTS_UDP]
    return rules


def parse_state(lines):
    """`ufw status verbose`, `ufw show added`, then sshd's `port` lines ->
    {active, defaults, rules, sshd_ports}."""
    state = {"active": False, "defaults": {}, "rules": [], "sshd_ports": []}
    for line in lines:
        line = line.strip()
        if line.startswith("Status:"):
            state["active"] = line.split(":", 1)[1].strip() == "active"
        elif line.startswith("Default:"):
            # Default: deny (incoming), allow (outgoing), deny (routed)
            for part in line.split(":", 1)[1].split(","):
                policy, _, direction = part.strip().partition(" ")
                state["defaults"][direction.strip("()")] = policy
        elif line.startswith("ufw "):
            state["rules"].append(line[len("ufw "):])
        elif line.startswith("port "):
            state["sshd_ports"].append(int(line.split()[1]))
    state["sshd_ports"].sort()
    return state


class FirewallState(FactBase):
    """UFW's status, default policies and user rules (active or not, absent before the
    first deploy), and the ports sshd listens on, which behind NAT are not ssh_port."""

    def command(self):
        return (
            "if command -v ufw >/dev/null; then LANG=C ufw status verbose && LANG=C ufw show added; fi; "
            "$(command -v sshd || echo /usr/sbin/sshd) -T | grep '^port '"
        )

    def process(self, output):
        state = parse_state(output)
        if not state["sshd_ports"]:
            raise ConfigError("could not read sshd's port (sshd -T); the firewall would lock SSH out. Nothing was changed.")
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


def apply(cfg):
    state = host.get_fact(FirewallState)
    commands = converge_commands(state, wanted_rules(cfg, state["sshd_ports"]))
    if commands:
        server.shell(name="UFW: only SSH and web traffic in", commands=commands)
