"""Turn a fresh Ubuntu/Debian server into the messaging platform, or converge it again.

    pyinfra inventory/production.py deploy.py

Group data is validated first; a bad value stops the run before anything changes.
"""

import os

from pyinfra import host, logger
from pyinfra.facts.hardware import Memory

from platform_deploy import backup, base, cluster, config, converge, data, docker_engine, firewall, memory, secrets, stack
from platform_deploy.apps import bootstrap, chatwoot

cfg = config.load(host.data.dict(), ram_mb=host.get_fact(Memory), supplied=secrets.supplied_secrets(filename=host.data.get("secrets_file")),
                  topology=cluster.inventory_topology())
stack_state = stack.host_state(cfg)
postgres_data_major = data.check_postgres_major(cfg, stack_state)
docker_plan = docker_engine.host_plan(cfg)
logger.info(
    f"{host.name}: memory profile {cfg.memory_profile}\n" + memory.format_budget(cfg.memory_limits_mb, cfg.host_ram_mb, {"n8n-worker": cfg.n8n.n8n_workers})
)

# Decisions are taken against the host as it is before this run: one dpkg read, and one
# read of every directory the deploy writes files into.
installed = converge.installed_packages()
root = cfg.stack.stack_root
converge.scan([
    *(os.path.dirname(path) for path in (base.AUTO_UPGRADES_FILE, base.SYSCTL_FILE, base.SSHD_DROPIN, base.MODPROBE_FILE,
                                         *base.BANNER_FILES, docker_engine.DAEMON_JSON, docker_engine.KEYRING, docker_engine.SOURCE_FILE,
                                         docker_engine.AUDIT_RULES_FILE, docker_engine.AUDITD_DROPIN,
                                         docker_engine.DOCKER_AUDIT_DROPIN)),
    "/etc/sudoers.d", "/etc/systemd/system", secrets.UPLOAD_DIR, cfg.backup.backup_dir,
    root, *(f"{root}/{d}" for d in ("bin", "config", "config/n8n", "env", "state", "edge", "edge/traefik", "edge/letsencrypt")),
])
host_state = base.apply(cfg, installed)
firewall.apply(cfg)
docker_restarted = docker_engine.apply(cfg, docker_plan, installed, in_container=host_state["container"])
stack.directories(cfg)
primary = cfg.topology.role == "primary"  # a replica or worker host runs only its role's services (cluster.py)
backup_units = backup.apply(cfg, installed) if primary else {}
converge.ensure_units({**base.units(installed), **docker_engine.UNITS, **docker_engine.auditd_units(host_state["container"]), **backup_units})
rollout = stack.files_and_images(cfg, stack_state, docker_restarted, postgres_data_major)
if primary:
    data.apply(cfg, rollout)
    chatwoot.apply(cfg, rollout)
stack.up(cfg, rollout)
if primary:
    bootstrap.apply(cfg, rollout)
    backup.backup_if_needed(cfg)
cluster.workers_up(cfg, rollout)
