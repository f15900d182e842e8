"""The edge layer: Pangolin and Traefik (Gerbil with tunnels) in front of the apps.

Traefik publishes 80 and 443, the only ports of the whole project; it gets certificates
from Let's Encrypt and routes each app's hostname to the app's container by name over
the edge network. Its own configuration comes from here; Pangolin's resources (tunnelled
sites) reach it through Pangolin's HTTP provider.
"""

from pydantic import field_validator, model_validator

from . import converge
from .model import DNS_LABELS_RE, Domain, Email, PemFile, Section, refuse, setting

EDGE_SERVICES = ("chatwoot", "n8n", "directus", "pangolin")


class Settings(Section):
    domain: Domain = setting(
        doc="Required. The apps answer on chat.<domain>, n8n.<domain>, cms.<domain> and pangolin.<domain>.",
        fix='set domain = "example.org" (the apps get chat., n8n. and cms. under it)',
    )
    acme_email: Email = setting(
        doc="Required. Let's Encrypt account; expiry notices go there.",
        fix='set acme_email = "ops@example.org": Let\'s Encrypt sends expiry notices there',
    )
    edge_hostnames: dict[str, str] = setting(
        {},
        doc="Hostnames under domain, by service; the defaults are chat, n8n, cms and pangolin. "
        'E.g. {"chatwoot": "support"}.',
        problem="not a mapping",
        fix='set edge_hostnames = {"chatwoot": "support"}',
    )
    acme_dns_provider: str | None = setting(
        None,
        doc='None: HTTP-01 challenge on port 80; a Traefik DNS provider code such as "cloudflare": DNS-01.',
        problem="not a Traefik DNS provider name",
        pattern=r"^[a-z0-9]+$",
        fix='use None for the HTTP-01 challenge, or a provider code such as "cloudflare"',
    )
    acme_dns_token_env: str | None = setting(
        None,
        doc='With a DNS provider: the variable its token is read from, e.g. "CF_DNS_API_TOKEN"; the value comes '
        "from PLATFORM_ACME_DNS_API_TOKEN.",
        problem="not an environment variable name",
        pattern=r"^[A-Z][A-Z0-9_]*$",
        fix='name the variable your provider reads its token from, e.g. "CF_DNS_API_TOKEN" for cloudflare',
    )
    acme_ca_server: str = setting(
        "https://acme-v02.api.letsencrypt.org/directory",
        doc="The ACME directory Traefik gets certificates from "
        "(Let's Encrypt's production; its staging directory while you test).",
        problem="not an https URL",
        pattern=r"^https://[^\s'\"]+$",
        fix='use e.g. "https://acme-staging-v02.api.letsencrypt.org/directory"',
    )
    acme_ca_certificate: PemFile | None = setting(
        None,
        doc="A PEM file on this machine that the ACME server's own TLS certificate chains to, for a private ACME "
        "server (the sandbox's Pebble); None: the system's trust store.",
        fix="give the path of a PEM file on this machine, or None",
    )
    badger_version: str = setting(
        "v1.2.0",
        doc="Pangolin's Traefik plugin (Badger).",
        problem="not a version",
        fix='write a tag like "v1.2.0"',
        pattern=r"^v?[0-9][0-9A-Za-z.+-]*$",
    )
    tunnels_enabled: bool = setting(
        False,
        doc="Pangolin tunnels: Gerbil, UDP 51820 and 21820.",
        problem="not a boolean",
        fix="set tunnels_enabled = True or False",
    )

    @field_validator("edge_hostnames")
    @classmethod
    def _hostnames(cls, names):
        names = {"chatwoot": "chat", "n8n": "n8n", "directus": "cms", "pangolin": "pangolin", **names}
        for name, label in names.items():
            if name not in EDGE_SERVICES:
                raise refuse(
                    "unknown service", f"use {', '.join(EDGE_SERVICES)}", key=f"edge_hostnames[{name!r}]", value=label
                )
            if not isinstance(label, str) or not DNS_LABELS_RE.match(label):
                raise refuse(
                    "not a DNS label",
                    'give the part before the domain, e.g. "chat"',
                    key=f"edge_hostnames[{name!r}]",
                    value=label,
                )
        if len(set(names.values())) != len(names):
            raise refuse("two services share a hostname", "give each service its own name")
        return names

    @model_validator(mode="after")
    def _dns_token(self):
        if self.acme_dns_provider and not self.acme_dns_token_env:
            raise refuse(
                "missing while acme_dns_provider is set",
                'name the variable your provider reads its token from, e.g. "CF_DNS_API_TOKEN" for cloudflare',
                key="acme_dns_token_env",
                value=None,
            )
        return self


