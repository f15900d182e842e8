"""Inbound, end to end: Meta's signed webhooks reach the real n8n (queue mode, shipped
workflows 03 and 01) through the real Traefik over TLS; the labelled Chatwoot stand-in
holds the inboxes and conversations; the vendors' SIMULATOR answers for WhatsApp Cloud
and Claude and records what it was sent; the real Directus holds the triage log."""

import json
import shlex
import subprocess
import time

import pytest
from conftest import DC, GROUP_DATA, N8N_CLI, NAME, assert_no_secret_in_the_apps, changed
from inbound_helpers import (  # noqa: F401
    AUTOMATION,
    DEPARTMENTS,
    HOST,
    chatwoot,
    chatwoot_objects,
    fresh_simulator,
    host_secret,
    inbox_ids,
    labelled,
    new_sender,
    simulator,
)

from tools.inbound_client import signed, vendor_secret, wait_for, whatsapp_message


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
    # The events reach n8n through the platform's agent bot, on every department inbox; no account webhook.
    [bot] = [b for b in chatwoot("GET", "/agent_bots") if b["name"] == "Platform triage"]
    assert bot["outgoing_url"] == "http://n8n:5678/webhook/chatwoot-events"
    for d in DEPARTMENTS.values():
        assert chatwoot("GET", f"/inboxes/{by_name[d['inbox']]['id']}/agent_bot")["agent_bot"]["id"] == bot["id"]
    assert chatwoot("GET", "/webhooks")["payload"]["webhooks"] == []
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
    for path in ("chatwoot-events", "chatwoot-events/unrouted"):
        status, _ = HOST.webhook("POST", path, b'{"event": "message_created"}', {"Content-Type": "application/json"})
        assert status == 403, path
    raw, headers = signed(
        whatsapp_message(DEPARTMENTS["Sales"]["number"], DEPARTMENTS["Sales"]["phone_number_id"], "hi", new_sender())
    )
    assert (
        HOST.https("chat.sandbox.test", "POST", f"/webhooks/whatsapp/{DEPARTMENTS['Sales']['number']}", raw, headers)[0]
        == 403
    )


def test_a_bad_or_missing_signature_is_refused_and_creates_nothing(sandbox):
    """n8n answers Meta on receipt (200, as Meta asks); the execution then refuses the
    payload: it stops with an error naming the signature, and nothing is created."""
    sender, before = new_sender(), refusals(sandbox)
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
        assert HOST.webhook("POST", "whatsapp", body, head) == (200, "EVENT_RECEIVED")
    wait_for("three refused executions", lambda: refusals(sandbox) >= before + 3)
    assert HOST.conversations_of(sender) == []


def forward(sandbox, number, raw, signature=None):
    """HTTP status of a POST to Chatwoot's WhatsApp webhook from inside the stack, as n8n forwards."""
    header = f"-H 'X-Hub-Signature-256: {signature}'" if signature else ""
    script = (
        f"curl -s -o /dev/null -w '%{{http_code}}' -X POST -H 'Content-Type: application/json' {header} "
        f"--data-binary @- http://127.0.0.1:3000/webhooks/whatsapp/{number}"
    )
    out = subprocess.run(
        ["docker", "exec", "-i", NAME, "sh", "-c", f"{DC} exec -T chatwoot-web sh -c {shlex.quote(script)}"],
        input=raw,
        capture_output=True,
    )
    return int(out.stdout.decode().strip() or 0)


def lead_captures(sandbox, *fragments, status=None):
    """Executions of 03-whatsapp-lead-capture whose data holds every fragment (n8n's own records)."""
    sql = (
        'select count(*) from execution_entity e join execution_data d on d."executionId" = e.id '
        "where e.\"workflowId\" = 'platformLeadCapt'"
        + (f" and e.status = '{status}'" if status else "")
        + "".join(f" and d.data like '%{f}%'" for f in fragments)
    )
    return int(sandbox.sh(f"{DC} exec -T postgres psql -U postgres -d n8n -tAc {shlex.quote(sql)}").strip() or 0)


def refusals(sandbox):
    """Failed executions whose error is the signature refusal."""
    return lead_captures(sandbox, "Refused: X-Hub-Signature-256", status="error")


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


def availability(email, status):
    agent = next(a for a in chatwoot("GET", "/agents") if a["email"] == email)
    chatwoot("PATCH", f"/agents/{agent['id']}", {"availability": status})
    return agent["id"]


