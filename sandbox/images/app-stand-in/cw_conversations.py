"""The Chatwoot stand-in's conversations API (see chatwoot_api.py): conversations, messages, labels, status,
priority and assignments."""

from cw_contract import Reply, check, invalid, not_found
from cw_core import contact_inbox_for, create_conversation, create_message, update_conversation
from cw_http import ACCOUNT, conversation, need, page_of, route
from cw_views import agent_json, contact_push, conv_messages, conversation_json, iso, message_json, user_push


def account_object(ctx, kind, id_, attribute):
    if id_ is None:
        return None
    if (
        not ctx.st.get(kind, id_, None if kind == "user" else ctx.aid)
        or kind == "user"
        and not ctx.st.find("account_user", account_id=ctx.aid, user_id=id_)
    ):
        raise invalid(attribute, f"{attribute.capitalize()} must exist")
    return id_


@route("POST", ACCOUNT + "/conversations", bot=True)
def conversations_create(ctx):
    body = ctx.body
    check("conversation_create", body)
    if body.get("contact_id") is not None and body.get("inbox_id") is not None:
        ci = contact_inbox_for(
            ctx, need(ctx, "contact", body["contact_id"]), need(ctx, "inbox", body["inbox_id"]), body["source_id"]
        )
    else:  # the old lookup by source_id alone
        ci = next(iter(ctx.st.find("contact_inbox", account_id=ctx.aid, source_id=body["source_id"])), None)
        if not ci:
            raise not_found()
    conv = create_conversation(
        ctx,
        ci,
        body.get("status", "open"),
        account_object(ctx, "user", body.get("assignee_id"), "assignee"),
        account_object(ctx, "team", body.get("team_id"), "team"),
        body.get("additional_attributes"),
        body.get("custom_attributes"),
    )
    if body.get("message"):
        template = (
            {"template_params": body["message"]["template_params"]} if body["message"].get("template_params") else {}
        )
        create_message(ctx, conv, body["message"]["content"], "outgoing", *ctx.sender, additional_attributes=template)
    return 200, conversation_json(ctx.st, conv, ctx.uid)


@route("GET", ACCOUNT + "/conversations")
def conversations_index(ctx):
    q = ctx.query
    status, assignee_type = q.get("status", "open"), q.get("assignee_type", "all")
    if status not in ("all", "open", "resolved", "pending", "snoozed") or assignee_type not in (
        "me",
        "unassigned",
        "all",
        "assigned",
    ):
        raise Reply(
            422,
            {
                "message": "status or assignee_type is not one of the values the swagger lists",
                "attributes": ["status"],
                "contract": "swagger/paths/application/conversation/index.yml",
            },
        )
    convs = ctx.st.find("conversation", account_id=ctx.aid)
    for key in ("inbox_id", "team_id"):
        if key in q:
            if not q[key].isdigit():
                raise Reply(422, {"message": f"{key} must be of type integer", "attributes": [key]})
            convs = [c for c in convs if c[key] == int(q[key])]
    convs = [c for c in convs if status == "all" or c["status"] == status]
    groups = {
        "me": [c for c in convs if c["assignee_id"] == ctx.uid],
        "assigned": [c for c in convs if c["assignee_id"]],
        "unassigned": [c for c in convs if not c["assignee_id"]],
        "all": convs,
    }
    _, page = page_of(ctx, sorted(groups[assignee_type], key=lambda c: c["last_activity_at"], reverse=True), 25)
    return 200, {
        "data": {
            "meta": {
                f"{k}_count": len(v)
                for k, v in (
                    ("mine", groups["me"]),
                    ("assigned", groups["assigned"]),
                    ("unassigned", groups["unassigned"]),
                    ("all", convs),
                )
            },
            "payload": [conversation_json(ctx.st, c, ctx.uid) for c in page],
        }
    }


@route("GET", ACCOUNT + r"/conversations/(?P<display_id>\d+)", bot=True)
def conversations_show(ctx, display_id):
    return 200, conversation_json(ctx.st, conversation(ctx, display_id), ctx.uid)


