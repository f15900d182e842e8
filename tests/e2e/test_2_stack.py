"""The stack end to end (after test_foundation has deployed the host): data kept across a
container kill (a host restart: test_3_edge), databases repaired, Chatwoot prepared once per version,
secrets never shown."""

import json
import secrets
import time

import pytest

from conftest import APPS, DC, SANDBOX_IMAGES, UPGRADES, changed, psql, read_marks, wait_healthy, write_marks


def test_stack_is_up_with_data_written(sandbox):
    wait_healthy(sandbox)
    write_marks(sandbox, "one")
    assert read_marks(sandbox) == ({a: "one" for a in APPS}, {a: "one" for a in APPS})


@pytest.mark.parametrize("service", ["postgres", "redis", "chatwoot-web"])
def test_killed_container_comes_back_healthy_with_its_data(sandbox, service):
    # A crash, not a stop: SIGKILL to the container's process from the host (`docker kill`
    # counts as a manual stop, which restart policies respect).
    sandbox.sh(f"kill -9 $(docker inspect -f '{{{{.State.Pid}}}}' msgplatform-{service}-1)")
    time.sleep(2)
    wait_healthy(sandbox)
    assert read_marks(sandbox) == ({a: "one" for a in APPS}, {a: "one" for a in APPS})


def test_rerun_after_the_crashes_changes_nothing(sandbox):
    rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    assert changed(results) == [], f"a rerun changed: {changed(results)}"


def test_lost_database_is_recreated_by_the_next_run(sandbox):
    sandbox.sh(
        f"{DC} stop directus && {DC} exec -T postgres psql -U postgres -c 'drop database directus' "
        f"-c 'drop role directus'"
    )
    rc, failed, log = sandbox.audit("tests/audit/test_stack.py")
    assert "test_databases_and_roles" in failed, log[-3000:]
    rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    assert "Per-service databases and roles" in changed(results)
    rc, failed, log = sandbox.audit()
    assert rc == 0, log[-3000:]


SMTP = 'smtp={"host": "smtp.sandbox.test", "port": 587, "user": "mailer", "sender": "support@sandbox.test"}'
SMTP_PASSWORD = secrets.token_urlsafe(24)


def test_operator_secret_required_then_stored_root_only(sandbox):
    # The sandbox's own SMTP password is in its secrets_file; an empty variable wins over it.
    rc, results, log = sandbox.deploy("--data", SMTP, env={"PLATFORM_SMTP_PASSWORD": ""})
    assert rc != 0 and results is None and "PLATFORM_SMTP_PASSWORD = None: missing" in log

    rc, results, log = sandbox.deploy("--data", SMTP, env={"PLATFORM_SMTP_PASSWORD": SMTP_PASSWORD})
    assert rc == 0, log[-3000:]
    assert "Operator secret smtp_password stored" in changed(results)
    stat = sandbox.sh("stat -c '%U %a' /opt/msgplatform/secrets/smtp_password").strip()
    assert stat == "root 600"
    for container in ("chatwoot-web", "n8n", "directus"):
        env = sandbox.sh(f"docker inspect -f '{{{{join .Config.Env \"\\n\"}}}}' msgplatform-{container}-1").splitlines()
        assert any(line.endswith("=" + SMTP_PASSWORD) for line in env), f"{container} did not get the SMTP password"

    rc, results, log = sandbox.deploy("--data", SMTP, env={"PLATFORM_SMTP_PASSWORD": SMTP_PASSWORD})
    assert changed(results) == [], f"a rerun changed: {changed(results)}"
    # The way back to the sandbox's SMTP (its simulator's sink) is the next test's first deploy: the apps are
    # recreated once for both changes.


def test_chatwoot_prepare_runs_once_per_version(sandbox, upgrade_images):
    def prepared():
        return int(psql(sandbox, "chatwoot", "select count(*) from stand_in_migrations where version like 'prepare%'"))

    # Its first deploy also brings back the sandbox's own SMTP settings the test before changed.
    upgraded = "images=" + json.dumps({**SANDBOX_IMAGES, "chatwoot": UPGRADES["chatwoot"]})
    before = prepared()
    rc, results, log = sandbox.deploy("--data", upgraded)
    assert rc == 0, log[-3000:]
    assert any(name.startswith("Chatwoot db:chatwoot_prepare") for name in changed(results))
    assert prepared() == before + 1
    rc, results, log = sandbox.deploy("--data", upgraded)
    assert changed(results) == [], f"a rerun changed: {changed(results)}"
    assert prepared() == before + 1
    rc, results, log = sandbox.deploy()  # back to the group data's version
    assert rc == 0 and prepared() == before + 2


def test_no_secret_ever_shown(sandbox):
    names = sandbox.sh("ls /opt/msgplatform/secrets | grep -v '\\.env$'").split()
    values = [sandbox.sh(f"cat /opt/msgplatform/secrets/{name}") for name in names]
    assert len(values) >= 9 and all(len(v) >= 24 for v in values)
    names.append("PLATFORM_SMTP_PASSWORD")
    values.append(SMTP_PASSWORD)
    shown = [
        name for name, value in zip(names, values, strict=True) if any(value in output for output in sandbox.outputs)
    ]
    assert not shown, f"secrets printed by pyinfra or the audit: {shown}"
    in_args = sandbox.sh("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '", check=False)
    assert not [n for n, v in zip(names, values, strict=True) if v in in_args], "a secret is in a process's arguments"
