"""Layer 2, firewall: UFW denies everything inbound but SSH (rate-limited), 80 and 443,
plus the tunnel ports when Pangolin's tunnels are on.

Rules are kept in the form `ufw show added` prints them, so the host's rules and the
wanted ones compare as plain strings: extras are deleted, missing ones added, and a
converged host gets no command at all.
"""

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import server

TUNNEL_PORTS_UDP = (51820, 21820)  # Gerbil's WireGuard and relay ports
DEFAULT_POLICY = {"incoming": "deny", "outgoing": "allow"}


def wanted_rules(cfg, sshd_ports):
    """`sshd_ports`: where sshd listens on the host, which behind NAT is not ssh_port."""
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


def parse_ufw(lines):
    """`ufw status verbose` then `ufw show added` -> {active, defaults, rules}."""
    state = {"active": False, "defaults": {}, "rules": []}
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
    return state


def parse_sshd_ports(lines):
    return sorted({int(line.split()[1]) for line in lines if line.startswith("port ")})


class SshdPorts(FactBase):
    """The ports sshd listens on, from its effective configuration."""

    def requires_command(self):
        return "sshd"

    def command(self):
        return "sshd -T"

    @staticmethod
    def default():
        return [22]

    def process(self, output):
        return parse_sshd_ports(output)


class UfwState(FactBase):
    """UFW's live status, default policies and the user rules it holds (active or not)."""

    def requires_command(self):
        return "ufw"

    def command(self):
        return "LANG=C ufw status verbose && LANG=C ufw show added"

    @staticmethod
    def default():
        return {"active": False, "defaults": {}, "rules": []}

    def process(self, output):
        return parse_ufw(output)


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
    commands = converge_commands(host.get_fact(UfwState), wanted_rules(cfg, host.get_fact(SshdPorts)))
    if commands:
        server.shell(name="UFW: only SSH and web traffic in", commands=commands)
