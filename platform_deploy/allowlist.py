"""What may exist on a host beyond what the deploy makes, by allowlist: the SSH keys of every
account with a login shell (root included), who may become root through sudo, containers
outside the platform's compose project, and sockets listening beyond loopback.

The audit lists what exists and fails on anything group data does not allow. The deploy
does not delete what it did not make (a key, a sudo right, a container, a process): it
refuses to go on, before it changes anything, naming each item and the key that would
allow it. The operator decides, by removing the item or by allowing it."""

import re

from pydantic import field_validator
from pyinfra.api import FactBase

from .base import SSH_KEY_RE, USER_RE
from .model import NOT_SHOWN, ConfigError, Email, Items, Section, problem_line, refuse, setting

NO_LOGIN_SHELLS = ("nologin", "false", "sync", "shutdown", "halt")
LISTENER_RE = re.compile(r"^[\w.@-]{1,32}:\d{1,5}/(tcp|udp)$")
CONTAINER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Beyond loopback and besides sshd and Docker's published ports: a DHCP client, which cloud
# hosts run (systemd-networkd on Ubuntu, dhclient or dhcpcd elsewhere).
SYSTEM_LISTENERS = {(name, port, "udp") for name in ("systemd-network", "dhclient", "dhcpcd") for port in (68, 546)}


class Settings(Section):
    ssh_keys_allowed: dict[str, Items[str]] = setting(
        {},
        doc="OpenSSH public keys that may be in an account's authorized_keys, by account, besides "
        'admin_ssh_keys, e.g. {"root": ["ssh-ed25519 AAAA... you@laptop"]}; a key found on the host and '
        "not listed stops the deploy.",
        problem="not a mapping of account names to lists of OpenSSH public keys",
        fix='set ssh_keys_allowed = {"root": ["ssh-ed25519 AAAA... you@laptop"]}, one key per line',
    )
    sudo_users_allowed: Items[str] = setting(
        (),
        doc='Accounts besides root and admin_user that may use sudo (e.g. the cloud image\'s "ubuntu"); '
        "any other account that sudoers or the sudo group lets in stops the deploy.",
        problem="not a list of account names",
        fix='set sudo_users_allowed = ["ubuntu"], or [] for none',
    )
    containers_allowed: Items[str] = setting(
        (),
        doc="Names of containers that may run beside the platform's compose project; any other "
        "container stops the deploy.",
        problem="not a list of container names",
        fix='set containers_allowed = ["my-agent"], or [] for none',
    )
    listeners_allowed: Items[str] = setting(
        (),
        doc='Sockets that may listen beyond loopback, as "process:port/protocol" (e.g. '
        '"zabbix_agentd:10050/tcp"), besides sshd and the ports Docker publishes for allowed '
        "containers; any other stops the deploy.",
        problem="not a list of process:port/protocol",
        fix='set listeners_allowed = ["zabbix_agentd:10050/tcp"], or [] for none',
    )

    n8n_users_allowed: Items[Email] = setting(
        (),
        doc="n8n users besides its owner (n8n_owner_email), as members; any other user, or a role above "
        "member, stops the deploy.",
        problem="not a list of e-mail addresses",
        fix='set n8n_users_allowed = ["dev@example.org"], or [] for none',
    )
    directus_policies_allowed: Items[str] = setting(
        (),
        doc="Directus access policies you made (e.g. for content editors), without admin access; any other "
        "policy stops the deploy, and whatever Directus's Public policy grants is revoked.",
        problem="not a list of policy names",
        fix='set directus_policies_allowed = ["Editors"], or [] for none',
    )
    chatwoot_agents_allowed: Items[Email] = setting(
        (),
        doc="Chatwoot agents besides the people of group data, with the agent role; any other agent "
        "stops the application bootstrap.",
        problem="not a list of e-mail addresses",
        fix='set chatwoot_agents_allowed = ["temp@example.org"], or [] for none',
    )

    @field_validator("ssh_keys_allowed")
    @classmethod
    def _keys(cls, keys):
        for account, listed in keys.items():
            if not USER_RE.match(account) or not all(SSH_KEY_RE.match(key) for key in listed):
                raise refuse(
                    f"{account!r}: not an account name with a list of OpenSSH public keys",
                    'set ssh_keys_allowed = {"root": ["ssh-ed25519 AAAA... you@laptop"]}, one key per line',
                )
        return keys

    @field_validator("sudo_users_allowed")
    @classmethod
    def _users(cls, users):
        if not all(USER_RE.match(user) for user in users):
            raise refuse("not a list of account names", 'set sudo_users_allowed = ["ubuntu"], or [] for none')
        return users

    @field_validator("containers_allowed")
    @classmethod
    def _containers(cls, names):
        if not all(CONTAINER_RE.match(name) for name in names):
            raise refuse("not a list of container names", 'set containers_allowed = ["my-agent"], or [] for none')
        return names

    @field_validator("listeners_allowed")
    @classmethod
    def _listeners(cls, listeners):
        if not all(LISTENER_RE.match(item) for item in listeners):
            raise refuse(
                "not a list of process:port/protocol", 'set listeners_allowed = ["zabbix_agentd:10050/tcp"], or []'
            )
        return listeners


