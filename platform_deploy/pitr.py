"""Point-in-time recovery: PostgreSQL's WAL archived continuously by pgBackRest into an
encrypted repository on the host (outside Docker's volumes), a full backup weekly and a
differential one daily; bin/pitr-restore.py puts the databases back as they were at a
moment, or at the end of the archive. The nightly pg_dump and restic (backup.py) stay, as the
logical copy.

pgBackRest's archive-push runs where PostgreSQL runs, as its archive_command, so PostgreSQL
runs the pinned image of group data with pgBackRest added (files/postgres/Dockerfile), built
on the host by the deploy: production keeps the vendor's image, and its tag, as the base."""

import hashlib
import shlex
from io import StringIO
from pathlib import Path

from pydantic import field_validator
from pyinfra.operations import server, systemd

from . import converge
from .model import CALENDAR_PATTERN, DEDICATED_DIR_PATTERN, PositiveInt, Section, refuse, setting
from .pitr_state import MAX_FULL_AGE_DAYS, REPO_IN_CONTAINER, STANZA, PitrState, drift
from .topology import Role

SPOOL = "/var/spool/pgbackrest"
DOCKERFILE = Path(__file__).resolve().parent.parent / "files" / "postgres" / "Dockerfile"
ARCHIVE_TIMEOUT_S = 30  # an idle database still archives what it wrote within 30 s


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

    @field_validator("pitr_repo_dir")
    @classmethod
    def _no_trailing_slash(cls, path):
        if path.startswith("/var/lib/docker"):
            raise refuse("inside Docker's own directory", 'set pitr_repo_dir = "/var/backups/msgplatform-pitr"')
        return path.rstrip("/")


def enabled(cfg):
    """Archiving runs on the PostgreSQL that takes writes: one host's, or the primary's."""
    return cfg.pitr.pitr and cfg.topology.role == Role.PRIMARY


def postgres_image(cfg):
    """What the postgres service runs: the pinned image, or (with PITR) it with pgBackRest, tagged by both."""
    base = cfg.stack.images["postgres"]
    if not enabled(cfg):
        return base
    digest = hashlib.sha256(f"{base}\n{DOCKERFILE.read_text()}".encode()).hexdigest()[:12]
    return f"{cfg.stack.stack_name}-postgres-pitr:{digest}"


def compose_vars(cfg):
    """What compose.yaml's postgres service adds with PITR, or None."""
    if not enabled(cfg):
        return None
    return {
        "image": postgres_image(cfg),
        "repo_dir": cfg.pitr.pitr_repo_dir,
        "repo": REPO_IN_CONTAINER,
        "spool": SPOOL,
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
    (before the stack comes up); returns the units to keep running and enabled, and the settings' operation."""
    if not enabled(cfg):
        return {}, None
    root = cfg.stack.stack_root
    converge.directory(
        name=f"pgBackRest repository {cfg.pitr.pitr_repo_dir}",
        path=cfg.pitr.pitr_repo_dir,
        mode="700",
    )
    conf = converge.template(
        name="pgBackRest settings",
        src="templates/pgbackrest.conf.j2",
        dest=f"{root}/config/pgbackrest.conf",
        mode="644",
        create_remote_dir=False,
        cfg=cfg,
        stanza=STANZA,
        repo=REPO_IN_CONTAINER,
        spool=SPOOL,
    )
    image = postgres_image(cfg)
    converge.put(name="PostgreSQL image with pgBackRest: its Dockerfile", src=str(DOCKERFILE), dest=_dockerfile(cfg))
    converge.template(
        name="Point-in-time restore script",
        src="templates/backup/pitr-restore.py.j2",
        dest=f"{root}/bin/pitr-restore.py",
        mode="700",
        create_remote_dir=False,
        cfg=cfg,
        root=root,
        stanza=STANZA,
        image=image,
        repo=REPO_IN_CONTAINER,
        spool=SPOOL,
    )
    return _timers(cfg), conf


def _dockerfile(cfg):
    return f"{cfg.stack.stack_root}/config/postgres.Dockerfile"


def build_image(cfg, state):
    """The image, built on the host when it lacks it: after the stack's images are there (an offline host's
    are loaded from its archive), before PostgreSQL first starts on it."""
    image = postgres_image(cfg)
    if enabled(cfg) and image not in state["host_images"]:
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
    return [cfg.pitr.pitr_repo_dir] if enabled(cfg) else []


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


def after_up(cfg, rollout, conf):
    """The stanza made (or upgraded with PostgreSQL's major version), and a full backup when there is none;
    `conf`: apply()'s operation writing pgBackRest's settings."""
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
            f"docker exec -u 0 {cfg.stack.stack_name}-postgres-1 chown postgres: {REPO_IN_CONTAINER}",
            # Both take the archive lock, which the background push holds while it works off a backlog: again
            # while that is the error (50), for up to 10 minutes.
            "end=$(($(date +%s) + 600)); while :; do "
            f"{pgbackrest(cfg, 'stanza-create')} || {pgbackrest(cfg, 'stanza-upgrade')}; rc=$?; "
            '[ "$rc" = 50 ] && [ "$(date +%s)" -lt "$end" ] || exit "$rc"; sleep 3; done',
            # check waits for a WAL switch to be archived, behind any backlog.
            f"{pgbackrest(cfg, '--archive-timeout=600', 'check')}",
            # A full backup when the current database has none (a new server, or a major upgrade just made).
            f"{pgbackrest(cfg, 'info', '--output=json')} | python3 -c {shlex.quote(HAS_FULL)} || "
            f"{pgbackrest(cfg, '--type=full', 'backup')}",
            # A gap in the archive since the newest backup: a new one restores from its end again.
            *([pgbackrest(cfg, "--type=diff", "backup")] if "gap" in found and "full" not in found else []),
        ],
        _if=lambda: bool(found) or rollout.compose.did_change() or conf.did_change(),
    )


def reads(cfg):
    return [(PitrState, {"container": f"{cfg.stack.stack_name}-postgres-1"})] if enabled(cfg) else []
