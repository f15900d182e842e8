"""The stack layer: one compose project (PostgreSQL, Redis, the apps, the edge) under
stack_root, sized to the RAM table, with secrets generated and kept on the host.

Order on the host: files (secrets, config, env, compose.yaml) -> images -> [data layer:
data services up, databases] -> [apps: Chatwoot's prepare] -> everything up. Each step
runs only when its inputs changed or the host drifted, so a rerun reports no change.
"""

from functools import partial
from io import StringIO
from pathlib import Path
from typing import Literal

import yaml
from pydantic import field_validator, model_validator
from pyinfra.operations import server

from . import cluster, containers, converge, data, edge, memory, pitr, postgres_access, upgrade
from .model import DOMAIN_RE, EMAIL_RE, Email, ImageRef, Items, Section, is_ip_address, refuse, setting
from .rollout import Rollout
from .secrets import (
    DERIVED_SECRETS,
    GENERATED_SECRETS,
    SUPPLIED_SECRETS_FILE,
    UPLOAD_DIR,
    operator_secret_files,
    secret_env,
)
from .services import APPS, DATA_SERVICES, IMAGES, PG_PORT, REDIS_PORT, AppName, ImageKey, compose_services, role_apps
from .stack_state import StackState
from .topology import Role

SMTP_FIX = (
    'set smtp = {"host": "smtp.example.org", "port": 587, "user": "apikey", "sender": "support@example.org"}, or None'
)


COMPOSE_TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "compose.yaml.j2"


