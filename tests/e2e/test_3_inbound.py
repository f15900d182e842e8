"""Inbound, end to end: Meta's signed webhooks reach the real n8n (queue mode, shipped
workflows 03 and 01) through the real Traefik over TLS; the labelled Chatwoot stand-in
holds the inboxes and conversations; the vendors' SIMULATOR answers for WhatsApp Cloud
and Claude and records what it was sent; the real Directus holds the triage log.
Here: what the deploy set up, and who may post what (signatures, internal webhooks);
triage itself is in test_3_inbound_a_triage.py, which runs next on the same host."""

import hashlib
import hmac
import json
import shlex
import subprocess
import time
import uuid

from tools.inbound_client import signed, wait_for, whatsapp_message

from conftest import DC, GROUP_DATA, N8N_CLI, NAME
from inbound_helpers import (
    AUTOMATION,
    DEPARTMENTS,
    HOST,
    chatwoot,
    chatwoot_objects,
    fresh_simulator,  # noqa: F401 (an autouse fixture: pytest finds it in the module, unreferenced)
    host_secret,
    labelled,
    lead_captures,
    new_sender,
    simulator,
)


def test_the_deploy_set_up_chatwoot_n8n_and_directus(sandbox):
    inboxes = chatwoot("GET", "/inboxes")["payload"]
    by_name = {i["name"]: i for i in inboxes}
    for d in DEPARTMENTS.values():
        assert by_name[d["inbox"]]["channel_type"] == "Channel::Whatsapp"
        assert by_name[d["inbox"]]["phone_number"] == d["number"]
    assert by_name[GROUP_DATA.get("default_inbox", "unrouted-whatsapp")]["channel_type"] == "Channel::Api"
    assert len(inboxes) == len(DEPARTMENTS) + len(GROUP_DATA["web_chats"]) + 2  # the default inbox, the Facebook Page's
    facebook = by_name[GROUP_DATA["facebook_inbox"]["inbox"]]
    assert (facebook["channel_type"], facebook["page_id"], facebook["reauthorization_required"]) == (
        "Channel::FacebookPage",
        GROUP_DATA["facebook_page_id"],
        False,
    )
    for w in GROUP_DATA["web_chats"]:
        assert (by_name[w["inbox"]]["channel_type"], by_name[w["inbox"]]["website_url"]) == (
            "Channel::WebWidget",
            w["website_url"],
        )
    # No department inbox registered Chatwoot's own callback with Meta, or is flagged for reauthorisation.
    assert not any(by_name[d["inbox"]]["reauthorization_required"] for d in DEPARTMENTS.values())
    assert [c for c in chatwoot_objects(sandbox, "meta_registration")] == []
    teams = {t["name"]: t["id"] for t in chatwoot("GET", "/teams")}
    assert {t.lower() for t in GROUP_DATA["teams"]} <= set(teams)  # teams made by hand (or by earlier group data) stay
    # Every team has its people; every department inbox its agents, the supervisors and the admin.
    agents = {a["email"]: a["id"] for a in chatwoot("GET", "/agents")}
    for team in GROUP_DATA["teams"]:
        members = {m["email"] for m in chatwoot("GET", f"/teams/{teams[team.lower()]}/team_members")}
        wanted = {a["email"] for d in DEPARTMENTS.values() if d["team"] == team for a in d["agents"]}
        assert members == wanted | set(GROUP_DATA["team_members"].get(team, ())) and members, team
    for d in DEPARTMENTS.values():
        members = {m["email"] for m in chatwoot("GET", f"/inbox_members/{by_name[d['inbox']]['id']}")["payload"]}
        everyone = {"supervisor@example.com", GROUP_DATA["admin_email"], AUTOMATION}
        agents_of = (
            {a["email"] for x in DEPARTMENTS.values() for a in x["agents"]}
            if d["escalation_team"] == "Any available"
            else {a["email"] for a in d["agents"]}
        )
        assert members == everyone | agents_of, d["name"]
    labels = {x["title"] for x in chatwoot("GET", "/labels")["payload"]}
    assert labels == {d["name"].lower() for d in DEPARTMENTS.values()} | {"escalated", "ai-replied", "unrouted"}
    # The platform's agent bot holds every department inbox's new conversations, and gets no event (no URL);
    # the messages reach n8n through one account webhook, for message_created only.
    [bot] = [b for b in chatwoot("GET", "/agent_bots") if b["name"] == "Platform triage"]
    assert not bot["outgoing_url"]
    for d in DEPARTMENTS.values():
        assert chatwoot("GET", f"/inboxes/{by_name[d['inbox']]['id']}/agent_bot")["agent_bot"]["id"] == bot["id"]
    [hook] = chatwoot("GET", "/webhooks")["payload"]["webhooks"]
    assert (hook["url"], hook["subscriptions"]) == ("http://n8n:5678/webhook/chatwoot-events", ["message_created"])
    assert host_secret(sandbox, "chatwoot_webhook_secret") == hook["secret"]
    assert host_secret(sandbox, "chatwoot_bot_token") == bot["access_token"] and agents
    # n8n: the shipped workflows, published; Directus: the collections triage uses.
    exported = json.loads(
        sandbox.sh(f"{N8N_CLI} 'n8n export:workflow --all --output=/tmp/all.json >/dev/null && cat /tmp/all.json'")
    )
    published = {w["name"]: bool(w.get("activeVersionId") or w.get("active")) for w in exported}
    assert published.get("01-inbound-message-triage") and published.get("03-whatsapp-lead-capture"), published
    collections = {c["collection"] for c in HOST.directus("/collections")}
    assert {"business_context", "triage_log"} <= collections


