"""The data layer: PostgreSQL and Redis up, one login role owning one private database per
app (Chatwoot's extensions too), checked read-only on every run and repaired when they
differ; and PostgreSQL's major-version guard and upgrade (backup, old data set aside,
new cluster, restore).
"""

import re
import shlex

from pyinfra.api import FactBase
from pyinfra.operations import server

from . import containers, converge, memory, pitr
from .model import ConfigError, Items, Section, setting
from .postgres_access import REPLICATION_ROLE, ROLE_ATTRIBUTES, RoleName, allowed_roles, role_drift
from .rollout import Rollout
from .services import DATA_SERVICES, REDIS_PORT
from .topology import Role

REDIS_DB = {"chatwoot": 0, "n8n": 1, "directus": 2}
CHATWOOT_EXTENSIONS = ("vector", "pg_trgm", "pgcrypto", "pg_stat_statements")


class Settings(Section):
    postgres_major: int | None = setting(
        None,
        doc="PostgreSQL major version of images['postgres']; None: read from the image name (…-pg15, postgres:15.x).",
        problem="not a PostgreSQL major version",
        fix="set the image's major version, e.g. 15",
        ge=12,
        le=99,
    )
    postgres_major_upgrade: bool = setting(
        False,
        doc='True: carry out docs/operations.md "PostgreSQL major upgrade" when the major version changes; '
        "a deploy never changes it by itself.",
        problem="not a boolean",
        fix="set postgres_major_upgrade = True or False",
    )
    postgres_roles_allowed: Items[RoleName] = setting(
        (),
        doc="PostgreSQL roles the deploy did not make that may exist (e.g. a reporting login you made "
        "yourself), with no attribute but LOGIN; any other role is refused by the audit and dropped "
        "by the deploy when it owns nothing.",
        problem="not a list of role names",
        fix='set postgres_roles_allowed = ["reporting"], or [] for none',
    )


def postgres_major_of(image):
    """The PostgreSQL major version in an image reference (postgres:15.8, pgvector/pgvector:0.8.0-pg15), or None."""
    match = re.search(r"(?:pg|postgres(?:ql)?[-_]?)(\d{2})(?!\d)|:(\d{2})(?:[.-]|$)", image)
    return int(match[1] or match[2]) if match else None


class SuperuserQueries(converge.ContainerRead):
    """Rows of QUERIES ((database, SQL), ...) run by the superuser in the PostgreSQL container, `|`-separated."""

    QUERIES: tuple[tuple[str, str], ...] = ()

    def script(self):
        # One psql per database, its queries in order (a failed one does not stop the next).
        by_db: dict[str, list[str]] = {}
        for db, q in self.QUERIES:
            by_db.setdefault(db, []).append(f"-c {shlex.quote(q)}")
        psql = "psql -U postgres -tA -F '|'"
        return "; ".join(f"{psql} -d {db} {' '.join(qs)} 2>/dev/null" for db, qs in by_db.items())


class DatabaseState(SuperuserQueries):
    """Roles, databases (owner, ACL) and Chatwoot's extensions, as the superuser sees them."""

    QUERIES = (
        (
            "postgres",
            # A role: its attributes, and how many objects it owns in any database (pg_shdepend).
            "select 'role', rolname, concat_ws(',', "
            + ", ".join(f"case when {column} then '{name}' end" for name, column in ROLE_ATTRIBUTES.items())
            + "), (select count(*) from pg_shdepend d where d.refobjid = r.oid and d.deptype = 'o')::text "
            "from pg_roles r where rolname !~ '^pg_' "
            "union all select 'db', datname, pg_get_userbyid(datdba)::text, coalesce(datacl::text, '') "
            "from pg_database",
        ),
        # The client-authentication rules in the file PostgreSQL reads (hba_file), as it parses them now.
        (
            "postgres",
            "select 'hba', concat_ws(' ', type, array_to_string(database, ','), array_to_string(user_name, ','), "
            "coalesce(address, ''), coalesce(netmask, ''), auth_method), coalesce(error, ''), '' "
            "from pg_hba_file_rules order by line_number",
        ),
        ("chatwoot", "select 'ext', extname, '', '' from pg_extension"),
        ("postgres", "select 'slot', slot_name, coalesce(wal_status, ''), '' from pg_replication_slots"),
    )

    @staticmethod
    def default():
        return {"roles": {}, "dbs": {}, "extensions": set(), "slots": {}, "hba": []}

    def process(self, output):
        state = self.default()
        for line in output:
            kind, name, a, b = (line.split("|") + ["", "", "", ""])[:4]
            if kind == "role":
                attributes = set(filter(None, a.split(",")))
                state["roles"][name] = {"attributes": attributes, "owns": int(b or 0)}
            elif kind == "hba":
                rule = " ".join(name.split())
                state["hba"].append(f"{rule} (error: {a})" if a else rule)
            elif kind == "db":
                grantees = {entry.split("=")[0] for entry in b.strip("{}").split(",") if entry} if b else {""}
                state["dbs"][name] = {"owner": a, "grantees": grantees}
            elif kind == "ext":
                state["extensions"].add(name)
            elif kind == "slot":
                state["slots"][name] = a  # its wal_status: "lost" once it fell behind max_slot_wal_keep_size
        return state


