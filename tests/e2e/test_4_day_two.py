"""Day two, end to end: upgrades by rerun that keep every row, a failed upgrade and the way
back, the PostgreSQL major-version guard, faults (Docker daemon restart, disk full during a
backup), and a backup restored over a destroyed stack and service by service."""

import json
import secrets

import pytest

from tools.inbound_client import Host

from conftest import (
    APPS,
    DC,
    OFFLINE_ARCHIVE,
    SANDBOX_IMAGES,
    UPGRADES,
    changed,
    psql,
    read_app_items,
    redis,
    wait_healthy,
    write_app_items,
)

pytestmark = pytest.mark.usefixtures("upgrade_images")
ROOT = "/opt/msgplatform"
BACKUPS = "/var/backups/msgplatform"
BACKUP = "systemctl start msgplatform-backup.service"
# Files written into each app volume (through the app's container) and the edge's directory.
VOLUME_FILES = {
    "chatwoot-web": "/app/storage/day-two.txt",
    "n8n": "/home/node/.n8n/day-two.txt",
    "directus": "/directus/uploads/day-two.txt",
}


def write_data(sandbox, mark, rows=50):
    """`rows` rows in each app database, a key in each app's Redis database, a file per volume."""
    for app in APPS:
        psql(
            sandbox,
            app,
            "create table if not exists day_two (n int, v text); "
            f"insert into day_two select n, '{mark}-' || n from generate_series(1, {rows}) n",
            user=app,
        )
    for index in range(3):
        redis(sandbox, "-n", str(index), "set", "day-two", mark)
    for service, path in VOLUME_FILES.items():
        sandbox.sh(f"{DC} exec -T {service} sh -c 'echo {mark} >> {path}'")


def read_data(sandbox):
    rows = {
        app: psql(
            sandbox, app, "select md5(string_agg(n || v, ',' order by n, v)) || ' ' || count(*) from day_two", user=app
        )
        for app in APPS
    }
    keys = [redis(sandbox, "-n", str(index), "get", "day-two") for index in range(3)]
    volume_files = {s: sandbox.sh(f"{DC} exec -T {s} cat {p}", check=False) for s, p in VOLUME_FILES.items()}
    return rows, keys, volume_files


def started(sandbox):
    """container -> (image, start time)"""
    lines = sandbox.sh(
        "docker ps --format '{{.Names}}' | xargs docker inspect -f '{{.Name}} {{.Config.Image}} {{.State.StartedAt}}'"
    ).split("\n")
    return {name.lstrip("/"): rest for name, _, rest in (line.partition(" ") for line in lines if line)}


def backups(sandbox):
    return sandbox.sh(f"ls -1 {BACKUPS} | grep -E '^[0-9]{{8}}T[0-9]{{6}}Z$' || true").split()


def images(**changes):
    return "images=" + json.dumps({**SANDBOX_IMAGES, **changes})


def test_first_backup_taken_and_audited(sandbox):
    assert backups(sandbox), "the deploy took no first backup"
    rc, failed, log = sandbox.audit("tests/audit/test_backup.py")
    assert rc == 0, log[-3000:]


def test_docker_daemon_restart_keeps_containers_running(sandbox):
    write_data(sandbox, "daemon")
    before, data = started(sandbox), read_data(sandbox)
    sandbox.sh("systemctl restart docker")
    wait_healthy(sandbox)
    # live-restore: the same containers, never restarted, through the daemon's restart.
    assert started(sandbox) == before
    assert read_data(sandbox) == data


