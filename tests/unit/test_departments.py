"""WhatsApp departments: every malformed or conflicting entry is refused with its key and fix."""

import pytest
from test_config import load, refused

TEAMS = ["Sales Team", "Support Team", "Technical leads"]
ANA = {"name": "Ana Sales", "email": "ana@example.org"}
SECRETS = {"whatsapp_access_token": "t", "meta_app_secret": "s"}


def department(**changes):
    return {
        "name": "Sales",
        "number": "+5922221111",
        "phone_number_id": "1100000001",
        "inbox": "sales-whatsapp",
        "team": "Sales Team",
        "escalation_team": "Any available",
        "agents": [ANA],
        **changes,
    }


def with_departments(*departments, **overrides):
    return dict(
        teams=TEAMS,
        whatsapp_business_account_id="102290129340398",
        departments=list(departments),
        **{"supplied": SECRETS, "team_members": {"Technical leads": ["ana@example.org"]}, **overrides},
    )


def test_the_seed_table_is_accepted():
    cfg = load(
        **with_departments(
            department(),
            department(
                name="Support",
                number="+5922222222",
                phone_number_id="1100000002",
                inbox="support-whatsapp",
                team="Support Team",
                escalation_team="Technical leads",
            ),
        )
    )
    assert [d.label for d in cfg.chatwoot.departments] == ["sales", "support"]
    assert cfg.n8n.n8n_owner_email == cfg.stack.admin_email == "ops@example.org"