class HostAccess(FactBase):
    """Accounts with a login shell and the keys in their authorized_keys files (as sshd -T names
    them), the sudoers rules and groups, the containers with their project and published ports,
    and the sockets listening beyond loopback with their process."""

    def command(self):
        no_login = "|".join(f"*/{shell}" for shell in NO_LOGIN_SHELLS)
        return (
            "sshd=$(command -v sshd || echo /usr/sbin/sshd); "
            '$sshd -T 2>/dev/null | sed -n "s/^port /sshd-port /p"; '
            'files=$($sshd -T 2>/dev/null | sed -n "s/^authorizedkeysfile //p"); '
            "getent passwd | while IFS=: read -r name _ _ gid _ home shell; do "
            f'echo "account $name $gid"; case "$shell" in {no_login}|"") continue;; esac; '
            'echo "login $name"; '
            "for f in ${files:-.ssh/authorized_keys .ssh/authorized_keys2}; do "
            'f=$(echo "$f" | sed "s#%h#$home#g; s#%u#$name#g; s#%%#%#g"); case "$f" in /*) ;; *) f="$home/$f";; esac; '
            '[ -f "$f" ] && grep -Ev "^[[:space:]]*(#|$)" "$f" | sed "s#^#key $name $f #"; done; done; '
            "getent group | sed 's/^/group /'; "
            "grep -HnEv '^[[:space:]]*(#|$)' /etc/sudoers /etc/sudoers.d/* 2>/dev/null | sed 's/^/sudoers /'; "
            "command -v docker >/dev/null && docker ps -a --format "
            "'container {{.Names}}|{{.Label \"com.docker.compose.project\"}}|{{.Ports}}' 2>/dev/null; "
            "ss -Hlntup 2>/dev/null | sed 's/^/socket /'; true"
        )

    @staticmethod
    def default():
        return {
            "sshd_ports": set(),
            "accounts": {},
            "logins": [],
            "keys": [],
            "groups": {},
            "sudoers": [],
            "containers": {},
            "sockets": [],
        }

    def process(self, output):
        state = self.default()
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "sshd-port":
                state["sshd_ports"].add(int(rest))
            elif kind == "account":
                name, _, gid = rest.partition(" ")
                state["accounts"][name] = gid
            elif kind == "login":
                state["logins"].append(rest)
            elif kind == "key":
                account, path, key = (rest.split(" ", 2) + [""])[:3]
                state["keys"].append((account, path, key))
            elif kind == "group":
                name, _, gid, members = (rest.split(":") + ["", "", ""])[:4]
                state["groups"][name] = (gid, [m for m in members.split(",") if m])
            elif kind == "sudoers":
                path, number, text = rest.split(":", 2)
                state["sudoers"].append((path, int(number), text.strip()))
            elif kind == "container":
                name, project, ports = (rest.split("|") + ["", ""])[:3]
                state["containers"][name] = (project, published_ports(ports))
            elif kind == "socket":
                state["sockets"].append(rest)
        return state


def published_ports(ports):
    """{(port, protocol)} a container publishes on the host, from docker ps's Ports."""
    return {
        (int(host.rsplit(":", 1)[1]), target.rsplit("/", 1)[1])
        for host, _, target in (p.strip().partition("->") for p in ports.split(","))
        if target and ":" in host
    }


def key_blob(line):
    """A key's type and base64 in an authorized_keys line (its options and comment aside), or None."""
    match = re.search(r"(?:^|\s)((?:ssh|ecdsa|sk)-\S+ [A-Za-z0-9+/=]+)", line)
    return match[1] if match else None


def allowed_keys(cfg, account):
    listed = list(cfg.allowlist.ssh_keys_allowed.get(account, ()))
    if account == cfg.host.admin_user:
        listed += cfg.host.admin_ssh_keys
    return {key_blob(key) for key in listed}


def unknown_keys(cfg, state):
    """[(account, file, key line)] of keys no group data key allows."""
    return [
        (account, path, line)
        for account, path, line in state["keys"]
        if account in state["logins"] and key_blob(line) not in allowed_keys(cfg, account)
    ]


