"""The scale-out layer: the inventory's roles and the private links between its hosts.

Groups of the inventory give each host its role: `replicas` (a PostgreSQL hot standby and
a Redis replica), `workers` (n8n queue workers), and the primary (the group `primary`, or
else the one host in neither group), which runs everything as a one-host inventory does.
The apps' own machinery does the work: n8n's queue mode, PostgreSQL streaming replication
(a physical slot per replica), Redis's `replicaof`.

The private link: the primary publishes PostgreSQL and Redis on its `private_address`
only, and its DOCKER-USER guard lets new connections to them in from the peers' addresses
only (Docker's published ports bypass UFW's INPUT chain; DOCKER-USER is where they are
filtered). A host taken out of the inventory is out of the guard, of pg_hba and of the
replication slots on the next run. The peers' secrets are the primary's, copied over the
deploy's own SSH connections at the time of the run, never shown.
"""

from io import StringIO
from typing import Annotated, Literal

from pyinfra import host, inventory
from pyinfra.api import FactBase
from pyinfra.operations import python

from . import converge, pitr
from .model import ConfigError, PositiveInt, Section, check, is_ip_address, setting
from .secrets import GENERATED_SECRETS, UPLOAD_DIR, SecretDigests
from .services import PG_PORT, REDIS_PORT
from .topology import Role

# Generated on the primary once it has replicas: name -> length.
PRIMARY_SECRETS = {"replication_password": 40}
# The primary's secrets a peer's services need, by role.
# A replica keeps every one: promoted, it runs the apps on their data (n8n's credentials are
# encrypted with n8n_encryption_key, the roles' passwords are in the replicated database).
LINK_SECRETS = {
    Role.WORKER: ("n8n_db_password", "n8n_encryption_key", "redis_password"),
    Role.REPLICA: (*GENERATED_SECRETS, "replication_password"),
}
# Env files a peer's services read (secrets/<name>.env): variable -> secret.
PEER_SECRET_ENV = {
    Role.WORKER: {
        "n8n": {
            "DB_POSTGRESDB_PASSWORD": "n8n_db_password",
            "N8N_ENCRYPTION_KEY": "n8n_encryption_key",
            "QUEUE_BULL_REDIS_PASSWORD": "redis_password",
        }
    },
    Role.REPLICA: {
        "redis": {"REDIS_PASSWORD": "redis_password"},
        "replication": {"REPLICATION_PASSWORD": "replication_password"},
    },
}

IpAddress = Annotated[
    str,
    check(
        lambda value: is_ip_address(value, version=4),
        "not an IPv4 address",
        'write the host\'s IPv4 address on the private network, e.g. "10.0.0.2"',
    ),
]


class Settings(Section):
    private_address: IpAddress | None = setting(
        None,
        doc="This host's address on the private network its peers share (host data in the inventory); needed on every "
        "host once the inventory has `replicas` or `workers`. PostgreSQL and Redis are published on the primary's "
        "only, to the peers only.",
        fix='set private_address = "10.0.0.2" in the host\'s data in the inventory',
    )
    replica_lag_max_s: PositiveInt = setting(
        30,
        doc="Replication lag (seconds behind the primary) above which the audit fails a replica.",
        fix="set replica_lag_max_s = 30",
    )
    max_slot_wal_keep_size_mb: PositiveInt = setting(
        2048,
        doc="WAL the primary keeps for a replica that is behind or down (MB); beyond it the replica's slot is given "
        "up, so a dead replica cannot fill the primary's disk (it then needs a new base backup).",
        fix="set max_slot_wal_keep_size_mb = 2048",
    )
    chatwoot_sidekiq_on_workers: bool = setting(
        False,
        doc='Chatwoot\'s Sidekiq on the worker hosts too; needs chatwoot_storage_service = "s3_compatible".',
        problem="not a boolean",
        fix="set chatwoot_sidekiq_on_workers = True or False",
    )
    chatwoot_storage_service: Literal["local", "s3_compatible"] = setting(
        "local",
        doc="Chatwoot's ACTIVE_STORAGE_SERVICE: where attachments live.",
        problem="unknown storage service",
        fix='set chatwoot_storage_service = "local" or "s3_compatible"',
    )


