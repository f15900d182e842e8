"""Turn a fresh Ubuntu/Debian server into the messaging platform, or converge it again.

    pyinfra inventory/production.py deploy.py

Group data is validated first; a bad value stops the run before anything changes.
"""

from pyinfra import host, logger
from pyinfra.facts.hardware import Memory

from platform_deploy import (
    allowlist,
    backup,
    base,
    config,
    converge,
    data,
    docker_engine,
    firewall,
    memory,
    pitr,
    postgres_access,
    secrets,
    stack,
    topology,
)
from platform_deploy.apps import app_access, bootstrap, chatwoot
from platform_deploy.topology import Role

cfg = config.load(
    host.data.dict(),
    ram_mb=host.get_fact(Memory),
    supplied=secrets.supplied_secrets(filename=host.data.get("secrets_file")),
    topology=topology.inventory_topology(),
)
primary = cfg.topology.role == Role.PRIMARY  # a replica or worker host runs only its role's services (cluster.py)
# Decisions are taken against the host as it is before this run: its reads at once (one dpkg
# read, one read of every directory the deploy writes files into, and each layer's), each
# answered when its layer asks.
managed_dirs = [
    *base.managed_dirs(),
    *docker_engine.managed_dirs(),
    *backup.managed_dirs(cfg),
    *stack.managed_dirs(cfg),
    *pitr.managed_dirs(cfg),
]
converge.read_ahead(
    [
        *converge.reads(managed_dirs),
        *base.reads(cfg),
        *allowlist.reads(cfg),
        *firewall.reads(cfg),
        *docker_engine.reads(cfg),
        *stack.reads(cfg),
        *([*secrets.reads(cfg), *data.reads(cfg), *backup.reads(cfg), *bootstrap.reads(cfg)] if primary else []),
        *pitr.reads(cfg),
        *converge.units_read(
            [
                *base.UNITS,
                *docker_engine.UNITS,
                *docker_engine.auditd_units(in_container=False),
                *(backup.units(cfg) if primary else []),
                *pitr.units(cfg),
            ]
        ),
        *(app_access.reads(cfg) if primary and bootstrap.enabled(cfg) else []),
    ]
)
stack_state = stack.host_state(cfg)
postgres_data_major = data.check_postgres_major(cfg, stack_state)
apps_access = (
    converge.fact(app_access.AppAccess, container=f"{cfg.stack.stack_name}-postgres-1")
    if primary and bootstrap.enabled(cfg)
    else app_access.AppAccess.default()
)
allowlist.check(cfg, converge.fact(allowlist.HostAccess), app_access.refusals(cfg, apps_access))
if primary:
    postgres_access.check_unknown_roles(
        cfg, converge.peek(data.DatabaseState, container=f"{cfg.stack.stack_name}-postgres-1")
    )
docker_plan = docker_engine.host_plan(cfg)
if primary:  # once the run is not refused: it reads Chatwoot in the background while the layers run
    bootstrap.start_checks(cfg)
logger.info(
    f"{host.name}: memory profile {cfg.memory_profile}\n"
    + memory.format_budget(cfg.memory_limits_mb, cfg.host_ram_mb, {"n8n-worker": cfg.n8n.n8n_workers})
)

installed = converge.installed_packages()
converge.scan(managed_dirs)
host_state = base.apply(cfg, installed)
firewall.apply(cfg)
docker_restarted = docker_engine.apply(cfg, docker_plan, installed, in_container=host_state["container"])
stack.directories(cfg)
backup_units = backup.apply(cfg, installed) if primary else {}
pitr_units, pitr_settings = pitr.apply(cfg)
converge.ensure_units(
    {
        **base.units(installed),
        **docker_engine.UNITS,
        **docker_engine.auditd_units(host_state["container"]),
        **backup_units,
        **pitr_units,
    }
)
rollout = stack.files_and_images(cfg, stack_state, docker_restarted, postgres_data_major)
pitr.build_image(cfg, stack_state)
if primary:
    database_drift = data.apply(cfg, rollout)
    chatwoot.apply(cfg, rollout, database_drift)
stack.up(cfg, rollout)
pitr.after_up(cfg, rollout, pitr_settings)
if primary:
    bootstrap.apply(cfg, rollout, app_access.repairs(apps_access))
    backup.backup_if_needed(cfg)
stack.workers_up(cfg, rollout)
