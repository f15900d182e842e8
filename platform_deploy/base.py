"""Layer 1, base: packages, time sync, unattended security upgrades, sysctl, swap,
admin user, optional SSH hardening."""

import re
import shlex
from io import StringIO
from typing import Any

from pydantic import field_validator, model_validator
from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.server import Sysctl
from pyinfra.operations import files, server, systemd

from . import converge
from .converge import ensure_packages
from .model import ConfigError, Port, Section, items, refuse, setting

SSH_KEY_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+|sk-\S+) [A-Za-z0-9+/=]+")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class Settings(Section):
    ssh_port: Port = setting(22, doc="SSH port; pyinfra also connects on it.", problem="not a TCP port",
                             fix="set ssh_port to a whole number from 1 to 65535")
    ssh_hardening: bool = setting(False, doc="True: key log-in only (turn on once you log in with a key).",
                                  problem="not a boolean", fix="set ssh_hardening = True or False")
    admin_user: str | None = setting(
        None, doc='Admin user created with password-less sudo and admin_ssh_keys, e.g. "ops"; None: none.',
        problem="not a valid non-root user name", fix='set admin_user = "ops" or None')
    admin_ssh_keys: items(str) = setting((), doc="OpenSSH public keys of admin_user, one line each.",
                                          problem="not a list of OpenSSH public keys",
                                          fix='paste each key as one line, e.g. "ssh-ed25519 AAAA... you@laptop"')
    swap_mb: Any = setting("auto", doc='Swap file in MB; "auto": 2 GB on hosts under 7 GB of RAM, none above; 0: none.',
                           fix='set swap_mb = "auto", 0 (no swap file) or a size in MB')

    @field_validator("admin_user")
    @classmethod
    def _user(cls, user):
        if user is not None and (not USER_RE.match(user) or user == "root"):
            raise refuse("not a valid non-root user name", 'set admin_user = "ops" or None')
        return user

    @field_validator("admin_ssh_keys")
    @classmethod
    def _keys(cls, keys):
        if not all(SSH_KEY_RE.match(key) for key in keys):
            raise refuse("not a list of OpenSSH public keys", 'paste each key as one line, e.g. "ssh-ed25519 AAAA... you@laptop"')
        return keys

    @field_validator("swap_mb")
    @classmethod
    def _swap(cls, value, info):
        if value == "auto":
            # Small hosts get a safety net against the OOM killer; large ones do not need it.
            return 2048 if info.context["ram_mb"] < 7 * 1024 else 0
        if type(value) is not int or value < 0:
            raise refuse("not a size in MB", 'set swap_mb = "auto", 0 (no swap file) or a size in MB')
        return value

    @model_validator(mode="after")
    def _admin_can_log_in(self):
        if self.admin_user and not self.admin_ssh_keys:
            raise refuse(f"admin_user {self.admin_user!r} would have no way to log in",
                         "add at least one public key to admin_ssh_keys", key="admin_ssh_keys", value=[])
        return self

PACKAGES = (
    "ca-certificates",
    "curl",
    "gnupg",
    "procps",
    "iptables",
    "ufw",
    "unattended-upgrades",
    "systemd-timesyncd",
    "sudo",
    # python3 runs the application bootstrap; whois brings mkpasswd (bcrypt of n8n's owner password).
    "python3",
    "whois",
)

# Redis wants overcommit so its fork for persistence cannot fail; Docker needs forwarding.
SYSCTLS = {"vm.overcommit_memory": 1, "net.ipv4.ip_forward": 1}
SYSCTL_FILE = "/etc/sysctl.d/60-platform.conf"
AUTO_UPGRADES_FILE = "/etc/apt/apt.conf.d/20auto-upgrades"
# sshd keeps the first value it reads: sort before cloud-init's 50-cloud-init.conf.
SSHD_DROPIN = "/etc/ssh/sshd_config.d/01-platform-hardening.conf"
SWAP_FILE = "/swapfile"
FSTAB_LINE = f"{SWAP_FILE} none swap sw 0 0"
# Timers that fetch and apply the security updates unattended-upgrades selects.
UPGRADE_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")


# unit -> (running, enabled). timesyncd is only enabled: systemd skips it in containers,
# where the host keeps the time.
UNITS = {"systemd-timesyncd": (None, True), **{timer: (True, True) for timer in UPGRADE_TIMERS}}


SUPPORTED_OS = {("Ubuntu", 22), ("Ubuntu", 24), ("Debian", 12), ("Debian", 13)}


def check_os(distro):
    """(name, major, codename) from pyinfra's LinuxDistribution fact; refuse anything else."""
    name, major = distro.get("name"), distro.get("major")
    if (name, major) not in SUPPORTED_OS:
        raise ConfigError(
            f"unsupported operating system {name} {major}; nothing was changed on the host.\n"
            "  Fix: use Ubuntu 24.04 or 22.04, or Debian 12 or 13."
        )
    return name, major, distro.get("release_meta", {}).get("VERSION_CODENAME")


def sysctl_file():
    return "".join(f"{key} = {value}\n" for key, value in SYSCTLS.items())


# Another time daemon already keeping the clock: leave it (timesyncd would replace it).
TIME_DAEMONS = ("chrony", "ntp", "ntpsec", "openntpd")