APP_UPSTREAMS = {"chatwoot": "http://chatwoot-web:3000", "n8n": "http://n8n:5678", "directus": "http://directus:8055"}
PANGOLIN_SECRET_MARKER = "@@PANGOLIN_SERVER_SECRET@@"
ACME_CA_FILE = "acme-ca.pem"  # in edge/traefik/, which Traefik sees as /etc/traefik/


def host_of(rule):
    """The hostname of a Traefik rule `Host(`name`) && ...`."""
    start = rule.index("Host(`") + len("Host(`")
    return rule[start : rule.index("`", start)]


def hosts(cfg):
    """Service -> the public hostname it answers on."""
    return {name: f"{sub}.{cfg.edge.domain}" for name, sub in cfg.edge.edge_hostnames.items()}


# Paths refused at the edge (403) from outside, whatever their letter case or doubled slashes
# (n8n matches /webhook/... in any case; Traefik cleans dot segments and decodes %xx before
# matching). n8n: every webhook, form, MCP and public-API path but the one Meta calls; its editor,
# /rest and /healthz stay open. Chatwoot: its WhatsApp endpoint, which only n8n forwards to.
INTERNAL_PATHS = {
    "n8n": "PathRegexp(`(?i)^/+(webhook|webhook-test|webhook-waiting|form|form-test|form-waiting|mcp|mcp-test|api)"
    "(/|$)`) && !Path(`/webhook/whatsapp`)",
    "chatwoot": "PathRegexp(`(?i)^/+webhooks/+whatsapp(/|$)`)",
}
# Above the app's own router whatever the rules' lengths (Traefik's default priority).
INTERNAL_PRIORITY = 1000


def routes(cfg):
    """Router name -> {host, path, service, badger[, internal]}; and service name -> upstream URL."""
    names = hosts(cfg)
    routers = {app: {"host": names[app], "path": "", "service": app, "badger": False} for app in cfg.stack.apps}
    for app in (a for a in INTERNAL_PATHS if a in cfg.stack.apps):
        routers[f"{app}-internal"] = {
            "host": names[app],
            "path": INTERNAL_PATHS[app],
            "service": app,
            "badger": False,
            "internal": True,
            "priority": INTERNAL_PRIORITY,
        }
    # Pangolin's dashboard: the Next.js front end, its API, and the API's websockets.
    routers["pangolin-api"] = {
        "host": names["pangolin"],
        "path": "PathPrefix(`/api/v1`)",
        "service": "pangolin-api",
        "badger": True,
    }
    routers["pangolin-web"] = {"host": names["pangolin"], "path": "", "service": "pangolin-web", "badger": True}
    services = {app: APP_UPSTREAMS[app] for app in cfg.stack.apps}
    services.update({"pangolin-api": "http://pangolin:3000", "pangolin-web": "http://pangolin:3002"})
    return routers, services


def render(cfg):
    """The edge's files. Returns {service: the operations of the files it reads}, and the
    one that renders Pangolin's config template (the secrets script fills it in)."""
    root = f"{cfg.stack.stack_root}/edge"
    for path, mode in (
        (root, "755"),
        (f"{root}/traefik", "755"),
        (f"{root}/letsencrypt", "700"),
        (f"{root}/pangolin", "700"),
    ):
        converge.directory(name=f"Directory {path}", path=path, user="root", group="root", mode=mode)
    # Traefik refuses an acme.json anyone but its owner can read.
    converge.file_present(
        name="acme.json (0600)", path=f"{root}/letsencrypt/acme.json", user="root", group="root", mode="600"
    )
    routers, services = routes(cfg)
    pangolin_template = converge.template(
        name="Pangolin configuration (without its secret)",
        src="templates/edge/pangolin_config.yml.j2",
        dest=f"{root}/pangolin-config.yml.in",
        mode="600",
        create_remote_dir=False,
        cfg=cfg,
        hosts=hosts(cfg),
    )
    traefik = [
        *(
            [
                converge.put(
                    name="The ACME server's CA",
                    src=cfg.edge.acme_ca_certificate,
                    dest=f"{root}/traefik/{ACME_CA_FILE}",
                    mode="644",
                    create_remote_dir=False,
                )
            ]
            if cfg.edge.acme_ca_certificate
            else []
        ),
        converge.template(
            name="Traefik static configuration",
            src="templates/edge/traefik_config.yml.j2",
            dest=f"{root}/traefik/traefik_config.yml",
            mode="644",
            create_remote_dir=False,
            cfg=cfg,
        ),
        converge.template(
            name="Traefik routes",
            src="templates/edge/dynamic_config.yml.j2",
            dest=f"{root}/traefik/dynamic_config.yml",
            mode="644",
            create_remote_dir=False,
            routes=routers,
            services=services,
        ),
    ]
    return {"traefik": traefik, "pangolin": [pangolin_template]}, pangolin_template
