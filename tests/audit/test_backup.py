"""Backups: the timer, the last run, how old the newest backup is, every backup's checksums; with
point-in-time recovery, pgBackRest's stanza, the WAL archive's freshness and the last full backup."""

import pytest

from platform_deploy import backup, pitr, pitr_state

from conftest import run_fact

pytestmark = pytest.mark.roles("primary")  # replicas and worker hosts hold nothing of their own


@pytest.fixture(scope="module")
def backups(host, cfg):
    return run_fact(host, backup.Backups, cfg.backup.backup_dir, backup.unit(cfg))


def test_backup_timer_enabled_and_waiting(host, cfg):
    timer = host.service(f"{backup.unit(cfg)}.timer")
    assert timer.is_enabled and timer.is_running, "the backup timer is not enabled and active: no nightly backups"


def test_last_backup_run_succeeded(backups, cfg):
    assert backups["result"] == "success", (
        f"the last backup run failed ({backups['result']}): journalctl -u {backup.unit(cfg)}.service"
    )


def test_newest_backup_is_fresh(backups, cfg):
    assert backups["backups"], f"no backup in {cfg.backup.backup_dir}"
    newest = backups["backups"][-1]
    age = backup.age_hours(newest, backups["now"])
    assert age <= cfg.backup.backup_max_age_hours, (
        f"the newest backup, {newest}, is {age:.0f} h old "
        f"(backup_max_age_hours = {cfg.backup.backup_max_age_hours}): stale"
    )


def test_every_backup_matches_its_checksums(host, backups, cfg):
    bad = [
        name
        for name in backups["backups"]
        if host.run(f"cd {cfg.backup.backup_dir}/{name} && sha256sum -c --quiet SHA256SUMS").rc != 0
    ]
    assert not bad, f"backups that fail their SHA256SUMS: {bad}"


def test_backups_are_root_only(host, cfg):
    directory = host.file(cfg.backup.backup_dir)
    assert directory.is_directory and directory.user == "root" and directory.mode == 0o700


@pytest.fixture(scope="module")
def pitr_drift(host, cfg):
    if not pitr.enabled(cfg):
        pytest.skip("point-in-time recovery is off (pitr = False)")
    return pitr_state.drift(run_fact(host, pitr_state.PitrState, f"{cfg.stack.stack_name}-postgres-1"))


def test_pgbackrest_stanza_is_valid(pitr_drift):
    assert "stanza" not in pitr_drift, pitr_drift.get("stanza")


def test_wal_archive_is_current(pitr_drift):
    """The newest archived WAL is at most 5 minutes old, unless PostgreSQL has written nothing since."""
    assert "archive" not in pitr_drift, pitr_drift.get("archive")


def test_wal_archive_has_no_gap_since_the_newest_backup(pitr_drift):
    """No WAL dropped (past pitr_queue_max_mb) since the newest backup began: every later moment restores."""
    assert "gap" not in pitr_drift, pitr_drift.get("gap")


def test_last_full_pgbackrest_backup_is_at_most_8_days_old(host, cfg, pitr_drift):
    assert "full" not in pitr_drift, pitr_drift.get("full")
    for kind in ("full", "diff"):
        timer = host.service(f"{pitr.unit(cfg, kind)}.timer")
        assert timer.is_enabled and timer.is_running, f"the pgBackRest {kind} backup timer is not enabled and active"
