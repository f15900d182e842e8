"""Point-in-time recovery: PostgreSQL's WAL archived continuously by pgBackRest into an
encrypted repository, on the host (outside Docker's volumes) or in an S3-compatible bucket; a
full backup weekly and a differential one daily; bin/pitr-restore.py puts the databases back as
they were at a moment, or at the end of the archive. With a bucket, a replica (scale-out) is
seeded from it too. The nightly pg_dump and restic (backup.py) stay, as the logical copy.

pgBackRest's archive-push runs where PostgreSQL runs, as its archive_command, so PostgreSQL
runs the pinned image of group data with pgBackRest added (files/postgres/Dockerfile), built
on the host by the deploy: production keeps the vendor's image, and its tag, as the base."""

import hashlib
import shlex
from io import StringIO
from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator
from pyinfra.operations import server, systemd

from . import converge
from .model import CALENDAR_PATTERN, DEDICATED_DIR_PATTERN, PemFile, PositiveInt, Section, refuse, setting
from .pitr_state import MAX_FULL_AGE_DAYS, REPO_IN_CONTAINER, STANZA, PitrState, drift
from .topology import Role

SPOOL = "/var/spool/pgbackrest"
DOCKERFILE = Path(__file__).resolve().parent.parent / "files" / "postgres" / "Dockerfile"
ARCHIVE_TIMEOUT_S = 30  # an idle database still archives what it wrote within 30 s
S3_CA_FILE = "pgbackrest-s3-ca.pem"  # beside pgbackrest.conf in the stack's config/


class Settings(Section):
    pitr: bool = setting(
        True,
        doc="Point-in-time recovery: WAL archived continuously with pgBackRest (an RPO of about a minute), "
        "restored with bin/pitr-restore.py; False: the nightly backup only.",
        problem="not a boolean",
        fix="set pitr = True or False",
    )
    pitr_repo_dir: str = setting(
        "/var/backups/msgplatform-pitr",
        doc="The pgBackRest repository on the host (encrypted), outside Docker's volumes; best on another disk.",
        problem="not a dedicated absolute directory",
        pattern=DEDICATED_DIR_PATTERN,
        fix='set pitr_repo_dir = "/var/backups/msgplatform-pitr"',
    )
    pitr_full_schedule: str = setting(
        "Sun *-*-* 02:45:00",
        doc="When pgBackRest takes a full backup: a systemd OnCalendar expression.",
        problem="not a systemd calendar expression",
        pattern=CALENDAR_PATTERN,
        fix='use e.g. "Sun *-*-* 02:45:00" (weekly); see `man systemd.time`',
    )
    pitr_diff_schedule: str = setting(
        "Mon..Sat *-*-* 02:45:00",
        doc="When pgBackRest takes a differential backup: a systemd OnCalendar expression.",
        problem="not a systemd calendar expression",
        pattern=CALENDAR_PATTERN,
        fix='use e.g. "Mon..Sat *-*-* 02:45:00" (daily but the full backup\'s day)',
    )
    pitr_keep_full: PositiveInt = setting(
        2,
        doc="Full backups kept, with their differential ones and the WAL back to the oldest of them.",
        problem="not a count",
        fix="keep at least 1, e.g. pitr_keep_full = 2 (two weeks of point-in-time recovery)",
    )
    pitr_queue_max_mb: PositiveInt = setting(
        4096,
        doc="WAL waiting to be pushed past which pgBackRest drops it rather than let pg_wal fill the disk "
        "(recovery then has a gap until the next full backup).",
        problem="not a size in MB",
        fix="set pitr_queue_max_mb = 4096, well under the free space of the disk of PostgreSQL's volume",
    )

    pitr_repo_s3_bucket: str | None = setting(
        None,
        doc="An S3-compatible bucket for the repository instead of pitr_repo_dir (keys from "
        "PLATFORM_PGBACKREST_S3_KEY and PLATFORM_PGBACKREST_S3_KEY_SECRET); a replica is then seeded from it. "
        "None: the repository on the host.",
        problem="not a bucket name",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        fix='give the bucket\'s name, e.g. "msgplatform-pitr" (create it first, with no public access)',
    )
    pitr_repo_s3_endpoint: str = setting(
        "s3.amazonaws.com",
        doc="The S3 service's host name (and :port if not 443), e.g. s3.eu-central-1.amazonaws.com; always HTTPS.",
        problem="not a host name with an optional port",
        pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        fix='write e.g. "s3.eu-central-1.amazonaws.com" or "minio.example.org:9000": no scheme, no path',
    )
    pitr_repo_s3_region: str = setting(
        "us-east-1",
        doc="The bucket's region (signs the requests).",
        problem="not a region name",
        pattern=r"^[a-z0-9-]+$",
        fix='write the region, e.g. "eu-central-1" (S3 services without regions take "us-east-1")',
    )
    pitr_repo_s3_uri_style: Literal["host", "path"] = setting(
        "host",
        doc='"host": https://<bucket>.<endpoint>/ (AWS); "path": https://<endpoint>/<bucket>/ (most other services).',
        problem="not host or path",
        fix='set pitr_repo_s3_uri_style = "host" or "path"',
    )
    pitr_repo_s3_path: str = setting(
        "/msgplatform",
        doc="Where in the bucket the repository lives.",
        problem="not an absolute path",
        pattern=r"^/[A-Za-z0-9._/-]*$",
        fix='write e.g. "/msgplatform"',
    )
    pitr_repo_s3_ca_file: PemFile | None = setting(
        None,
        doc="A PEM file on this machine that the S3 service's TLS certificate chains to, for a private S3 service; "
        "None: the system's trust store.",
        fix="give the path of a PEM file on this machine, or None",
    )

    @model_validator(mode="after")
    def _s3_whole(self):
        if self.pitr_repo_s3_bucket and not self.pitr:
            raise refuse(
                "set while pitr is False",
                "set pitr = True, or pitr_repo_s3_bucket = None",
                key="pitr_repo_s3_bucket",
                value=self.pitr_repo_s3_bucket,
            )
        if self.pitr_repo_s3_bucket and "." in self.pitr_repo_s3_bucket and self.pitr_repo_s3_uri_style == "host":
            # <bucket>.<endpoint> then has more labels than the service's wildcard certificate covers.
            raise refuse(
                "has a dot while pitr_repo_s3_uri_style is host: TLS would fail (a wildcard matches one label)",
                'set pitr_repo_s3_uri_style = "path", or use a bucket name without dots',
                key="pitr_repo_s3_bucket",
                value=self.pitr_repo_s3_bucket,
            )
        return self

    @field_validator("pitr_repo_dir")
    @classmethod
    def _no_trailing_slash(cls, path):
        if path.startswith("/var/lib/docker"):
            raise refuse("inside Docker's own directory", 'set pitr_repo_dir = "/var/backups/msgplatform-pitr"')
        return path.rstrip("/")


