"""The backups layer: a systemd timer runs bin/backup.sh (every app database, Redis, the app
volumes, the edge's files and the secrets, with checksums, newest `backup_keep` kept);
bin/restore.sh puts one back. The deploy also runs the backup before an upgrade that
touches data, and once on a host that has none yet.
"""

import calendar
import re
import shlex
import time

from pydantic import field_validator
from pyinfra.api import FactBase
from pyinfra.operations import server, systemd

from . import converge
from .converge import ensure_packages
from .model import CALENDAR_PATTERN, DEDICATED_DIR_PATTERN, PositiveInt, Section, refuse, setting
from .secrets import GENERATED_SECRETS
from .services import app_services

# What an app's database issued and the application bootstrap keeps on the host (paths under
# the stack root): restored with that database, or the kept tokens no longer open it.
ISSUED = {
    "chatwoot": [
        "secrets/chatwoot_api_token",
        "secrets/chatwoot_automation_token",
        "secrets/chatwoot_bot_token",
        "secrets/chatwoot_webhook_secret",
        "secrets/chatwoot_unrouted_secret",
        "state/chatwoot-account-id",
        "state/chatwoot-automation-user-id",
    ],
    "n8n": ["secrets/n8n_api_key"],
}


class Settings(Section):
    backup_dir: str = setting(
        "/var/backups/msgplatform",
        doc="Where backups go: backup_dir/<UTC time>/, one directory each.",
        problem="not a dedicated absolute directory",
        pattern=DEDICATED_DIR_PATTERN,
        fix='set backup_dir = "/var/backups/msgplatform"',
    )
    backup_schedule: str = setting(
        "*-*-* 03:15:00",
        doc="When the backup timer runs: a systemd OnCalendar expression (UTC on most servers).",
        problem="not a systemd calendar expression",
        pattern=CALENDAR_PATTERN,
        fix='use e.g. "*-*-* 03:15:00" (nightly) or "daily"; see `man systemd.time`',
    )
    backup_keep: PositiveInt = setting(
        7,
        doc="How many backups stay; older ones are removed.",
        problem="not a count",
        fix="keep at least 1 backup, e.g. backup_keep = 7",
    )
    backup_max_age_hours: PositiveInt = setting(
        26,
        doc="The audit calls the last backup stale after this many hours.",
        problem="not a number of hours",
        fix="set how old the last backup may be before the audit calls it stale, e.g. 26 for a nightly schedule",
    )
    # No credentials in the URL: it is not a secret and shows in logs.
    backup_offsite: str | None = setting(
        None,
        doc='Off-host copy with restic, e.g. "sftp:backup@host.example.org:/srv/restic/msgplatform" or '
        '"s3:https://s3.example.org/bucket/msgplatform"; password from PLATFORM_RESTIC_PASSWORD (S3 keys: '
        "PLATFORM_RESTIC_AWS_ACCESS_KEY_ID, PLATFORM_RESTIC_AWS_SECRET_ACCESS_KEY). None: no off-host copy.",
        problem="not a restic repository",
        pattern=r"^(sftp:|s3:|rest:|/)[^\s'\"]+$",
        fix='use e.g. "sftp:backup@host.example.org:/srv/restic/msgplatform" or '
        '"s3:https://s3.example.org/bucket/msgplatform" '
        "(credentials come from PLATFORM_RESTIC_* secrets, never the URL), or None",
    )

    @field_validator("backup_dir")
    @classmethod
    def _no_trailing_slash(cls, path):
        return path.rstrip("/")

    @field_validator("backup_offsite")
    @classmethod
    def _no_credentials(cls, url):
        if url and re.search(r"://[^/]*:[^/]*@", url):
            raise refuse(
                "holds credentials", "put them in PLATFORM_RESTIC_* secrets, never the URL", shown="(not shown)"
            )
        return url


# App -> its named volumes (compose.yaml), each kept as a tar in the backup.
APP_VOLUMES = {
    "chatwoot": ("chatwoot-storage",),
    "n8n": ("n8n-data",),
    "directus": ("directus-uploads", "directus-extensions"),
}
STAMP = "%Y%m%dT%H%M%SZ"  # a backup's directory name, in UTC


def unit(cfg):
    return f"{cfg.stack.stack_name}-backup"


def app_volumes(cfg):
    return {app: APP_VOLUMES[app] for app in cfg.stack.apps}


