"""Layer 5, stack: one compose project (PostgreSQL, Redis, the apps, the edge) under
stack_root, sized to the RAM table, with secrets generated and kept on the host.

Order on the host: files (secrets, config, env, compose.yaml) -> images -> [data layer:
data services up, databases] -> [apps: Chatwoot's prepare] -> everything up. Each step
runs only when its inputs changed or the host drifted, so a rerun reports no change.
"""

import shlex
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Literal

import yaml
from pydantic import field_validator, model_validator
from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.api.util import get_template
from pyinfra.operations import server

from . import containers, converge, data, edge, memory, upgrade
from .model import Email, ImageRef, Section, items, refuse, setting, DOMAIN_RE, EMAIL_RE, is_ip_address
from .secrets import DERIVED_SECRETS, GENERATED_SECRETS, SUPPLIED_SECRETS_FILE, operator_secret_files, secret_env

APPS = ("chatwoot", "n8n", "directus")
APP_SERVICES = {"chatwoot": ("chatwoot-web", "chatwoot-sidekiq"), "n8n": ("n8n", "n8n-worker"), "directus": ("directus",)}
EDGE_SERVICES = ("pangolin", "traefik")
# Exact tags the package is tested with; bump one in group data and rerun to upgrade that service.
IMAGES = {
    "postgres": "pgvector/pgvector:0.8.0-pg15",
    "redis": "redis:7.4.5",
    "chatwoot": "chatwoot/chatwoot:v4.6.0",
    "n8n": "docker.n8n.io/n8nio/n8n:2.40.7",
    "directus": "directus/directus:12.4.0",
    "pangolin": "fosrl/pangolin:1.12.3",
    "traefik": "traefik:v3.5.3",
    "gerbil": "fosrl/gerbil:1.2.2",
}
SMTP_FIX = 'set smtp = {"host": "smtp.example.org", "port": 587, "user": "apikey", "sender": "support@example.org"}, or None'
# Files bind-mounted into a container (under stack_root): compose does not see their
# content change, so the deploy restarts the service when one changes.
MOUNTED_CONFIG = {
    "redis": ("config/redis.conf",),
    "traefik": ("edge/traefik/traefik_config.yml", "edge/traefik/dynamic_config.yml"),
    "pangolin": ("edge/pangolin/config.yml",),
}


COMPOSE_TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "compose.yaml.j2"