def enabled(cfg):
    """Archiving runs on the PostgreSQL that takes writes: one host's, or the primary's."""
    return cfg.pitr.pitr and cfg.topology.role == Role.PRIMARY


def in_bucket(cfg):
    return bool(cfg.pitr.pitr and cfg.pitr.pitr_repo_s3_bucket)


def on_host(cfg):
    """pgBackRest runs in PostgreSQL's container: the primary's (it archives), and a replica's when the repository
    is a bucket (it is seeded from it, and fetches from it what streaming no longer has)."""
    return enabled(cfg) or (in_bucket(cfg) and cfg.topology.role == Role.REPLICA)


def postgres_image(cfg):
    """What the postgres service runs: the pinned image, or (with PITR) it with pgBackRest, tagged by both."""
    base = cfg.stack.images["postgres"]
    if not on_host(cfg):
        return base
    digest = hashlib.sha256(f"{base}\n{DOCKERFILE.read_text()}".encode()).hexdigest()[:12]
    return f"{cfg.stack.stack_name}-postgres-pitr:{digest}"


def ca_file(cfg):
    """Where pgBackRest reads the bucket's CA (pitr_repo_s3_ca_file), in its container; None: the system's."""
    return f"/etc/pgbackrest/{S3_CA_FILE}" if in_bucket(cfg) and cfg.pitr.pitr_repo_s3_ca_file else None


def compose_vars(cfg):
    """What compose.yaml's postgres service adds with pgBackRest, or None."""
    if not on_host(cfg):
        return None
    # The repository: a directory of the host, or a bucket reached through the network (with its CA's file).
    if not in_bucket(cfg):
        repository = [f"{cfg.pitr.pitr_repo_dir}:{REPO_IN_CONTAINER}"]
    else:
        repository = [f"./config/{S3_CA_FILE}:{ca_file(cfg)}:ro"] if ca_file(cfg) else []
    return {
        "image": postgres_image(cfg),
        "bucket": in_bucket(cfg),
        "volumes": [
            "./config/pgbackrest.conf:/etc/pgbackrest/pgbackrest.conf:ro",
            *repository,
            f"pgbackrest-spool:{SPOOL}",
        ],
        "stanza": STANZA,
        "options": [
            *("-c", "archive_mode=on", "-c", f"archive_timeout={ARCHIVE_TIMEOUT_S}"),
            *("-c", f"archive_command=pgbackrest --stanza={STANZA} archive-push %p"),
        ],
    }


