"""Foundation end to end, in order: bad group data refused on an untouched host, a fresh
deploy, the audit, a clean rerun as a sudo user, and drift caught and repaired."""

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


# Every bad value of a field at once (the config reports them all together; tests/unit has one
# test per kind of bad input), then the checks that run across fields, one at a time.
EVERY_BAD_FIELD = {
    "domain": "https://example.org/",
    "acme_email": "ops-at-example",
    "memory_profile": "huge",
    "memory_limits_mb": {"postgress": 512},
    "ssh_allow_cidrs": ["10.0.0.1/8"],
    "whatsapp_numbers": {"sales": "+5922221111"},
    "team_members": {"Technical leads": ["lead-at-example"]},
    "triage_confidence_threshold": 1.5,
    "tiktok_notify_email": "social-at-example",
    "facebook_page_id": "my-page",
    "images": {"redis": "redis:latest"},
}


@pytest.mark.parametrize(
    "overrides, keys",
    [
        (
            [
                f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                for key, value in EVERY_BAD_FIELD.items()
            ]
            + [
                "departments=["
                + department("592-222-1111", "1100000001", "sales-whatsapp", "Sales Team", auto_assignment="first_come")
                + "]"
            ],
            [
                *EVERY_BAD_FIELD,
                "renamed to departments",
                "departments[0]['number']",
                "departments[0]['auto_assignment']",
                "memory_limits_mb['postgress']",
                "images['redis']",
            ],
        ),
        (
            [
                f"departments=[{department('+5922221111', '1100000001', 'sales-whatsapp', 'Sales Team')}, "
                f"{department('+5922221111', '1100000002', 'other-whatsapp', 'Sales Team')}]"
            ],
            ["already used by department"],
        ),
        (
            [f"departments=[{department('+5922221111', '1100000001', 'sales-whatsapp', 'Nobody')}]"],
            ["team 'Nobody' is not defined"],
        ),
        (["social_schedule=0 9 * * mon"], ["social_schedule"]),
    ],
    ids=["every-bad-field", "a-number-twice", "an-unknown-team", "a-schedule"],
)
def test_bad_group_data_is_refused_before_anything_runs(sandbox, overrides, keys):
    sandbox.sh("touch /run/before-refused-deploy && sleep 1")
    rc, results, log = sandbox.deploy(*(arg for override in overrides for arg in ("--data", override)))
    assert rc != 0
    assert results is None, "operations ran despite invalid group data"
    assert "invalid group data" in log and "Fix:" in log
    assert not [key for key in keys if key not in log], log[-3000:]
    assert "Beginning operation run" not in log
    touched = sandbox.sh(
        f"find {FOOTPRINT} /etc/apt/sources.list.d -newer /run/before-refused-deploy 2>/dev/null; "
        "dpkg -s ufw >/dev/null 2>&1 && echo ufw-installed",
        check=False,
    )
    assert touched.strip() == "", f"the host was changed: {touched}"


# One of them here (tests/unit checks each feature's secret).
@pytest.mark.parametrize("variable", ["PLATFORM_META_APP_SECRET"])
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


# drift -> (how to inject it, the audit checks that must fail, whether only those). Two drifts
# at a time, each failing its own check. Stopping Docker also takes the stack down for a while,
# failing its checks too. (test_3_x_drift has the other checks' drifts.)
DRIFTS = {
    "an extra UFW rule and a sysctl reverted": (
        "ufw allow 8080/tcp && sysctl -w vm.overcommit_memory=0",
        {"test_ufw_rules_exactly_as_configured", "test_sysctls_live_and_persisted"},
        True,
    ),
    "daemon.json changed, Docker stopped and disabled": (
        """sed -i 's/"live-restore": true/"live-restore": false/' /etc/docker/daemon.json && """
        "systemctl disable --now docker.service docker.socket",
        {"test_docker_running_and_enabled", "test_docker_daemon_settings", "test_every_service_running_and_healthy"},
        False,
    ),
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
