"""What may exist on a host beyond what the deploy makes, by allowlist: the SSH keys of every
account (root included), who may become root (sudo, the docker and lxd groups), containers
outside the platform's compose project, and sockets listening beyond loopback.

The audit lists what exists and fails on anything group data does not allow. The deploy
does not delete what it did not make (a key, a sudo right, a container, a process): it
refuses to go on, before it changes anything, naming each item and the key that would
allow it. The operator decides, by removing the item or by allowing it."""

import json
import re

from pydantic import field_validator
from pyinfra.api import FactBase

from .base import SSH_KEY_RE, USER_RE
from .model import NOT_SHOWN, ConfigError, Email, Items, Section, problem_line, refuse, setting
from .services import compose_services

LISTENER_RE = re.compile(r"^[\w.@-]{1,32}:\d{1,5}/(tcp|udp)$")
CONTAINER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Beyond loopback and besides sshd and Docker's published ports: a DHCP client, which cloud
# hosts run (systemd-networkd on Ubuntu, dhclient or dhcpcd elsewhere), and systemd-resolved's
# LLMNR where it is on (Debian's default; UFW keeps it from outside).
SYSTEM_LISTENERS = {(name, port, "udp") for name in ("systemd-network", "dhclient", "dhcpcd") for port in (68, 546)}
SYSTEM_LISTENERS |= {("systemd-resolve", 5355, protocol) for protocol in ("tcp", "udp")}


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
        doc="Accounts besides root and admin_user that may become root: use sudo, or be in the docker or lxd "
        'group (e.g. the cloud image\'s "ubuntu"); any other stops the deploy.',
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
    """Every account with the keys of its authorized_keys files (as sshd -T names them), where else sshd takes
    keys from, sudo's rules as sudo parses them (cvtsudoers: includes, aliases, user ids), the groups, the
    containers with their project and published ports, and the listening sockets with their process."""

    def command(self):
        return (
            "sshd=$(command -v sshd || echo /usr/sbin/sshd); "
            "$sshd -T 2>/dev/null | sed -n 's/^port /sshd-port /p; "
            "s/^\\(authorizedkeyscommand\\|authorizedprincipalsfile\\|authorizedprincipalscommand"
            "\\|trustedusercakeys\\) /sshd-source \\1 /p'; "
            'files=$($sshd -T 2>/dev/null | sed -n "s/^authorizedkeysfile //p"); '
            "getent passwd | while IFS=: read -r name _ uid gid _ home _; do "
            'echo "account $name $uid $gid"; '
            "for f in ${files:-.ssh/authorized_keys .ssh/authorized_keys2}; do "
            'f=$(echo "$f" | sed "s#%h#$home#g; s#%u#$name#g; s#%U#$uid#g; s#%%#%#g"); '
            'case "$f" in /*) ;; *) f="$home/$f";; esac; '
            '[ -f "$f" ] && grep -Ev "^[[:space:]]*(#|$)" "$f" | sed "s#^#key $name $f #"; done; done; '
            "getent group | sed 's/^/group /'; "
            "command -v cvtsudoers >/dev/null && cvtsudoers -f json /etc/sudoers 2>/dev/null | tr -d '\\n' | "
            "sed 's/^/sudoers /'; echo; "
            "command -v docker >/dev/null && docker ps -a --format "
            "'container {{.Names}}|{{.Label \"com.docker.compose.project\"}}|{{.Ports}}' 2>/dev/null; "
            "ss -Hlntup 2>/dev/null | sed 's/^/socket /'; true"
        )

    @staticmethod
    def default():
        return {
            "sshd_ports": set(),
            "sshd_sources": {},
            "accounts": {},
            "keys": [],
            "groups": {},
            "sudoers": {},
            "containers": {},
            "sockets": [],
        }

    def process(self, output):
        state = self.default()
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "sshd-port":
                state["sshd_ports"].add(int(rest))
            elif kind == "sshd-source" and rest.split()[-1] != "none":
                state["sshd_sources"][rest.split()[0]] = rest.split(None, 1)[1]
            elif kind == "account":
                name, uid, gid = (rest.split() + ["", ""])[:3]
                state["accounts"][name] = (uid, gid)
            elif kind == "key":
                account, path, key = (rest.split(" ", 2) + [""])[:3]
                state["keys"].append((account, path, key))
            elif kind == "group":
                name, _, gid, members = (rest.split(":") + ["", "", ""])[:4]
                state["groups"][name] = (gid, [m for m in members.split(",") if m])
            elif kind == "sudoers" and rest.strip():
                try:
                    state["sudoers"] = json.loads(rest)
                except ValueError:
                    state["sudoers"] = {"unreadable": rest[:200]}
            elif kind == "container":
                name, project, ports = (rest.split("|") + ["", ""])[:3]
                state["containers"][name] = (project, published_ports(ports))
            elif kind == "socket":
                state["sockets"].append(rest)
        return state