class Settings(Section):
    stack_name: str = setting("msgplatform", doc="Compose project name.", problem="not a valid compose project name",
                              pattern=r"^[a-z0-9][a-z0-9_-]*$", fix="use lower-case letters, digits, - and _")
    stack_root: str | None = setting(None, doc="Where the project lives; None: /opt/<stack_name>.",
                                     fix='set stack_root = "/opt/msgplatform"')
    apps: items(Literal[APPS]) = setting(APPS, doc="Which apps run; each gets its own database and role.",
                                         problem="not a non-empty list of known apps", min_length=1,
                                         fix=f"list the apps to run, from: {', '.join(APPS)}")
    images: dict[Literal[tuple(IMAGES)], ImageRef] = setting(
        IMAGES, doc="Exact image tags by service, tested together; the keys given replace those of the default. Bump one "
                    "and rerun the deploy to upgrade that service.",
        problem="not a mapping", fix='set images = {"redis": "redis:7.4.5"}')
    offline_images: str | None = setting(
        None, doc="A `docker save` archive on this machine holding the images, for servers that cannot pull "
                  "(air-gapped); None: images are pulled.", fix="give the path of a `docker save` archive on this machine, or None")
    memory_profile: Literal["auto", *memory.PROFILES] = setting(
        "auto", doc='"auto": the largest profile of the RAM table the host can carry; "recommended" or "minimum" force one.',
        problem="unknown profile", fix="set memory_profile to auto, recommended or minimum")
    memory_limits_mb: dict[Literal[tuple(memory.RAM_TABLE_MB)], int] = setting(
        {}, doc='Per-service container limits in MB over the profile, e.g. {"postgres": 3072}.',
        problem="not a size in MB", fix="give a whole number of MB, at least 32, per service")
    smtp: dict | None = setting(None, doc='Outgoing mail of the apps, e.g. {"host": "smtp.example.org", "port": 587, '
                                          '"user": "apikey", "sender": "support@example.org"}; the password comes from '
                                          "PLATFORM_SMTP_PASSWORD. None: no mail.", fix=SMTP_FIX)
    secrets_file: str = setting(SUPPLIED_SECRETS_FILE, doc="The file (KEY=VALUE lines, PLATFORM_* names) the operator's own secrets are "
                                "read from, relative to where pyinfra runs; PLATFORM_* environment variables win over it.",
                                fix=f'set secrets_file = "{SUPPLIED_SECRETS_FILE}"', min_length=1)
    admin_email: Email | None = setting(None, doc="The apps' first admin (password generated on the host); None: acme_email.",
                                        fix="set admin_email (the apps' first admin), or leave it unset to use acme_email")

    @model_validator(mode="before")
    @classmethod
    def _default_root(cls, values):
        if isinstance(values, dict) and not values.get("stack_root"):
            values = {**values, "stack_root": f"/opt/{values.get('stack_name', cls.model_fields['stack_name'].default)}"}
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
                raise refuse("not a size in MB", "give a whole number of MB, at least 32", key=f"memory_limits_mb[{service!r}]", value=mb)
        return limits

    @field_validator("smtp")
    @classmethod
    def _smtp(cls, smtp):
        if smtp is None:
            return None
        if set(smtp) != {"host", "port", "user", "sender"}:
            # Only the keys: a password put here by mistake must not reach the console.
            raise refuse("needs exactly the keys host, port, user, sender (the password comes from PLATFORM_SMTP_PASSWORD)",
                         SMTP_FIX, shown=sorted(smtp))
        if not isinstance(smtp["host"], str) or not (DOMAIN_RE.match(smtp["host"]) or is_ip_address(smtp["host"])):
            raise refuse("not a host name or IP address", SMTP_FIX, key="smtp['host']", value=smtp["host"])
        if type(smtp["port"]) is not int or not 1 <= smtp["port"] <= 65535:
            raise refuse("not a TCP port", "use 587 (STARTTLS) or 465 (TLS)", key="smtp['port']", value=smtp["port"])
        if not isinstance(smtp["sender"], str) or not EMAIL_RE.match(smtp["sender"]):
            raise refuse("not an e-mail address", SMTP_FIX, key="smtp['sender']", value=smtp["sender"])
        return smtp


def app_services(cfg):
    """App -> its compose services on this deploy (n8n-worker only in queue mode)."""
    return {app: tuple(s for s in APP_SERVICES[app] if s != "n8n-worker" or cfg.n8n.n8n_workers) for app in cfg.stack.apps}


def compose_services(cfg):
    services = ["postgres", "redis", *(s for services in app_services(cfg).values() for s in services), *EDGE_SERVICES]
    return tuple(services + (["gerbil"] if cfg.edge.tunnels_enabled else []))


def image_key(service):
    """The `images` key of a compose service (chatwoot-web -> chatwoot)."""
    return service.split("-")[0]


def template_vars(cfg):
    return dict(cfg=cfg, size=memory.sizing(cfg), urls=urls(cfg), redis_db=data.REDIS_DB, root=cfg.stack.stack_root,
                cpu_shares=containers.CPU_SHARES, capabilities=containers.CAPABILITIES, read_only=containers.READ_ONLY_WRITABLE)


def compose_document(cfg):
    """compose.yaml as the deploy writes it, parsed."""
    return yaml.safe_load(get_template(str(COMPOSE_TEMPLATE)).render(**template_vars(cfg)))


def urls(cfg):
    names = edge.hosts(cfg)
    return {"chatwoot": f"https://{names['chatwoot']}", "n8n": f"https://{names['n8n']}/", "directus": f"https://{names['directus']}"}


