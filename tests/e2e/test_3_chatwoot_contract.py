"""The Chatwoot stand-in against Chatwoot's own request specs at v4.15.1, on the deployed host: for the
routes the platform uses, the cases the specs check (who may call, what is refused, what a call does).
Each case names the spec it replays (paths in chatwoot/chatwoot; the behaviours are in
sandbox/images/app-stand-in/CONTRACT.md). Calls go to the stand-in inside the stack, with the tokens
the deploy made: the admin's and the agent bot's, and a Sales agent's."""

import json
import shlex
import subprocess

import pytest

from tools.inbound_client import Host, signed, whatsapp_message

from conftest import DC, GROUP_DATA, NAME, PORT

HOST = Host(NAME, PORT)
ADMIN, BOT = "chatwoot_api_token", "chatwoot_bot_token"
AGENT = "/root/e2e-agent-token"  # a Sales agent's (the stand-in keeps users' tokens in its table)
SALES = next(d for d in GROUP_DATA["departments"] if d["name"] == "Sales")


def call(method, path, body=None, token=ADMIN):
    return HOST.chatwoot(method, path, body, token=token, status=True)


@pytest.fixture(scope="module")
def ids(sandbox):
    sql = (
        "select data->>'access_token' from cw_objects where kind = 'user' "
        f"and data->>'email' = '{SALES['agents'][0]['email']}'"
    )
    sandbox.sh(f"umask 077; {DC} exec -T postgres psql -U postgres -d chatwoot -tAc {shlex.quote(sql)} > {AGENT}")
    inboxes = {i["name"]: i["id"] for i in call("GET", "/inboxes")[1]["payload"]}
    teams = {t["name"]: t["id"] for t in call("GET", "/teams")[1]}
    # The Sales department's inboxes: its WhatsApp number's and its web chats' and Facebook Page's (group data).
    channels = [w["inbox"] for w in GROUP_DATA.get("web_chats", []) if w["department"] == SALES["name"]]
    channels += (
        [GROUP_DATA["facebook_inbox"]["inbox"]]
        if (GROUP_DATA.get("facebook_inbox") or {}).get("department") == SALES["name"]
        else []
    )
    return {
        "sales": inboxes[SALES["inbox"]],
        "default": inboxes[GROUP_DATA.get("default_inbox", "unrouted-whatsapp")],
        "team": teams[SALES["team"].lower()],
        "sales_channels": [inboxes[name] for name in channels],
    }


@pytest.mark.parametrize(
    "method, path, body",
    [
        # spec/controllers/api/v1/accounts/webhook_controller_spec.rb: agents may not list or create webhooks
        ("GET", "/webhooks", None),
        ("POST", "/webhooks", {"url": "https://example.org/hook", "subscriptions": ["message_created"]}),
        # agents_controller_spec.rb, teams_controller_spec.rb, inbox_members_controller_spec.rb,
        # labels_controller_spec.rb
        ("POST", "/agents", {"name": "X", "email": "x@example.org", "role": "agent"}),
        ("POST", "/teams", {"name": "nope"}),
        ("POST", "/labels", {"title": "nope"}),
        ("POST", "/agent_bots", {"name": "nope"}),
    ],
)
def test_an_agent_may_not_administer(ids, method, path, body):
    assert call(method, path, body, token=AGENT) == (401, {"error": "You are not authorized to do this action"})


def test_an_agent_sees_only_its_inboxes(ids):
    """InboxPolicy scope: a Sales agent is a member of the Sales department's inboxes only."""
    assert sorted(i["id"] for i in call("GET", "/inboxes", token=AGENT)[1]["payload"]) == sorted(
        [ids["sales"], *ids["sales_channels"]]
    )
    assert ids["sales_channels"]  # the sandbox's Facebook Page inbox is Sales's: the scope holds more than one inbox


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/contacts/search?q=1"),  # contacts are not in BOT_ACCESSIBLE_ENDPOINTS
        ("GET", "/conversations/1/messages"),  # nor is listing messages
        ("GET", "/agents"),
    ],
)
def test_a_bot_may_call_only_its_endpoints(ids, method, path):
    """access_token_auth_helper.rb: BOT_ACCESSIBLE_ENDPOINTS, anything else 401."""
    assert call(method, path, token=BOT) == (401, {"error": "Access to this endpoint is not authorized for bots"})