def test_upgrade_of_postgres_and_redis_keeps_every_row(sandbox):
    write_data(sandbox, "upgrade")
    # The newest backup's name, not their count: at backup_keep (7) a new one removes the oldest.
    data, before, newest = read_data(sandbox), started(sandbox), backups(sandbox)[-1]
    # These two come as an air-gapped server gets them: offline_images, an archive the deploy
    # uploads and loads (they are not in the sandbox's registry).
    upgraded = (
        images(postgres=UPGRADES["postgres"], redis=UPGRADES["redis"]),
        "--data",
        f"offline_images={OFFLINE_ARCHIVE}",
    )
    rc, results, log = sandbox.deploy("--data", *upgraded)
    assert rc == 0, log[-3000:]
    assert "Backup taken: before upgrading postgres, redis" in changed(results)
    assert "Images loaded" in changed(results)
    assert backups(sandbox)[-1] > newest
    after = started(sandbox)
    # PostgreSQL runs the upgraded image with pgBackRest added (pitr.py), built on the host from it.
    revision = '{{index .Config.Labels "org.opencontainers.image.revision"}}'
    assert (
        sandbox.sh(f"docker inspect -f '{revision}' msgplatform-postgres-1").strip()
        == UPGRADES["postgres"].rsplit(":")[-1]
    )
    assert after["msgplatform-redis-1"].split()[0] == UPGRADES["redis"]
    # Only the services whose image changed were recreated.
    untouched = {c for c in before if c not in ("msgplatform-postgres-1", "msgplatform-redis-1")}
    assert {c: after[c] for c in untouched} == {c: before[c] for c in untouched}
    wait_healthy(sandbox)
    assert read_data(sandbox) == data
    rc, results, log = sandbox.deploy("--data", *upgraded)
    assert changed(results) == [], f"a rerun changed: {changed(results)}"
    # Back to the group data's images: the same path, the same rows.
    rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    assert read_data(sandbox) == data


def test_failed_upgrade_explains_and_the_old_images_restore_service(sandbox):
    newest = backups(sandbox)[-1]
    rc, results, log = sandbox.deploy("--data", images(chatwoot=UPGRADES["chatwoot_broken"]))
    assert rc != 0
    assert "DEPLOY FAILED" in log and f"chatwoot: {SANDBOX_IMAGES['chatwoot']}" in log, log[-3000:]
    assert backups(sandbox)[-1] > newest, "no backup was taken before the upgrade"
    # The migration runs before any container is replaced: Chatwoot still serves.
    assert started(sandbox)["msgplatform-chatwoot-web-1"].split()[0] == SANDBOX_IMAGES["chatwoot"]
    rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    rc, failed, log = sandbox.audit("tests/audit/test_stack.py")
    assert rc == 0, log[-3000:]


def test_postgres_major_version_change_is_refused_before_anything(sandbox):
    compose = sandbox.sh(f"sha256sum {ROOT}/compose.yaml")
    rc, results, log = sandbox.deploy("--data", images(postgres="sandbox.local/postgres-pg16-pgvector:r1"))
    assert rc != 0 and results is None
    assert "is PostgreSQL 16, but the data on this host is PostgreSQL 15" in log
    assert "postgres_major_upgrade" in log and "nothing was changed" in log
    assert sandbox.sh(f"sha256sum {ROOT}/compose.yaml") == compose


# The README's way back from a major upgrade: the old data, kept aside, put back.
MAJOR_ROLLBACK = f"""{DC} stop
mp() {{ docker volume inspect -f '{{{{.Mountpoint}}}}' msgplatform_$1; }}
[ -f "$(mp postgres-data-pg15)/PG_VERSION" ] ||
  {{ echo "no PostgreSQL 15 data set aside: nothing to go back to"; exit 1; }}
find "$(mp postgres-data)" -mindepth 1 -delete
find "$(mp postgres-data-pg15)" -mindepth 1 -maxdepth 1 -exec mv -t "$(mp postgres-data)" {{}} +
docker volume rm msgplatform_postgres-data-pg15
"""


