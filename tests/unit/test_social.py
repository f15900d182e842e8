"""The auto-poster's group data: each bad value is refused with its key and fix."""

import pytest
from test_config import load, refused

from platform_deploy.apps.social import cron_problem

SMTP = {"host": "smtp.example.org", "port": 587, "user": "apikey", "sender": "support@example.org"}


def test_the_seed_schedule_and_all_platforms_are_accepted():
    cfg = load(
        facebook_page_id="104620389612345",
        instagram_user_id="17841400000000001",
        tiktok_notify_email="social@example.org",
        smtp=SMTP,
        supplied={"facebook_page_token": "f", "instagram_access_token": "i", "smtp_password": "p"},
    )
    assert cfg.social.social_schedule == "0 9 * * 1,4"
    assert set(cfg.supplied_secrets) == {"facebook_page_token", "instagram_access_token", "smtp_password"}


@pytest.mark.parametrize(
    "overrides, key, fragment",
    [
        ({"facebook_page_id": "104620389612345"}, "PLATFORM_FACEBOOK_PAGE_TOKEN", "missing, and facebook needs it"),
        (
            {"instagram_user_id": "17841400000000001"},
            "PLATFORM_INSTAGRAM_ACCESS_TOKEN",
            "missing, and instagram needs it",
        ),
        ({"facebook_page_id": "my-page"}, "facebook_page_id", "not a numeric Meta id"),
        ({"tiktok_notify_email": "social@"}, "tiktok_notify_email", "not an e-mail address"),
        ({"tiktok_notify_email": "social@example.org"}, "tiktok_notify_email", "smtp is not set"),
        ({"social_schedule": "every monday"}, "social_schedule", "has 2 fields, not 5"),
        ({"social_schedule": "0 25 * * 1"}, "social_schedule", "hour field '25' is outside 0-23"),
        ({"social_schedule": "0 9 * * mon"}, "social_schedule", "day of week field 'mon' does not parse"),
        ({"social_schedule": "*/00 9 * * *"}, "social_schedule", "step of 0"),
        ({"social_schedule": "0 9 30 2 *"}, "social_schedule", "never run"),
        ({"social_schedule": "0 9 5-1 * *"}, "social_schedule", "outside 1-31"),
        ({"caption_model": "gpt-4"}, "caption_model", "not a Claude model name"),
        ({"directus_schema": "/nonexistent/schema.json"}, "directus_schema", "not a readable Directus schema"),
        ({"directus_schema": "files/n8n"}, "directus_schema", "not a readable Directus schema"),
        ({"directus_schema": "pyproject.toml"}, "directus_schema", "not a readable Directus schema"),
    ],
)
def test_bad_poster_settings_are_refused(overrides, key, fragment):
    message = refused(**overrides)
    assert f"- {key} = " in message and fragment in message and "Fix: " in message, message


@pytest.mark.parametrize(
    "expression", ["0 9 * * 1,4", "*/15 8-18 * * 1-5", "30 6 1 */2 *", "0 0 * * 7", "0 9 31 * *", "0 9 30 2 1"]
)
def test_cron_expressions_the_workflow_reads_are_accepted(expression):
    assert cron_problem(expression) is None


def test_claudes_key_is_kept_for_captions_without_ai_replies():
    supplied = {"facebook_page_token": "f", "claude_api_key": "k"}
    assert "claude_api_key" in load(facebook_page_id="104620389612345", supplied=supplied).supplied_secrets
    assert "claude_api_key" not in load(supplied={"claude_api_key": "k"}).supplied_secrets