def unit(cfg, kind):
    return f"{cfg.stack.stack_name}-pitr-{kind}"


def pgbackrest(cfg, *args):
    """A pgBackRest command in the running PostgreSQL container, as its user."""
    return f"docker exec -u postgres {cfg.stack.stack_name}-postgres-1 pgbackrest --stanza={STANZA} {' '.join(args)}"


def apply(cfg):
    """The repository directory, pgBackRest's settings, the image, the restore script and the backup timers
    (before the stack comes up); returns the units to keep running and enabled, and the settings' operations."""
    if not on_host(cfg):
        return {}, []
    root = cfg.stack.stack_root
    if enabled(cfg) and not in_bucket(cfg):
        converge.directory(
            name=f"pgBackRest repository {cfg.pitr.pitr_repo_dir}",
            path=cfg.pitr.pitr_repo_dir,
            mode="700",
        )
    settings = [
        converge.template(
            name="pgBackRest settings",
            src="templates/pgbackrest.conf.j2",
            dest=f"{root}/config/pgbackrest.conf",
            mode="644",
            create_remote_dir=False,
            cfg=cfg,
            stanza=STANZA,
            repo=REPO_IN_CONTAINER,
            spool=SPOOL,
            ca_file=ca_file(cfg),
        )
    ]
    if in_bucket(cfg) and cfg.pitr.pitr_repo_s3_ca_file:
        settings.append(
            converge.put(
                name="The S3 service's CA, for pgBackRest",
                src=cfg.pitr.pitr_repo_s3_ca_file,
                dest=f"{root}/config/{S3_CA_FILE}",
                mode="644",
                create_remote_dir=False,
            )
        )
    converge.put(name="PostgreSQL image with pgBackRest: its Dockerfile", src=str(DOCKERFILE), dest=_dockerfile(cfg))
    if not enabled(cfg):
        return {}, settings
    converge.template(
        name="Point-in-time restore script",
        src="templates/backup/pitr-restore.py.j2",
        dest=f"{root}/bin/pitr-restore.py",
        mode="700",
        create_remote_dir=False,
        cfg=cfg,
        root=root,
        stanza=STANZA,
        image=postgres_image(cfg),
        repo=REPO_IN_CONTAINER,
        spool=SPOOL,
        ca_file=ca_file(cfg),
        ca_on_host=f"{root}/config/{S3_CA_FILE}",
    )
    return _timers(cfg), settings


def _dockerfile(cfg):
    return f"{cfg.stack.stack_root}/config/postgres.Dockerfile"


def build_image(cfg, state):
    """The image, built on the host when it lacks it: after the stack's images are there (an offline host's
    are loaded from its archive), before PostgreSQL first starts on it."""
    image = postgres_image(cfg)
    if on_host(cfg) and image not in state["host_images"]:
        server.shell(
            name=f"PostgreSQL image with pgBackRest built ({image})",
            commands=[
                f"docker build -q -t {image} --build-arg BASE={shlex.quote(cfg.stack.images['postgres'])} - "
                f"< {_dockerfile(cfg)} >/dev/null"
            ],
        )


def _timers(cfg):
    """pgBackRest's full and differential backups, each a oneshot service and its timer."""
    unit_files = []
    for kind in ("full", "diff"):
        name = unit(cfg, kind)
        schedule = cfg.pitr.pitr_full_schedule if kind == "full" else cfg.pitr.pitr_diff_schedule
        unit_files += [
            converge.put(
                name=f"{name}.{part}",
                src=_unit_file(cfg, kind, part, schedule),
                dest=f"/etc/systemd/system/{name}.{part}",
                mode="644",
            )
            for part in ("service", "timer")
        ]
    reload = systemd.daemon_reload(
        name="systemd reloaded for the pgBackRest units", _if=lambda: any(op.did_change() for op in unit_files)
    )
    for kind in ("full", "diff"):
        systemd.service(
            name=f"{unit(cfg, kind)}.timer restarted on its new schedule",
            service=f"{unit(cfg, kind)}.timer",
            restarted=True,
            _if=reload.did_change,
        )
    return {name: (True, True) for name in units(cfg)}


