"""Layers 5-7, stack, data and apps: one compose project with PostgreSQL, Redis, Chatwoot,
n8n and Directus, sized to the RAM table, with secrets generated and kept on the host.

Order on the host: files (secrets, config, env, compose.yaml) -> images -> data services
up -> per-service databases -> Chatwoot's prepare step -> everything up. Each step runs
only when its inputs changed or the host drifted, so a rerun reports no change.
"""

import hashlib
import shlex
from io import BytesIO, StringIO

from pyinfra import host, logger
from pyinfra.api import FactBase, FileUploadCommand, operation
from pyinfra.facts.files import Sha256File
from pyinfra.operations import files, server

from . import backup, converge, edge
from .config import GENERATED_SECRETS, ConfigError

UPLOAD_DIR = "/var/lib/platform-upload"
REDIS_DB = {"chatwoot": 0, "n8n": 1, "directus": 2}
# Files bind-mounted into a container (under stack_root): compose does not see their
# content change, so the deploy restarts the service when one changes.
MOUNTED_CONFIG = {
    "redis": ("config/redis.conf",),
    "traefik": ("edge/traefik/traefik_config.yml", "edge/traefik/dynamic_config.yml"),
    "pangolin": ("edge/pangolin/config.yml",),
}
CHATWOOT_EXTENSIONS = ("vector", "pg_trgm", "pgcrypto", "pg_stat_statements")

# Environment variable -> secret, per env file (secrets/<name>.env on the host).
SECRET_ENV = {
    "postgres": {"POSTGRES_PASSWORD": "postgres_password"},
    "redis": {"REDIS_PASSWORD": "redis_password"},
    "chatwoot": {
        "POSTGRES_PASSWORD": "chatwoot_db_password",
        "REDIS_PASSWORD": "redis_password",
        "SECRET_KEY_BASE": "chatwoot_secret_key_base",
        "SMTP_PASSWORD": "smtp_password",
    },
    "n8n": {
        "DB_POSTGRESDB_PASSWORD": "n8n_db_password",
        "N8N_ENCRYPTION_KEY": "n8n_encryption_key",
        "QUEUE_BULL_REDIS_PASSWORD": "redis_password",
        "N8N_SMTP_PASS": "smtp_password",
        # For the workflows (bootstrap layer), read from n8n's environment.
        "ANTHROPIC_API_KEY": "claude_api_key",
        "WHATSAPP_ACCESS_TOKEN": "whatsapp_access_token",
    },
    "directus": {
        "DB_PASSWORD": "directus_db_password",
        "SECRET": "directus_secret",
        "ADMIN_PASSWORD": "directus_admin_password",
        "REDIS_PASSWORD": "redis_password",
        "EMAIL_SMTP_PASSWORD": "smtp_password",
    },
    # For the backup script's off-host copy (sourced by the shell, not by compose).
    "restic": {
        "RESTIC_PASSWORD": "restic_password",
        "AWS_ACCESS_KEY_ID": "restic_aws_access_key_id",
        "AWS_SECRET_ACCESS_KEY": "restic_aws_secret_access_key",
    },
}


def secret_env(cfg):
    """SECRET_ENV for this deploy: the env files it needs, with only the secrets it has."""
    available = set(GENERATED_SECRETS) | set(cfg.supplied_secrets)
    mapping = {**SECRET_ENV, "traefik": {cfg.acme_dns_token_env: "acme_dns_api_token"}}
    return {name: {var: secret for var, secret in mapping[name].items() if secret in available}
            for name in cfg.env_files}


@operation()
def secret_file(secret_name: str, dest: str, cfg=None):
    """files.put for an operator-supplied secret: the same compare-and-upload, but the value
    is never shown, not even by --diff, and is not an argument of the operation."""
    data = cfg.supplied_secrets[secret_name].encode()
    if host.get_fact(Sha256File, path=dest) == hashlib.sha256(data).hexdigest():
        host.noop(f"{secret_name} is up to date")
        return
    # With sudo, the upload lands first where the SSH user can write: a directory only
    # that user can read (made by apply()), never a world-readable /tmp file.
    temp = f"{UPLOAD_DIR}/{secret_name}"
    yield FileUploadCommand(BytesIO(data), dest, remote_temp_filename=temp)
    yield f"rm -f {temp}; chown root:root {dest} && chmod 600 {dest}"


