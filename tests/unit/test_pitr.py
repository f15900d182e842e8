"""Point-in-time recovery as rendered, and the drift the deploy and the audit read back (pitr.py); the drill
on a live host is tests/e2e/test_6_pitr.py."""

import json

from platform_deploy import cluster, config, pitr, pitr_state, stack
from platform_deploy.secrets import SECRET_ENV
from tests.unit.test_cluster import GOOD, RAM_8G, topology_of
from tests.unit.test_config import load, refused
from tests.unit.test_stack import TEMPLATES

NOW = 1_800_000_000


def state(
    current="000000010000000000000030",
    archived="00000001000000000000002F",
    archived_at=NOW - 40,
    failing="f",
    wal=(),
    **info,
):
    document = {
        "status": {"code": 0, "message": "ok"},
        "db": [{"id": 1}],
        "backup": [{"type": "full", "database": {"id": 1}, "timestamp": {"stop": NOW - 3600}}],
    }
    document.update(info)
    return pitr_state.PitrState().process(
        [
            "info " + json.dumps([document]),
            f"current {current}|{failing}",
            f"archived {archived_at} {archived}-0123abcd.gz",
            f"now {NOW}",
            *wal,
        ]
    )


def test_postgres_runs_the_pinned_image_with_pgbackrest_and_archives_every_30_s():
    cfg = load()
    service = stack.compose_document(cfg)["services"]["postgres"]
    assert service["image"] == pitr.postgres_image(cfg) != cfg.stack.images["postgres"]
    assert service["init"] is True and service["stop_grace_period"] == "120s"
    assert "pg_reload_conf()" in service["healthcheck"]["test"][1]  # wakes a checkpointer started in recovery
    assert "archive_command=pgbackrest --stanza=main archive-push %p" in service["command"]
    assert "archive_timeout=30" in service["command"] and "archive_mode=on" in service["command"]
    assert f"{cfg.pitr.pitr_repo_dir}:{pitr.REPO_IN_CONTAINER}" in service["volumes"]
    assert SECRET_ENV["postgres"]["PGBACKREST_REPO1_CIPHER_PASS"] == "pgbackrest_cipher_pass"
    # The tag follows the pinned image: another base, another image.
    other = load(images={"postgres": "pgvector/pgvector:0.8.1-pg15"})
    assert pitr.postgres_image(other) != pitr.postgres_image(cfg)


def test_without_pitr_postgres_runs_the_pinned_image_as_before():
    cfg = load(pitr=False)
    service = stack.compose_document(cfg)["services"]["postgres"]
    assert service["image"] == cfg.stack.images["postgres"] and "init" not in service
    assert not any("archive" in option for option in service["command"])


def test_a_current_archive_and_a_recent_full_backup_pass():
    assert pitr_state.drift(state()) == {}
    # An idle database: nothing written since the newest archived file, however old it is.
    assert pitr_state.drift(state(archived_at=NOW - 7200)) == {}


def test_an_archive_that_stopped_a_missing_stanza_and_an_old_full_backup_are_named():
    found = pitr_state.drift(state(current="000000010000000000000035", archived_at=NOW - 600))
    assert "the WAL archive is behind" in found["archive"] and "10 minutes old" in found["archive"]
    # A push that fails is named at once, whatever the files' times say (another cluster's WAL after an upgrade).
    assert "the WAL archive is failing" in pitr_state.drift(state(failing="t"))["archive"]
    # Handed over to pgBackRest yet not in the repository: dropped, past the queue's maximum.
    dropping = pitr_state.drift(state(failing="f|000000010000000000000031"))["archive"]
    assert "dropping WAL" in dropping and "not writable" in dropping
    assert pitr_state.drift(state(failing="f|00000001000000000000002F", wal=["handed-in-repository"])) == {}
    assert pitr_state.drift(state(failing="f|00000002.history")) == {}  # not a segment: nothing to compare
    old = {"backup": [{"type": "full", "database": {"id": 1}, "timestamp": {"stop": NOW - 9 * 86400}}]}
    assert pitr_state.drift(state(**old))["full"] == "the last full pgBackRest backup is older than 8 days"
    missing = pitr_state.drift(state(status={"code": 1, "message": "missing stanza path"}, backup=[]))
    assert "missing stanza path" in missing["stanza"] and missing["full"] == "pgBackRest has no full backup"
    assert pitr_state.segment("00000002000000010000000A") == 0x10A
    # After a major upgrade (stanza-upgrade: a second database), the older full backups cannot restore it.
    upgraded = pitr_state.drift(state(db=[{"id": 1}, {"id": 2}]))
    assert upgraded["full"] == "pgBackRest has no full backup"


