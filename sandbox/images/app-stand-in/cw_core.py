"""The Chatwoot stand-in's behaviour shared by the API, the web widget and the channels (see chatwoot_api.py):
the request context with its listeners (WebhookListener, AgentBotListener), and the models' callbacks that
create and change conversations, messages, contacts and contact inboxes."""

import json
import random
import secrets
import uuid

from cw_assignment import assignable, inbox_member_ids, round_robin, team_assignee
from cw_contract import Reply
from cw_net import in_background
from cw_store import _log, transaction
from cw_views import contact_webhook, conversation_webhook, message_webhook


class Ctx:
    def __init__(self, st, account=None, user=None):
        self.st, self.account, self.user, self.admin = st, account, user, True
        self.bot, self.role = None, "administrator"
        self.deliveries, self.sends = [], []

    @property
    def uid(self):
        return self.user["id"] if self.user else 0

    @property
    def sender(self):
        return ("AgentBot", self.bot["id"]) if self.bot else ("User", self.user["id"])

    @property
    def aid(self):
        return self.account["id"]

    def emit(self, inbox, payload):
        """WebhookListener: account webhooks subscribed to the event, and an API inbox's webhook_url;
        AgentBotListener: the inbox's active agent bot, for the events bots get."""
        payload = json.loads(json.dumps(payload))
        self.deliveries += [
            (w["url"], payload, w.get("secret"), "account_webhook")
            for w in self.st.find("webhook", account_id=self.aid)
            if payload["event"] in w["subscriptions"]
        ]
        if inbox and inbox["channel_type"] == "Channel::Api" and inbox.get("webhook_url"):
            self.deliveries.append((inbox["webhook_url"], payload, inbox.get("secret"), "api_inbox_webhook"))
        bot = inbox and active_bot(self.st, inbox)
        if bot and bot.get("outgoing_url") and payload["event"] in BOT_EVENTS:
            self.deliveries.append((bot["outgoing_url"], payload, bot["secret"], "agent_bot_webhook"))

    def after_commit(self):
        from cw_delivery import deliver, send_reply  # here, not above: cw_delivery and the channels import this module

        if self.deliveries:
            in_background(deliver, self.deliveries)
        for message_id in self.sends:
            in_background(send_reply, message_id)


BOT_EVENTS = {
    "conversation_resolved",
    "conversation_opened",
    "conversation_status_changed",
    "conversation_updated",
    "message_created",
    "message_updated",
    "webwidget_triggered",
}  # app/listeners/agent_bot_listener.rb


def active_bot(st, inbox):  # Inbox#active_bot?: agent_bot_inbox&.active?
    link = next(iter(st.find("agent_bot_inbox", inbox_id=inbox["id"], status="active")), None)
    return link and st.get("agent_bot", link["agent_bot_id"])


UPDATE_KEYS = {
    "team_id",
    "assignee_id",
    "status",
    "snoozed_until",
    "custom_attributes",
    "labels",
    "waiting_since",
    "first_reply_created_at",
    "priority",
}  # Conversation#list_of_keys (labels is label_list there)


def auto_assign(ctx, conv):
    """AutoAssignmentHandler#run_auto_assignment: when a conversation is created open or becomes open, in an inbox
    with enable_auto_assignment, with no assignee who is an inbox member. Never for pending ones (a bot has them)."""
    inbox = ctx.st.get("inbox", conv["inbox_id"])
    if conv["status"] != "open" or not inbox.get("enable_auto_assignment", True):
        return
    if conv["assignee_id"] and conv["assignee_id"] in inbox_member_ids(ctx.st, inbox):
        return
    chosen = round_robin(ctx.st, inbox, assignable(ctx.st, conv, inbox))
    if chosen is not None:
        update_conversation(ctx, conv, assignee_id=chosen)


def update_conversation(ctx, conv, **changes):
    """Saves changes; fires conversation_status_changed and conversation_updated as Conversation's callbacks do;
    runs the team's and the inbox's auto-assignment."""
    if "team_id" in changes and changes["team_id"] != conv["team_id"]:
        team_assignee(ctx, conv, changes["team_id"], changes)
    changed = {k: (conv[k], v) for k, v in changes.items() if conv[k] != v}
    if not changed:
        return False
    conv.update(changes)
    if conv["status"] != "snoozed":
        conv["snoozed_until"] = None
    if "status" in changed and conv["status"] == "resolved":
        conv["waiting_since"] = None
    ctx.st.save("conversation", conv)
    as_attrs = [
        {("label_list" if k == "labels" else k): {"previous_value": v[0], "current_value": v[1]}}
        for k, v in changed.items()
    ]
    inbox = ctx.st.get("inbox", conv["inbox_id"])
    if "status" in changed:
        ctx.emit(
            inbox,
            conversation_webhook(ctx.st, conv)
            | {"event": "conversation_status_changed", "changed_attributes": [a for a in as_attrs if "status" in a]},
        )
    if UPDATE_KEYS & changed.keys():
        ctx.emit(
            inbox,
            conversation_webhook(ctx.st, conv) | {"event": "conversation_updated", "changed_attributes": as_attrs},
        )
    if "status" in changed and conv["status"] in ("open", "resolved"):  # bots only (no such account webhook event)
        ctx.emit(
            inbox,
            conversation_webhook(ctx.st, conv)
            | {"event": f"conversation_{'opened' if conv['status'] == 'open' else 'resolved'}"},
        )
    if "status" in changed and conv["status"] == "open":
        auto_assign(ctx, conv)
    return True