def packages(installed):
    if any(daemon in installed for daemon in TIME_DAEMONS):
        return tuple(p for p in PACKAGES if p != "systemd-timesyncd")
    return PACKAGES


def units(installed):
    return {u: want for u, want in UNITS.items() if u != "systemd-timesyncd" or "systemd-timesyncd" in packages(installed)}


def apply(cfg, installed):
    ensure_packages("Base packages", packages(installed), installed)
    converge.put(name="Unattended security upgrades on", src="files/20auto-upgrades", dest=AUTO_UPGRADES_FILE,
                 mode="644", create_remote_dir=False)

    persisted = converge.put(name="sysctl settings persisted", src=StringIO(sysctl_file()), dest=SYSCTL_FILE,
                             mode="644", create_remote_dir=False)
    live = host.get_fact(Sysctl)
    live_differs = any(live.get(key) != value for key, value in SYSCTLS.items())
    server.shell(name="sysctl settings applied", commands=[f"sysctl -p {SYSCTL_FILE}"],
                 _if=lambda: live_differs or persisted.did_change())

    state = host.get_fact(HostState, user=cfg.host.admin_user)
    _swap(cfg, state)
    _admin_user(cfg, state)
    _ssh_hardening(cfg)


class HostState(FactBase):
    """The swap file, its fstab line, and the admin user (account, groups, SSH keys) in one read."""

    def command(self, user):
        fstab = shlex.quote(FSTAB_LINE)
        script = f"test -e {SWAP_FILE} && echo swap; grep -qxF {fstab} /etc/fstab && echo fstab; "
        if user:
            home = f"$(getent passwd {user} | cut -d: -f6)"
            script += (f"getent passwd {user} | sed 's/^/passwd /'; echo \"groups $(id -nG {user} 2>/dev/null)\"; "
                       f"stat -c 'stat %n %a %U' {home}/.ssh {home}/.ssh/authorized_keys 2>/dev/null; "
                       f"sed 's/^/key /' {home}/.ssh/authorized_keys 2>/dev/null")
        return script + "; true"

    @staticmethod
    def default():
        return {"swap": False, "fstab": False, "passwd": None, "groups": set(), "modes": {}, "keys": []}

    def process(self, output):
        state = self.default()
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind in ("swap", "fstab"):
                state[kind] = True
            elif kind == "passwd":
                state["passwd"] = rest.split(":")
            elif kind == "groups":
                state["groups"] = set(rest.split())
            elif kind == "stat":
                path, mode, owner = rest.rsplit(" ", 2)
                state["modes"][path.rsplit("/", 1)[-1]] = (mode, owner)
            elif kind == "key":
                state["keys"].append(rest.strip())
        return state


def admin_user_drift(cfg, state):
    """Whether the admin user differs from what server.user would make of it."""
    user = cfg.host.admin_user
    return not (state["passwd"] and state["passwd"][6] == "/bin/bash" and "sudo" in state["groups"]
                and state["modes"].get(".ssh") == ("700", user) and state["modes"].get("authorized_keys") == ("600", user)
                and state["keys"] == list(cfg.host.admin_ssh_keys))


def _swap(cfg, state):
    if cfg.host.swap_mb and not state["swap"]:
        server.shell(
            name=f"Swap file of {cfg.host.swap_mb} MB",
            commands=[
                f"fallocate -l {cfg.host.swap_mb}M {SWAP_FILE} || dd if=/dev/zero of={SWAP_FILE} bs=1M count={cfg.host.swap_mb}",
                f"chmod 600 {SWAP_FILE}",
                f"mkswap {SWAP_FILE}",
                f"swapon {SWAP_FILE}",
            ],
        )
    if bool(cfg.host.swap_mb) != state["fstab"]:
        files.line(name="Swap file in fstab", path="/etc/fstab", line=FSTAB_LINE, present=bool(cfg.host.swap_mb))


def _admin_user(cfg, state):
    if not cfg.host.admin_user or not admin_user_drift(cfg, state):
        return
    server.user(
        name=f"Admin user {cfg.host.admin_user}",
        user=cfg.host.admin_user,
        shell="/bin/bash",
        groups=["sudo"],
        create_home=True,
        public_keys=list(cfg.host.admin_ssh_keys),
        delete_keys=True,
    )
    converge.put(
        name=f"{cfg.host.admin_user} may sudo without a password (key-only log-in)",
        src=StringIO(f"{cfg.host.admin_user} ALL=(ALL) NOPASSWD:ALL\n"),
        dest=f"/etc/sudoers.d/90-{cfg.host.admin_user}",
        mode="440",
    )


def _ssh_hardening(cfg):
    if cfg.host.ssh_hardening:
        dropin = converge.put(name="SSH hardening: keys only", src="files/sshd-hardening.conf", dest=SSHD_DROPIN, mode="644")
    else:
        dropin = converge.absent(name="SSH hardening off", path=SSHD_DROPIN)
    server.shell(name="sshd configuration valid", commands=["sshd -t"], _if=dropin.did_change)
    systemd.service(name="sshd reloaded", service="ssh", reloaded=True, _if=dropin.did_change)
