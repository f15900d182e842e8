"""WhatsApp departments: every malformed or conflicting entry is refused with its key and fix."""

import pytest

from test_config import load, refused

TEAMS = ["Sales Team", "Support Team", "Any available", "Technical leads"]
SECRETS = {"whatsapp_access_token": "t", "meta_app_secret": "s"}


def department(**changes):
    return {"name": "Sales", "number": "+5922221111", "phone_number_id": "1100000001", "inbox": "sales-whatsapp",
            "team": "Sales Team", "escalation_team": "Any available", **changes}


def with_departments(*departments, **overrides):
    return dict(teams=TEAMS, whatsapp_business_account_id="102290129340398", departments=list(departments),
                supplied=SECRETS, **overrides)


def test_the_seed_table_is_accepted():
    cfg = load(**with_departments(
        department(),
        department(name="Support", number="+5922222222", phone_number_id="1100000002", inbox="support-whatsapp",
                   team="Support Team", escalation_team="Technical leads")))
    assert [d.label for d in cfg.chatwoot.departments] == ["sales", "support"]
    assert cfg.n8n.n8n_owner_email == cfg.stack.admin_email == "ops@example.org"


@pytest.mark.parametrize("changes, key, fragment", [
    ({"number": "5922221111"}, "number", "E.164"),
    ({"number": "+592-222-1111"}, "number", "E.164"),
    ({"phone_number_id": "abc"}, "phone_number_id", "numeric Meta id"),
    ({"inbox": "Sales Inbox"}, "inbox", "not an inbox name"),
    ({"team": "Nobody"}, "departments[0]", "team 'Nobody' is not defined"),
    ({"escalation_team": "Nobody"}, "departments[0]", "team 'Nobody' is not defined"),
    ({"colour": "red"}, "colour", "Extra inputs"),
])
def test_a_bad_department_is_refused(changes, key, fragment):
    message = refused(**with_departments(department(**changes)))
    assert key in message and fragment in message and "Fix:" in message


@pytest.mark.parametrize("what", ["number", "phone_number_id", "inbox", "name"])
def test_the_same_number_or_id_in_two_departments_is_refused(what):
    other = department(name="Support", number="+5922222222", phone_number_id="1100000002", inbox="support-whatsapp")
    other[what] = department()[what]
    message = refused(**with_departments(department(), other))
    assert f"{what} {department()[what]!r} is already used by department 'Sales'" in message


def test_departments_need_the_business_account_and_the_meta_secrets():
    assert "- whatsapp_business_account_id = None: missing, and departments need it" in refused(**{
        **with_departments(department()), "whatsapp_business_account_id": None})
    message = refused(**{**with_departments(department()), "supplied": {}})
    assert "PLATFORM_META_APP_SECRET" in message and "PLATFORM_WHATSAPP_ACCESS_TOKEN" in message


def test_ai_replies_need_the_claude_key():
    assert "PLATFORM_CLAUDE_API_KEY" in refused(ai_replies=True)
    assert load(ai_replies=True, supplied={"claude_api_key": "k"}).n8n.ai_replies
