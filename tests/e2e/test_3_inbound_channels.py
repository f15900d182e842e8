"""Inbound on the other channels, end to end: the web chat (Chatwoot's widget API over TLS),
the Page's Messenger and the linked Instagram account's DMs (Meta's signed webhooks to
Chatwoot through the edge), each triaged for its department like a WhatsApp message."""

import hashlib
import hmac
import json
import time

from tools.inbound_client import signed, vendor_secret, wait_for

from conftest import GROUP_DATA
from inbound_helpers import (
    DEPARTMENTS,
    HOST,
    chatwoot,
    chatwoot_objects,
    fresh_simulator,  # noqa: F401 (an autouse fixture: pytest finds it in the module, unreferenced)
    host_secret,
    inbox_ids,
    new_sender,
    simulator,
)


def widget(method, token, path="messages", body=None, auth=None):
    """Chatwoot's web widget API as a visitor's browser calls it: over TLS through the edge."""
    status, text = HOST.https(
        "chat.sandbox.test",
        method,
        f"/api/v1/widget/{path}?website_token={token}",
        json.dumps(body).encode() if body is not None else b"",
        {"Content-Type": "application/json", **({"X-Auth-Token": auth} if auth else {})},
    )
    assert status == 200, (status, text)
    return json.loads(text)


def handed_over(conversation_id, team):
    """The conversation once triage has handed it to the team and opened it: its last steps, after the reply."""

    def done():
        conversation = chatwoot("GET", f"/conversations/{conversation_id}")
        assigned = (conversation["meta"].get("team") or {}).get("name", "").lower() == team.lower()
        return conversation if assigned and conversation["status"] == "open" else None

    return wait_for(f"conversation {conversation_id} handed over to {team} and open", done, timeout=60)


def test_a_website_visitor_is_answered_by_triage_and_routed_to_its_department(sandbox):
    """The web chat of group data (web_chats): a visitor writes in Chatwoot's widget; the platform's bot triages it
    for its department (Support) like a WhatsApp message, the visitor reads the reply in the widget, and the
    conversation goes to the department's team."""
    [chat] = GROUP_DATA["web_chats"]
    d = DEPARTMENTS[chat["department"]]
    token = next(i for i in chatwoot("GET", "/inboxes")["payload"] if i["name"] == chat["inbox"])["website_token"]
    auth = widget("POST", token, "config")["website_channel_config"]["auth_token"]
    sent = widget(
        "POST",
        token,
        body={"message": {"content": "What are your opening hours?", "timestamp": str(time.time())}},
        auth=auth,
    )
    replies = wait_for(
        "the reply in the widget",
        lambda: [m for m in widget("GET", token, auth=auth)["payload"] if m["message_type"] == 1],
        timeout=90,
    )
    assert replies[0]["sender"]["type"] == "agent_bot" and replies[0]["content"]
    conversation = handed_over(sent["conversation_id"], d["team"])
    assert {d["name"].lower(), "ai-replied"} <= set(conversation["labels"])
    [log] = wait_for("the triage log row", lambda: HOST.triage_log(sent["conversation_id"]))
    assert (log["department"], log["action"]) == (d["name"], "replied")
    # Nothing of it went to WhatsApp: Chatwoot sends only a WhatsApp inbox's replies there, and n8n's own sends
    # (the default inbox's) go to the customer's number. (An earlier test's late reply may show up meanwhile.)
    sends = [r for r in simulator("GET", "/_sim/requests") if r["service"] == "whatsapp" and r["method"] == "POST"]
    assert not [r for r in sends if not str((r["body"] or {}).get("to", "")).isdigit()], sends


def messenger(text, psid, secret=None):
    """(raw body, headers) of a Messenger `messages` event for the Page, signed as Meta signs Messenger webhooks
    (X-Hub-Signature, HMAC-SHA1 of the raw body with the app secret)."""
    page, now = GROUP_DATA["facebook_page_id"], int(time.time() * 1000)
    raw = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": page,
                    "time": now,
                    "messaging": [
                        {
                            "sender": {"id": psid},
                            "recipient": {"id": page},
                            "timestamp": now,
                            "message": {"mid": f"m_{psid}_{now}", "text": text},
                        }
                    ],
                }
            ],
        }
    ).encode()
    key = (secret or vendor_secret("PLATFORM_META_APP_SECRET")).encode()
    return raw, {
        "Content-Type": "application/json",
        "X-Hub-Signature": "sha1=" + hmac.new(key, raw, hashlib.sha1).hexdigest(),
    }


def conversation_with(inbox_id, text):
    for c in HOST.conversations():
        if c["inbox_id"] == inbox_id and any(
            m.get("content") == text for m in chatwoot("GET", f"/conversations/{c['id']}/messages")["payload"]
        ):
            return c
    return None