def test_a_conversation_in_a_bot_inbox_starts_pending_and_the_bot_hands_it_over(ids):
    """conversation.rb determine_conversation_status (pending with an active bot, whatever was asked);
    conversations_controller_spec.rb: a bot's pending -> open (bot_handoff!)."""
    created = call("POST", "/contacts", {"inbox_id": ids["sales"], "name": "Spec", "phone_number": "+59269990001"})[1]
    contact = created["payload"]["contact"]["id"]
    status, conversation = call(
        "POST",
        "/conversations",
        {"source_id": "59269990001", "inbox_id": ids["sales"], "contact_id": contact, "status": "open"},
    )
    assert status == 200 and conversation["status"] == "pending" and "assignee" not in conversation["meta"]
    status, answer = call("POST", f"/conversations/{conversation['id']}/toggle_status", {"status": "open"}, token=BOT)
    assert status == 200 and answer["payload"]["current_status"] == "open"
    # The bot may label (index and create, v4.14.2+); the list it posts replaces the conversation's labels.
    assert call("POST", f"/conversations/{conversation['id']}/labels", {"labels": ["sales", "vip"]}, token=BOT) == (
        200,
        {"payload": ["sales", "vip"]},
    )
    assert call("POST", f"/conversations/{conversation['id']}/labels", {"labels": ["vip"]}, token=BOT)[1] == {
        "payload": ["vip"]
    }


@pytest.mark.parametrize(
    "body, status, message",
    [
        # spec/models/label_spec.rb and labels_controller_spec.rb: letters, digits, _ and -; downcased; unique
        ({"title": "has space"}, 422, "Title is invalid"),
        ({"title": "Escalated"}, 422, "Title has already been taken"),
    ],
)
def test_account_labels_are_validated(ids, body, status, message):
    answer = call("POST", "/labels", body)
    assert answer[0] == status and message in json.dumps(answer[1]), answer


@pytest.mark.parametrize(
    "path, body, status, fragment",
    [
        # webhook_controller_spec.rb
        ("/webhooks", {"url": "javascript:alert(1)", "subscriptions": ["message_created"]}, 422, "Url is invalid"),
        (
            "/webhooks",
            {"url": "https://example.org/x", "subscriptions": ["conversation_random_event"]},
            422,
            "subscriptions",
        ),
        # inboxes_controller_spec.rb set_agent_bot: an unknown bot is 404
        ("/inboxes/{sales}/set_agent_bot", {"agent_bot": 0}, 404, "could not be found"),
        # inbox_members_controller_spec.rb: a user that does not exist
        ("/inbox_members", {"inbox_id": "{default}", "user_ids": [999999]}, 422, "User must exist"),
    ],
)
def test_bad_requests_are_refused_as_chatwoot_refuses_them(ids, path, body, status, fragment):
    body = json.loads(json.dumps(body).replace('"{default}"', str(ids["default"])))
    answer = call("POST", path.format(**ids), body)
    assert answer[0] == status and fragment in json.dumps(answer[1]), answer


def test_team_members_of_another_account_are_refused(ids):
    """team_members_controller_spec.rb: ids that are no account user -> 401 Invalid User IDs; nothing changes."""
    before = call("GET", f"/teams/{ids['team']}/team_members")[1]
    assert call("PATCH", f"/teams/{ids['team']}/team_members", {"user_ids": [999999]}) == (
        401,
        {"error": "Invalid User IDs"},
    )
    assert call("GET", f"/teams/{ids['team']}/team_members")[1] == before


def test_the_whatsapp_handshake_compares_the_channels_verify_token(ids):
    """whatsapp_controller_spec.rb: a wrong token is 401."""
    script = f"curl -s -o /dev/null -w '%{{http_code}}' 'http://127.0.0.1:3000/webhooks/whatsapp/{SALES['number']}?hub.verify_token=guess&hub.challenge=1'"
    assert HOST.sh(f"{DC} exec -T chatwoot-web sh -c {shlex.quote(script)}").strip() == "401"


def test_webhooks_to_private_addresses_are_refused_unless_allowed(ids):
    """lib/safe_fetch.rb (v4.14.1+): a private destination is refused unless SAFE_FETCH_ALLOW_PRIVATE_NETWORK."""
    probe = "import chatwoot_api; print(chatwoot_api.unsafe_url('http://n8n:5678/webhook/chatwoot-events'))"

    def run(allow):
        return HOST.sh(
            f"{DC} exec -T -e SAFE_FETCH_ALLOW_PRIVATE_NETWORK={allow} -w /opt/stand-in chatwoot-web "
            f"python3 -c {shlex.quote(probe)}"
        ).strip()

    assert run("false") == "Hostname 'n8n' has no public ip addresses"
    assert run("true") == "None"


def test_an_unsigned_payload_for_no_channel_is_refused(ids):
    """meta_token_verify_concern.rb: with no matching channel the signature is required."""
    raw, _ = signed(whatsapp_message("+5920000000", "1100000000", "x", "592600000"))
    script = (
        "curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @- "
        "http://127.0.0.1:3000/webhooks/whatsapp/+5920000000"
    )
    out = subprocess.run(
        ["docker", "exec", "-i", NAME, "sh", "-c", f"{DC} exec -T chatwoot-web sh -c {shlex.quote(script)}"],
        input=raw,
        capture_output=True,
    )
    assert out.stdout.decode().strip() == "401"