class Backups(FactBase):
    """Complete backups under backup_dir (oldest first), and the backup unit's last result."""

    def command(self, backup_dir, unit_name):
        return (
            f"ls -1 {shlex.quote(backup_dir)} 2>/dev/null | grep -E '^[0-9]{{8}}T[0-9]{{6}}Z$' | sed 's/^/backup /'; "
            f'echo "result $(systemctl show -p Result --value {shlex.quote(unit_name)}.service 2>/dev/null)"; '
            'echo "now $(date -u +%s)"'
        )

    @staticmethod
    def default():
        return {"backups": [], "result": "", "now": 0}

    def process(self, output):
        state = self.default()
        for line in output:
            kind, _, value = line.partition(" ")
            if kind == "backup":
                state["backups"].append(value.strip())
            elif kind in ("result", "now"):
                state[kind] = int(value) if kind == "now" and value.strip().isdigit() else value.strip()
        state["backups"].sort()
        return state


def age_hours(name, now):
    """Hours since the backup named `name` (its UTC start time) was taken, at epoch `now`."""
    return (now - calendar.timegm(time.strptime(name, STAMP))) / 3600


def script_vars(cfg):
    """What the backup and restore scripts and the units are rendered with."""
    return dict(
        cfg=cfg,
        root=cfg.stack.stack_root,
        unit=unit(cfg),
        volumes=[v for vols in app_volumes(cfg).values() for v in vols],
        app_volumes=app_volumes(cfg),
        app_services=app_services(cfg),
        # Not the PITR repository's passphrase: the repository on this host is encrypted with the current one.
        generated=[name for name in GENERATED_SECRETS if name != "pgbackrest_cipher_pass"],
        issued={app: paths for app, paths in ISSUED.items() if app in cfg.stack.apps},
        kept_state=sorted({p for paths in ISSUED.values() for p in paths if p.startswith("state/")}),
    )


def managed_dirs(cfg):
    """The directories this layer writes files into (converge.scan reads each once a run)."""
    return ["/etc/systemd/system", cfg.backup.backup_dir]


def apply(cfg, installed):
    """Scripts and units; returns the units to keep running and enabled."""
    root, name = cfg.stack.stack_root, unit(cfg)
    if cfg.backup.backup_offsite:
        ensure_packages("restic for the off-host copy", ["restic"], installed)
    converge.directory(
        name=f"Backup directory {cfg.backup.backup_dir}",
        path=cfg.backup.backup_dir,
        user="root",
        group="root",
        mode="700",
    )
    template_vars = script_vars(cfg)
    for script in ("backup", "restore"):
        converge.template(
            name=f"{script.capitalize()} script",
            src=f"templates/backup/{script}.sh.j2",
            dest=f"{root}/bin/{script}.sh",
            mode="700",
            create_remote_dir=False,
            **template_vars,
        )
    changed = [
        converge.template(
            name=f"{name}.{kind}",
            src=f"templates/backup/backup.{kind}.j2",
            dest=f"/etc/systemd/system/{name}.{kind}",
            mode="644",
            **template_vars,
        )
        for kind in ("service", "timer")
    ]
    reload = systemd.daemon_reload(
        name="systemd reloaded for the backup units", _if=lambda: any(op.did_change() for op in changed)
    )
    systemd.service(
        name=f"{name}.timer restarted on its new schedule",
        service=f"{name}.timer",
        restarted=True,
        _if=reload.did_change,
    )
    return {u: (True, True) for u in units(cfg)}


def units(cfg):
    """The units this layer keeps running and enabled."""
    return [f"{unit(cfg)}.timer"]


def run_now(cfg, reason):
    """The backup, now, through its unit (so its log and result are where the timer's are)."""
    return server.shell(name=f"Backup taken: {reason}", commands=[f"systemctl start {unit(cfg)}.service"])


def backup_needed(cfg, backups):
    """Why this run takes a backup: none on the host, the newest stale, or the last run failed ("" if none of these)."""
    if not backups["backups"]:
        return "the first one on this host"
    if age_hours(backups["backups"][-1], backups["now"]) > cfg.backup.backup_max_age_hours:
        return f"the newest is older than backup_max_age_hours ({cfg.backup.backup_max_age_hours})"
    if backups["result"] not in ("success", ""):
        return f"the last run ended in {backups['result']}"
    return ""


def backup_if_needed(cfg):
    """The audit's backup checks, repaired: a fresh backup when it has none, a stale one, or a failed last run."""
    reason = backup_needed(cfg, converge.fact(Backups, backup_dir=cfg.backup.backup_dir, unit_name=unit(cfg)))
    if reason:
        run_now(cfg, reason)


def reads(cfg):
    """The facts this layer reads on the primary, for converge.read_ahead."""
    return [(Backups, {"backup_dir": cfg.backup.backup_dir, "unit_name": unit(cfg)})]