def test_a_messenger_message_is_answered_on_messenger_by_triage_and_routed(sandbox):
    """The Page's Messenger (facebook_inbox): Meta posts to Chatwoot's /bot through the edge; an unsigned or wrongly
    signed event is refused with 400 and creates nothing; a signed one is triaged for its department (Sales), the
    reply goes out through Messenger's Send API to the sender, and the conversation goes to the department's team."""
    fb, psid = GROUP_DATA["facebook_inbox"], new_sender()
    d, inbox_id = DEPARTMENTS[fb["department"]], inbox_ids()[fb["inbox"]]
    text = f"What are your opening hours? ({psid})"
    # Meta's subscription handshake: Chatwoot answers the challenge (it compares no token: CONTRACT.md).
    assert HOST.https("chat.sandbox.test", "GET", "/bot?hub.mode=subscribe&hub.challenge=4242&hub.verify_token=x") == (
        200,
        "4242",
    )
    raw, headers = messenger(text, psid)
    for head in ({"Content-Type": "application/json"}, messenger(text, psid, secret="not-the-app-secret")[1]):
        assert HOST.https("chat.sandbox.test", "POST", "/bot", raw, head)[0] == 400
    assert HOST.https("chat.sandbox.test", "POST", "/bot", raw, headers)[0] == 200
    sent = wait_for(
        "the reply on Messenger",
        lambda: [
            r
            for r in simulator("GET", "/_sim/requests")
            if r["service"] == "messenger"
            and r["path"].endswith("/me/messages")
            and r["body"]["recipient"]["id"] == psid
        ],
        timeout=90,
    )
    assert len(sent) == 1 and sent[0]["token"] == "valid" and sent[0]["body"]["messaging_type"] == "RESPONSE"
    conversation = handed_over(conversation_with(inbox_id, text)["id"], d["team"])
    assert conversation["meta"]["sender"]["name"] == "John Doe"  # Graph gave no profile: Chatwoot's fallback name
    assert {d["name"].lower(), "ai-replied"} <= set(conversation["labels"])
    [log] = wait_for("the triage log row", lambda: HOST.triage_log(conversation["id"]))
    assert (log["department"], log["action"]) == (d["name"], "replied")
    reply = [
        m for m in chatwoot("GET", f"/conversations/{conversation['id']}/messages")["payload"] if m["message_type"] == 1
    ]
    assert reply[0]["content"] == sent[0]["body"]["message"]["text"] and reply[0]["source_id"].startswith("m_SIM")
    # Only the signed event made something: one sender, one conversation, one customer message.
    [contact_inbox] = [c for c in chatwoot_objects(sandbox, "contact_inbox") if c["source_id"] == psid]
    assert (
        len([c for c in chatwoot_objects(sandbox, "conversation") if c["contact_inbox_id"] == contact_inbox["id"]]) == 1
    )
    incoming = [
        m for m in chatwoot("GET", f"/conversations/{conversation['id']}/messages")["payload"] if m["message_type"] == 0
    ]
    assert [m["content"] for m in incoming] == [text]


def test_an_instagram_dm_to_the_pages_account_is_answered_on_instagram(sandbox):
    """The Instagram account linked to the Page (Chatwoot read it from Graph when the deploy registered the Page):
    Meta posts its DMs to Chatwoot's /webhooks/instagram through the edge; a wrong verify token or signature is
    refused (401); a signed DM, sent twice, gives one conversation in the Page's inbox with the sender Graph
    describes, triaged for facebook_inbox's department, and one reply through Instagram's send API."""
    fb, igsid = GROUP_DATA["facebook_inbox"], new_sender()
    d, inbox_id, account = DEPARTMENTS[fb["department"]], inbox_ids()[fb["inbox"]], GROUP_DATA["instagram_user_id"]
    simulator(
        "POST", "/_sim/messenger", {"profiles": {igsid: {"id": igsid, "name": "Ana Insta", "username": "ana.insta"}}}
    )
    token = host_secret(sandbox, "whatsapp_verify_token")
    assert HOST.https(
        "chat.sandbox.test", "GET", f"/webhooks/instagram?hub.mode=subscribe&hub.challenge=77&hub.verify_token={token}"
    ) == (200, "77")
    assert (
        HOST.https(
            "chat.sandbox.test", "GET", "/webhooks/instagram?hub.mode=subscribe&hub.challenge=77&hub.verify_token=guess"
        )[0]
        == 401
    )
    text, now = f"Do you ship to Berbice? ({igsid})", int(time.time() * 1000)
    raw = json.dumps(
        {
            "object": "instagram",
            "entry": [
                {
                    "time": now,
                    "id": account,
                    "messaging": [
                        {
                            "sender": {"id": igsid},
                            "recipient": {"id": account},
                            "timestamp": now,
                            "message": {"mid": f"aWdf{igsid}", "text": text},
                        }
                    ],
                }
            ],
        }
    ).encode()
    wrong = signed(json.loads(raw), secret="not-the-app-secret")[1]
    assert HOST.https("chat.sandbox.test", "POST", "/webhooks/instagram", raw, wrong)[0] == 401
    _, headers = signed(json.loads(raw))
    for _ in range(2):  # Meta delivers again: the same mid makes nothing new
        assert HOST.https("chat.sandbox.test", "POST", "/webhooks/instagram", raw, headers) == (200, '"ok"')
    sent = wait_for(
        "the reply on Instagram",
        lambda: [
            r
            for r in simulator("GET", "/_sim/requests")
            if r["service"] == "messenger"
            and r["path"] == "/v11.0/me/messages"
            and r["body"]["recipient"]["id"] == igsid
        ],
        timeout=90,
    )
    page_token, app_secret = vendor_secret("PLATFORM_FACEBOOK_PAGE_TOKEN"), vendor_secret("PLATFORM_META_APP_SECRET")
    assert len(sent) == 1 and sent[0]["token"] == "valid"
    assert (
        sent[0]["params"]["appsecret_proof"]
        == hmac.new(app_secret.encode(), page_token.encode(), hashlib.sha256).hexdigest()
    )
    conversation = handed_over(conversation_with(inbox_id, text)["id"], d["team"])
    assert conversation["meta"]["sender"]["name"] == "Ana Insta"
    assert {d["name"].lower(), "ai-replied"} <= set(conversation["labels"])
    [log] = wait_for("the triage log row", lambda: HOST.triage_log(conversation["id"]))
    assert (log["department"], log["action"]) == (d["name"], "replied")
    messages = chatwoot("GET", f"/conversations/{conversation['id']}/messages")["payload"]
    assert [m["content"] for m in messages if m["message_type"] == 0] == [text]
    assert [m["content"] for m in messages if m["message_type"] == 1] == [sent[0]["body"]["message"]["text"]]