def cross_rules(cfg_sections, topology, problem):
    """Rules of the scale-out that need other layers' settings; `problem(key, value, what, fix)` records one."""
    cluster, n8n = cfg_sections["cluster"], cfg_sections["n8n"]
    if topology.role == Role.WORKER and "n8n" not in cfg_sections["stack"].apps:
        problem(
            "apps",
            cfg_sections["stack"].apps,
            "a worker host runs n8n's queue workers, and n8n is not among the apps",
            "add n8n to apps, or take the host out of the workers group",
        )
    if topology.role == Role.WORKER and n8n.n8n_workers < 1:
        problem(
            "n8n_workers",
            n8n.n8n_workers,
            "a worker host runs n8n's queue workers: at least one",
            "set n8n_workers = 2 (per worker host, in its host data or group_data/workers.py)",
        )
    if topology.workers and n8n.n8n_workers < 1 and topology.role == Role.PRIMARY:
        problem(
            "n8n_workers",
            n8n.n8n_workers,
            "the worker hosts take executions from n8n's queue, which needs queue mode on the primary",
            "set n8n_workers = 1 or more for the primary as well (0 is n8n's regular mode: no queue)",
        )
    if cluster.chatwoot_sidekiq_on_workers and cluster.chatwoot_storage_service != "s3_compatible":
        problem(
            "chatwoot_sidekiq_on_workers",
            True,
            "Sidekiq reads and writes attachments on the host it runs on: with local storage a worker host's Sidekiq "
            "would not find the files the primary stored (and the other way round)",
            'set chatwoot_storage_service = "s3_compatible" (with its bucket), or chatwoot_sidekiq_on_workers = False',
        )
    if cluster.chatwoot_sidekiq_on_workers:
        problem(
            "chatwoot_sidekiq_on_workers",
            True,
            "not built yet: this release runs Chatwoot's Sidekiq on the primary only",
            "set chatwoot_sidekiq_on_workers = False",
        )


class ReplicationSlots(FactBase):
    """The primary's replication slots: name -> wal_status ("lost": the replica must be seeded again)."""

    def command(self, container):
        return (
            f"docker exec {container} psql -U postgres -d postgres -tA -F ' ' "
            '-c "select slot_name, wal_status from pg_replication_slots" 2>/dev/null; true'
        )

    @staticmethod
    def default():
        return {}

    def process(self, output):
        return dict((line.split() + [""])[:2] for line in output if line.strip())


def reseed_commands(cfg, rollout):
    """On a replica whose slot on the primary is lost (it fell behind max_slot_wal_keep_size)
    or gone, or whose data is not a standby's: its copy of the data removed, so `up` takes
    a new base backup. Its data is only ever a copy of the primary's."""
    if cfg.topology.role != Role.REPLICA or rollout.state["pg_version"] is None:
        return []
    primary = inventory.get_host(cfg.topology.primary.name)
    slots = primary.get_fact(ReplicationSlots, container=f"{cfg.stack.stack_name}-postgres-1")
    # Data that is no standby (an old primary put back as a replica) is never started as one.
    stale = (
        not rollout.state["standby"]
        or rollout.state["pg_version"] != cfg.data.postgres_major  # after a major upgrade
        or (bool(slots) and slots.get(cfg.topology.me.slot, "lost") == "lost")
    )
    if not stale:
        return []
    return [f"{rollout.dc} rm -sf postgres", f"docker volume rm {cfg.stack.stack_name}_postgres-data"]


def guard_rules(cfg):
    """DOCKER-USER rules (iptables -S form) letting the peers in to the primary's published
    PostgreSQL and Redis; none elsewhere."""
    if cfg.topology.role != Role.PRIMARY:
        return []
    return [
        f"-A DOCKER-USER -s {peer.address}/32 -p tcp -m conntrack --ctorigdstport {port} -j RETURN"
        for peer in cfg.topology.peers
        for port in (PG_PORT, REDIS_PORT)
    ]


