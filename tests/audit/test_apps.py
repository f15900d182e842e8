"""The application layer: the shipped workflows published with this group data's
schedule and time zone, and n8n's Directus user no wider than the deploy made it. The
deploy reads the same state (bootstrap.AppState) and runs the bootstrap again when it drifted."""

import pytest

from platform_deploy.apps import app_access, bootstrap

from conftest import run_fact

pytestmark = pytest.mark.roles("primary")


@pytest.fixture(scope="module")
def drift(host, cfg):
    if not bootstrap.enabled(cfg):
        pytest.skip("the application layer needs chatwoot, n8n and directus in apps")
    container = f"{cfg.stack.stack_name}-postgres-1"
    return bootstrap.app_drift(cfg, run_fact(host, bootstrap.AppState, container)) | app_access.drift(
        cfg, run_fact(host, app_access.AppAccess, container)
    )


def test_shipped_workflows_are_published(drift):
    assert "published" not in drift, drift.get("published")


def test_failed_executions_reach_the_inbound_safety_net(drift):
    assert "error_workflow" not in drift, drift.get("error_workflow")


def test_chatwoot_events_are_taken_only_with_chatwoots_signature(drift):
    assert "signature" not in drift, drift.get("signature")


def test_the_poster_runs_on_the_configured_schedule_and_time_zone(drift):
    assert "schedule" not in drift, drift.get("schedule")


def test_n8ns_directus_user_has_no_role_and_only_its_policy(drift):
    assert "user" not in drift, drift.get("user")


def test_n8ns_directus_user_has_only_its_permissions(drift):
    assert "permissions" not in drift, drift.get("permissions")


def test_chatwoot_has_exactly_the_people_teams_labels_and_bot_of_group_data(host, cfg):
    """Agents and their roles, teams with their members and auto-assign, inboxes with their members, credentials and
    auto-assignment, the labels, the agent bot on every department inbox, one account webhook to n8n: the
    bootstrap's own read-only check, which the deploy runs too and repairs from."""
    if not bootstrap.enabled(cfg):
        pytest.skip("the application layer needs chatwoot, n8n and directus in apps")
    drift = bootstrap.chatwoot_drift(cfg, run_fact(host, bootstrap.ChatwootState, cfg.stack.stack_root))
    assert not drift, drift.get("chatwoot")


def test_n8n_has_only_its_owner_and_allowed_members(drift):
    """Every n8n user: the owner (n8n_owner_email), or a member listed in n8n_users_allowed."""
    assert "n8n_users" not in drift, drift.get("n8n_users")


def test_directus_policies_as_allowed_and_public_grants_nothing(drift):
    """Every Directus policy is Directus's own, the platform's or listed in directus_policies_allowed; only the
    Administrator role has admin access; Public grants nothing."""
    assert "directus_policies" not in drift, drift.get("directus_policies")
