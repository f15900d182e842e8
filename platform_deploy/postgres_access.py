"""PostgreSQL's access by allowlist: which roles may exist and with which attributes (the
superuser, one login per app, the replicas' role, and those group data allows), and the
client-authentication rules PostgreSQL reads (pg_hba_file_rules) against the managed file.
The data layer reads the state (data.DatabaseState) and repairs; the audit compares."""

import ipaddress
import re
from typing import Annotated

from .model import ConfigError, check, problem_line

REPLICATION_ROLE = "replicator"
# A role's attributes, by the names ALTER ROLE uses -> their columns in pg_roles.
ROLE_ATTRIBUTES = {
    "login": "rolcanlogin",
    "superuser": "rolsuper",
    "createrole": "rolcreaterole",
    "createdb": "rolcreatedb",
    "replication": "rolreplication",
    "bypassrls": "rolbypassrls",
}
RoleName = Annotated[
    str,
    check(
        re.compile(r"^[a-z_][a-z0-9_]{0,62}$").match,
        "not a PostgreSQL role name the deploy can allow",
        'write a lower-case name like "reporting": letters, digits, _',
    ),
]


def allowed_roles(cfg):
    """Role -> the attributes it may have: the superuser, one login per app, the replicas' role,
    and those group data allows."""
    allowed = {"postgres": set(ROLE_ATTRIBUTES)} | {app: {"login"} for app in cfg.stack.apps}
    if cfg.topology.replicas:
        allowed[REPLICATION_ROLE] = {"login", "replication"}
    return {role: {"login"} for role in cfg.data.postgres_roles_allowed} | allowed


def role_drift(cfg, state):
    """Roles not allowed, and attributes beyond what a role may have."""
    allowed, drift = allowed_roles(cfg), []
    for name, role in sorted(state["roles"].items()):
        if name not in allowed:
            owns = f", owns {role['owns']} objects" if role["owns"] else ""
            drift.append(f"role {name} not allowed (group data postgres_roles_allowed{owns})")
        elif role["attributes"] - allowed[name]:
            drift.append(f"role {name} has {', '.join(sorted(role['attributes'] - allowed[name]))}")
        elif name in cfg.stack.apps and "login" not in role["attributes"]:
            drift.append(f"role {name} cannot log in")
    return drift


def check_unknown_roles(cfg, state):
    """Refuses to go on when a role group data does not allow owns objects: dropping it would
    drop them, so the operator decides (a role owning nothing is dropped by the deploy)."""
    allowed = allowed_roles(cfg)
    owners = {name: role["owns"] for name, role in state["roles"].items() if name not in allowed and role["owns"]}
    if owners:
        raise ConfigError(
            "PostgreSQL has roles that group data does not allow and that own objects; nothing was changed "
            "on the host.\n"
            + "\n".join(
                problem_line(
                    "postgres_roles_allowed",
                    list(cfg.data.postgres_roles_allowed),
                    f"role {name!r} owns {count} objects: dropping it would drop them",
                    f"add {name!r} to postgres_roles_allowed if it is yours, or move its objects and drop it "
                    f"(REASSIGN OWNED BY {name} TO postgres; DROP OWNED BY {name}; DROP ROLE {name})",
                )
                for name, count in sorted(owners.items())
            )
        )


def hba_drift(state, wanted):
    """How PostgreSQL's client-authentication rules differ from `wanted` (pg_hba_file_rules lines).
    The first rule that matches a connection decides, so the order counts too."""
    live = state["hba"]
    drift = [f"pg_hba rule not wanted: {rule}" for rule in live if rule not in wanted]
    drift += [f"pg_hba rule missing: {rule}" for rule in wanted if rule not in live]
    return drift or (["pg_hba rules in another order"] if live != wanted else [])


def wanted_hba(rendered):
    """The rules of a rendered pg_hba.conf, as pg_hba_file_rules shows them (address/bits as address
    and netmask; "all" lists as they are)."""
    rules = []
    for line in rendered.splitlines():
        fields = line.split("#")[0].split()
        if not fields:
            continue
        kind, database, user, *rest = fields
        address = netmask = ""
        if kind != "local":
            address, rest = rest[0], rest[1:]
            if "/" in address:
                network = ipaddress.ip_network(address, strict=False)
                address, netmask = str(network.network_address), str(network.netmask)
        rules.append(" ".join(filter(None, [kind, database, user, address, netmask, rest[0]])))
    return rules