def link_ports(cfg):
    """Service -> the port it publishes on this host's private address (the primary's, with peers)."""
    return (
        {"postgres": PG_PORT, "redis": REDIS_PORT}
        if cfg.topology.role == Role.PRIMARY and cfg.topology.clustered
        else {}
    )


# A replica's pgBackRest, when the repository is a bucket: it is seeded from it (pitr.py).
BUCKET_KEYS = ("pgbackrest_s3_key", "pgbackrest_s3_key_secret")
BUCKET_ENV = {
    "PGBACKREST_REPO1_CIPHER_PASS": "pgbackrest_cipher_pass",
    "PGBACKREST_REPO1_S3_KEY": "pgbackrest_s3_key",
    "PGBACKREST_REPO1_S3_KEY_SECRET": "pgbackrest_s3_key_secret",
}


def _bucket_reader(cfg):
    return cfg.topology.role == Role.REPLICA and pitr.in_bucket(cfg)


def link_secrets(cfg):
    """The primary's secrets this peer keeps a copy of."""
    return (*LINK_SECRETS[cfg.topology.role], *(BUCKET_KEYS if _bucket_reader(cfg) else ()))


def peer_secret_env(cfg):
    """This peer's env files: name -> {variable: secret}."""
    return {**PEER_SECRET_ENV[cfg.topology.role], **({"pgbackrest": BUCKET_ENV} if _bucket_reader(cfg) else {})}


def secret_names(cfg):
    """The generated secrets this host keeps: all on the primary, the primary's copies on a peer."""
    if cfg.topology.role != Role.PRIMARY:
        return link_secrets(cfg)
    return (*GENERATED_SECRETS, *(PRIMARY_SECRETS if cfg.topology.replicas else ()))


# Peers' secrets: copied from the primary.


def env_file_text(mapping, values):
    """An env file as the secrets script writes it (single quotes: compose takes values literally)."""
    return "".join(f"{var}='{values[secret]}'\n" for var, secret in mapping.items())


def secrets_from_primary(cfg):
    """On a peer: the primary's secrets its services need, and their env files; an operation
    only when a copy is missing or differs from the primary's (compared by digest)."""
    secrets_dir = f"{cfg.stack.stack_root}/secrets"
    names, env_files = link_secrets(cfg), peer_secret_env(cfg)
    primary = inventory.get_host(cfg.topology.primary.name)
    theirs = primary.get_fact(SecretDigests, directory=secrets_dir, names=names)
    ours = host.get_fact(SecretDigests, directory=secrets_dir, names=(*names, *(f"{f}.env" for f in env_files)))
    env_ok = all(f"{f}.env" in ours for f in env_files)
    if env_ok and all(name in theirs and theirs[name] == ours.get(name) for name in names):
        return converge.Unchanged()
    if host.data.get("_sudo"):
        converge.directory(
            name="Private upload directory", path=UPLOAD_DIR, user=host.data.get("ssh_user") or "root", mode="700"
        )

    def copy():
        values = {}
        for name in names:
            ok, output = primary.run_shell_command(
                f"cat {secrets_dir}/{name}",
                print_output=False,
                print_input=False,
                _sudo=bool(primary.data.get("_sudo")),
            )
            values[name] = output.stdout.strip() if ok else ""
            if not values[name]:
                raise ConfigError(
                    f"the primary {primary.name} has no {name} in {secrets_dir}: its deploy failed before its secrets"
                )
        files = {
            **values,
            **{f"{env}.env": env_file_text(mapping, values) for env, mapping in env_files.items()},
        }
        sudo = bool(host.data.get("_sudo"))
        for name, text in files.items():
            host.put_file(
                StringIO(text), f"{secrets_dir}/{name}", remote_temp_filename=f"{UPLOAD_DIR}/{name}", _sudo=sudo
            )
        host.run_shell_command(f"chown root:root {secrets_dir}/* && chmod 600 {secrets_dir}/*", _sudo=sudo)

    return python.call(name="Secrets of the primary copied", function=copy)