def test_an_online_supervisor_does_not_take_a_conversation_before_triage(sandbox):
    """The bot holds a new conversation `pending` (Chatwoot assigns no one) until triage has replied; then it
    goes to the department's team, whose online members Chatwoot offers it to, never the supervisor."""
    supervisor = availability("supervisor@example.com", "online")
    try:
        sender = new_sender()
        HOST.send(
            "Support", "Could you take your time and tell me the opening hours?", sender
        )  # Claude answers in 10 s
        waiting = wait_for("the conversation", lambda: HOST.conversations_of(sender, messages=False))[0]
        assert waiting["status"] == "pending" and "assignee" not in waiting["meta"], waiting
        conversation = wait_for("replied", lambda: labelled(sender, "ai-replied"), timeout=90)[0]
        conversation = wait_for(
            "handed over", lambda: [c for c in HOST.conversations_of(sender) if c["status"] == "open"]
        )[0]
        assert conversation["meta"]["team"]["name"] == DEPARTMENTS["Support"]["team"].lower()
        assert (conversation["meta"].get("assignee") or {}).get("id") != supervisor
    finally:
        availability("supervisor@example.com", "offline")


def test_an_escalation_reaches_an_online_member_of_the_escalation_team(sandbox):
    lead = GROUP_DATA["team_members"]["Technical leads"][0]
    lead_id = availability(lead, "online")
    try:
        sender = new_sender()
        HOST.send("Support", "I want a refund for my order", sender)  # low confidence: escalated
        conversation = wait_for("escalated", lambda: labelled(sender, "escalated"), timeout=90)[0]
        assert conversation["meta"]["team"]["name"] == "technical leads"
        assert conversation["meta"]["assignee"]["id"] == lead_id and conversation["status"] == "open"
    finally:
        availability(lead, "offline")


def test_labels_an_agent_added_survive_triage(sandbox):
    """Chatwoot's label API replaces the list: triage reads the labels just before it adds its own."""
    sender = new_sender()
    HOST.send("Billing", "Please take your time: what are your opening hours?", sender)  # Claude answers in 10 s
    conversation = wait_for("the conversation", lambda: labelled(sender, "billing"))[0]
    chatwoot("POST", f"/conversations/{conversation['id']}/labels", {"labels": [*conversation["labels"], "vip"]})
    replied = wait_for("replied", lambda: labelled(sender, "ai-replied"), timeout=90)[0]
    assert {"vip", "billing", "ai-replied"} <= set(replied["labels"])


@pytest.mark.parametrize("department", ["Sales", "Support", "Billing"])
def test_each_number_routes_to_its_inbox_team_and_label_and_triage_replies(sandbox, department):
    d, sender = DEPARTMENTS[department], new_sender()
    HOST.send(department, "What are your opening hours?", sender)
    # Replied, then handed over to the department's team.
    conversation = wait_for(
        "routed conversation", lambda: [c for c in labelled(sender, "ai-replied") if c["meta"].get("team")]
    )[0]
    assert conversation["inbox_id"] == inbox_ids()[d["inbox"]]
    assert conversation["meta"]["team"]["name"].lower() == d["team"].lower()
    assert d["name"].lower() in conversation["labels"]
    # The reply went out through WhatsApp Cloud, from the department's number, to the customer.
    out = wait_for("reply on WhatsApp", lambda: HOST.sent_to(sender))
    assert out[0]["path"].endswith(f"/{d['phone_number_id']}/messages") and out[0]["body"]["text"]["body"]
    claude = [r for r in simulator("GET", "/_sim/requests") if r["service"] == "anthropic"]
    assert claude and claude[-1]["body"]["model"] == GROUP_DATA.get("triage_model", "claude-sonnet-4-5")
    assert claude[-1]["headers"]["x-api-key"] == vendor_secret("PLATFORM_CLAUDE_API_KEY")
    log = wait_for("triage log", lambda: HOST.triage_log(conversation["id"]))
    assert log[0]["action"] == "replied" and log[0]["department"] == department and log[0]["confidence"] >= 0.75


@pytest.mark.parametrize(
    "text, reason",
    [
        ("I want a refund for my order", "below"),
        ("this is rate-limited", "HTTP 429"),
        ("something broken", "HTTP 500"),
        ("a slow answer", "did not answer"),
        # Whatever confidence Claude reports, an intent of triage_escalate_intents goes to a person.
        ("I need to speak to a manager about this", "intent complaint always goes to a person"),
        ("this answer gets cut short", "Claude stopped (max_tokens)"),
    ],
)
def test_uncertain_or_failed_triage_escalates_and_never_replies(sandbox, text, reason):
    sender = new_sender()
    HOST.send("Support", text, sender)
    conversation = wait_for("escalation", lambda: labelled(sender, "escalated"), timeout=90)[0]
    assert conversation["meta"]["team"]["name"].lower() == DEPARTMENTS["Support"]["escalation_team"].lower()
    assert conversation["priority"] == "high" and conversation["status"] == "open"
    notes = [m for m in conversation["messages"] if m.get("private")]
    assert notes and reason in notes[-1]["content"]
    assert HOST.sent_to(sender) == [], "an automatic reply was sent while escalating"
    log = wait_for("triage log", lambda: HOST.triage_log(conversation["id"]))
    assert log[0]["action"] == "escalated" and reason in log[0]["detail"]


