"""Layer 1, base: packages, time sync, unattended security upgrades, sysctl, swap,
admin user, optional SSH hardening."""

from io import StringIO

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.facts.server import Sysctl
from pyinfra.operations import files, server, systemd

from . import converge
from .converge import ensure_packages

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
)

# Redis wants overcommit so its fork for persistence cannot fail; Docker needs forwarding.
SYSCTLS = {"vm.overcommit_memory": 1, "net.ipv4.ip_forward": 1}
SYSCTL_FILE = "/etc/sysctl.d/60-platform.conf"
AUTO_UPGRADES_FILE = "/etc/apt/apt.conf.d/20auto-upgrades"
# sshd keeps the first value it reads: sort before cloud-init's 50-cloud-init.conf.
SSHD_DROPIN = "/etc/ssh/sshd_config.d/01-platform-hardening.conf"
SWAP_FILE = "/swapfile"
# Timers that fetch and apply the security updates unattended-upgrades selects.
UPGRADE_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")


# unit -> (running, enabled). timesyncd is only enabled: systemd skips it in containers,
# where the host keeps the time.
UNITS = {"systemd-timesyncd": (None, True), **{timer: (True, True) for timer in UPGRADE_TIMERS}}


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

    _swap(cfg)
    _admin_user(cfg)
    _ssh_hardening(cfg)


def _swap(cfg):
    if cfg.swap_mb and not host.get_fact(File, path=SWAP_FILE):
        server.shell(
            name=f"Swap file of {cfg.swap_mb} MB",
            commands=[
                f"fallocate -l {cfg.swap_mb}M {SWAP_FILE} || dd if=/dev/zero of={SWAP_FILE} bs=1M count={cfg.swap_mb}",
                f"chmod 600 {SWAP_FILE}",
                f"mkswap {SWAP_FILE}",
                f"swapon {SWAP_FILE}",
            ],
        )
    files.line(name="Swap file in fstab", path="/etc/fstab", line=f"{SWAP_FILE} none swap sw 0 0", present=bool(cfg.swap_mb))


def _admin_user(cfg):
    if not cfg.admin_user:
        return
    server.user(
        name=f"Admin user {cfg.admin_user}",
        user=cfg.admin_user,
        shell="/bin/bash",
        groups=["sudo"],
        create_home=True,
        public_keys=list(cfg.admin_ssh_keys),
        delete_keys=True,
    )
    converge.put(
        name=f"{cfg.admin_user} may sudo without a password (key-only log-in)",
        src=StringIO(f"{cfg.admin_user} ALL=(ALL) NOPASSWD:ALL\n"),
        dest=f"/etc/sudoers.d/90-{cfg.admin_user}",
        mode="440",
    )


def _ssh_hardening(cfg):
    if cfg.ssh_hardening:
        dropin = converge.put(name="SSH hardening: keys only", src="files/sshd-hardening.conf", dest=SSHD_DROPIN, mode="644")
    else:
        dropin = converge.absent(name="SSH hardening off", path=SSHD_DROPIN)
    server.shell(name="sshd configuration valid", commands=["sshd -t"], _if=dropin.did_change)
    systemd.service(name="sshd reloaded", service="ssh", reloaded=True, _if=dropin.did_change)