def test_a_repository_inside_dockers_directory_is_refused():
    assert "pitr_repo_dir" in refused(pitr_repo_dir="/var/lib/docker/pitr")


def test_wal_missing_since_the_last_backup_began_is_a_gap_a_backup_closes():
    backups = [
        {
            "type": "full",
            "database": {"id": 1},
            "timestamp": {"stop": NOW - 7200},
            "archive": {"start": "0000000100000000000000F0"},
        },
        {
            "type": "diff",
            "database": {"id": 1},
            "timestamp": {"stop": NOW - 3600},
            "archive": {"start": "000000020000000100000002"},
        },
    ]
    start = 0x102  # the newest backup's first WAL file, whatever its timeline

    def gap(*wal):
        return pitr_state.drift(state(backup=backups, wal=wal)).get("gap", "")

    assert gap(f"wal-range {start} {start + 9}") == ""
    # WAL missing before the newest backup does not matter; missing after its start does, however it is found.
    assert gap(f"wal-range {start - 5} {start - 3}", f"wal-range {start - 1} {start + 4}") == ""
    assert "from 1/07000000 missing" in gap(f"wal-range {start} {start + 4}", f"wal-range {start + 6} {start + 8}")
    assert "from 1/02000000 missing" in gap(f"wal-range {start + 1} {start + 4}")
    # A timeline that began after the backup (a restore): its WAL from where it began, its parents' before.
    assert gap("timeline-start 1/08000000", f"wal-range {start + 6} {start + 9}") == ""
    assert "from 1/08000000 missing" in gap("timeline-start 1/08000000", f"wal-range {start + 7} {start + 9}")
    # Nothing archived since (a backup just taken, or no WAL read): no gap is claimed.
    assert pitr_state.drift(state(backup=backups)) == {}


BUCKET = {
    "pitr_repo_s3_bucket": "msgplatform-pitr",
    "pitr_repo_s3_endpoint": "s3.eu-central-1.amazonaws.com",
    "pitr_repo_s3_region": "eu-central-1",
}
KEYS = {"pgbackrest_s3_key": "AKIAEXAMPLE", "pgbackrest_s3_key_secret": "secret-example"}


def test_a_bucket_repository_is_reached_over_the_network_with_its_keys_and_no_host_directory():
    cfg = load(supplied=KEYS, **BUCKET, pitr_repo_s3_ca_file=__file__)
    service = stack.compose_document(cfg)["services"]["postgres"]
    assert not any(pitr.REPO_IN_CONTAINER in volume for volume in service["volumes"])
    assert f"./config/{pitr.S3_CA_FILE}:{pitr.ca_file(cfg)}:ro" in service["volumes"]
    assert "repository" in service["networks"] and "internal" not in stack.compose_document(cfg)["networks"].get(
        "repository", {}
    )
    assert pitr.managed_dirs(cfg) == []
    conf = render_conf(cfg)
    for line in ("repo1-type=s3", "repo1-s3-bucket=msgplatform-pitr", "repo1-s3-region=eu-central-1"):
        assert line in conf
    assert f"repo1-storage-ca-file={pitr.ca_file(cfg)}" in conf and "repo1-cipher-type=aes-256-cbc" in conf
    assert SECRET_ENV["postgres"]["PGBACKREST_REPO1_S3_KEY"] == "pgbackrest_s3_key"
    assert "repo1-type" not in render_conf(load())  # the host's directory by default


