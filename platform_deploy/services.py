"""The catalogue of compose services: which run on a host of each role, the apps they
belong to, the image each is pinned to, and the ports of the data services."""

from typing import Literal, get_args

from .topology import Role

AppName = Literal["chatwoot", "n8n", "directus"]
APPS: tuple[AppName, ...] = get_args(AppName)
APP_SERVICES = {
    "chatwoot": ("chatwoot-web", "chatwoot-sidekiq"),
    "n8n": ("n8n", "n8n-worker"),
    "directus": ("directus",),
}
DATA_SERVICES = ("postgres", "redis")
EDGE_SERVICES = ("pangolin", "traefik")
PG_PORT, REDIS_PORT = 5432, 6379
# Exact tags the package is tested with; bump one in group data and rerun to upgrade that service.
ImageKey = Literal["postgres", "redis", "chatwoot", "n8n", "directus", "pangolin", "traefik", "gerbil"]
IMAGES: dict[ImageKey, str] = {
    "postgres": "pgvector/pgvector:0.8.0-pg15",
    "redis": "redis:7.4.5",
    "chatwoot": "chatwoot/chatwoot:v4.15.1",
    "n8n": "docker.n8n.io/n8nio/n8n:2.40.7",
    "directus": "directus/directus:12.4.0",
    "pangolin": "fosrl/pangolin:1.12.3",
    "traefik": "traefik:v3.5.3",
    "gerbil": "fosrl/gerbil:1.2.2",
}


def app_services(cfg):
    """App -> its compose services on this deploy (n8n-worker only in queue mode)."""
    return {
        app: tuple(s for s in APP_SERVICES[app] if s != "n8n-worker" or cfg.n8n.n8n_workers) for app in cfg.stack.apps
    }


def compose_services(cfg) -> tuple[str, ...]:
    """The services of this host's compose project: everything on the primary; a replica's
    data services, or a worker host's queue workers (cluster.py)."""
    role = cfg.topology.role
    if role == Role.REPLICA:
        return DATA_SERVICES
    if role == Role.WORKER:
        return ("n8n-worker",)
    services = [*DATA_SERVICES, *(s for services in app_services(cfg).values() for s in services), *EDGE_SERVICES]
    return tuple(services + (["gerbil"] if cfg.edge.tunnels_enabled else []))


def role_apps(cfg):
    """The apps whose settings this host's services read: all on the primary, n8n on a worker host."""
    return {Role.PRIMARY: cfg.stack.apps, Role.WORKER: ("n8n",), Role.REPLICA: ()}[cfg.topology.role]


def image_key(service):
    """The `images` key of a compose service (chatwoot-web -> chatwoot)."""
    return service.split("-")[0]
