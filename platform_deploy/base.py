"""The base layer: packages, time sync, unattended security upgrades, sysctl, swap,
admin user, optional SSH hardening."""

import os
import re
from io import StringIO
from typing import Any, Literal

from pydantic import field_validator, model_validator
from pyinfra.facts.server import Sysctl
from pyinfra.operations import files, server

from . import access, converge
from .converge import ensure_packages
from .host_state import FSTAB_LINE, LOGIN_DEFS, SWAP_FILE, SYSSTAT_DEFAULTS, HostState
from .model import ConfigError, Items, Port, Section, refuse, setting

SSH_KEY_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+|sk-\S+) [A-Za-z0-9+/=]+")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class Settings(Section):
    ssh_port: Port = setting(
        22,
        doc="SSH port; pyinfra also connects on it.",
        problem="not a TCP port",
        fix="set ssh_port to a whole number from 1 to 65535",
    )
    ssh_hardening: bool = setting(
        False,
        doc="True: key log-in only (turn on once you log in with a key).",
        problem="not a boolean",
        fix="set ssh_hardening = True or False",
    )
    admin_user: str | None = setting(
        None,
        doc='Admin user created with password-less sudo and admin_ssh_keys, e.g. "ops"; None: none.',
        problem="not a valid non-root user name",
        fix='set admin_user = "ops" or None',
    )
    admin_ssh_keys: Items[str] = setting(
        (),
        doc="OpenSSH public keys of admin_user, one line each.",
        problem="not a list of OpenSSH public keys",
        fix='paste each key as one line, e.g. "ssh-ed25519 AAAA... you@laptop"',
    )
    ssh_root_login: Literal["prohibit-password", "no"] = setting(
        "prohibit-password",
        doc='With ssh_hardening: root logs in with a key ("prohibit-password") or not at all ("no", '
        "once the deploy logs in as admin_user with sudo).",
        problem="not a PermitRootLogin value",
        fix='set ssh_root_login = "prohibit-password" or "no"',
    )
    swap_mb: Any = setting(
        "auto",
        doc='Swap file in MB; "auto": 2 GB on hosts under 7 GB of RAM, none above; 0: none.',
        fix='set swap_mb = "auto", 0 (no swap file) or a size in MB',
    )

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
            raise refuse(
                "not a list of OpenSSH public keys", 'paste each key as one line, e.g. "ssh-ed25519 AAAA... you@laptop"'
            )
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
            raise refuse(
                f"admin_user {self.admin_user!r} would have no way to log in",
                "add at least one public key to admin_ssh_keys",
                key="admin_ssh_keys",
                value=[],
            )
        if self.ssh_root_login == "no" and not (self.ssh_hardening and self.admin_user):
            raise refuse(
                "needs ssh_hardening = True and an admin_user, or nobody could log in as an administrator",
                'set admin_user and ssh_hardening = True, or keep ssh_root_login = "prohibit-password"',
                key="ssh_root_login",
                value="no",
            )
        return self


PACKAGES = (
    "ca-certificates",
    # Docker confines containers with AppArmor only where its parser is installed.
    "apparmor",
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
    # Lynis's: password strength checked by PAM, packages' files checked against their checksums
    # (docs/hardening.md). Not libpam-tmpdir: with it, sudo gives root a $TMPDIR the SSH user
    # cannot write, and pyinfra's uploads as a sudo user (the cloud image's "ubuntu") fail.
    "libpam-pwquality",
    "debsums",
    # sar's record of CPU, memory, disk and network every 10 minutes, kept a week: what a host did
    # before an incident (Lynis ACCT-9626).
    "sysstat",
    # What changed in each upgrade, in apt's log (Lynis DEB-0811). It asks nothing: confirm is off by
    # default, and without a terminal it shows nothing.
    "apt-listchanges",
)