def published_ports(ports):
    """{(port, protocol)} a container publishes on the host, from docker ps's Ports (ranges expanded)."""
    found = set()
    for match in re.finditer(r":(\d+)(?:-(\d+))?->\d+(?:-\d+)?/(\w+)", ports):
        first, last = int(match[1]), int(match[2] or match[1])
        found |= {(port, match[3]) for port in range(first, last + 1)}
    return found


def key_blob(line):
    """The key (type and base64) of an authorized_keys line, after its options (whose quoted values may hold
    spaces, and anything else), or None."""
    rest, quoted = line.strip(), False
    if not re.match(r"(ssh|ecdsa|sk)-", rest):
        for i, char in enumerate(rest):  # the options end at the first blank outside quotes, as sshd reads them
            if char == '"' and rest[i - 1 : i] != "\\":
                quoted = not quoted
            elif char in " \t" and not quoted:
                rest = rest[i:].strip()
                break
        else:
            return None
    match = re.match(r"((?:ssh|ecdsa|sk)-\S+ [A-Za-z0-9+/=]+)", rest)
    return match[1] if match else None


def allowed_keys(cfg, account):
    listed = list(cfg.allowlist.ssh_keys_allowed.get(account, ()))
    if account == cfg.host.admin_user:
        listed += cfg.host.admin_ssh_keys
    return {key_blob(key) for key in listed}


def unknown_keys(cfg, state):
    """[(account, file, key line)] of keys no group data key allows; any account's, since sshd lets an account
    without a login shell in with a key too."""
    return [(a, path, line) for a, path, line in state["keys"] if key_blob(line) not in allowed_keys(cfg, a)]


def _members(state, group):
    gid, members = state["groups"].get(group, (None, []))
    return set(members) | {a for a, (_, primary) in state["accounts"].items() if gid is not None and primary == gid}


def sudo_holders(state):
    """{account (or what sudoers names that is none): why it may become root}: sudo's rules as cvtsudoers parses
    them, and the members of docker and lxd, which are root by another name."""
    holders: dict[str, str] = {}
    sudoers = state["sudoers"]
    aliases = sudoers.get("User_Aliases", {})
    by_uid = {uid: a for a, (uid, _) in state["accounts"].items()}
    by_gid = {gid: g for g, (gid, _) in state["groups"].items()}

    def expand(entry, seen=()):
        if "username" in entry:
            return {entry["username"]: "sudoers"}
        if "userid" in entry:
            return {by_uid.get(str(entry["userid"]), f"#{entry['userid']}"): "sudoers"}
        group = entry.get("usergroup") or by_gid.get(str(entry.get("usergid")))
        if group:
            return {m: f"member of group {group}, which sudoers names" for m in _members(state, group)}
        if entry.get("useralias") in aliases and entry["useralias"] not in seen:
            found = {}
            for item in aliases[entry["useralias"]]:
                found |= expand(item, (*seen, entry["useralias"]))
            return found
        return {json.dumps(entry): "sudoers names it"}  # a netgroup, a non-Unix group, an unknown alias

    for spec in sudoers.get("User_Specs", []):
        for entry in spec.get("User_List", []):
            if not entry.get("negated"):
                for who, why in expand(entry).items():
                    holders.setdefault(who, why)
    if "unreadable" in sudoers:
        holders["sudoers"] = f"cvtsudoers could not read it: {sudoers['unreadable']}"
    for group in ("docker", "lxd"):
        for member in _members(state, group):
            holders.setdefault(member, f"member of group {group}, which is root by another name")
    return holders


def unknown_sudo(cfg, state):
    allowed = {"root", cfg.host.admin_user, *cfg.allowlist.sudo_users_allowed}
    return {who: why for who, why in sorted(sudo_holders(state).items()) if who not in allowed}


def unknown_containers(cfg, state):
    """Containers that are not this project's services (by name and label: a label alone is easily made), nor
    listed in containers_allowed."""
    services = "|".join(map(re.escape, compose_services(cfg)))
    ours = re.compile(rf"^{re.escape(cfg.stack.stack_name)}-({services})-(\d+|run-[0-9a-f]+)$")
    return {
        name: project
        for name, (project, _) in state["containers"].items()
        if not (project == cfg.stack.stack_name and ours.match(name)) and name not in cfg.allowlist.containers_allowed
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
    unknown = unknown_containers(cfg, state)
    published = {port for name, (_, ports) in state["containers"].items() if name not in unknown for port in ports}
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
        ]
        + [
            ("ssh_keys_allowed", f"sshd takes keys from elsewhere too: {option} {value}")
            for option, value in sorted(state["sshd_sources"].items())
        ],
        "sudo": [
            ("sudo_users_allowed", f"account {who} may become root ({where})")
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
    "keys": "remove the key from that file, or list it there if it is yours (sshd's other key sources: remove them)",
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