def create_conversation(
    ctx, ci, status="open", assignee_id=None, team_id=None, additional_attributes=None, custom_attributes=None
):
    """Conversation#determine_conversation_status: pending in an inbox with an active bot, whatever was asked."""
    inbox = ctx.st.get("inbox", ci["inbox_id"])
    if active_bot(ctx.st, inbox):
        status = "pending"
    display_id = 1 + max([c["display_id"] for c in ctx.st.find("conversation", account_id=ctx.aid)], default=0)
    conv = ctx.st.add(
        "conversation",
        account_id=ctx.aid,
        display_id=display_id,
        inbox_id=ci["inbox_id"],
        uuid=str(uuid.uuid4()),
        contact_id=ci["contact_id"],
        contact_inbox_id=ci["id"],
        status=status,
        priority=None,
        assignee_id=assignee_id,
        team_id=team_id,
        labels=[],
        additional_attributes=additional_attributes or {},
        custom_attributes=custom_attributes or {},
        snoozed_until=None,
        first_reply_created_at=None,
    )
    conv |= {"last_activity_at": conv["created_at"], "waiting_since": conv["created_at"]}
    ctx.st.save("conversation", conv)
    ctx.emit(inbox, conversation_webhook(ctx.st, conv) | {"event": "conversation_created"})
    auto_assign(ctx, conv)
    return conv


def create_message(
    ctx,
    conv,
    content,
    message_type,
    sender_type,
    sender_id,
    private=False,
    content_type="text",
    content_attributes=None,
    source_id=None,
    additional_attributes=None,
):
    """Message#execute_after_create_commit_callbacks, in order: reopen, last activity, message_created,
    waiting/first reply, send."""
    st = ctx.st
    m = st.add(
        "message",
        account_id=conv["account_id"],
        inbox_id=conv["inbox_id"],
        conversation_id=conv["id"],
        content=content,
        message_type=message_type,
        content_type=content_type or "text",
        private=bool(private),
        content_attributes=content_attributes or {},
        additional_attributes=additional_attributes or {},
        status="sent",
        source_id=source_id,
        sender_type=sender_type,
        sender_id=sender_id,
    )
    if message_type == "incoming" and conv["status"] in ("snoozed", "resolved"):  # Message#reopen_conversation
        reopened = (
            "pending" if conv["status"] == "resolved" and active_bot(st, st.get("inbox", conv["inbox_id"])) else "open"
        )
        update_conversation(ctx, conv, status=reopened)
    conv["last_activity_at"] = m["created_at"]
    st.save("conversation", conv)
    inbox = st.get("inbox", conv["inbox_id"])
    if message_type in ("incoming", "outgoing", "template"):  # Message#webhook_sendable?
        ctx.emit(inbox, message_webhook(st, m, conv) | {"event": "message_created"})
    human_reply = message_type == "outgoing" and sender_type == "User" and not private
    if human_reply and not conv["first_reply_created_at"]:
        update_conversation(ctx, conv, first_reply_created_at=m["created_at"], waiting_since=None)
    elif human_reply and conv["waiting_since"]:
        update_conversation(ctx, conv, waiting_since=None)
    elif message_type == "incoming" and not conv["waiting_since"]:
        update_conversation(ctx, conv, waiting_since=m["created_at"])
    if (
        inbox["channel_type"] in ("Channel::Whatsapp", "Channel::FacebookPage")
        and message_type in ("outgoing", "template")
        and not private
        and not source_id
    ):
        ctx.sends.append(m["id"])  # SendReplyJob -> Whatsapp::SendOnWhatsappService, Facebook::SendOnFacebookService
    return m


def sent(message_id, channel, status, source_id, error):
    """The outcome of a send on the message: its source_id, or status failed with the external error;
    message_updated."""
    with transaction() as st:
        m = st.get("message", message_id)
        ctx = Ctx(st, st.get("account", m["account_id"]))
        if error is None:
            m["source_id"] = source_id
        else:
            m["status"], m["content_attributes"]["external_error"] = "failed", error
        st.save("message", m)
        ctx.emit(
            st.get("inbox", m["inbox_id"]),
            message_webhook(st, m, st.get("conversation", m["conversation_id"])) | {"event": "message_updated"},
        )
    _log(f"message {message_id} sent to {channel}: {status}, source_id={m['source_id']}, status={m['status']}")
    ctx.after_commit()


def new_contact(ctx, **fields):
    contact = ctx.st.add(
        "contact",
        account_id=ctx.aid,
        **{
            "name": "",
            "email": None,
            "phone_number": None,
            "identifier": None,
            "blocked": False,
            "additional_attributes": {},
            "custom_attributes": {},
            **fields,
        },
    )
    ctx.emit(None, contact_webhook(ctx.st, contact) | {"event": "contact_created"})
    return contact


def contact_inbox_for(ctx, contact, inbox, source_id):
    """ContactInboxBuilder: the source id Chatwoot makes per channel when none is given."""
    if not source_id and inbox["channel_type"] == "Channel::Whatsapp":
        if not contact["phone_number"]:
            raise Reply(422, {"error": "param is missing or the value is empty: contact phone number"})
        source_id = contact["phone_number"].lstrip("+")
    source_id = source_id or str(uuid.uuid4())
    for ci in ctx.st.find("contact_inbox", inbox_id=inbox["id"], source_id=source_id):
        if ci["contact_id"] == contact["id"]:
            return ci
        if inbox["channel_type"] != "Channel::Whatsapp":
            raise Reply(422, {"error": "source_id should be unique"})
        ci["source_id"] = f"whatsapp:{source_id}{random.randrange(100)}"  # ContactInboxBuilder#update_old_contact_inbox
        ctx.st.save("contact_inbox", ci)
    return ctx.st.add(
        "contact_inbox",
        account_id=ctx.aid,
        contact_id=contact["id"],
        inbox_id=inbox["id"],
        source_id=source_id,
        hmac_verified=False,
        pubsub_token=secrets.token_urlsafe(18),
    )