def test_a_bucket_needs_its_keys_and_well_formed_settings():
    assert "PLATFORM_PGBACKREST_S3_KEY = None: missing, and pitr_s3 needs it" in refused(**BUCKET)
    assert "pitr_repo_s3_bucket = 'msgplatform-pitr': set while pitr is False" in refused(
        supplied=KEYS, **BUCKET, pitr=False
    )
    assert "pitr_repo_s3_endpoint = 'https://s3.example.org'" in refused(
        supplied=KEYS, **{**BUCKET, "pitr_repo_s3_endpoint": "https://s3.example.org"}
    )
    assert "pitr_repo_s3_uri_style = 'virtual'" in refused(supplied=KEYS, **BUCKET, pitr_repo_s3_uri_style="virtual")
    assert "pitr_repo_s3_bucket = 'pitr.example.org': has a dot" in refused(
        supplied=KEYS, **{**BUCKET, "pitr_repo_s3_bucket": "pitr.example.org"}
    )
    assert load(supplied=KEYS, **{**BUCKET, "pitr_repo_s3_bucket": "pitr.example.org"}, pitr_repo_s3_uri_style="path")
    assert "pitr_repo_s3_ca_file = '/nonexistent.pem': no such file" in refused(
        supplied=KEYS, **BUCKET, pitr_repo_s3_ca_file="/nonexistent.pem"
    )


def render_conf(cfg):
    return TEMPLATES.get_template("pgbackrest.conf.j2").render(
        cfg=cfg,
        stanza=pitr_state.STANZA,
        repo=pitr_state.REPO_IN_CONTAINER,
        spool=pitr.SPOOL,
        ca_file=pitr.ca_file(cfg),
    )


def test_with_a_bucket_a_replica_is_seeded_from_it_and_keeps_the_keys_to_read_it():
    def host(name, **overrides):
        return config.load({**GOOD, **overrides}, ram_mb=RAM_8G, supplied=KEYS, topology=topology_of(name))

    replica, primary, worker = host("db2", **BUCKET), host("db1", **BUCKET), host("w1", **BUCKET)
    service = stack.compose_document(replica)["services"]["postgres"]
    seed = service["command"][2]
    assert "pgbackrest --stanza=main --type=standby" in seed and "pg_basebackup" in seed  # the fallback
    assert service["image"] == pitr.postgres_image(replica) and "secrets/pgbackrest.env" in service["env_file"]
    assert not any("archive_command" in part for part in service["command"])  # only the primary archives
    assert set(cluster.BUCKET_KEYS) <= set(cluster.secret_names(replica))
    assert cluster.peer_secret_env(replica)["pgbackrest"] == cluster.BUCKET_ENV
    assert pitr.units(replica) == [] and pitr.units(primary) != []
    assert "pgbackrest" not in cluster.peer_secret_env(worker)
    # Without a bucket the replica is a base backup, with the pinned image.
    plain = host("db2")
    assert "pgbackrest" not in stack.compose_document(plain)["services"]["postgres"]["command"][2]
    assert stack.compose_document(plain)["services"]["postgres"]["image"] == plain.stack.images["postgres"]


def test_the_restore_script_is_python_for_either_repository_and_reaches_a_bucket_over_the_network():
    for cfg in (load(), load(supplied=KEYS, **BUCKET, pitr_repo_s3_ca_file=__file__)):
        text = TEMPLATES.get_template("backup/pitr-restore.py.j2").render(
            cfg=cfg, root="/opt/msgplatform", stanza="main", image="pitr", repo=pitr.REPO_IN_CONTAINER,
            spool=pitr.SPOOL, ca_file=pitr.ca_file(cfg), ca_on_host=f"/opt/msgplatform/config/{pitr.S3_CA_FILE}",
        )  # fmt: skip
        compile(text, "pitr-restore.py", "exec")
        assert ('"--network", "none"' in text) is not pitr.in_bucket(cfg)
        assert (pitr.REPO_IN_CONTAINER in text) is not pitr.in_bucket(cfg)


def test_an_archive_with_no_wal_file_yet_reads_as_nothing_archived():
    read = pitr_state.PitrState().process(["info [{}]", "current 000000010000000000000003|f|", "archived ", "now 5"])
    assert read["archived"] is None and read["archived_at"] == 0.0