def test_postgres_major_upgrade_by_dump_and_restore_and_back(sandbox):
    write_data(sandbox, "major")
    data = read_data(sandbox)
    upgrade = ("--data", images(postgres=UPGRADES["postgres_major"]), "--data", "postgres_major_upgrade=true")
    rc, results, log = sandbox.deploy(*upgrade)
    assert rc == 0, log[-3000:]
    assert "PostgreSQL 15 data set aside in volume msgplatform_postgres-data-pg15" in changed(results)
    assert psql(sandbox, "postgres", "show server_version_num")[:2] == "17"
    wait_healthy(sandbox)
    assert read_data(sandbox) == data
    rc, results, log = sandbox.deploy(*upgrade)
    assert rc == 0 and changed(results) == [], f"a rerun changed: {changed(results)}"

    sandbox.sh(MAJOR_ROLLBACK)
    rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    assert psql(sandbox, "postgres", "show server_version_num")[:2] == "15"
    wait_healthy(sandbox)
    assert read_data(sandbox) == data


# What a major upgrade leaves when it stops right after setting the old data aside
# (the data layer's "set aside" operation, by hand): the backup named, the old data moved.
INTERRUPTED_UPGRADE = f"""{BACKUP}
basename "$(ls -1d {BACKUPS}/[0-9]*T[0-9]*Z | sort | tail -n 1)" > {ROOT}/state/pg-major-upgrade
{DC} stop && {DC} rm -f postgres && docker volume create msgplatform_postgres-data-pg15 >/dev/null
mp() {{ docker volume inspect -f '{{{{.Mountpoint}}}}' msgplatform_$1; }}
find "$(mp postgres-data)" -mindepth 1 -maxdepth 1 -exec mv -t "$(mp postgres-data-pg15)" {{}} +
"""


def test_interrupted_major_upgrade_is_finished_by_the_rerun(sandbox):
    data = read_data(sandbox)
    sandbox.sh(INTERRUPTED_UPGRADE)
    rc, results, log = sandbox.deploy(
        "--data", images(postgres=UPGRADES["postgres_major"]), "--data", "postgres_major_upgrade=true"
    )
    assert rc == 0, log[-3000:]
    assert any(name.startswith("Databases restored into PostgreSQL 17") for name in changed(results))
    assert psql(sandbox, "postgres", "show server_version_num")[:2] == "17"
    wait_healthy(sandbox)
    assert read_data(sandbox) == data
    assert sandbox.sh(f"ls {ROOT}/state").split().count("pg-major-upgrade") == 0
    sandbox.sh(MAJOR_ROLLBACK)
    rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    assert read_data(sandbox) == data


def test_disk_full_during_backup_fails_loudly_and_keeps_old_backups(sandbox):
    # A small file system over the backup directory: two backups fit, then it is filled. Sized
    # from the last backup: the n8n database grows with the executions of the tests before.
    sandbox.sh(BACKUP)
    size_kib = int(sandbox.sh(f"du -sk {BACKUPS}/{backups(sandbox)[-1]} | cut -f1"))
    sandbox.sh(f"mount -t tmpfs -o size={3 * size_kib + 1024}k,mode=700 tmpfs {BACKUPS}")
    try:
        sandbox.sh(BACKUP)
        [kept] = backups(sandbox)
        sandbox.sh(
            f"dd if=/dev/zero of={BACKUPS}/filler bs=1k count=$(( $(df --output=avail -k {BACKUPS} | tail -1) - 24 )) "
            "2>/dev/null"
        )
        failed = sandbox.sh(f"{BACKUP}; echo rc=$?", check=False)
        assert "rc=0" not in failed
        assert sandbox.sh("systemctl show -p Result --value msgplatform-backup.service").strip() != "success"
        journal = sandbox.sh("journalctl -u msgplatform-backup.service -n 30 --no-pager")
        assert "FAILED" in journal and "no space left on device" in journal.lower(), journal
        assert backups(sandbox) == [kept] and not sandbox.sh(f"ls -A {BACKUPS} | grep partial || true").strip()
        sandbox.sh(f"cd {BACKUPS}/{kept} && sha256sum -c --quiet SHA256SUMS")
        wait_healthy(sandbox, timeout=30)  # the services never noticed
        rc, failed, log = sandbox.audit("tests/audit/test_backup.py")
        assert failed == ["test_last_backup_run_succeeded"], log[-3000:]
        # A backup older than backup_max_age_hours is reported stale.
        sandbox.sh(f"rm {BACKUPS}/filler && mv {BACKUPS}/{kept} {BACKUPS}/20200101T000000Z && {BACKUP}")
        sandbox.sh(f"rm -rf $(ls -1d {BACKUPS}/2*/ | tail -n 1)")
        rc, failed, log = sandbox.audit("tests/audit/test_backup.py")
        assert failed == ["test_newest_backup_is_fresh"], log[-3000:]
    finally:
        sandbox.sh(f"umount {BACKUPS}", check=False)
    sandbox.sh(BACKUP)
    rc, failed, log = sandbox.audit("tests/audit/test_backup.py")
    assert rc == 0, log[-3000:]