def database_drift(cfg, state):
    """How the databases differ from one login role and one private database per app."""
    drift = role_drift(cfg, state)
    for app in cfg.stack.apps:
        if app not in state["roles"]:
            drift.append(f"role {app}")
        db = state["dbs"].get(app)
        if not db or db["owner"] != app:
            drift.append(f"database {app}")
        elif not db["grantees"] <= {app, "postgres"}:
            # "" is PUBLIC (also what no ACL at all means): anyone could connect.
            drift.append(f"database {app} open to {sorted(db['grantees'] - {app, 'postgres'})}")
    if "chatwoot" in cfg.stack.apps:
        drift += [f"extension {e}" for e in CHATWOOT_EXTENSIONS if e not in state["extensions"]]
    slots = {replica.slot for replica in cfg.topology.replicas}
    if slots and REPLICATION_ROLE not in state["roles"]:
        drift.append(f"role {REPLICATION_ROLE}")
    live = {name: status for name, status in state.get("slots", {}).items() if name.startswith("replica_")}
    drift += [f"replication slot {slot}" for slot in slots ^ set(live)]
    drift += [f"replication slot {slot} lost" for slot in slots & set(live) if live[slot] == "lost"]
    return drift


def check_postgres_major(cfg, stack_state):
    """The major version of the data on the host; refuses a different one in group data
    unless postgres_major_upgrade asks for the dump-and-restore procedure."""
    data_major = stack_state["pg_version"]
    if data_major and data_major != cfg.data.postgres_major and not cfg.data.postgres_major_upgrade:
        raise ConfigError(
            f"images['postgres'] = {cfg.stack.images['postgres']!r} is PostgreSQL {cfg.data.postgres_major}, "
            f"but the data on this host is PostgreSQL {data_major}; nothing was changed on the host.\n"
            f"  A new major version cannot open the old data directory.\n"
            f"  Fix: put back a PostgreSQL {data_major} image, or upgrade by the procedure in docs/operations.md\n"
            '  "PostgreSQL major upgrade" (backup, new cluster, restore): rerun with postgres_major_upgrade = True.'
        )
    return data_major


def redis_settings(cfg):
    """What redis.conf sets that CONFIG SET (or REPLICAOF) could change live, as CONFIG GET reports it."""
    topology = cfg.topology
    return {
        "maxmemory-policy": "noeviction",
        "maxmemory": str(memory.sizing(cfg)["redis_maxmemory_mb"] * 2**20),
        "appendonly": "yes",
        "appendfsync": "everysec",
        "replica-read-only": "yes",
        "replicaof": f"{topology.primary.address} {REDIS_PORT}" if topology.role == Role.REPLICA else "",
    }


class RedisState(FactBase):
    """Whether Redis answers without its password, and its live settings (CONFIG GET);
    {} when it does not run. The password stays inside the container."""

    def command(self, container, keys):
        # key=value lines (a value may be empty: replicaof on a primary).
        script = (
            f'redis-cli ping 2>&1 | sed "s/^/anonymous /"; '
            'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli acl users | sed "s/^/acl-user /"; '
            f'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli config get {" ".join(keys)} | paste -d= - -'
        )
        return f"docker exec {container} sh -c {shlex.quote(script)} 2>/dev/null; true"

    @staticmethod
    def default():
        return {}

    def process(self, output):
        if not any(line.strip() for line in output):
            return {}
        tagged = {"anonymous": [], "acl-user": []}
        for line in output:
            tag, _, rest = line.partition(" ")
            if tag in tagged:
                tagged[tag].append(rest.strip())
        state = {"anonymous": " ".join(filter(None, tagged["anonymous"])), "acl_users": tagged["acl-user"]}
        state.update(
            line.strip().partition("=")[::2] for line in output if line.split(" ")[0] not in tagged and "=" in line
        )
        return state


