"""The base layer's access: the admin user with its keys and sudo, and sshd hardened by a
drop-in read first (the dev-sec ssh-baseline's algorithms)."""

from io import StringIO

from pyinfra.operations import server, systemd

from . import converge

# sshd keeps the first value it reads. The drop-in is included from sshd_config's first
# line, so no other drop-in (whatever its name) and nothing further down can override it.
SSHD_DROPIN = "/etc/ssh/sshd_config.d/01-platform-hardening.conf"
SSHD_CONFIG = "/etc/ssh/sshd_config"
SSHD_INCLUDE = f"Include {SSHD_DROPIN}"
# Key exchange, best first: the post-quantum hybrids this OpenSSH has (ML-KEM from 9.9,
# sntrup761 from 8.5), then X25519 alone, which paramiko (pyinfra, testinfra) needs: it has no
# hybrid. Only those `ssh -Q kex` lists are set; no finite-field DH, no NIST curves, no SHA-1.
SSHD_KEX = (
    "mlkem768x25519-sha256",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
)
SSHD_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
# The dev-sec ssh-baseline's ciphers and MACs that OpenSSH 8.9 (Ubuntu 22.04) to 10 (Debian 13)
# and paramiko share (no CBC, no SHA-1); only the Ed25519 host key is served (ssh-audit fails
# ECDSA's NIST curve); the limits and options are the baseline's and Lynis's (docs/hardening.md).
SSHD_BASELINE = {
    "Ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
    "aes256-ctr,aes192-ctr,aes128-ctr",
    "MACs": "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com",
    "HostKey": SSHD_HOST_KEY,
    "HostKeyAlgorithms": "ssh-ed25519",
    # 3, not the baseline's 2: an agent offering several keys would be refused before the right one.
    "MaxAuthTries": "3",
    "LoginGraceTime": "30",
    "ClientAliveInterval": "300",
    "ClientAliveCountMax": "2",
    # 4, not Lynis's 2: pyinfra keeps an SFTP session open beside its commands', and an operator
    # may multiplex a few terminals over one connection.
    "MaxSessions": "4",
    "TCPKeepAlive": "no",
    "Compression": "no",
    "AllowAgentForwarding": "no",
    "AllowTcpForwarding": "no",
    "X11Forwarding": "no",
    "PermitUserEnvironment": "no",
    "PermitEmptyPasswords": "no",
    "LogLevel": "VERBOSE",
    "Banner": "/etc/issue.net",
}


def sshd_kex(state):
    """SSHD_KEX as far as this OpenSSH has them (HostState's `ssh -Q kex`); all of 8.9's when unread."""
    return ",".join(k for k in SSHD_KEX if k in state.get("kex", ())) or ",".join(SSHD_KEX[2:])


def sshd_settings(cfg, state):
    """What sshd must run with: the baseline, and with ssh_hardening key-only log-in."""
    settings = {"KexAlgorithms": sshd_kex(state), **SSHD_BASELINE}
    if cfg.host.ssh_hardening:
        settings.update(
            PasswordAuthentication="no", KbdInteractiveAuthentication="no", PermitRootLogin=cfg.host.ssh_root_login
        )
    return settings


def sshd_dropin(cfg, state):
    return "# Managed by the platform deploy (base layer): edit group data, not this file.\n" + "".join(
        f"{key} {value}\n" for key, value in sshd_settings(cfg, state).items()
    )


def sshd_effective(settings):
    """sshd_settings as `sshd -T` prints them (lower-case keys; prohibit-password is without-password)."""
    return {key.lower(): {"prohibit-password": "without-password"}.get(value, value) for key, value in settings.items()}


def admin_user_drift(cfg, state):
    """Whether the admin user differs from what server.user would make of it."""
    user = cfg.host.admin_user
    return not (
        state["passwd"]
        and state["passwd"][6] == "/bin/bash"
        and "sudo" in state["groups"]
        and state["modes"].get(".ssh") == ("700", user)
        and state["modes"].get("authorized_keys") == ("600", user)
        and state["keys"] == list(cfg.host.admin_ssh_keys)
    )


def admin_user(cfg, state):
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


def sshd_drift(cfg, state):
    """Settings whose effective value (HostState's `sshd -T`) differs from sshd_settings."""
    effective = state["sshd"]
    return {
        key: (effective.get(key), value)
        for key, value in sshd_effective(sshd_settings(cfg, state)).items()
        if effective.get(key) != value
    }


def sshd(cfg, state):
    dropin = converge.put(name="SSH hardening", src=StringIO(sshd_dropin(cfg, state)), dest=SSHD_DROPIN, mode="644")
    # The drop-in first in sshd_config; whatever else includes it too reads it again, harmlessly.
    first = server.shell(
        name="sshd reads the platform's settings first",
        commands=[f"sed -i '\\#^{SSHD_INCLUDE}$#d' {SSHD_CONFIG}", f"sed -i '1i {SSHD_INCLUDE}' {SSHD_CONFIG}"],
        _if=lambda: state["sshd_first"] != SSHD_INCLUDE or bool(state["sshd"]) and bool(sshd_drift(cfg, state)),
    )
    changed = lambda: dropin.did_change() or first.did_change()  # noqa: E731
    # A configuration sshd refuses is taken out again, so sshd's next start (an upgrade, a reboot) still works.
    rollback = (
        f"sed -i '\\#^{SSHD_INCLUDE}$#d' {SSHD_CONFIG}; rm -f {SSHD_DROPIN}; "
        "echo 'sshd -t refused the platform settings (above): they were taken out, sshd keeps its own' >&2; exit 1"
    )
    server.shell(name="sshd configuration valid", commands=[f"sshd -t || {{ {rollback}; }}"], _if=changed)
    systemd.service(name="sshd reloaded", service="ssh", reloaded=True, _if=changed)