class Settings(Section):
    stack_name: str = setting(
        "msgplatform",
        doc="Compose project name.",
        problem="not a valid compose project name",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        fix="use lower-case letters, digits, - and _",
    )
    stack_root: str | None = setting(
        None, doc="Where the project lives; None: /opt/<stack_name>.", fix='set stack_root = "/opt/msgplatform"'
    )
    apps: Items[AppName] = setting(
        APPS,
        doc="Which apps run; each gets its own database and role.",
        problem="not a non-empty list of known apps",
        min_length=1,
        fix=f"list the apps to run, from: {', '.join(APPS)}",
    )
    images: dict[ImageKey, ImageRef] = setting(
        IMAGES,
        doc="Exact image tags by service, tested together; the keys given replace those of the default. Bump one "
        "and rerun the deploy to upgrade that service.",
        problem="not a mapping",
        fix='set images = {"redis": "redis:7.4.5"}',
    )
    offline_images: str | None = setting(
        None,
        doc="A `docker save` archive on this machine holding the images, for servers that cannot pull "
        "(air-gapped); None: images are pulled.",
        fix="give the path of a `docker save` archive on this machine, or None",
    )
    memory_profile: Literal["auto", memory.Profile] = setting(
        "auto",
        doc='"auto": the largest profile of the RAM table the host can carry; "recommended" or "minimum" force one.',
        problem="unknown profile",
        fix="set memory_profile to auto, recommended or minimum",
    )
    memory_limits_mb: dict[memory.ServiceName, int] = setting(
        {},
        doc='Per-service container limits in MB over the profile, e.g. {"postgres": 3072}.',
        problem="not a size in MB",
        fix="give a whole number of MB, at least 32, per service",
    )
    smtp: dict | None = setting(
        None,
        doc='Outgoing mail of the apps, e.g. {"host": "smtp.example.org", "port": 587, '
        '"user": "apikey", "sender": "support@example.org"}; the password comes from '
        "PLATFORM_SMTP_PASSWORD. None: no mail.",
        fix=SMTP_FIX,
    )
    secrets_file: str = setting(
        SUPPLIED_SECRETS_FILE,
        doc="The file (KEY=VALUE lines, PLATFORM_* names) the operator's own secrets are "
        "read from, relative to where pyinfra runs; PLATFORM_* environment variables win over it.",
        fix=f'set secrets_file = "{SUPPLIED_SECRETS_FILE}"',
        min_length=1,
    )
    admin_email: Email | None = setting(
        None,
        doc="The apps' first admin (password generated on the host); None: acme_email.",
        fix="set admin_email (the apps' first admin), or leave it unset to use acme_email",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_root(cls, values):
        if isinstance(values, dict) and not values.get("stack_root"):
            values = {
                **values,
                "stack_root": f"/opt/{values.get('stack_name', cls.model_fields['stack_name'].default)}",
            }
        return values

    @field_validator("stack_root")
    @classmethod
    def _root(cls, root):
        if not root.startswith("/") or root.rstrip("/") in ("", "/opt"):
            raise refuse("not a dedicated absolute directory", 'set stack_root = "/opt/msgplatform"')
        return root.rstrip("/")

    @field_validator("apps")
    @classmethod
    def _canonical_order(cls, apps):
        # The rendered files do not depend on how the list was written.
        return tuple(app for app in APPS if app in apps)

    @field_validator("images")
    @classmethod
    def _over_pins(cls, images):
        return {**IMAGES, **images}

    @field_validator("memory_limits_mb")
    @classmethod
    def _sizes(cls, limits):
        for service, mb in limits.items():
            if mb < 32:
                raise refuse(
                    "not a size in MB",
                    "give a whole number of MB, at least 32",
                    key=f"memory_limits_mb[{service!r}]",
                    value=mb,
                )
        return limits

    @field_validator("smtp")
    @classmethod
    def _smtp(cls, smtp):
        if smtp is None:
            return None
        if set(smtp) != {"host", "port", "user", "sender"}:
            # Only the keys: a password put here by mistake must not reach the console.
            raise refuse(
                "needs exactly the keys host, port, user, sender (the password comes from PLATFORM_SMTP_PASSWORD)",
                SMTP_FIX,
                shown=sorted(smtp),
            )
        if not isinstance(smtp["host"], str) or not (DOMAIN_RE.match(smtp["host"]) or is_ip_address(smtp["host"])):
            raise refuse("not a host name or IP address", SMTP_FIX, key="smtp['host']", value=smtp["host"])
        if type(smtp["port"]) is not int or not 1 <= smtp["port"] <= 65535:
            raise refuse("not a TCP port", "use 587 (STARTTLS) or 465 (TLS)", key="smtp['port']", value=smtp["port"])
        if not isinstance(smtp["sender"], str) or not EMAIL_RE.match(smtp["sender"]):
            raise refuse("not an e-mail address", SMTP_FIX, key="smtp['sender']", value=smtp["sender"])
        return smtp


def template_vars(cfg):
    topology = cfg.topology
    # Where the apps find PostgreSQL and Redis: beside them, or on the primary over the private link.
    data_host = (
        {"postgres": "postgres", "redis": "redis"}
        if topology.role == Role.PRIMARY
        else {"postgres": topology.primary.address, "redis": topology.primary.address}
    )
    return dict(
        cfg=cfg,
        size=memory.sizing(cfg),
        urls=urls(cfg),
        redis_db=data.REDIS_DB,
        root=cfg.stack.stack_root,
        cpu_shares=containers.CPU_SHARES,
        capabilities=containers.CAPABILITIES,
        read_only=containers.READ_ONLY_WRITABLE,
        data_host=data_host,
        pg_port=PG_PORT,
        redis_port=REDIS_PORT,
        replication_role=postgres_access.REPLICATION_ROLE,
        slot=topology.me.slot if topology.me else None,
        pitr=pitr.compose_vars(cfg),
    )


def compose_document(cfg):
    """compose.yaml as the deploy writes it, parsed."""
    return yaml.safe_load(converge.render(COMPOSE_TEMPLATE, **template_vars(cfg)))


def urls(cfg):
    names = edge.hosts(cfg)
    return {
        "chatwoot": f"https://{names['chatwoot']}",
        "n8n": f"https://{names['n8n']}/",
        "directus": f"https://{names['directus']}",
    }


def host_state(cfg):
    """The stack on the host before this run: read once, by deploy.py, and handed to the steps."""
    return converge.fact(StackState, root=cfg.stack.stack_root, project=cfg.stack.stack_name)


def reads(cfg):
    """The facts this layer reads, for converge.read_ahead."""
    name = cfg.stack.stack_name
    return [
        (StackState, {"root": cfg.stack.stack_root, "project": name}),
        (containers.Containers, {"project": name}),
        (data.RedisState, {"container": f"{name}-redis-1", "keys": tuple(data.redis_settings(cfg))}),
    ]


def managed_dirs(cfg):
    """The directories this layer writes files into (converge.scan reads each once a run)."""
    root = cfg.stack.stack_root
    subdirectories = ("bin", "config", "config/n8n", "env", "state", "edge", "edge/traefik", "edge/letsencrypt")
    return [UPLOAD_DIR, root, *(f"{root}/{d}" for d in subdirectories)]


def directories(cfg):
    root = cfg.stack.stack_root
    for path, mode in (
        (root, "755"),
        (f"{root}/secrets", "700"),
        (f"{root}/config", "755"),
        (f"{root}/env", "700"),
        (f"{root}/bin", "755"),
        (f"{root}/state", "700"),
    ):
        converge.directory(name=f"Directory {path}", path=path, user="root", group="root", mode=mode)


def files_and_images(cfg, state, docker_restarted, data_major):
    """Backup before a data upgrade, secrets, the project's files and images; returns the Rollout."""
    rollout = Rollout(cfg, state, data_major, docker_restarted)
    primary, topology = cfg.topology.role == Role.PRIMARY, cfg.topology
    if primary:
        upgrade.backup_before_upgrade(cfg, rollout)
    edge_files, pangolin_template = edge.render(cfg) if primary else ({}, None)
    rollout.secrets = _secrets(cfg, rollout, pangolin_template)
    variables = template_vars(cfg)
    # The operations writing MOUNTED_CONFIG (the secrets script fills in Pangolin's).
    rollout.mounted = {
        **({"redis": [data.redis_config(cfg, variables)]} if "redis" in compose_services(cfg) else {}),
        **edge_files,
        **({"pangolin": [*edge_files["pangolin"], rollout.secrets]} if primary else {}),
    }
    if topology.role != Role.WORKER:
        rollout.hba = converge.template(
            name="PostgreSQL client authentication (pg_hba.conf)",
            src="templates/pg_hba.conf.j2",
            dest=f"{cfg.stack.stack_root}/config/pg_hba.conf",
            mode="644",
            create_remote_dir=False,
            **variables,
        )
    rollout.compose = converge.template(
        name="Compose project",
        src="templates/compose.yaml.j2",
        dest=f"{cfg.stack.stack_root}/compose.yaml",
        mode="640",
        create_remote_dir=False,
        **variables,
    )
    rollout.inputs = [
        *(op for ops in rollout.mounted.values() for op in ops),
        rollout.compose,
        *(
            converge.template(
                name=f"{app} settings",
                src=f"templates/env/{app}.env.j2",
                dest=f"{cfg.stack.stack_root}/env/{app}.env",
                mode="600",
                create_remote_dir=False,
                **variables,
            )
            for app in role_apps(cfg)
        ),
        *upgrade.offline_images(cfg, rollout.state),
        # A peer's copies of the primary's secrets: its services read them from env files.
        *([rollout.secrets] if not primary else []),
    ]
    live = converge.fact(containers.Containers, project=cfg.stack.stack_name)
    rollout.drifted = sorted(
        {service for service, _ in containers.runtime_drift(cfg, compose_document(cfg)["services"], live).values()}
    )
    return rollout


def _secrets(cfg, rollout, pangolin_template):
    """The primary's secrets: generated on it and kept. A peer's: the primary's, copied once
    the primary's script has run (every host passes the script's operation, a no-op on a
    peer, so pyinfra orders the copy after it)."""
    generated = _generated_secrets(cfg, rollout, pangolin_template)
    return generated if cfg.topology.role == Role.PRIMARY else cluster.secrets_from_primary(cfg)


def _generated_secrets(cfg, rollout, pangolin_template):
    root, state, primary = cfg.stack.stack_root, rollout.state, cfg.topology.role == Role.PRIMARY
    script, supplied, wanted_files = converge.Unchanged(), [], set()
    if primary:
        supplied = operator_secret_files(cfg, f"{root}/secrets")
        env = secret_env(cfg)
        generated = {**GENERATED_SECRETS, **(cluster.PRIMARY_SECRETS if cfg.topology.replicas else {})}
        script = converge.template(
            name="Secrets script",
            src="templates/secrets.sh.j2",
            dest=f"{root}/bin/secrets.sh",
            mode="700",
            create_remote_dir=False,
            root=root,
            generated=generated,
            secret_env=env,
            marker=edge.PANGOLIN_SECRET_MARKER,
        )
        wanted_files = set(generated) | set(DERIVED_SECRETS) | {f"{name}.env" for name in env}
    return server.shell(
        name="Secrets generated and kept on the host",
        commands=[f"{root}/bin/secrets.sh"],
        _if=lambda: (
            primary
            and (
                script.did_change()
                or not wanted_files <= state["secrets"]
                or not state["pangolin_config"]
                or pangolin_template.did_change()
                or bool(state["loose"])
                or any(op.did_change() for op in supplied)
            )
        ),
    )


def up(cfg, rollout: Rollout):
    """Everything up and healthy; containers recreated whose runtime settings drifted from
    compose.yaml; services restarted whose mounted configuration changed or that run
    another one (a file edited and put back, Redis reconfigured live)."""
    dc, role = rollout.dc, cfg.topology.role
    # A replica's data services come up here, once the primary's have their replication slot;
    # a worker host's workers after the primary's apps (workers_up): every host passes this operation.
    if role != Role.WORKER:
        containers.recreate(rollout, [s for s in rollout.drifted if s not in DATA_SERVICES or role == Role.REPLICA])
    reseed = cluster.reseed_commands(cfg, rollout)
    server.shell(
        name="All services up and healthy",
        commands=[*reseed, rollout.explain_failure(f"{dc} up -d --wait --wait-timeout 300 --remove-orphans")],
        _if=lambda: role != Role.WORKER and (bool(reseed) or bool(rollout.drifted) or rollout.needs_up()),
    )
    redis_live = converge.fact(
        data.RedisState, container=f"{cfg.stack.stack_name}-redis-1", keys=tuple(data.redis_settings(cfg))
    )
    stale = rollout.state["stale"] | ({"redis"} if data.redis_drift(cfg, redis_live) else set())
    for service, ops in rollout.mounted.items():
        server.shell(
            name=f"{service} restarted for its changed configuration",
            commands=[f"{dc} restart {service}", f"{dc} up -d --wait --wait-timeout 180 {service}"],
            _if=partial(_restart_needed, rollout, service, ops, stale),
        )
    if role == Role.WORKER:
        return
    record_images(cfg)


def _restart_needed(rollout, service, ops, stale):
    return service in rollout.state["services"] and (
        (service in stale and service not in rollout.drifted) or any(op.did_change() for op in ops)
    )


def workers_up(cfg, rollout: Rollout):
    """A worker host's queue workers, after the primary's apps are up (deploy.py calls this
    after `up`, whose operations every host passes)."""
    if cfg.topology.role != Role.WORKER:
        return
    containers.recreate(rollout, rollout.drifted)
    server.shell(
        name="Queue workers up and healthy",
        commands=[rollout.explain_failure(f"{rollout.dc} up -d --wait --wait-timeout 300 --remove-orphans")],
        _if=lambda: bool(rollout.drifted) or rollout.needs_up(),
    )
    record_images(cfg)


def record_images(cfg):
    # Reached only when everything came up: what a failed upgrade points back to.
    converge.put(
        name="Images that ran healthy recorded",
        src=StringIO(upgrade.running_images(cfg)),
        dest=f"{cfg.stack.stack_root}/state/images",
        mode="600",
        create_remote_dir=False,
    )