def redis_drift(cfg, state):
    """How live Redis differs from its configuration ([] when it is not running)."""
    if not state:
        return []
    drift = [] if state["anonymous"].startswith("NOAUTH") else ["answers without its password"]
    # Every app logs in as `default` with the one password; any other ACL user was added by hand.
    drift += [f"ACL user {user} not allowed (only default)" for user in state.get("acl_users", []) if user != "default"]
    return drift + [
        f"{key} {state.get(key)!r}, wanted {value!r}"
        for key, value in redis_settings(cfg).items()
        if state.get(key) != value
    ]


def redis_config(cfg, template_vars):
    return converge.template(
        name="Redis configuration",
        src="templates/redis.conf.j2",
        dest=f"{cfg.stack.stack_root}/config/redis.conf",
        mode="644",
        create_remote_dir=False,
        **template_vars,
    )


def apply(cfg, rollout: Rollout) -> list[str]:
    """Between the stack's files and the apps: the data services up, the databases right.
    Returns what differed in the databases before this run (a database made afresh among them)."""
    root, dc = cfg.stack.stack_root, rollout.dc
    if rollout.major_upgrade and not rollout.resume_backup:
        _set_old_data_aside(cfg, rollout)

    # (A major upgrade has just removed PostgreSQL's container: `up` makes the new one.)
    containers.recreate(
        rollout, [s for s in rollout.drifted if s in DATA_SERVICES and not (s == "postgres" and rollout.major_upgrade)]
    )
    server.shell(
        name="Data services up and healthy",
        commands=[f"{dc} up -d --wait --wait-timeout 180 postgres redis"],
        _if=lambda: bool(rollout.drifted) or rollout.needs_up(),
    )

    server.shell(
        name="PostgreSQL reloaded for its changed pg_hba.conf",
        commands=[f"docker exec {cfg.stack.stack_name}-postgres-1 psql -q -U postgres -c 'select pg_reload_conf()'"],
        _if=rollout.hba.did_change,
    )
    db_script = converge.template(
        name="Databases script",
        src="templates/databases.sh.j2",
        dest=f"{root}/bin/databases.sh",
        mode="700",
        create_remote_dir=False,
        cfg=cfg,
        root=root,
        dc=dc,
        extensions=CHATWOOT_EXTENSIONS,
        replication_role=REPLICATION_ROLE,
        allowed_roles=sorted(allowed_roles(cfg)),
    )
    drift = database_drift(cfg, converge.fact(DatabaseState, container=f"{cfg.stack.stack_name}-postgres-1"))
    server.shell(
        name="Per-service databases and roles",
        commands=[f"{root}/bin/databases.sh"],
        _if=lambda: (
            bool(drift)
            or rollout.major_upgrade
            or bool(rollout.resume_backup)
            or db_script.did_change()
            or rollout.secrets.did_change()
        ),
    )
    if rollout.major_upgrade or rollout.resume_backup:
        server.shell(
            name=f"Databases restored into PostgreSQL {cfg.data.postgres_major} "
            "from the backup taken before the upgrade",
            commands=[
                rollout.explain_failure(f'{root}/bin/restore.sh "$(cat {rollout.marker})" databases'),
                f"rm -f {rollout.marker}",
            ],
        )
    return drift


def _set_old_data_aside(cfg, rollout):
    project, dc = cfg.stack.stack_name, rollout.dc
    aside = f"{project}_postgres-data-pg{rollout.data_major}"
    mountpoint = "\"$(docker volume inspect -f '{{.Mountpoint}}' %s)\""
    server.shell(
        name=f"PostgreSQL {rollout.data_major} data set aside in volume {aside}",
        commands=[
            # Checks first: nothing is stopped if the old data has nowhere to go or the new image cannot be had.
            f"docker volume create {aside} >/dev/null",
            f'[ -z "$(ls -A {mountpoint % aside})" ] || {{ echo "{aside} is not empty: an earlier upgrade left it; '
            f'remove it once you no longer need it" >&2; exit 1; }}',
            # The image the service runs (with PITR, built from the pinned one earlier in this run).
            f"docker image inspect {shlex.quote(pitr.postgres_image(cfg))} >/dev/null 2>&1 || {dc} pull postgres",
            # The backup this run just took: the one a rerun restores if this one stops half-way.
            f'basename "$(ls -1d {cfg.backup.backup_dir}/[0-9]*T[0-9]*Z | sort | tail -n 1)" > {rollout.marker}',
            f"{dc} stop",
            f"{dc} rm -f postgres",
            f"find {mountpoint % (project + '_postgres-data')} -mindepth 1 -maxdepth 1 "
            f"-exec mv -t {mountpoint % aside} {{}} +",
        ],
    )


def reads(cfg):
    """The facts this layer reads on the primary, for converge.read_ahead."""
    return [(DatabaseState, {"container": f"{cfg.stack.stack_name}-postgres-1"})]