@route("POST", ACCOUNT + r"/conversations/(?P<display_id>\d+)/messages", bot=True)
def messages_create(ctx, display_id):
    conv, body = conversation(ctx, display_id), ctx.body
    check("message_create", body)
    message_type = body.get("message_type", "outgoing")
    if message_type == "incoming" and ctx.st.get("inbox", conv["inbox_id"])["channel_type"] != "Channel::Api":
        raise Reply(422, {"error": "Incoming messages are only allowed in Api inboxes"})  # Messages::MessageBuilder
    sender = ctx.sender if message_type == "outgoing" else ("Contact", conv["contact_id"])
    extra = {k: body[k] for k in ("campaign_id", "template_params") if body.get(k)}
    m = create_message(
        ctx,
        conv,
        body["content"],
        message_type,
        *sender,
        private=body.get("private", False),
        content_type=body.get("content_type"),
        content_attributes=body.get("content_attributes"),
        additional_attributes=extra,
    )
    return 200, message_json(ctx.st, m, conv)


@route("GET", ACCOUNT + r"/conversations/(?P<display_id>\d+)/messages")
def messages_index(ctx, display_id):
    conv = conversation(ctx, display_id)
    assignee = conv["assignee_id"] and ctx.st.get("user", conv["assignee_id"])
    meta = {
        "labels": conv["labels"],
        "additional_attributes": conv["additional_attributes"],
        "contact": contact_push(ctx.st.get("contact", conv["contact_id"])),
        "agent_last_seen_at": None,
        "assignee_last_seen_at": None,
    }
    meta |= {"assignee": user_push(assignee)} if assignee else {}
    before = (
        int(ctx.query["before"]) if ctx.query.get("before", "").isdigit() else None
    )  # MessageFinder: 20 before `before`
    shown = [m for m in conv_messages(ctx.st, conv) if before is None or m["id"] < before][-20:]
    return 200, {"meta": meta, "payload": [message_json(ctx.st, m, conv) for m in shown]}


@route("POST", ACCOUNT + r"/conversations/(?P<display_id>\d+)/labels", bot=True)
def labels_create(ctx, display_id):
    conv = conversation(ctx, display_id)
    check("labels", ctx.body)
    update_conversation(ctx, conv, labels=list(dict.fromkeys(ctx.body["labels"])))
    return 200, {"payload": conv["labels"]}


@route("GET", ACCOUNT + r"/conversations/(?P<display_id>\d+)/labels", bot=True)
def labels_index(ctx, display_id):
    return 200, {"payload": conversation(ctx, display_id)["labels"]}


@route("POST", ACCOUNT + r"/conversations/(?P<display_id>\d+)/toggle_status", bot=True)
def toggle_status(ctx, display_id):
    conv = conversation(ctx, display_id)
    check("toggle_status", ctx.body)
    snoozed_until = iso(ctx.body.get("snoozed_until")) if ctx.body["status"] == "snoozed" else None
    # ConversationsController#toggle_status: an agent who opens a conversation takes it (should_assign_conversation?);
    # a bot's pending -> open is bot_handoff!, the same change of status.
    takes = (
        {"assignee_id": ctx.uid}
        if ctx.role == "agent" and ctx.body["status"] == "open" and not conv["assignee_id"]
        else {}
    )
    update_conversation(ctx, conv, status=ctx.body["status"], snoozed_until=snoozed_until, **takes)
    return 200, {
        "meta": {},
        "payload": {
            "success": True,
            "conversation_id": conv["display_id"],
            "current_status": conv["status"],
            "snoozed_until": conv["snoozed_until"],
        },
    }


@route("POST", ACCOUNT + r"/conversations/(?P<display_id>\d+)/toggle_priority", bot=True)
def toggle_priority(ctx, display_id):
    conv = conversation(ctx, display_id)
    check("toggle_priority", ctx.body)
    update_conversation(ctx, conv, priority=ctx.body.get("priority") or None)
    return 200, None


@route("POST", ACCOUNT + r"/conversations/(?P<display_id>\d+)/assignments", bot=True)
def assignments_create(ctx, display_id):
    conv = conversation(ctx, display_id)
    check("assignment", ctx.body)
    if "assignee_id" in ctx.body:  # Conversations::AssignmentService: an unknown id unassigns
        user_id = ctx.body["assignee_id"]
        user = (
            user_id is not None
            and ctx.st.find("account_user", account_id=ctx.aid, user_id=user_id)
            and ctx.st.get("user", user_id)
        )
        update_conversation(ctx, conv, assignee_id=user["id"] if user else None)
        return 200, agent_json(ctx.st, ctx.aid, user) if user else "null"
    if "team_id" in ctx.body:
        team = ctx.body["team_id"] is not None and ctx.st.get("team", ctx.body["team_id"], ctx.aid)
        update_conversation(ctx, conv, team_id=team["id"] if team else None)
        return 200, {
            k: team[k] for k in ("id", "name", "description", "allow_auto_assign", "account_id")
        } if team else "null"
    return 200, "null"