def test_meta_verification_handshake(sandbox):
    token = host_secret(sandbox, "whatsapp_verify_token")
    assert HOST.webhook("GET", f"whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}") == (
        200,
        "1158201444",
    )
    assert HOST.webhook("GET", "whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess")[0] == 403


def test_internal_webhooks_are_refused_from_outside(sandbox):
    """Chatwoot's events to n8n, and Chatwoot's own WhatsApp endpoint (only n8n forwards to it)."""
    event, json_type = b'{"event": "message_created"}', {"Content-Type": "application/json"}
    for path in (
        "/webhook/chatwoot-events",
        "/webhook/chatwoot-events/unrouted",
        # n8n matches /webhook/ in any letter case; Traefik decodes %xx and cleans dot segments and doubled slashes.
        "/WEBHOOK/chatwoot-events",
        "/Webhook/chatwoot-events/unrouted",
        "//webhook/chatwoot-events",
        "/%57ebhook/chatwoot-events",
        "/./WebHook/chatwoot-events",
        "/webhook-test/chatwoot-events",
        "/api/v1/workflows",
    ):
        status, _ = HOST.https("n8n.sandbox.test", "POST", path, event, json_type)
        assert status == 403, path
    assert HOST.https("n8n.sandbox.test.", "POST", "/WEBHOOK/chatwoot-events", event, json_type)[0] == 403
    raw, headers = signed(
        whatsapp_message(DEPARTMENTS["Sales"]["number"], DEPARTMENTS["Sales"]["phone_number_id"], "hi", new_sender())
    )
    assert (
        HOST.https("chat.sandbox.test", "POST", f"/webhooks/whatsapp/{DEPARTMENTS['Sales']['number']}", raw, headers)[0]
        == 403
    )


def test_a_bad_or_missing_signature_is_refused_and_creates_nothing(sandbox):
    """Meta's delivery is answered once its execution decided: a signature that is missing or not the app
    secret's HMAC of the raw body gets 401, and nothing is created."""
    sender = new_sender()
    payload = whatsapp_message(
        DEPARTMENTS["Sales"]["number"], DEPARTMENTS["Sales"]["phone_number_id"], "hello", sender=sender
    )
    raw, headers = signed(payload, secret="not-the-app-secret")
    tampered, good = signed(payload)
    for body, head in (
        (raw, headers),
        (raw, {"Content-Type": "application/json"}),
        (tampered.replace(b"hello", b"HELLO"), good),
    ):  # changed after signing: the HMAC is over the raw bytes
        assert HOST.webhook("POST", "whatsapp", body, head) == (401, "invalid signature")
    wait_for("three executions finished", lambda: lead_captures(sandbox, sender, status="success") >= 3)
    assert HOST.conversations_of(sender) == []


def post_from_chatwoot(url, body, headers):
    """HTTP status of a POST from inside the stack (Chatwoot's container), the body on stdin."""
    options = " ".join(f"-H {shlex.quote(f'{k}: {v}')}" for k, v in headers.items())
    script = (
        f"curl -s -o /dev/null -w '%{{http_code}}' -X POST -H 'Content-Type: application/json' {options} "
        f"--data-binary @- {url}"
    )
    out = subprocess.run(
        ["docker", "exec", "-i", NAME, "sh", "-c", f"{DC} exec -T chatwoot-web sh -c {shlex.quote(script)}"],
        input=body,
        capture_output=True,
    )
    return int(out.stdout.decode().strip() or 0)


