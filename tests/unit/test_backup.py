"""The backup layer as rendered and as checked: scripts, units, the freshness rule, the
PostgreSQL major version read from group data."""

import subprocess

import jinja2
import pytest

from platform_deploy import backup, rollout, secrets, upgrade
from tests.unit.test_config import ROOT, load, refused

TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "templates"), undefined=jinja2.StrictUndefined)


def render(name, cfg):
    return TEMPLATES.get_template(name).render(**backup.script_vars(cfg))


@pytest.mark.parametrize("overrides", [{}, {"apps": ["n8n"]}, {"backup_offsite": "sftp:bk@backup.example.org:/srv/r"}])
@pytest.mark.parametrize("script", ["backup/backup.sh.j2", "backup/restore.sh.j2"])
def test_scripts_are_valid_shell(script, overrides):
    supplied = {"restic_password": "x"} if overrides.get("backup_offsite") else None
    text = render(script, load(supplied=supplied, **overrides))
    assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0


def test_backup_covers_each_app_database_and_volume():
    text = render("backup/backup.sh.j2", load(apps=["chatwoot", "directus"]))
    assert "pg_dump -U postgres -Fc chatwoot" in text and "pg_dump -U postgres -Fc directus" in text
    assert "Fc n8n" not in text and "volume-n8n-data" not in text
    assert all(f"volume {v}" in text for v in ("chatwoot-storage", "directus-uploads", "directus-extensions"))
    assert "head -n -7" in text  # backup_keep
    assert "restic" not in text


def test_restore_brings_back_what_chatwoots_database_issued_with_it():
    """The tokens and ids the bootstrap keeps open the database they came from: restored with it."""
    bootstrap = "".join(
        p.read_text() for p in (ROOT / "files/bootstrap").glob("apps_*.py") if p.name != "apps_bootstrap.py"
    )
    assert all(path.split("/")[1] in bootstrap for path in backup.ISSUED["chatwoot"])
    text = render("backup/restore.sh.j2", load())
    assert "take secrets/chatwoot_api_token secrets/chatwoot_automation_token" in text
    assert "state/chatwoot-account-id state/chatwoot-automation-user-id" in render("backup/backup.sh.j2", load())
    assert "take secrets/chatwoot" not in render("backup/restore.sh.j2", load(apps=["n8n"]))


def test_offsite_copy_needs_its_password_and_s3_keys():
    assert "PLATFORM_RESTIC_PASSWORD" in refused(backup_offsite="sftp:bk@backup.example.org:/srv/r")
    message = refused(backup_offsite="s3:https://s3.example.org/bucket", supplied={"restic_password": "x"})
    assert "PLATFORM_RESTIC_AWS_ACCESS_KEY_ID" in message and "PLATFORM_RESTIC_AWS_SECRET_ACCESS_KEY" in message
    cfg = load(backup_offsite="sftp:bk@backup.example.org:/srv/r", supplied={"restic_password": "x"})
    assert secrets.secret_env(cfg)["restic"] == {"RESTIC_PASSWORD": "restic_password"}
    assert "restic backup" in render("backup/backup.sh.j2", cfg)


def test_timer_runs_on_the_schedule_and_catches_up():
    text = render("backup/backup.timer.j2", load(backup_schedule="*-*-* 02:00:00"))
    assert "OnCalendar=*-*-* 02:00:00" in text and "Persistent=true" in text


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("backup_dir", "/", "dedicated absolute directory"),
        ("backup_dir", "relative/dir", "dedicated absolute directory"),
        ("backup_schedule", "03:00\nExecStart=/bin/evil", "systemd calendar expression"),
        ("backup_keep", 0, "not a count"),
        ("backup_max_age_hours", "26", "not a number of hours"),
        ("backup_offsite", "ftp://x", "not a restic repository"),
        ("postgres_major", 9, "not a PostgreSQL major version"),
        ("postgres_major_upgrade", "yes", "postgres_major_upgrade"),
    ],
)
def test_bad_backup_and_postgres_values_refused(key, value, fragment):
    message = refused(**{key: value})
    assert key in message and fragment in message


@pytest.mark.parametrize(
    "image, major",
    [
        ("pgvector/pgvector:0.8.0-pg15", 15),
        ("postgres:16.4", 16),
        ("postgres:17", 17),
        ("sandbox.local/postgres-pg15-pgvector:r1", 15),
        ("registry.example.org/postgresql16:2024-01", 16),
    ],
)
def test_postgres_major_read_from_the_image(image, major):
    assert load(images={**load().stack.images, "postgres": image}).data.postgres_major == major


def test_postgres_major_unreadable_asks_for_the_key():
    message = refused(images={**load().stack.images, "postgres": "example.org/db:r7"})
    assert "postgres_major" in message
    assert (
        load(images={**load().stack.images, "postgres": "example.org/db:r7"}, postgres_major=15).data.postgres_major
        == 15
    )


def test_backup_age_in_hours():
    now = 1_800_000_000  # 2027-01-15T08:00:00Z
    assert backup.age_hours("20270115T080000Z", now) == 0
    assert backup.age_hours("20270114T060000Z", now) == 26


def test_backups_fact_keeps_complete_backups_in_order():
    state = backup.Backups().process(
        ["backup 20270102T031500Z", "backup 20270101T031500Z", "result exit-code", "now 5"]
    )
    assert state == {"backups": ["20270101T031500Z", "20270102T031500Z"], "result": "exit-code", "now": 5}


def test_failed_upgrade_message_names_the_images_that_ran():
    cfg = load()
    command = rollout.explain_failure(cfg, "docker compose up")
    assert command.startswith("docker compose up || ") and f"cat {cfg.stack.stack_root}/state/images" in command
    assert subprocess.run(["sh", "-n", "-c", command]).returncode == 0
    assert upgrade.running_images(cfg).splitlines()[0] == f"postgres: {cfg.stack.images['postgres']}"
    assert "chatwoot: " in upgrade.running_images(cfg)
