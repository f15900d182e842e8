"""Inbound triage, end to end, on the host test_3_inbound.py set up and checked: who a new
conversation goes to (never an online supervisor first; an escalation to its team's online
member), each number's inbox, team and label, what triage replies to, escalates or leaves
to an agent, Claude asked again when busy, and the context Claude is given."""

import json
import shlex
import time

import pytest

from tools.inbound_client import signed, vendor_secret, wait_for, whatsapp_message

from conftest import DC, GROUP_DATA, assert_no_secret_in_the_apps, changed
from inbound_helpers import (
    AUTOMATION,
    DEPARTMENTS,
    HOST,
    chatwoot,
    fresh_simulator,  # noqa: F401 (an autouse fixture: pytest finds it in the module, unreferenced)
    inbox_ids,
    labelled,
    lead_captures,
    new_sender,
    simulator,
)


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