def test_a_repeated_wamid_creates_nothing_new(sandbox):
    """Sent to a number not in the table: n8n creates the conversation itself there, so
    only n8n's de-duplication stands between Meta's retries and a second message."""
    sender, wamid = new_sender(), f"wamid.REPEAT{time.time_ns()}"
    raw, headers = signed(whatsapp_message("+5929999999", "1199999999", "Is anyone there?", sender, wamid))
    for _ in range(3):
        assert HOST.webhook("POST", "whatsapp", raw, headers)[0] == 200
    wait_for("three deliveries", lambda: lead_captures(sandbox, wamid) >= 3)
    wait_for("conversation", lambda: labelled(sender, "unrouted"))
    time.sleep(5)
    [conversation] = HOST.conversations_of(sender)
    assert [m["content"] for m in conversation["messages"] if m["message_type"] in (0, "incoming")] == [
        "Is anyone there?"
    ]


def test_a_number_not_in_the_table_lands_in_the_default_inbox_flagged(sandbox):
    sender = new_sender()
    raw, headers = signed(whatsapp_message("+5929999999", "1199999999", "Hello, anyone?", sender))
    assert HOST.webhook("POST", "whatsapp", raw, headers)[0] == 200
    # The flag and the note come first, then the message itself.
    conversation = wait_for(
        "unrouted conversation",
        lambda: [
            c
            for c in labelled(sender, "unrouted")
            if any(m.get("private") for m in c["messages"])
            and any(m["content"] == "Hello, anyone?" for m in c["messages"])
        ],
    )[0]
    assert conversation["inbox_id"] == inbox_ids()["unrouted-whatsapp"]
    assert any("+5929999999" in m["content"] and m.get("private") for m in conversation["messages"])
    assert any(m["content"] == "Hello, anyone?" for m in conversation["messages"])
    # The customer's next message joins the same conversation: one per customer, not one per message.
    raw, headers = signed(whatsapp_message("+5929999999", "1199999999", "Still there?", sender))
    assert HOST.webhook("POST", "whatsapp", raw, headers)[0] == 200
    wait_for(
        "the second message",
        lambda: [m for c in HOST.conversations_of(sender) for m in c["messages"] if m["content"] == "Still there?"],
    )
    [conversation] = HOST.conversations_of(sender)
    # n8n wrote it as its own automation agent, never as the admin.
    automation = next(a["id"] for a in chatwoot("GET", "/agents") if a["email"] == AUTOMATION)
    assert {(m.get("sender") or {}).get("id") for m in conversation["messages"] if m.get("private")} == {automation}
    # An agent's reply there reaches the customer on WhatsApp, from the number they wrote to; a note does not.
    chatwoot("POST", f"/conversations/{conversation['id']}/messages", {"content": "note only", "private": True})
    chatwoot(
        "POST",
        f"/conversations/{conversation['id']}/messages",
        {"content": "Let me find the right team.", "message_type": "outgoing"},
    )
    [sent] = wait_for("the agent's reply on WhatsApp", lambda: HOST.sent_to(sender))
    assert (
        sent["path"].endswith("/1199999999/messages") and sent["body"]["text"]["body"] == "Let me find the right team."
    )


def test_triage_leaves_alone_what_is_not_a_new_customer_message(sandbox):
    sender = new_sender()
    HOST.send("Billing", "What are your opening hours?", sender)
    conversation = wait_for("replied", lambda: labelled(sender, "ai-replied"))[0]
    # Chatwoot sends its outgoing messages to WhatsApp in the background: the AI's reply
    # must have reached WhatsApp before the count starts, or it is counted as the agent's.
    wait_for("the AI reply on WhatsApp", lambda: HOST.sent_to(sender))
    simulator("POST", "/_sim/reset")
    simulator("POST", "/_sim/whatsapp", {"token": vendor_secret("PLATFORM_WHATSAPP_ACCESS_TOKEN")})
    # An agent's reply and a private note: no triage; the agent's reply goes out through WhatsApp.
    chatwoot(
        "POST", f"/conversations/{conversation['id']}/messages", {"content": "Agent here.", "message_type": "outgoing"}
    )
    chatwoot(
        "POST",
        f"/conversations/{conversation['id']}/messages",
        {"content": "note", "message_type": "outgoing", "private": True},
    )
    out = wait_for("agent reply on WhatsApp", lambda: HOST.sent_to(sender))
    assert [r["body"]["text"]["body"] for r in out] == ["Agent here."]
    # A human takes the conversation: the customer's next message is not triaged.
    admin = next(a["id"] for a in chatwoot("GET", "/agents") if a["email"] == GROUP_DATA["admin_email"])
    chatwoot("POST", f"/conversations/{conversation['id']}/assignments", {"assignee_id": admin})
    answer = HOST.send("Billing", "Thanks, one more question", sender)
    try:
        wait_for(
            "left to the agent",
            lambda: [r for r in HOST.triage_log(conversation["id"]) if r["action"] == "left to agent"],
        )
    except AssertionError as missing:  # seen once in a full run, not since: what each hop did
        raise AssertionError(
            f"{missing}; Meta's webhook answered {answer}; {where_the_message_went(sandbox, sender)}"
        ) from None
    assert [r for r in simulator("GET", "/_sim/requests") if r["service"] == "anthropic"] == []
    assert len(HOST.sent_to(sender)) == 1