def units(cfg):
    """The units this layer keeps running and enabled."""
    return [f"{unit(cfg, kind)}.timer" for kind in ("full", "diff")] if enabled(cfg) else []


def managed_dirs(cfg):
    """The directories this layer writes into (converge.scan reads each once a run)."""
    return [cfg.pitr.pitr_repo_dir] if enabled(cfg) and not in_bucket(cfg) else []


def _unit_file(cfg, kind, part, schedule):
    if part == "service":
        text = (
            f"# Managed by the platform deploy (pitr layer).\n[Unit]\n"
            f"Description=pgBackRest {kind} backup of {cfg.stack.stack_name}'s PostgreSQL\n"
            "Requires=docker.service\nAfter=docker.service\n\n[Service]\nType=oneshot\n"
            f"ExecStart={pgbackrest(cfg, f'--type={kind}', 'backup')}\nNice=10\n"
            "IOSchedulingClass=best-effort\nIOSchedulingPriority=7\n"
        )
    else:
        text = (
            f"# Managed by the platform deploy (pitr layer): pitr_{kind}_schedule in group data.\n[Unit]\n"
            f"Description=Scheduled pgBackRest {kind} backup of {cfg.stack.stack_name}'s PostgreSQL\n\n"
            f"[Timer]\nOnCalendar={schedule}\nPersistent=true\nRandomizedDelaySec=10m\n\n"
            "[Install]\nWantedBy=timers.target\n"
        )
    return StringIO(text)


HAS_FULL = (
    "import json, sys, time; s = json.load(sys.stdin)[0]; current = max(d['id'] for d in s['db']); "
    "sys.exit(not any(b['type'] == 'full' and b['database']['id'] == current "
    f"and b['timestamp']['stop'] > time.time() - {MAX_FULL_AGE_DAYS * 86400} for b in s['backup']))"
)


def after_up(cfg, rollout, settings):
    """The stanza made (or upgraded with PostgreSQL's major version), and a full backup when there is none;
    `settings`: apply()'s operations writing pgBackRest's settings."""
    if not enabled(cfg):
        return
    state = converge.fact(PitrState, container=f"{cfg.stack.stack_name}-postgres-1")
    found = drift(state)
    server.shell(
        name="pgBackRest stanza ready, with a full backup" + (f" ({', '.join(sorted(found))})" if found else ""),
        commands=[
            # A (re)started PostgreSQL's checkpointer sleeps through archive_timeout until checkpoint_timeout
            # (it started in recovery): a reload wakes it.
            f"docker exec {cfg.stack.stack_name}-postgres-1 psql -U postgres -qAtc 'select pg_reload_conf()'",
            *(
                []
                if in_bucket(cfg)
                else [f"docker exec -u 0 {cfg.stack.stack_name}-postgres-1 chown postgres: {REPO_IN_CONTAINER}"]
            ),
            # Both take the archive lock, which the background push holds while it works off a backlog (or
            # retries, before there is a stanza): again while that is the error (50), for up to 10 minutes. The
            # upgrade only when the stanza cannot be made for another reason (PostgreSQL's major version changed).
            "end=$(($(date +%s) + 600)); while :; do "
            f"{pgbackrest(cfg, 'stanza-create')}; rc=$?; "
            f'if [ "$rc" != 0 ] && [ "$rc" != 50 ]; then {pgbackrest(cfg, "stanza-upgrade")}; rc=$?; fi; '
            '[ "$rc" = 50 ] && [ "$(date +%s)" -lt "$end" ] || exit "$rc"; sleep 3; done',
            # check waits for a WAL switch to be archived, behind any backlog.
            f"{pgbackrest(cfg, '--archive-timeout=600', 'check')}",
            # A full backup when the current database has none (a new server, or a major upgrade just made).
            f"{pgbackrest(cfg, 'info', '--output=json')} | python3 -c {shlex.quote(HAS_FULL)} || "
            f"{pgbackrest(cfg, '--type=full', 'backup')}",
            # A gap in the archive since the newest backup: a new one restores from its end again.
            *([pgbackrest(cfg, "--type=diff", "backup")] if "gap" in found and "full" not in found else []),
        ],
        _if=lambda: bool(found) or rollout.compose.did_change() or any(op.did_change() for op in settings),
    )


def reads(cfg):
    return [(PitrState, {"container": f"{cfg.stack.stack_name}-postgres-1"})] if enabled(cfg) else []