def sudo_holders(state):
    """{account or rule: where its sudo right comes from}, from the sudoers rules and the groups they name."""
    holders: dict[str, str] = {}
    gids = {gid: name for name, (gid, _) in state["groups"].items()}
    for path, number, text in state["sudoers"]:
        first = text.split(None, 1)[0]
        if first.startswith(("Defaults", "@include", "#include")) or first.endswith("_Alias"):
            continue
        for who in first.split(","):
            where = f"{path} line {number}"
            if who.startswith("%") and who[1:] in state["groups"]:
                group = who[1:]
                members = set(state["groups"][group][1])
                members |= {a for a, gid in state["accounts"].items() if gids.get(gid) == group}
                for member in members:
                    holders.setdefault(member, f"member of group {group}, which {where} lets use sudo")
            else:
                holders.setdefault(who, where)
    return holders


def unknown_sudo(cfg, state):
    allowed = {"root", cfg.host.admin_user, *cfg.allowlist.sudo_users_allowed}
    return {who: where for who, where in sudo_holders(state).items() if who not in allowed}


def unknown_containers(cfg, state):
    return {
        name: project
        for name, (project, _) in state["containers"].items()
        if project != cfg.stack.stack_name and name not in cfg.allowlist.containers_allowed
    }


def listeners(state):
    """{(process, port, protocol)} of the sockets listening beyond loopback."""
    found = set()
    for line in state["sockets"]:
        fields = line.split()
        protocol, local = fields[0], fields[4]
        address, port = local.rsplit(":", 1)
        if address.startswith(("127.", "[::1]", "[::ffff:127.")) or not port.isdigit():
            continue
        process = re.search(r'users:\(\("([^"]+)"', line)
        found.add((process[1] if process else "kernel", int(port), protocol))
    return found


def unknown_listeners(cfg, state):
    published = {
        port
        for name, (project, ports) in state["containers"].items()
        if name not in unknown_containers(cfg, state)
        for port in ports
    }
    allowed = set(SYSTEM_LISTENERS)
    allowed |= {(name, port, "tcp") for name in ("sshd", "systemd") for port in state["sshd_ports"]}
    allowed |= {(name, port, protocol) for name in ("dockerd", "docker-proxy") for port, protocol in published}
    allowed |= {(item.split(":")[0], *_port(item)) for item in cfg.allowlist.listeners_allowed}
    return sorted(found for found in listeners(state) if found not in allowed)


def _port(item):
    port, protocol = item.split(":")[1].split("/")
    return int(port), protocol


def problems(cfg, state):
    """{audit check: [(group data key that would allow it, what is there)]}."""
    found = {
        "keys": [
            (_key_setting(cfg, account), f"account {account}: {key_label(line)} in {path}")
            for account, path, line in unknown_keys(cfg, state)
        ],
        "sudo": [
            ("sudo_users_allowed", f"account {who} may use sudo ({where})")
            for who, where in sorted(unknown_sudo(cfg, state).items())
        ],
        "containers": [
            (
                "containers_allowed",
                f"container {name} ({f'compose project {project}' if project else 'not made by compose'})",
            )
            for name, project in sorted(unknown_containers(cfg, state).items())
        ],
        "listeners": [
            ("listeners_allowed", f"{process} listens on {port}/{protocol} ({process}:{port}/{protocol})")
            for process, port, protocol in unknown_listeners(cfg, state)
        ],
    }
    return {kind: items for kind, items in found.items() if items}


def drift(cfg, state):
    """{audit check: [what is there that group data does not allow, and the key that would]}."""
    return {kind: [f"{what} (not in {key})" for key, what in items] for kind, items in problems(cfg, state).items()}


FIXES = {
    "keys": "remove the key from that file, or list it there if it is yours",
    "sudo": "remove that sudoers line or group membership, or list the account there",
    "containers": "remove the container (docker rm -f), or list its name there",
    "listeners": "stop that process, or list it there",
}


def key_label(line):
    """A key as a person can recognise it: its type, the end of its base64 and its comment."""
    kind, blob = (key_blob(line) or "? " + line[:40]).split(" ", 1)
    comment = line.split(blob, 1)[-1].strip()
    return f"key {kind} ...{blob[-12:]}" + (f" {comment!r}" if comment else "")


def _key_setting(cfg, account):
    return "admin_ssh_keys" if account == cfg.host.admin_user else f"ssh_keys_allowed[{account!r}]"


def check(cfg, state, apps=()):
    """Refuses to go on when the host (or `apps`: [(key, what, fix)], app_access.refused) holds what group data
    does not allow: removing it is the operator's call."""
    found = [(key, what, FIXES[kind]) for kind, items in problems(cfg, state).items() for key, what in items]
    if found or apps:
        raise ConfigError(
            "The host holds access that group data does not allow; nothing was changed on the host.\n"
            + "\n".join(problem_line(key, NOT_SHOWN, what, fix) for key, what, fix in [*found, *apps])
        )


def reads(cfg):
    return [(HostAccess, {})]
