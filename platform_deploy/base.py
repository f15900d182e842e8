"""Layer 1, base: packages, time sync, unattended security upgrades, sysctl, swap,
admin user, optional SSH hardening."""

from io import StringIO

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import files, server, systemd

from .apt_util import ensure_packages

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
SSHD_DROPIN = "/etc/ssh/sshd_config.d/60-platform-hardening.conf"
SWAP_FILE = "/swapfile"
# Timers that fetch and apply the security updates unattended-upgrades selects.
UPGRADE_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")


def apply(cfg):
    ensure_packages("Base packages", PACKAGES)

    systemd.service(name="Time sync (systemd-timesyncd) enabled", service="systemd-timesyncd", running=None, enabled=True)

    files.put(name="Unattended security upgrades on", src="files/20auto-upgrades", dest=AUTO_UPGRADES_FILE, mode="644")
    for timer in UPGRADE_TIMERS:
        systemd.service(name=f"{timer} enabled", service=timer, running=True, enabled=True)

    for key, value in SYSCTLS.items():
        server.sysctl(name=f"sysctl {key}={value}", key=key, value=value, persist=True, persist_file=SYSCTL_FILE)

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
    files.put(
        name=f"{cfg.admin_user} may sudo without a password (key-only log-in)",
        src=StringIO(f"{cfg.admin_user} ALL=(ALL) NOPASSWD:ALL\n"),
        dest=f"/etc/sudoers.d/90-{cfg.admin_user}",
        mode="440",
    )


def _ssh_hardening(cfg):
    if cfg.ssh_hardening:
        dropin = files.put(name="SSH hardening: keys only", src="files/sshd-hardening.conf", dest=SSHD_DROPIN, mode="644")
    else:
        dropin = files.file(name="SSH hardening off", path=SSHD_DROPIN, present=False)
    server.shell(name="sshd configuration valid", commands=["sshd -t"], _if=dropin.did_change)
    systemd.service(name="sshd reloaded", service="ssh", reloaded=True, _if=dropin.did_change)