def sizing(cfg):
    """Settings inside each container, derived from its memory limit (MB)."""
    limits = cfg.memory_limits_mb
    web, sidekiq = limits.get("chatwoot-web", 0), limits.get("chatwoot-sidekiq", 0)
    chatwoot = {
        # A Puma worker of Chatwoot takes about 400-500 MB; one worker is Puma's single mode.
        "web_concurrency": max(1, (web - 256) // 512),
        "rails_max_threads": 5,
        "sidekiq_concurrency": max(2, min(25, sidekiq // 75)),
    }
    pools = {
        "chatwoot": chatwoot["web_concurrency"] * chatwoot["rails_max_threads"] + chatwoot["sidekiq_concurrency"] + 5,
        "n8n": 5,
        "directus": 10,
    }
    pg = limits["postgres"]
    max_connections = sum(pools[app] for app in cfg.apps) + 15  # + superuser, backups, psql
    shared_buffers = pg // 4
    return {
        "postgres": {
            "max_connections": max_connections,
            "shared_buffers": f"{shared_buffers}MB",
            # A planner hint: the page cache counts against the container's limit.
            "effective_cache_size": f"{pg // 2}MB",
            "work_mem": f"{max(4, (pg - shared_buffers) // (max_connections * 3))}MB",
            "maintenance_work_mem": f"{max(32, pg // 16)}MB",
        },
        "redis_maxmemory_mb": limits["redis"] * 3 // 4,
        "node_heap_mb": {app: limits[app] * 3 // 4 for app in ("n8n", "directus") if app in cfg.apps},
        "chatwoot": chatwoot,
        "pools": pools,
    }


def urls(cfg):
    names = edge.hosts(cfg)
    return {"chatwoot": f"https://{names['chatwoot']}", "n8n": f"https://{names['n8n']}/", "directus": f"https://{names['directus']}"}


class StackState(FactBase):
    """Secret file names, Chatwoot's last prepared image, and each compose service's state."""

    def command(self, root, project):
        root = shlex.quote(root)
        return (
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
        return {"secrets": set(), "prepared": "", "pg_upgrade": "", "services": {}, "images": {}, "pangolin_config": False}

    def process(self, output):
        state = self.default()
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "secret":
                state["secrets"].add(rest.strip())
            elif kind in ("prepared", "pg-upgrade"):
                state[kind.replace("-", "_")] = rest.strip()
            elif kind == "pangolin-config":
                state["pangolin_config"] = True
            elif kind == "service":
                name, image, status, detail = (rest.split(" ", 3) + ["", "", ""])[:4]
                health = next((h for h in ("unhealthy", "healthy", "starting") if f"{h})" in detail), "")
                state["services"][name] = (status, health)
                state["images"][name] = image
        return state


class DatabaseState(FactBase):
    """Roles, databases (owner, ACL) and Chatwoot's extensions, as the superuser sees them."""

    QUERIES = (
        ("postgres", "select 'role', rolname, rolcanlogin::text, rolsuper::text from pg_roles where rolname !~ '^pg_' "
                     "union all select 'db', datname, pg_get_userbyid(datdba)::text, coalesce(datacl::text, '') from pg_database"),
        ("chatwoot", "select 'ext', extname, '', '' from pg_extension"),
    )

    def command(self, container):
        psql = "psql -U postgres -tA -F '|'"
        script = "; ".join(f"{psql} -d {db} -c {shlex.quote(q)} 2>/dev/null" for db, q in self.QUERIES)
        return f"docker exec {container} sh -c {shlex.quote(script)} 2>/dev/null; true"

    @staticmethod
    def default():
        return {"roles": {}, "dbs": {}, "extensions": set()}

    def process(self, output):
        state = self.default()
        for line in output:
            kind, name, a, b = (line.split("|") + ["", "", "", ""])[:4]
            if kind == "role":
                state["roles"][name] = {"login": a == "true", "super": b == "true"}
            elif kind == "db":
                grantees = {entry.split("=")[0] for entry in b.strip("{}").split(",") if entry} if b else {""}
                state["dbs"][name] = {"owner": a, "grantees": grantees}
            elif kind == "ext":
                state["extensions"].add(name)
        return state


def database_drift(cfg, state):
    """How the databases differ from one login role and one private database per app."""
    drift = []
    for app in cfg.apps:
        role = state["roles"].get(app)
        if not role or not role["login"] or role["super"]:
            drift.append(f"role {app}")
        db = state["dbs"].get(app)
        if not db or db["owner"] != app:
            drift.append(f"database {app}")
        elif not db["grantees"] <= {app, "postgres"}:
            # "" is PUBLIC (also what no ACL at all means): anyone could connect.
            drift.append(f"database {app} open to {sorted(db['grantees'] - {app, 'postgres'})}")
    if "chatwoot" in cfg.apps:
        drift += [f"extension {e}" for e in CHATWOOT_EXTENSIONS if e not in state["extensions"]]
    return drift


class PostgresDataVersion(FactBase):
    """The PostgreSQL major version of the data on the host (its PG_VERSION); None before the first deploy."""

    def command(self, project):
        volume = shlex.quote(f"{project}_postgres-data")
        return f"cat \"$(docker volume inspect -f '{{{{.Mountpoint}}}}' {volume} 2>/dev/null)/PG_VERSION\" 2>/dev/null || true"

    def process(self, output):
        text = "".join(output).strip()
        return int(text) if text.isdigit() else None


def directories(cfg):
    root = cfg.stack_root
    for path, mode in ((root, "755"), (f"{root}/secrets", "700"), (f"{root}/config", "755"),
                       (f"{root}/env", "700"), (f"{root}/bin", "755"), (f"{root}/state", "700")):
        converge.directory(name=f"Directory {path}", path=path, user="root", group="root", mode=mode)


def check_postgres_major(cfg):
    """The major version of the data on the host; refuses a different one in group data
    unless postgres_major_upgrade asks for the dump-and-restore procedure."""
    data_major = host.get_fact(PostgresDataVersion, project=cfg.stack_name)
    if data_major and data_major != cfg.postgres_major and not cfg.postgres_major_upgrade:
        raise ConfigError(
            f"images['postgres'] = {cfg.images['postgres']!r} is PostgreSQL {cfg.postgres_major}, but the data on this host "
            f"is PostgreSQL {data_major}; nothing was changed on the host.\n"
            f"  A new major version cannot open the old data directory.\n"
            f"  Fix: put back a PostgreSQL {data_major} image, or upgrade by the README's \"PostgreSQL major upgrade\" "
            "procedure (backup, new cluster, restore): rerun with postgres_major_upgrade = True."
        )
    return data_major


def wanted_image(cfg, service):
    return cfg.images[service.split("-")[0]]


def apply(cfg, docker_restarted, data_major):
    """`docker_restarted`: the docker layer's restart operation; containers need bringing back after it.
    `data_major`: check_postgres_major()'s answer."""
    root, project = cfg.stack_root, cfg.stack_name
    dc = f"docker compose -f {root}/compose.yaml -p {project}"
    state = host.get_fact(StackState, root=root, project=project)
    major_upgrade = bool(data_major) and data_major != cfg.postgres_major
    # A major upgrade that stopped after setting the old data aside names its backup here; this run finishes it.
    resume_backup = state["pg_upgrade"]
    marker = f"{root}/state/pg-major-upgrade"

    # Before anything changes: a backup, when an image of a service that holds or migrates data changes.
    data_services = [s for s in cfg.compose_services if s not in ("pangolin", "traefik", "gerbil")]
    upgrading = [s for s in data_services if state["images"].get(s) not in (None, wanted_image(cfg, s))]
    data_running = all(state["services"].get(s, ("",))[0] == "running" for s in ("postgres", "redis"))
    if (upgrading or major_upgrade) and not resume_backup:
        if data_running:
            backup.run_now(cfg, f"before upgrading {', '.join(upgrading) or 'PostgreSQL'}")
        elif major_upgrade:
            raise ConfigError("postgres_major_upgrade needs a backup of the running databases, and PostgreSQL or Redis "
                              "is not running; nothing was changed on the host.\n"
                              "  Fix: start the stack with the current images (rerun without the major version change), then retry.")
        else:
            logger.warning(f"{host.name}: no backup before upgrading {', '.join(upgrading)}: PostgreSQL and Redis are not both running")

    edge_files, pangolin_template = edge.render(cfg)
    if cfg.supplied_secrets:
        converge.directory(name="Private upload directory", path=UPLOAD_DIR, user=host.data.get("ssh_user") or "root", mode="700")
    supplied = [secret_file(name=f"Operator secret {name} stored", secret_name=name, dest=f"{root}/secrets/{name}", cfg=cfg)
                for name in sorted(cfg.supplied_secrets)]
    env = secret_env(cfg)
    secrets_script = converge.template(name="Secrets script", src="templates/secrets.sh.j2", dest=f"{root}/bin/secrets.sh",
                                       mode="700", create_remote_dir=False, root=root, generated=GENERATED_SECRETS, secret_env=env,
                                       marker=edge.PANGOLIN_SECRET_MARKER)
    wanted_secret_files = set(GENERATED_SECRETS) | {f"{name}.env" for name in env}
    secrets = server.shell(
        name="Secrets generated and kept on the host",
        commands=[f"{root}/bin/secrets.sh"],
        _if=lambda: (secrets_script.did_change() or not wanted_secret_files <= state["secrets"]
                     or not state["pangolin_config"] or pangolin_template.did_change()
                     or any(op.did_change() for op in supplied)),
    )

    size = sizing(cfg)
    template_vars = dict(cfg=cfg, size=size, urls=urls(cfg), redis_db=REDIS_DB, root=root)
    redis_conf = converge.template(name="Redis configuration", src="templates/redis.conf.j2", dest=f"{root}/config/redis.conf",
                                   mode="644", create_remote_dir=False, **template_vars)
    # The operations writing MOUNTED_CONFIG (the secrets script fills in Pangolin's).
    mounted = {"redis": [redis_conf], **edge_files, "pangolin": [*edge_files["pangolin"], secrets]}
    inputs = [
        *(op for ops in mounted.values() for op in ops),
        converge.template(name="Compose project", src="templates/compose.yaml.j2", dest=f"{root}/compose.yaml",
                          mode="640", create_remote_dir=False, **template_vars),
    ]
    for app in cfg.apps:
        inputs.append(converge.template(name=f"{app} settings", src=f"templates/env/{app}.env.j2",
                                        dest=f"{root}/env/{app}.env", mode="600", create_remote_dir=False, **template_vars))
    inputs += _offline_images(cfg)

    not_ready = [s for s in cfg.compose_services if state["services"].get(s) not in (("running", "healthy"), ("running", ""))]

    def needs_up():
        return bool(not_ready) or major_upgrade or bool(resume_backup) or docker_restarted.did_change() or any(op.did_change() for op in inputs)

    if major_upgrade and not resume_backup:
        aside = f"{project}_postgres-data-pg{data_major}"
        mountpoint = "\"$(docker volume inspect -f '{{.Mountpoint}}' %s)\""
        server.shell(
            name=f"PostgreSQL {data_major} data set aside in volume {aside}",
            commands=[
                # Checks first: nothing is stopped if the old data has nowhere to go or the new image cannot be had.
                f"docker volume create {aside} >/dev/null",
                f'[ -z "$(ls -A {mountpoint % aside})" ] || {{ echo "{aside} is not empty: an earlier upgrade left it; '
                f'remove it once you no longer need it" >&2; exit 1; }}',
                f"docker image inspect {shlex.quote(cfg.images['postgres'])} >/dev/null 2>&1 || {dc} pull postgres",
                # The backup this run just took: the one a rerun restores if this one stops half-way.
                f"basename \"$(ls -1d {cfg.backup_dir}/[0-9]*T[0-9]*Z | sort | tail -n 1)\" > {marker}",
                f"{dc} stop", f"{dc} rm -f postgres",
                f"find {mountpoint % (project + '_postgres-data')} -mindepth 1 -maxdepth 1 -exec mv -t {mountpoint % aside} {{}} +",
            ],
        )

    server.shell(
        name="Data services up and healthy",
        commands=[f"{dc} up -d --wait --wait-timeout 180 postgres redis"],
        _if=needs_up,
    )

    db_script = converge.template(name="Databases script", src="templates/databases.sh.j2", dest=f"{root}/bin/databases.sh",
                                  mode="700", create_remote_dir=False, cfg=cfg, root=root, dc=dc, extensions=CHATWOOT_EXTENSIONS)
    drift = database_drift(cfg, host.get_fact(DatabaseState, container=f"{project}-postgres-1"))
    server.shell(
        name="Per-service databases and roles",
        commands=[f"{root}/bin/databases.sh"],
        _if=lambda: bool(drift) or major_upgrade or bool(resume_backup) or db_script.did_change() or secrets.did_change(),
    )
    if major_upgrade or resume_backup:
        server.shell(name=f"Databases restored into PostgreSQL {cfg.postgres_major} from the backup taken before the upgrade",
                     commands=[explain_failure(cfg, f'{root}/bin/restore.sh "$(cat {marker})" databases'), f"rm -f {marker}"])

    if "chatwoot" in cfg.apps:
        image = cfg.images["chatwoot"]
        server.shell(
            name=f"Chatwoot db:chatwoot_prepare for {image}",
            commands=[explain_failure(cfg, f"{dc} run --rm --no-deps chatwoot-web bundle exec rails db:chatwoot_prepare"),
                      f"echo {shlex.quote(image)} > {root}/state/chatwoot-prepared"],
            # A new image, or a database made afresh by this run (its schema is not there yet).
            _if=lambda: state["prepared"] != image or "database chatwoot" in drift,
        )

    server.shell(
        name="All services up and healthy",
        commands=[explain_failure(cfg, f"{dc} up -d --wait --wait-timeout 300 --remove-orphans")],
        _if=needs_up,
    )
    for service, ops in mounted.items():
        server.shell(
            name=f"{service} restarted for its changed configuration",
            commands=[f"{dc} restart {service}", f"{dc} up -d --wait --wait-timeout 180 {service}"],
            _if=lambda ops=ops, service=service: service in state["services"] and any(op.did_change() for op in ops),
        )
    # Reached only when everything came up: what a failed upgrade points back to.
    converge.put(name="Images that ran healthy recorded", src=StringIO(running_images(cfg)), dest=f"{root}/state/images",
                 mode="600", create_remote_dir=False)


def running_images(cfg):
    return "".join(f"{key}: {cfg.images[key]}\n" for key in dict.fromkeys(s.split("-")[0] for s in cfg.compose_services))


def explain_failure(cfg, command):
    """`command`, and when it fails, the images that last ran healthy and how to go back to them."""
    images, root = f"{cfg.stack_root}/state/images", cfg.stack_root
    return (f"{command} || {{ status=$?; echo 'DEPLOY FAILED. The images that last ran healthy ({images}):' >&2; "
            f"cat {images} >&2 2>/dev/null || echo '  (none recorded yet: the stack never came up)' >&2; "
            "echo 'To go back: set those in group data (images) and rerun the deploy. A backup taken before any "
            f"upgrade of data is the newest in {cfg.backup_dir}; {root}/bin/restore.sh restores it.' >&2; exit $status; }}")


class DockerImageRefs(FactBase):
    def command(self):
        return "docker image ls --format '{{.Repository}}:{{.Tag}}' 2>/dev/null || true"

    @staticmethod
    def default():
        return set()

    def process(self, output):
        return set(output)


def _offline_images(cfg):
    """With offline_images (a `docker save` archive on this machine), images the host lacks
    are uploaded and loaded from it; without, `compose up` pulls them."""
    if not cfg.offline_images:
        return []
    wanted = {cfg.images[name.split("-")[0]] for name in cfg.compose_services}
    missing = sorted(wanted - host.get_fact(DockerImageRefs))
    if not missing:
        return []
    remote = "/var/tmp/platform-images.tar"
    return [
        files.put(name=f"Image archive uploaded for {', '.join(missing)}", src=cfg.offline_images, dest=remote, mode="600"),
        server.shell(name="Images loaded", commands=[f"docker load -q -i {remote}", f"rm -f {remote}"]),
    ]