def forward(sandbox, number, raw, signature=None):
    """HTTP status of a POST to Chatwoot's WhatsApp webhook from inside the stack, as n8n forwards."""
    headers = {"X-Hub-Signature-256": signature} if signature else {}
    return post_from_chatwoot(f"http://127.0.0.1:3000/webhooks/whatsapp/{number}", raw, headers)


def test_delivery_statuses_reach_chatwoot_signed(sandbox):
    """Meta's statuses of a reply Chatwoot sent go on to Chatwoot (signed like messages); Chatwoot marks the message."""
    d, sender = DEPARTMENTS["Support"], new_sender()
    HOST.send("Support", "What are your opening hours?", sender)
    conversation = wait_for("replied", lambda: labelled(sender, "ai-replied"))[0]
    reply = wait_for(
        "the reply's wamid",
        lambda: [
            m
            for c in HOST.conversations_of(sender)
            for m in c["messages"]
            if m["message_type"] in (1, "outgoing") and m.get("source_id")
        ],
    )[0]
    payload = whatsapp_message(d["number"], d["phone_number_id"], "x", sender=sender)
    value = payload["entry"][0]["changes"][0]["value"]
    value["statuses"] = [
        {"id": reply["source_id"], "status": "read", "timestamp": str(int(time.time())), "recipient_id": sender}
    ]
    del value["messages"], value["contacts"]
    assert HOST.webhook("POST", "whatsapp", *signed(payload))[0] == 200
    wait_for(
        "the message marked read",
        lambda: [
            m
            for m in chatwoot("GET", f"/conversations/{conversation['id']}/messages")["payload"]
            if m["id"] == reply["id"] and m["status"] == "read"
        ],
    )


def test_chatwoot_refuses_an_unsigned_or_wrongly_signed_forward(sandbox):
    """Chatwoot's WhatsApp webhook checks X-Hub-Signature-256 over the raw body with the Meta app secret the
    deploy gave the inbox (GHSA-7rw7-pc8v-mrr3); only a validly signed forward creates a conversation."""
    d, sender = DEPARTMENTS["Sales"], new_sender()
    raw, headers = signed(whatsapp_message(d["number"], d["phone_number_id"], "forged?", sender))
    assert forward(sandbox, d["number"], raw) == 401
    assert (
        forward(
            sandbox, d["number"], raw, signed(json.loads(raw), secret="not-the-app-secret")[1]["X-Hub-Signature-256"]
        )
        == 401
    )
    assert forward(sandbox, d["number"], raw.replace(b"forged?", b"FORGED!"), headers["X-Hub-Signature-256"]) == 401
    time.sleep(3)
    assert HOST.conversations_of(sender) == []
    assert forward(sandbox, d["number"], raw, headers["X-Hub-Signature-256"]) == 200
    wait_for("the signed forward's conversation", lambda: HOST.conversations_of(sender))


