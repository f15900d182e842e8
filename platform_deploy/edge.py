"""Layer 8, edge: Pangolin and Traefik (Gerbil with tunnels) in front of the apps.

Traefik publishes 80 and 443, the only ports of the whole project; it gets certificates
from Let's Encrypt and routes each app's hostname to the app's container by name over
the edge network. Its own configuration comes from here; Pangolin's resources (tunnelled
sites) reach it through Pangolin's HTTP provider.
"""

from . import converge

APP_UPSTREAMS = {"chatwoot": "http://chatwoot-web:3000", "n8n": "http://n8n:5678", "directus": "http://directus:8055"}
PANGOLIN_SECRET_MARKER = "@@PANGOLIN_SERVER_SECRET@@"


def host_of(rule):
    """The hostname of a Traefik rule `Host(`name`) && ...`."""
    start = rule.index("Host(`") + len("Host(`")
    return rule[start:rule.index("`", start)]


def hosts(cfg):
    """Service -> the public hostname it answers on."""
    return {name: f"{sub}.{cfg.domain}" for name, sub in cfg.edge_hostnames.items()}


def routes(cfg):
    """Router name -> {host, path, service, badger}; and service name -> upstream URL."""
    names = hosts(cfg)
    routers = {app: {"host": names[app], "path": "", "service": app, "badger": False} for app in cfg.apps}
    # Pangolin's dashboard: the Next.js front end, its API, and the API's websockets.
    routers["pangolin-api"] = {"host": names["pangolin"], "path": "PathPrefix(`/api/v1`)", "service": "pangolin-api", "badger": True}
    routers["pangolin-web"] = {"host": names["pangolin"], "path": "", "service": "pangolin-web", "badger": True}
    services = {app: APP_UPSTREAMS[app] for app in cfg.apps}
    services.update({"pangolin-api": "http://pangolin:3000", "pangolin-web": "http://pangolin:3002"})
    return routers, services


def render(cfg):
    """The edge's files. Returns {service: the operations of the files it reads}, and the
    one that renders Pangolin's config template (the secrets script fills it in)."""
    root = f"{cfg.stack_root}/edge"
    for path, mode in ((root, "755"), (f"{root}/traefik", "755"), (f"{root}/letsencrypt", "700"), (f"{root}/pangolin", "700")):
        converge.directory(name=f"Directory {path}", path=path, user="root", group="root", mode=mode)
    # Traefik refuses an acme.json anyone but its owner can read.
    converge.file_present(name="acme.json (0600)", path=f"{root}/letsencrypt/acme.json", user="root", group="root", mode="600")
    routers, services = routes(cfg)
    pangolin_template = converge.template(
        name="Pangolin configuration (without its secret)", src="templates/edge/pangolin_config.yml.j2",
        dest=f"{root}/pangolin-config.yml.in", mode="600", create_remote_dir=False, cfg=cfg, hosts=hosts(cfg))
    traefik = [
        converge.template(name="Traefik static configuration", src="templates/edge/traefik_config.yml.j2",
                          dest=f"{root}/traefik/traefik_config.yml", mode="644", create_remote_dir=False, cfg=cfg),
        converge.template(name="Traefik routes", src="templates/edge/dynamic_config.yml.j2",
                          dest=f"{root}/traefik/dynamic_config.yml", mode="644", create_remote_dir=False, routes=routers, services=services),
    ]
    return {"traefik": traefik, "pangolin": [pangolin_template]}, pangolin_template