class StackState(FactBase):
    """Secret file names, Chatwoot's last prepared image, each compose service's state, the
    images the host has, and the PostgreSQL major version of the data (its PG_VERSION)."""

    def command(self, root, project):
        stale = "".join(
            f"s=$(docker inspect -f '{{{{.State.StartedAt}}}}' {project}-{service}-1 2>/dev/null) && "
            f"[ \"$(date -r {root}/{path} +%s%N 2>/dev/null || echo 0)\" -gt \"$(date -d \"$s\" +%s%N)\" ] && echo 'stale {service}'; "
            for service, paths in MOUNTED_CONFIG.items() for path in paths)
        root, volume = shlex.quote(root), shlex.quote(f"{project}_postgres-data")
        return (
            stale +
            # Secret files anyone but root could read (or that root does not own).
            f"find {root}/secrets {root}/edge/pangolin/config.yml -maxdepth 1 -type f \\( ! -user root -o ! -group root -o -perm /077 \\) "
            "2>/dev/null | sed 's/^/loose /'; "
            f"echo \"pg-version $(cat \"$(docker volume inspect -f '{{{{.Mountpoint}}}}' {volume} 2>/dev/null)/PG_VERSION\" 2>/dev/null)\"; "
            "docker image ls --format 'image {{.Repository}}:{{.Tag}}' 2>/dev/null; "
            f"ls -1 {root}/secrets 2>/dev/null | sed 's/^/secret /'; "
            f"echo \"prepared $(cat {root}/state/chatwoot-prepared 2>/dev/null)\"; "
            f"echo \"pg-upgrade $(cat {root}/state/pg-major-upgrade 2>/dev/null)\"; "
            f"[ -s {root}/edge/pangolin/config.yml ] && echo pangolin-config; "
            # docker ps, not compose ps: the same answer without compose's start-up cost.
            f"docker ps -a --filter label=com.docker.compose.project={shlex.quote(project)} "
            "--format 'service {{.Label \"com.docker.compose.service\"}} {{.Image}} {{.State}} {{.Status}}' 2>/dev/null || true"
        )

    @staticmethod
    def default():
        return {"secrets": set(), "prepared": "", "pg_upgrade": "", "services": {}, "images": {}, "pangolin_config": False,
                "pg_version": None, "host_images": set(), "loose": [], "stale": set()}

    def process(self, output):
        state = self.default()
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "secret":
                state["secrets"].add(rest.strip())
            elif kind in ("prepared", "pg-upgrade"):
                state[kind.replace("-", "_")] = rest.strip()
            elif kind == "loose":
                state["loose"].append(rest.strip())
            elif kind == "stale":
                state["stale"].add(rest.strip())
            elif kind == "pangolin-config":
                state["pangolin_config"] = True
            elif kind == "pg-version":
                state["pg_version"] = int(rest) if rest.strip().isdigit() else None
            elif kind == "image":
                state["host_images"].add(rest.strip())
            elif kind == "service":
                name, image, status, detail = (rest.split(" ", 3) + ["", "", ""])[:4]
                health = next((h for h in ("unhealthy", "healthy", "starting") if f"{h})" in detail), "")
                state["services"][name] = (status, health)
                state["images"][name] = image
        return state


def host_state(cfg):
    """The stack on the host before this run: read once, by deploy.py, and handed to the steps."""
    return host.get_fact(StackState, root=cfg.stack.stack_root, project=cfg.stack.stack_name)


def directories(cfg):
    root = cfg.stack.stack_root
    for path, mode in ((root, "755"), (f"{root}/secrets", "700"), (f"{root}/config", "755"),
                       (f"{root}/env", "700"), (f"{root}/bin", "755"), (f"{root}/state", "700")):
        converge.directory(name=f"Directory {path}", path=path, user="root", group="root", mode=mode)


@dataclass
class Rollout:
    """What the stack, data and app steps of one run share: the host's state before the
    run, and the operations whose change means the services must come up again."""

    cfg: object
    state: dict
    data_major: int | None
    docker_restarted: object
    inputs: list = field(default_factory=list)
    mounted: dict = field(default_factory=dict)
    secrets: object = None
    compose: object = None
    drifted: list = field(default_factory=list)
    database_drift: list = field(default_factory=list)

    @property
    def dc(self):
        return f"docker compose -f {self.cfg.stack.stack_root}/compose.yaml -p {self.cfg.stack.stack_name}"

    @property
    def major_upgrade(self):
        return bool(self.data_major) and self.data_major != self.cfg.data.postgres_major

    @property
    def resume_backup(self):
        """A major upgrade that stopped after setting the old data aside names its backup; this run finishes it."""
        return self.state["pg_upgrade"]

    @property
    def marker(self):
        return f"{self.cfg.stack.stack_root}/state/pg-major-upgrade"

    def needs_up(self):
        not_ready = [s for s in compose_services(self.cfg) if self.state["services"].get(s) not in (("running", "healthy"), ("running", ""))]
        return (bool(not_ready) or self.major_upgrade or bool(self.resume_backup) or self.docker_restarted.did_change()
                or any(op.did_change() for op in self.inputs))

    def explain_failure(self, command):
        return upgrade.explain_failure(self.cfg, command)


