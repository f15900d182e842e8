"""The host before a run, read in one command: the base layer's fact (base.py)."""

import shlex

from pyinfra.api import FactBase

from . import access

LOGIN_DEFS = {"UMASK": "027", "PASS_MIN_DAYS": "1", "PASS_WARN_AGE": "14"}
SWAP_FILE = "/swapfile"
FSTAB_LINE = f"{SWAP_FILE} none swap sw 0 0"
SYSSTAT_DEFAULTS = "/etc/default/sysstat"


class HostState(FactBase):
    """The swap file, its fstab line, and the admin user (account, groups, SSH keys) in one read."""

    def command(self, user):
        fstab = shlex.quote(FSTAB_LINE)
        script = (
            f"test -e {SWAP_FILE} && echo swap; grep -qxF {fstab} /etc/fstab && echo fstab; "
            "systemd-detect-virt -q -c && echo container; "
        )
        keys = "|".join(LOGIN_DEFS)
        script += (
            f"grep -E '^({keys})\\s' /etc/login.defs | sed 's/^/login-defs /'; "
            f"grep -h '^ENABLED=' {SYSSTAT_DEFAULTS} 2>/dev/null | sed 's/^/sysstat /'; "
            f"head -n 1 {access.SSHD_CONFIG} | sed 's/^/sshd-first /'; "
            "$(command -v sshd || echo /usr/sbin/sshd) -T 2>/dev/null | sed 's/^/sshd /'; "
            "ssh -Q kex 2>/dev/null | sed 's/^/kex /'; "
        )
        if user:
            home = f"$(getent passwd {user} | cut -d: -f6)"
            script += (
                f"getent passwd {user} | sed 's/^/passwd /'; echo \"groups $(id -nG {user} 2>/dev/null)\"; "
                f"stat -c 'stat %n %a %U' {home}/.ssh {home}/.ssh/authorized_keys 2>/dev/null; "
                f"sed 's/^/key /' {home}/.ssh/authorized_keys 2>/dev/null; "
            )
        return script + "true"

    @staticmethod
    def default():
        return {
            "swap": False,
            "fstab": False,
            "container": False,
            "passwd": None,
            "groups": set(),
            "modes": {},
            "keys": [],
            "login_defs": {},
            "sshd_first": "",
            "sshd": {},
            "kex": [],
            "sysstat": "",
        }

    def process(self, output):
        state = self.default()
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind in ("swap", "fstab", "container"):
                state[kind] = True
            elif kind == "passwd":
                state["passwd"] = rest.split(":")
            elif kind == "groups":
                state["groups"] = set(rest.split())
            elif kind == "stat":
                path, mode, owner = rest.rsplit(" ", 2)
                state["modes"][path.rsplit("/", 1)[-1]] = (mode, owner)
            elif kind == "kex":
                state["kex"].append(rest.strip())
            elif kind == "key":
                state["keys"].append(rest.strip())
            elif kind == "login-defs":
                key, value = (rest.split(None, 1) + [""])[:2]
                state["login_defs"][key] = value.strip()
            elif kind == "sysstat":
                state["sysstat"] = rest.strip()
            elif kind == "sshd-first":
                state["sshd_first"] = rest.strip()
            elif kind == "sshd":
                key, _, value = rest.strip().partition(" ")
                state["sshd"][key] = value
        return state