def where_the_message_went(sandbox, sender):
    """The conversation's messages in Chatwoot, and n8n's executions of the last five minutes."""
    messages = [
        (m["message_type"], m.get("private"), m["content"])
        for c in HOST.conversations_of(sender)
        for m in c["messages"]
    ]
    sql = (
        'select e.id, e."workflowId", e.status, e."startedAt", e."stoppedAt", d.data like \'%one more question%\' '
        'from execution_entity e left join execution_data d on d."executionId" = e.id '
        "where e.\"createdAt\" > now() - interval '5 minutes' order by e.id"
    )
    executions = sandbox.sh(f"{DC} exec -T postgres psql -U postgres -d n8n -tAc {shlex.quote(sql)}", check=False)
    return f"Chatwoot holds {messages}; n8n's executions:\n{executions}"


def test_a_rerun_changes_nothing_and_no_secret_is_in_workflows_or_logs(sandbox):
    code, results, log = sandbox.deploy()
    assert code == 0, log[-3000:]
    assert changed(results) == []
    assert_no_secret_in_the_apps(sandbox)


def test_claude_busy_is_asked_again_before_anything_is_escalated(sandbox):
    """529 (overloaded) and 429 are retried with back-off; the second answer is used."""
    sender = new_sender()
    HOST.send("Sales", "busy once: do you deliver?", sender)
    wait_for("replied", lambda: labelled(sender, "ai-replied"), timeout=90)
    assert len([r for r in simulator("GET", "/_sim/requests") if r["service"] == "anthropic"]) == 2


def test_a_media_message_without_text_is_escalated_without_asking_claude(sandbox):
    d, sender = DEPARTMENTS["Sales"], new_sender()
    payload = whatsapp_message(d["number"], d["phone_number_id"], "", sender)
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message.update(type="image", image={"id": f"MEDIA{sender}", "mime_type": "image/jpeg", "sha256": "0" * 64})
    assert HOST.webhook("POST", "whatsapp", *signed(payload))[0] == 200
    conversation = wait_for("escalated", lambda: labelled(sender, "escalated"), timeout=90)[0]
    assert "a media message without text" in [m for m in conversation["messages"] if m.get("private")][-1]["content"]
    assert [r for r in simulator("GET", "/_sim/requests") if r["service"] == "anthropic"] == []


def test_triage_quotes_only_public_context_and_sees_the_conversation_so_far(sandbox):
    """The team's internal notes (business_notes) are out of reach of n8n's Directus user, so Claude never gets
    them; Claude gets the public business_context and the conversation's last messages with the new one."""
    for collection, row in (
        ("business_context", {"topic": "Opening hours", "content": "Open 9 to 5, Monday to Saturday."}),
        ("business_notes", {"topic": "Margins", "content": "INTERNAL-ONLY: our margin is 40 percent."}),
    ):
        assert HOST.directus_as("directus_admin_token", "POST", f"/items/{collection}", row)[0] == 200
    assert HOST.directus_as("directus_n8n_token", "GET", "/items/business_notes")[0] == 403
    sender = new_sender()
    HOST.send("Support", "When do you open?", sender)
    wait_for("replied", lambda: labelled(sender, "ai-replied"))
    HOST.send("Support", "And on Sundays?", sender)
    claude = wait_for(
        "the second request",
        lambda: [
            r
            for r in simulator("GET", "/_sim/requests")
            if r["service"] == "anthropic" and "Sundays" in json.dumps(r["body"]["messages"])
        ],
    )[0]["body"]
    assert "Open 9 to 5" in claude["system"] and "INTERNAL-ONLY" not in json.dumps(claude)
    question = claude["messages"][-1]["content"]
    assert "Customer: When do you open?" in question and "Us: " in question and question.endswith("And on Sundays?")