# Redis wants overcommit so its fork for persistence cannot fail; Docker needs forwarding.
# The rest is the dev-sec linux-baseline's: no ICMP redirects or source routing, martians
# logged, SYN cookies, strict reverse-path filtering, kernel pointers and its log hidden,
# link and FIFO protection, no core dumps of setuid programs. Keys the kernel lacks (IPv6
# turned off at boot) are skipped.
SYSCTLS = {
    "vm.overcommit_memory": 1,
    "net.ipv4.ip_forward": 1,
    **{
        f"net.ipv4.conf.{scope}.{key}": value
        for scope in ("all", "default")
        for key, value in (
            ("accept_redirects", 0),
            ("secure_redirects", 0),
            ("send_redirects", 0),
            ("accept_source_route", 0),
            ("log_martians", 1),
            ("rp_filter", 1),
        )
    },
    **{
        f"net.ipv6.conf.{scope}.{key}": 0
        for scope in ("all", "default")
        for key in ("accept_redirects", "accept_source_route")
    },
    "net.ipv4.tcp_syncookies": 1,
    "net.ipv4.icmp_echo_ignore_broadcasts": 1,
    "net.ipv4.icmp_ignore_bogus_error_responses": 1,
    "kernel.kptr_restrict": 2,
    "kernel.dmesg_restrict": 1,
    "kernel.randomize_va_space": 2,
    "fs.suid_dumpable": 0,
    "fs.protected_hardlinks": 1,
    "fs.protected_symlinks": 1,
    "fs.protected_fifos": 2,
    "fs.protected_regular": 2,
    # Lynis's: core dumps named by PID, no TTY line disciplines loaded on a user's request, no
    # reboot by Ctrl-Alt-Del.
    "kernel.core_uses_pid": 1,
    "dev.tty.ldisc_autoload": 0,
    "kernel.ctrl-alt-del": 0,
}
SYSCTL_FILE = "/etc/sysctl.d/60-platform.conf"
# Network protocols and storage drivers nothing here uses: their modules never load (dev-sec
# linux-baseline, Lynis).
MODPROBE_FILE = "/etc/modprobe.d/60-platform-unused-protocols.conf"
UNUSED_PROTOCOLS = ("dccp", "sctp", "rds", "tipc")
UNUSED_DRIVERS = ("usb-storage", "firewire-core")
# Lynis's: no core dumps (systemd-coredump and the login limits), idle shells closed.
HARDENING_FILES = {
    "/etc/systemd/coredump.conf.d/60-platform.conf": "files/hardening/coredump.conf",
    "/etc/security/limits.d/60-platform.conf": "files/hardening/limits.conf",
    "/etc/profile.d/60-platform.sh": "files/hardening/profile.sh",
}
# No PASS_MAX_DAYS: a key-only account's locked password would "expire" too, and PAM
# would then refuse its key log-in (docs/hardening.md).
BANNER_FILES = ("/etc/issue", "/etc/issue.net")
AUTO_UPGRADES_FILE = "/etc/apt/apt.conf.d/20auto-upgrades"
# Timers that fetch and apply the security updates unattended-upgrades selects.
UPGRADE_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")


# unit -> (running, enabled). timesyncd is only enabled: systemd skips it in containers,
# where the host keeps the time.
UNITS = {
    "systemd-timesyncd": (None, True),
    **{timer: (True, True) for timer in UPGRADE_TIMERS},
    # sysstat's timers are wanted by sysstat.service (not timers.target): enabled, it starts them at boot.
    "sysstat.service": (None, True),
    **{timer: (True, True) for timer in ("sysstat-collect.timer", "sysstat-summary.timer")},
}


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


def modprobe_file():
    return "# Managed by the platform deploy: network protocols and drivers nothing here uses.\n" + "".join(
        f"install {module} /bin/false\nblacklist {module}\n" for module in UNUSED_PROTOCOLS + UNUSED_DRIVERS
    )


# Another time daemon already keeping the clock: leave it (timesyncd would replace it).
TIME_DAEMONS = ("chrony", "ntp", "ntpsec", "openntpd")


def packages(installed):
    if any(daemon in installed for daemon in TIME_DAEMONS):
        return tuple(p for p in PACKAGES if p != "systemd-timesyncd")
    return PACKAGES


