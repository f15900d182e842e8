"""Foundation end to end, in order: bad group data refused on an untouched host, a fresh
deploy, the audit, a clean rerun as a sudo user, and three kinds of drift caught and repaired."""

import json

import pytest

from conftest import changed


def department(number, phone_number_id, inbox, team, **more):
    """A department of group data, as --data gives it."""
    return json.dumps(
        {
            "name": "Sales",
            "number": number,
            "phone_number_id": phone_number_id,
            "inbox": inbox,
            "team": team,
            "escalation_team": "Any available",
            **more,
        }
    )


# Files that any operation of the deploy would create or change.
FOOTPRINT = (
    "/etc/ufw/user.rules /etc/docker/daemon.json /etc/sysctl.d/60-platform.conf /etc/apt/apt.conf.d/20auto-upgrades"
)


@pytest.mark.parametrize(
    "override, key",
    [
        ("domain=", "domain"),
        ("domain=https://example.org/", "domain"),
        ("acme_email=ops-at-example", "acme_email"),
        ("memory_profile=huge", "memory_profile"),
        ('memory_limits_mb={"postgres": 900000}', "memory_limits_mb"),
        ('memory_limits_mb={"postgress": 512}', "memory_limits_mb['postgress']"),
        ('ssh_allow_cidrs=["10.0.0.1/8"]', "ssh_allow_cidrs"),
        ('whatsapp_numbers={"sales": "+5922221111"}', "renamed to departments"),
        (
            f"departments=[{department('592-222-1111', '1100000001', 'sales-whatsapp', 'Sales Team')}]",
            "departments[0]['number']",
        ),
        (
            f"departments=[{department('+5922221111', '1100000001', 'sales-whatsapp', 'Sales Team')}, "
            f"{department('+5922221111', '1100000002', 'other-whatsapp', 'Sales Team')}]",
            "already used by department",
        ),
        (
            f"departments=[{department('+5922221111', '1100000001', 'sales-whatsapp', 'Nobody')}]",
            "team 'Nobody' is not defined",
        ),
        (
            "departments=["
            + department("+5922221111", "1100000001", "sales-whatsapp", "Sales Team", auto_assignment="first_come")
            + "]",
            "departments[0]['auto_assignment']",
        ),
        ('team_members={"Technical leads": ["lead-at-example"]}', "team_members"),
        ("triage_confidence_threshold=1.5", "triage_confidence_threshold"),
        ("social_schedule=0 9 * * mon", "social_schedule"),
        ("tiktok_notify_email=social-at-example", "tiktok_notify_email"),
        ("facebook_page_id=my-page", "facebook_page_id"),
        ('images={"redis": "redis:latest"}', "images['redis']"),
        ('images={"redis": "redis"}', "images['redis']"),
    ],
)
def test_bad_group_data_is_refused_before_anything_runs(sandbox, override, key):
    sandbox.sh("touch /run/before-refused-deploy && sleep 1")
    rc, results, log = sandbox.deploy("--data", override)
    assert rc != 0
    assert results is None, "operations ran despite invalid group data"
    assert "invalid group data" in log and key in log and "Fix:" in log
    assert "Beginning operation run" not in log
    touched = sandbox.sh(
        f"find {FOOTPRINT} /etc/apt/sources.list.d -newer /run/before-refused-deploy 2>/dev/null; "
        "dpkg -s ufw >/dev/null 2>&1 && echo ufw-installed",
        check=False,
    )
    assert touched.strip() == "", f"the host was changed: {touched}"


@pytest.mark.parametrize(
    "variable", ["PLATFORM_META_APP_SECRET", "PLATFORM_CLAUDE_API_KEY", "PLATFORM_FACEBOOK_PAGE_TOKEN"]
)
def test_a_missing_vendor_secret_is_refused_while_its_feature_is_on(sandbox, variable):
    rc, results, log = sandbox.deploy(env={variable: ""})
    assert rc != 0 and results is None
    assert f"{variable} = None: missing" in log and "Fix:" in log


def test_fresh_deploy(sandbox):
    rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    assert results["totals"]["error"] == 0
    assert changed(results), "a fresh host needed no change?"


def test_audit_passes_after_deploy(sandbox):
    rc, failed, log = sandbox.audit()
    assert rc == 0, log[-3000:]


def test_rerun_as_sudo_user_changes_nothing(sandbox):
    # Ubuntu cloud images log in as a sudo user: the same deploy must see the same host.
    # "ops" is the admin user the first deploy created (group_data/sandbox.py), key only.
    rc, results, log = sandbox.deploy("--user", "ops", "--sudo")
    assert rc == 0, log[-3000:]
    assert changed(results) == [], f"a rerun changed: {changed(results)}"
    assert results["totals"]["no_change"] > 0


# drift -> (how to inject it, the audit checks that must fail, whether only those). Drifts
# that stop or restart Docker also take the stack down for a while, failing its checks too.
DRIFTS = {
    "extra UFW rule": ("ufw allow 8080/tcp", {"test_ufw_rules_exactly_as_configured"}, True),
    "Docker stopped and disabled": (
        "systemctl disable --now docker.service docker.socket",
        {"test_docker_running_and_enabled", "test_docker_daemon_settings", "test_every_service_running_and_healthy"},
        False,
    ),
    "daemon.json changed": (
        """sed -i 's/"live-restore": true/"live-restore": false/' /etc/docker/daemon.json """
        "&& systemctl restart docker",
        {"test_docker_daemon_settings"},
        False,
    ),
    "sysctl reverted": ("sysctl -w vm.overcommit_memory=0", {"test_sysctls_live_and_persisted"}, True),
}


@pytest.mark.parametrize("drift", DRIFTS)
def test_drift_is_caught_by_the_audit_and_repaired_by_a_deploy(sandbox, drift):
    inject, expected_failures, only_those = DRIFTS[drift]
    sandbox.sh(inject)

    rc, failed, log = sandbox.audit()
    assert rc != 0, f"the audit missed: {drift}"
    if only_those:
        assert set(failed) == expected_failures, log[-3000:]
    else:
        assert expected_failures <= set(failed), log[-3000:]

    rc, results, log = sandbox.deploy()
    assert rc == 0, log[-3000:]
    assert changed(results), f"the deploy did not repair: {drift}"

    rc, failed, log = sandbox.audit()
    assert rc == 0, f"still drifted after the deploy: {failed}\n{log[-3000:]}"
