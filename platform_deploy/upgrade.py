"""Upgrades: the backup before an image that holds or migrates data changes, what to go
back to when the stack does not come up, and images for hosts that cannot pull."""

from pyinfra import host, logger
from pyinfra.operations import files, server

from . import backup, pitr
from .model import ConfigError
from .services import EDGE_SERVICES, compose_services, image_key


def backup_before_upgrade(cfg, rollout):
    """Before anything changes: a backup, when an image of a service that holds or migrates data changes."""
    state = rollout.state
    data_services = [s for s in compose_services(cfg) if image_key(s) not in (*EDGE_SERVICES, "gerbil")]
    # PostgreSQL runs the pinned image, or (with PITR) it with pgBackRest added: the same server either way.
    running = {s: state["images"].get(s) for s in data_services}
    upgrading = [
        s
        for s in data_services
        if running[s]
        not in (None, cfg.stack.images[image_key(s)], pitr.postgres_image(cfg) if s == "postgres" else None)
    ]
    data_running = all(state["services"].get(s, ("",))[0] == "running" for s in ("postgres", "redis"))
    if not (upgrading or rollout.major_upgrade) or rollout.resume_backup:
        return
    if data_running:
        backup.run_now(cfg, f"before upgrading {', '.join(upgrading) or 'PostgreSQL'}")
    elif rollout.major_upgrade:
        raise ConfigError(
            "postgres_major_upgrade needs a backup of the running databases, and PostgreSQL or Redis "
            "is not running; nothing was changed on the host.\n"
            "  Fix: start the stack with the current images (rerun without the major version change), then retry."
        )
    else:
        logger.warning(
            f"{host.name}: no backup before upgrading {', '.join(upgrading)}: PostgreSQL and Redis are not both running"
        )


def running_images(cfg):
    return "".join(f"{key}: {cfg.stack.images[key]}\n" for key in dict.fromkeys(map(image_key, compose_services(cfg))))


def offline_images(cfg, state):
    """With offline_images (a `docker save` archive on this machine), images the host lacks
    are uploaded and loaded from it; without, `compose up` pulls them."""
    if not cfg.stack.offline_images:
        return []
    wanted = {cfg.stack.images[image_key(service)] for service in compose_services(cfg)}
    missing = sorted(wanted - state["host_images"])
    if not missing:
        return []
    remote = "/var/tmp/platform-images.tar"
    return [
        files.put(
            name=f"Image archive uploaded for {', '.join(missing)}",
            src=cfg.stack.offline_images,
            dest=remote,
            mode="600",
        ),
        server.shell(name="Images loaded", commands=[f"docker load -q -i {remote}", f"rm -f {remote}"]),
    ]