def managed_dirs():
    """The directories this layer writes files into (converge.scan reads each once a run)."""
    paths = (AUTO_UPGRADES_FILE, SYSCTL_FILE, access.SSHD_DROPIN, MODPROBE_FILE, *BANNER_FILES, *HARDENING_FILES)
    return sorted({os.path.dirname(path) for path in paths} | {"/etc/sudoers.d"})


def units(installed):
    return {
        u: want for u, want in UNITS.items() if u != "systemd-timesyncd" or "systemd-timesyncd" in packages(installed)
    }


def apply(cfg, installed):
    """The base layer; returns the host's state as read before it (HostState)."""
    ensure_packages("Base packages", packages(installed), installed)
    converge.put(
        name="Unattended security upgrades on",
        src="files/20auto-upgrades",
        dest=AUTO_UPGRADES_FILE,
        mode="644",
        create_remote_dir=False,
    )

    persisted = converge.put(
        name="sysctl settings persisted",
        src=StringIO(sysctl_file()),
        dest=SYSCTL_FILE,
        mode="644",
        create_remote_dir=False,
    )
    live = converge.fact(Sysctl, keys=sorted(SYSCTLS))  # only ours: sysctl -a is thousands of lines
    live_differs = any(key in live and live[key] != value for key, value in SYSCTLS.items())
    server.shell(
        name="sysctl settings applied",
        commands=[f"sysctl -e -p {SYSCTL_FILE}"],
        _if=lambda: live_differs or persisted.did_change(),
    )
    converge.put(
        name="Unused network protocols never loaded", src=StringIO(modprobe_file()), dest=MODPROBE_FILE, mode="644"
    )
    for path in BANNER_FILES:
        converge.put(
            name=f"Login banner {path}", src="files/login-banner", dest=path, mode="644", create_remote_dir=False
        )
    for path, src in HARDENING_FILES.items():
        converge.put(name=f"Hardening {path}", src=src, dest=path, mode="644", create_remote_dir=True)

    state = converge.fact(HostState, user=cfg.host.admin_user)
    _login_defs(state)
    if state["sysstat"] != 'ENABLED="true"':
        server.shell(
            name="sysstat collects (sar)",
            commands=[
                f"sed -i '/^ENABLED=/d' {SYSSTAT_DEFAULTS} 2>/dev/null; echo 'ENABLED=\"true\"' >> {SYSSTAT_DEFAULTS}"
            ],
        )
    _swap(cfg, state)
    access.admin_user(cfg, state)
    access.sshd(cfg, state)
    return state


def _login_defs(state):
    """New accounts' umask and password ageing (login.defs): each key's lines replaced by one."""
    wrong = {key: value for key, value in LOGIN_DEFS.items() if state["login_defs"].get(key) != value}
    if wrong:
        server.shell(
            name="login.defs: umask 027 and password ageing for new accounts",
            commands=[
                f"sed -i '/^#*[[:space:]]*{key}[[:space:]]/d' /etc/login.defs && "
                f"echo '{key} {value}' >> /etc/login.defs"
                for key, value in wrong.items()
            ],
        )


def _swap(cfg, state):
    if cfg.host.swap_mb and not state["swap"]:
        server.shell(
            name=f"Swap file of {cfg.host.swap_mb} MB",
            commands=[
                f"fallocate -l {cfg.host.swap_mb}M {SWAP_FILE} || "
                f"dd if=/dev/zero of={SWAP_FILE} bs=1M count={cfg.host.swap_mb}",
                f"chmod 600 {SWAP_FILE}",
                f"mkswap {SWAP_FILE}",
                f"swapon {SWAP_FILE}",
            ],
        )
    if bool(cfg.host.swap_mb) != state["fstab"]:
        files.line(name="Swap file in fstab", path="/etc/fstab", line=FSTAB_LINE, present=bool(cfg.host.swap_mb))


def reads(cfg):
    """The facts this layer reads, for converge.read_ahead."""
    return [(HostState, {"user": cfg.host.admin_user}), (Sysctl, {"keys": sorted(SYSCTLS)})]