def signature(body, stamp, key):
    """X-Chatwoot-Signature as Chatwoot computes it (lib/webhooks/trigger.rb)."""
    return "sha256=" + hmac.new(key.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def forgeries(key, run):
    """Headers of a forged event, by marker: unsigned, signed with a guess, a replay of a signed one (a
    callable: it signs the body it is given as it was 10 minutes ago)."""
    now = int(time.time())
    return {
        f"unsigned-{run}": lambda body: {},
        f"guessed-{run}": lambda body: {"X-Chatwoot-Timestamp": now, "X-Chatwoot-Signature": "sha256=" + "0" * 64},
        f"replayed-{run}": lambda body: {
            "X-Chatwoot-Timestamp": now - 600,
            "X-Chatwoot-Signature": signature(body, now - 600, key),
        },
    }


def post_event(body, headers):
    """A POST to n8n's triage webhook from inside the stack, as Chatwoot calls it."""
    return post_from_chatwoot("http://n8n:5678/webhook/chatwoot-events", body, headers)


def test_a_chatwoot_event_forged_inside_the_stack_is_dropped(sandbox):
    """n8n acts on a Chatwoot event only with Chatwoot's signature (the account webhook's secret over
    "<timestamp>.<body>") from the last 5 minutes: a forged one, unsigned, wrongly signed or replayed, reaches no
    one; the same event signed with the webhook's secret reaches triage (Claude), so the signature stopped them."""
    sender = new_sender()
    HOST.send("Sales", "What are your opening hours?", sender)
    conversation = wait_for("triaged", lambda: labelled(sender, "ai-replied"))[0]
    sales = DEPARTMENTS["Sales"]
    inbox = next(i["id"] for i in chatwoot("GET", "/inboxes")["payload"] if i["name"] == sales["inbox"])

    def event(marker):
        return json.dumps(
            {
                "event": "message_created",
                "id": 10**9 + int(time.time() * 1000) % 10**8,
                "message_type": "incoming",
                "private": False,
                "content": f"forged {marker}: give me a refund to this account",
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "sender": {"id": 1, "name": "Mallory"},
                "inbox": {"id": inbox, "name": sales["inbox"]},
                "conversation": {"id": conversation["id"], "inbox_id": inbox, "status": "pending", "labels": []},
            },
            separators=(",", ":"),
        ).encode()

    def reached_claude(marker):
        return [
            r for r in simulator("GET", "/_sim/requests") if r["service"] == "anthropic" and marker in str(r["body"])
        ]

    key, now, run = host_secret(sandbox, "chatwoot_webhook_secret"), int(time.time()), uuid.uuid4().hex[:8]
    forged = forgeries(key, run)
    for marker, headers in forged.items():
        body = event(marker)
        assert post_event(body, headers(body)) == 200, marker  # answered on receipt, as Chatwoot's events are
    marker = f"genuine-{run}"
    body = event(marker)
    assert post_event(body, {"X-Chatwoot-Timestamp": now, "X-Chatwoot-Signature": signature(body, now, key)}) == 200
    wait_for("the signed event reaches Claude", lambda: reached_claude(marker), timeout=90)
    for forged_marker in forged:
        wait_for(f"{forged_marker}: its execution finished", lambda m=forged_marker: triage_runs(sandbox, m))
        assert not reached_claude(forged_marker), forged_marker


def test_an_agent_reply_forged_inside_the_stack_reaches_no_customer(sandbox):
    """The default (API) inbox's webhook sends an agent's reply on WhatsApp only with Chatwoot's signature (the
    inbox's secret over "<timestamp>.<body>") from the last 5 minutes: forged, wrongly signed or replayed, it
    reaches no customer; the same reply signed with the inbox's secret does, so the signature stopped them."""
    sender = new_sender()
    raw, headers = signed(whatsapp_message("+5929999999", "1199999999", "Anyone there?", sender))
    assert HOST.webhook("POST", "whatsapp", raw, headers)[0] == 200
    conversation = wait_for("unrouted conversation", lambda: labelled(sender, "unrouted"))[0]

    def reply(marker):
        return json.dumps(
            {
                "event": "message_created",
                "id": 10**9 + int(time.time() * 1000) % 10**8,
                "message_type": "outgoing",
                "private": False,
                "content": f"forged {marker}: pay to this account",
                "sender": {"id": 1, "name": "Mallory", "type": "user"},
                "conversation": {
                    "id": conversation["id"],
                    "custom_attributes": {"whatsapp_phone_number_id": "1199999999"},
                    "contact_inbox": {"source_id": sender},
                },
            },
            separators=(",", ":"),
        ).encode()

    def sent(marker):
        return [m for m in HOST.sent_to(sender) if marker in str(m["body"])]

    url = "http://n8n:5678/webhook/chatwoot-events/unrouted"
    key, now, run = host_secret(sandbox, "chatwoot_unrouted_secret"), int(time.time()), uuid.uuid4().hex[:8]
    forged = forgeries(key, run)
    for marker, headers in forged.items():
        body = reply(marker)
        assert post_from_chatwoot(url, body, headers(body)) == 200, marker
    marker = f"genuine-{run}"
    body = reply(marker)
    assert (
        post_from_chatwoot(url, body, {"X-Chatwoot-Timestamp": now, "X-Chatwoot-Signature": signature(body, now, key)})
        == 200
    )
    wait_for("the signed reply on WhatsApp", lambda: sent(marker), timeout=60)
    for forged_marker in forged:
        wait_for(
            f"{forged_marker}: its execution finished",
            lambda m=forged_marker: lead_captures(sandbox, m, status="success"),
        )
        assert not sent(forged_marker), forged_marker


def triage_runs(sandbox, fragment):
    sql = (
        'select count(*) from execution_entity e join execution_data d on d."executionId" = e.id '
        f"where e.\"workflowId\" = 'platformTriage01' and e.status = 'success' and d.data like '%{fragment}%'"
    )
    return int(sandbox.sh(f"{DC} exec -T postgres psql -U postgres -d n8n -tAc {shlex.quote(sql)}").strip() or 0)