RESTIC_PASSWORD = secrets.token_urlsafe(24)
# STAND-IN for an off-host repository (SFTP or S3 cannot be reached here): a restic
# repository in a directory of the host itself. It proves the wiring (package, secret,
# init, backup, retention), not the transport.
OFFSITE = "/srv/restic-stand-in"


def test_offsite_copy_with_restic(sandbox):
    env = {"PLATFORM_RESTIC_PASSWORD": RESTIC_PASSWORD}
    rc, results, log = sandbox.deploy("--data", f"backup_offsite={OFFSITE}", env=env)
    assert rc == 0, log[-3000:]
    assert "Operator secret restic_password stored" in changed(results)
    sandbox.sh(BACKUP)
    taken = backups(sandbox)[-1]
    restic = f"set -a; . {ROOT}/secrets/restic.env; restic -r {OFFSITE}"
    snapshots = json.loads(sandbox.sh(f"{restic} snapshots --json"))
    assert [s["paths"] for s in snapshots][-1] == [f"{BACKUPS}/{taken}"]
    # What comes back from the repository passes the backup's own checksums.
    sandbox.sh(
        f"{restic} restore latest --target /tmp/from-restic && cd /tmp/from-restic{BACKUPS}/{taken} "
        "&& sha256sum -c --quiet SHA256SUMS && rm -rf /tmp/from-restic"
    )
    assert sandbox.sh(f"stat -c '%U %a' {ROOT}/secrets/restic.env").strip() == "root 600"
    rc, results, log = sandbox.deploy("--data", f"backup_offsite={OFFSITE}", env=env)
    assert changed(results) == [], f"a rerun changed: {changed(results)}"
    assert not any(RESTIC_PASSWORD in output for output in sandbox.outputs), "the restic password was printed"
    rc, results, log = sandbox.deploy()  # back to local backups only
    assert rc == 0, log[-3000:]


def upgrade_the_real_apps(fresh):
    """The previous releases of n8n and Directus, then the current ones: each runs its own
    migrations at start, and the workflow and the item come through."""
    rc, results, log = fresh.deploy(
        "--data", images(n8n=UPGRADES["n8n_previous"], directus=UPGRADES["directus_previous"])
    )
    assert rc == 0, log[-3000:]
    write_app_items(fresh, "before-upgrade")
    migrations = {"n8n": "select count(*) from migrations", "directus": "select count(*) from directus_migrations"}
    before = {app: int(psql(fresh, app, query, user=app)) for app, query in migrations.items()}
    rc, results, log = fresh.deploy()
    assert rc == 0, log[-3000:]
    assert "Backup taken: before upgrading n8n, n8n-worker, directus" in changed(results)
    wait_healthy(fresh)
    assert read_app_items(fresh) == ("e2e before-upgrade", "before-upgrade")
    after = {app: int(psql(fresh, app, query, user=app)) for app, query in migrations.items()}
    assert all(after[app] >= before[app] > 0 for app in migrations), (before, after)
    versions = fresh.sh(f"{DC} exec -T n8n n8n --version").strip()
    assert versions == SANDBOX_IMAGES["n8n"].rsplit(":", 1)[1].split("-")[0], versions
    print(f"migrations before and after the upgrade: {before} -> {after}")