@pytest.mark.parametrize(
    "changes, key, fragment",
    [
        ({"number": "5922221111"}, "number", "E.164"),
        ({"number": "+592-222-1111"}, "number", "E.164"),
        ({"phone_number_id": "abc"}, "phone_number_id", "numeric Meta id"),
        ({"inbox": "Sales Inbox"}, "inbox", "not an inbox name"),
        ({"team": "Nobody"}, "departments[0]", "team 'Nobody' is not defined"),
        ({"escalation_team": "Nobody"}, "departments[0]", "team 'Nobody' is not defined"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ],
)
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
    assert "- whatsapp_business_account_id = None: missing, and departments need it" in refused(
        **{**with_departments(department()), "whatsapp_business_account_id": None}
    )
    message = refused(**{**with_departments(department()), "supplied": {}})
    assert "PLATFORM_META_APP_SECRET" in message and "PLATFORM_WHATSAPP_ACCESS_TOKEN" in message


def test_ai_replies_need_the_claude_key():
    assert "PLATFORM_CLAUDE_API_KEY" in refused(ai_replies=True)
    assert load(ai_replies=True, supplied={"claude_api_key": "k"}).n8n.ai_replies


def test_people_land_in_their_teams_and_any_available_is_no_team():
    cfg = load(
        **with_departments(
            department(),
            department(
                name="Support",
                number="+5922222222",
                phone_number_id="1100000002",
                inbox="support-whatsapp",
                team="Support Team",
                escalation_team="Technical leads",
                agents=[{"name": "Lee Lead", "email": "lee@example.org", "role": "administrator"}],
            ),
        )
    )
    cw = cfg.chatwoot
    assert cw.members("Sales Team") == ["ana@example.org"] and cw.members("Technical leads") == ["ana@example.org"]
    assert cw.agents() == {"ana@example.org": ("Ana Sales", "agent"), "lee@example.org": ("Lee Lead", "administrator")}
    assert [d.auto_assignment for d in cw.departments] == ["after_triage", "after_triage"]


@pytest.mark.parametrize(
    "changes, overrides, key, fragment",
    [
        # The same person in two departments with another role.
        (
            {},
            {"extra": {"agents": [{**ANA, "role": "administrator"}]}},
            "departments[1].agents",
            "is 'Ana Sales' (administrator) here and 'Ana Sales' (agent) in department 'Sales'",
        ),
        ({"agents": [{"name": "Ana", "email": "not-an-address"}]}, {}, "email", "not an e-mail address"),
        ({"agents": [{**ANA, "role": "owner"}]}, {}, "['role']", "Input should be 'agent' or 'administrator'"),
        (
            {"escalation_team": "Technical leads"},
            {"team_members": {}},
            "departments[0].escalation_team",
            "escalation team 'Technical leads' has no members",
        ),
        ({"auto_assignment": "round_robin"}, {}, "['auto_assignment']", "Input should be 'after_triage' or 'manual'"),
        # A team shared by departments of different policies.
        (
            {},
            {"extra": {"team": "Sales Team", "auto_assignment": "manual"}},
            "departments[1].auto_assignment",
            "team 'Sales Team' serves department 'Sales' (after_triage) and this one (manual)",
        ),
        (
            {},
            {"team_members": {"Technical leads": ["stranger@example.org"]}},
            "team_members['Technical leads']",
            "neither an agent of a department nor a supervisor",
        ),
    ],
)
def test_bad_people_or_policies_are_refused(changes, overrides, key, fragment):
    departments = [department(**changes)]
    if "extra" in overrides:
        departments.append(
            department(
                **{
                    "name": "Support",
                    "number": "+5922222222",
                    "phone_number_id": "1100000002",
                    "inbox": "support-whatsapp",
                    "team": "Support Team",
                    **overrides.pop("extra"),
                }
            )
        )
    message = refused(**with_departments(*departments, **overrides))
    assert key in message and fragment in message and "Fix:" in message, message


def test_a_web_chat_is_served_by_its_department():
    cfg = load(
        **with_departments(
            department(),
            web_chats=[{"inbox": "website", "website_url": "https://www.example.org", "department": "Sales"}],
        )
    )
    assert [w.inbox for w in cfg.chatwoot.web_chats] == ["website"]


@pytest.mark.parametrize(
    "web_chat, key, fragment",
    [
        ({"department": "Nobody"}, "web_chats[0].department", "department 'Nobody' is not defined"),
        ({"inbox": "sales-whatsapp"}, "web_chats[0].inbox", "inbox 'sales-whatsapp' is already used by 'Sales'"),
        ({"inbox": "unrouted-whatsapp"}, "web_chats[0].inbox", "already used by 'the default_inbox'"),
        ({"website_url": "www.example.org"}, "website_url", "not a website address"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_a_bad_web_chat_is_refused(web_chat, key, fragment):
    chat = {"inbox": "website", "website_url": "https://www.example.org", "department": "Sales", **web_chat}
    message = refused(**with_departments(department(), web_chats=[chat]))
    assert key in message and fragment in message and "Fix:" in message, message


FACEBOOK = dict(facebook_page_id="104620389612345", supplied={**SECRETS, "facebook_page_token": "p"})


def test_the_facebook_inbox_is_served_by_its_department_and_its_page():
    from platform_deploy import secrets
    from platform_deploy.apps import bootstrap

    cfg = load(**with_departments(department(), facebook_inbox={"department": "Sales"}, **FACEBOOK))
    document = bootstrap.settings_document(cfg)["chatwoot"]
    assert document["facebook_inbox"] == {"inbox": "facebook", "department": "Sales", "page_id": "104620389612345"}
    assert document["departments"][0]["inboxes"] == ["sales-whatsapp", "facebook"]
    # Messenger's /bot checks its signature with the Meta app's secret.
    assert secrets.secret_env(cfg)["chatwoot"]["FB_APP_SECRET"] == "meta_app_secret"


@pytest.mark.parametrize(
    "facebook_inbox, overrides, key, fragment",
    [
        ({"department": "Nobody"}, FACEBOOK, "facebook_inbox.department", "department 'Nobody' is not defined"),
        (
            {"inbox": "sales-whatsapp", "department": "Sales"},
            FACEBOOK,
            "facebook_inbox.inbox",
            "already used by 'Sales'",
        ),
        ({"department": "Sales", "page": "1"}, FACEBOOK, "page", "Extra inputs"),
        ({"department": "Sales"}, {}, "facebook_inbox", "needs the Facebook Page it answers for"),
        ({"department": "Sales"}, {"facebook_page_id": "104620389612345"}, "PLATFORM_FACEBOOK_PAGE_TOKEN", "missing"),
    ],
)
def test_a_bad_facebook_inbox_is_refused(facebook_inbox, overrides, key, fragment):
    message = refused(**with_departments(department(), facebook_inbox=facebook_inbox, **overrides))
    assert key in message and fragment in message and "Fix:" in message, message