def files_and_images(cfg, state, docker_restarted, data_major):
    """Backup before a data upgrade, secrets, the project's files and images; returns the Rollout."""
    rollout = Rollout(cfg, state, data_major, docker_restarted)
    upgrade.backup_before_upgrade(cfg, rollout)
    edge_files, pangolin_template = edge.render(cfg)
    rollout.secrets = _secrets(cfg, rollout, pangolin_template)
    template_vars = globals()["template_vars"](cfg)
    # The operations writing MOUNTED_CONFIG (the secrets script fills in Pangolin's).
    rollout.mounted = {"redis": [data.redis_config(cfg, template_vars)], **edge_files,
                       "pangolin": [*edge_files["pangolin"], rollout.secrets]}
    rollout.compose = converge.template(name="Compose project", src="templates/compose.yaml.j2",
                                       dest=f"{cfg.stack.stack_root}/compose.yaml", mode="640", create_remote_dir=False, **template_vars)
    rollout.inputs = [
        *(op for ops in rollout.mounted.values() for op in ops),
        rollout.compose,
        *(converge.template(name=f"{app} settings", src=f"templates/env/{app}.env.j2", dest=f"{cfg.stack.stack_root}/env/{app}.env",
                            mode="600", create_remote_dir=False, **template_vars) for app in cfg.stack.apps),
        *upgrade.offline_images(cfg, rollout.state),
    ]
    live = host.get_fact(containers.Containers, project=cfg.stack.stack_name)
    rollout.drifted = sorted({service for service, _ in containers.runtime_drift(cfg, compose_document(cfg)["services"], live).values()})
    return rollout


def _secrets(cfg, rollout, pangolin_template):
    root, state = cfg.stack.stack_root, rollout.state
    supplied = operator_secret_files(cfg, f"{root}/secrets")
    env = secret_env(cfg)
    script = converge.template(name="Secrets script", src="templates/secrets.sh.j2", dest=f"{root}/bin/secrets.sh",
                               mode="700", create_remote_dir=False, root=root, generated=GENERATED_SECRETS, secret_env=env,
                               marker=edge.PANGOLIN_SECRET_MARKER)
    wanted_files = set(GENERATED_SECRETS) | set(DERIVED_SECRETS) | {f"{name}.env" for name in env}
    return server.shell(
        name="Secrets generated and kept on the host",
        commands=[f"{root}/bin/secrets.sh"],
        _if=lambda: (script.did_change() or not wanted_files <= state["secrets"]
                     or not state["pangolin_config"] or pangolin_template.did_change() or bool(state["loose"])
                     or any(op.did_change() for op in supplied)),
    )


def up(cfg, rollout):
    """Everything up and healthy; containers recreated whose runtime settings drifted from
    compose.yaml; services restarted whose mounted configuration changed or that run
    another one (a file edited and put back, Redis reconfigured live)."""
    dc = rollout.dc
    containers.recreate(rollout, [s for s in rollout.drifted if s not in data.DATA_SERVICES])
    server.shell(name="All services up and healthy", commands=[upgrade.explain_failure(cfg, f"{dc} up -d --wait --wait-timeout 300 --remove-orphans")],
                 _if=lambda: bool(rollout.drifted) or rollout.needs_up())
    redis_live = host.get_fact(data.RedisState, container=f"{cfg.stack.stack_name}-redis-1")
    stale = rollout.state["stale"] | ({"redis"} if data.redis_drift(cfg, redis_live) else set())
    for service, ops in rollout.mounted.items():
        server.shell(
            name=f"{service} restarted for its changed configuration",
            commands=[f"{dc} restart {service}", f"{dc} up -d --wait --wait-timeout 180 {service}"],
            _if=lambda ops=ops, service=service: service in rollout.state["services"] and (
                (service in stale and service not in rollout.drifted) or any(op.did_change() for op in ops)),
        )
    # Reached only when everything came up: what a failed upgrade points back to.
    converge.put(name="Images that ran healthy recorded", src=StringIO(upgrade.running_images(cfg)),
                 dest=f"{cfg.stack.stack_root}/state/images", mode="600", create_remote_dir=False)