def test_the_stack_destroyed_the_real_apps_upgraded_and_the_backup_restored(sandbox):
    """A backup, then everything of the stack gone (containers, databases, volumes, secrets, state), as on a new
    host; the real apps deployed at their previous releases and upgraded by a rerun (their migrations run); then the
    backup restored over them: every row, key and file, the secrets, the apps' own data as the apps read it."""
    mark = secrets.token_hex(4)
    write_data(sandbox, mark)
    write_app_items(sandbox, mark)
    sandbox.sh(BACKUP)
    taken, data = backups(sandbox)[-1], read_data(sandbox)
    encryption_key = sandbox.sh(f"cat {ROOT}/secrets/n8n_encryption_key")

    sandbox.sh(f"{DC} down -v && rm -rf {ROOT} /var/backups/msgplatform-pitr")  # PITR's repository too: a new host
    upgrade_the_real_apps(sandbox)
    assert psql(sandbox, "n8n", "select count(*) from pg_tables where tablename = 'day_two'") == "0"
    assert sandbox.sh(f"cat {ROOT}/secrets/n8n_encryption_key") != encryption_key

    out = sandbox.sh(f"{ROOT}/bin/restore.sh {taken} 2>&1; echo rc=$?")
    assert "restored (secrets chatwoot n8n directus redis edge)" in out and out.endswith("rc=0\n"), out[-3000:]
    wait_healthy(sandbox)
    assert read_data(sandbox) == data
    # The real apps read their own data back: n8n exports the workflow, Directus serves the item.
    assert read_app_items(sandbox) == (f"e2e {mark}", mark)
    assert sandbox.sh(f"cat {ROOT}/secrets/n8n_encryption_key") == encryption_key
    rc, failed, log = sandbox.audit()
    assert rc == 0, log[-3000:]
    rc, results, log = sandbox.deploy()
    assert rc == 0 and changed(results) == [], f"a rerun after the restore changed: {changed(results)}"

    # The tokens the backed-up Chatwoot issued came back with its database: it takes them. One it
    # refuses (a backup of an older release holds none) is asked of Chatwoot again by the next bootstrap.
    chatwoot = Host(sandbox.name, sandbox.port).chatwoot
    assert "payload" in chatwoot("GET", "/inboxes")
    sandbox.sh(f"echo not-a-token > {ROOT}/secrets/chatwoot_api_token && rm {ROOT}/state/apps-bootstrapped")
    assert "error" in chatwoot("GET", "/inboxes")
    rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    assert "payload" in chatwoot("GET", "/inboxes")


def test_restore_of_one_service_leaves_the_others_alone(sandbox):
    sandbox.sh(BACKUP)
    before = read_data(sandbox)
    psql(sandbox, "n8n", "delete from day_two", user="n8n")
    psql(sandbox, "chatwoot", "insert into day_two values (0, 'after the backup')", user="chatwoot")
    chatwoot = psql(sandbox, "chatwoot", "select count(*) from day_two", user="chatwoot")
    out = sandbox.sh(f"{ROOT}/bin/restore.sh latest n8n 2>&1; echo rc=$?")
    assert out.endswith("rc=0\n"), out[-3000:]
    wait_healthy(sandbox)
    rows, keys, files = read_data(sandbox)
    assert rows["n8n"] == before[0]["n8n"]
    assert psql(sandbox, "chatwoot", "select count(*) from day_two", user="chatwoot") == chatwoot


def test_restore_refuses_a_damaged_backup(sandbox):
    newest = backups(sandbox)[-1]
    sandbox.sh(f"printf x >> {BACKUPS}/{newest}/db-n8n.dump")
    out = sandbox.sh(f"{ROOT}/bin/restore.sh {newest} n8n 2>&1; echo rc=$?", check=False)
    assert "fails its checksums; nothing was changed" in out and "rc=1" in out
    rc, failed, log = sandbox.audit("tests/audit/test_backup.py")
    assert failed == ["test_every_backup_matches_its_checksums"], log[-3000:]
    sandbox.sh(f"rm -rf {BACKUPS}/{newest}")
