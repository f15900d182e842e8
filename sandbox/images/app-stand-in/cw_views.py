"""What the Chatwoot stand-in renders (see chatwoot_api.py), as Chatwoot's views, push_event_data and
webhook_data do."""

import time
from datetime import UTC, datetime

from cw_store import ENV

MESSAGE_TYPES = ["incoming", "outgoing", "activity", "template"]  # Message.message_types, in enum order


def iso(ts):
    return (
        None
        if ts is None
        else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def to_i(ts):
    return int(ts or 0)


def user_push(u):
    return {
        "id": u["id"],
        "name": u["name"],
        "available_name": u["name"],
        "avatar_url": "",
        "type": "user",
        "availability_status": "offline",
        "thumbnail": "",
    }


def bot_push(b):  # AgentBot#push_event_data
    return {"id": b["id"], "name": b["name"], "avatar_url": "", "type": "agent_bot"}


def agent_json(st, account_id, u):  # api/v1/models/_agent
    au = st.find("account_user", account_id=account_id, user_id=u["id"])[0]
    return {
        "id": u["id"],
        "account_id": account_id,
        "availability_status": au.get("availability", "offline"),
        "auto_offline": au.get("auto_offline", False),
        "confirmed": u["confirmed"],
        "email": u["email"],
        "available_name": u["name"],
        "name": u["name"],
        "role": au["role"],
        "thumbnail": "",
        "custom_role_id": None,
    }


def team_json(st, t, user_id):  # api/v1/models/_team
    return {
        "id": t["id"],
        "name": t["name"],
        "description": t["description"],
        "allow_auto_assign": t["allow_auto_assign"],
        "account_id": t["account_id"],
        "is_member": bool(st.find("team_member", team_id=t["id"], user_id=user_id)),
    }


def contact_push(c):
    return {
        k: c[k]
        for k in (
            "additional_attributes",
            "custom_attributes",
            "email",
            "id",
            "identifier",
            "name",
            "phone_number",
            "blocked",
        )
    } | {"thumbnail": "", "type": "contact"}


def inbox_slim(i):
    return {
        "id": i["id"],
        "avatar_url": "",
        "channel_id": i["id"],
        "name": i["name"],
        "channel_type": i["channel_type"],
        "provider": i.get("provider"),
    }


def inbox_json(i, admin=True):  # api/v1/models/_inbox
    out = inbox_slim(i) | {
        "greeting_enabled": False,
        "greeting_message": None,
        "working_hours_enabled": False,
        "enable_email_collect": True,
        "csat_survey_enabled": False,
        "enable_auto_assignment": i.get("enable_auto_assignment", True),
        "out_of_office_message": None,
        "working_hours": [],
        "timezone": "UTC",
        "callback_webhook_url": None,
        "allow_messages_after_resolved": True,
        "lock_to_single_conversation": False,
        "phone_number": i.get("phone_number"),
    }
    if i["channel_type"] == "Channel::Api":
        out |= {"webhook_url": i.get("webhook_url"), "inbox_identifier": i["identifier"], "additional_attributes": {}}
        # The signing secret of its webhook (WebhookSecretable, PR #13892, v4.13.0+): admins only.
        out |= {"hmac_token": i["hmac_token"], "secret": i["secret"]} if admin else {}
    elif i["channel_type"] == "Channel::WebWidget":
        out |= {
            k: i.get(k)
            for k in (
                "allowed_domains",
                "widget_color",
                "website_url",
                "hmac_mandatory",
                "welcome_title",
                "welcome_tagline",
                "website_token",
                "selected_feature_flags",
                "reply_time",
                "pre_chat_form_enabled",
                "continuity_via_email",
            )
        }
        out |= {
            "pre_chat_form_options": i.get("pre_chat_form_options", {}),
            "web_widget_script": f'<script src="{ENV.get("FRONTEND_URL", "")}/packs/js/sdk.js"></script><script>'
            f"window.chatwootSDK.run({{websiteToken: '{i['website_token']}', "
            f"baseUrl: '{ENV.get('FRONTEND_URL', '')}'}})</script>",
        }
        out |= {"hmac_token": i["hmac_token"]} if admin else {}
    elif i["channel_type"] == "Channel::FacebookPage":
        out |= {"page_id": i["page_id"], "reauthorization_required": bool(i.get("reauthorization_required"))}
    else:
        out |= {
            "callback_webhook_url": f"{ENV.get('FRONTEND_URL', '')}/webhooks/whatsapp/{i['phone_number']}",
            "message_templates": i.get("message_templates", []),
            "reauthorization_required": bool(i.get("reauthorization_required")),
        }
        out |= {"provider_config": i["provider_config"]} if admin else {}
    return out


def contact_json(st, c):  # api/v1/models/_contact, with_contact_inboxes
    inboxes = [
        {"source_id": ci["source_id"], "inbox": inbox_slim(st.get("inbox", ci["inbox_id"]))}
        for ci in st.find("contact_inbox", contact_id=c["id"])
    ]
    return contact_push(c) | {
        "availability_status": "offline",
        "created_at": to_i(c["created_at"]),
        "last_activity_at": c.get("last_activity_at") and to_i(c["last_activity_at"]),
        "contact_inboxes": inboxes,
    }


SENDER_KINDS = {"User": "user", "Contact": "contact", "AgentBot": "agent_bot"}


def sender_of(st, m):
    return st.get(SENDER_KINDS[m["sender_type"]], m["sender_id"]) if m.get("sender_id") else None


def sender_push(m, sender):
    return sender and {"User": user_push, "Contact": contact_push, "AgentBot": bot_push}[m["sender_type"]](sender)


def message_json(st, m, conv):  # api/v1/models/_message (message_type as its integer, as the API renders it)
    sender = sender_of(st, m)
    return {
        "id": m["id"],
        "content": m["content"],
        "inbox_id": m["inbox_id"],
        "conversation_id": conv["display_id"],
        "message_type": MESSAGE_TYPES.index(m["message_type"]),
        "content_type": m["content_type"],
        "status": m["status"],
        "content_attributes": m["content_attributes"],
        "created_at": to_i(m["created_at"]),
        "private": m["private"],
        "source_id": m["source_id"],
        "sender": sender_push(m, sender),
    }


def message_push(st, m, conv):  # Message#push_event_data
    ci = st.get("contact_inbox", conv["contact_inbox_id"])
    return message_json(st, m, conv) | {
        "account_id": m["account_id"],
        "updated_at": iso(m["updated_at"]),
        "sender_type": m["sender_type"],
        "sender_id": m["sender_id"],
        "additional_attributes": m["additional_attributes"],
        "external_source_ids": {},
        "processed_message_content": m["content"],
        "sentiment": {},
        "conversation": {
            "assignee_id": conv["assignee_id"],
            "unread_count": unread_count(st, conv),
            "last_activity_at": to_i(conv["last_activity_at"]),
            "contact_inbox": {"source_id": ci["source_id"]},
        },
    }


def conv_messages(st, conv):
    return st.find("message", conversation_id=conv["id"])


def unread_count(st, conv):
    return min(10, sum(m["message_type"] == "incoming" for m in conv_messages(st, conv)))


def can_reply(
    st, conv, inbox
):  # Conversations::MessageWindowService: WhatsApp and Messenger (no HUMAN_AGENT tag) within 24 h
    if inbox["channel_type"] not in ("Channel::Whatsapp", "Channel::FacebookPage"):
        return True
    incoming = [m["created_at"] for m in conv_messages(st, conv) if m["message_type"] == "incoming"]
    return bool(incoming) and time.time() - max(incoming) < 24 * 3600


def conversation_push(st, conv):  # Conversations::EventDataPresenter#push_data == Conversation#webhook_data
    inbox, contact = st.get("inbox", conv["inbox_id"]), st.get("contact", conv["contact_id"])
    assignee, team = (
        conv["assignee_id"] and st.get("user", conv["assignee_id"]),
        conv["team_id"] and st.get("team", conv["team_id"]),
    )
    ci = st.get("contact_inbox", conv["contact_inbox_id"])
    chat = [m for m in conv_messages(st, conv) if m["message_type"] != "activity" and not m["private"]]
    return {
        "additional_attributes": conv["additional_attributes"],
        "can_reply": can_reply(st, conv, inbox),
        "channel": inbox["channel_type"],
        "contact_inbox": {
            k: ci[k] for k in ("id", "contact_id", "inbox_id", "source_id", "hmac_verified", "pubsub_token")
        }
        | {"created_at": iso(ci["created_at"]), "updated_at": iso(ci["updated_at"])},
        "id": conv["display_id"],
        "inbox_id": conv["inbox_id"],
        "messages": [message_push(st, m, conv) for m in chat[-1:]],
        "labels": conv["labels"],
        "meta": {
            "sender": contact_push(contact),
            "assignee": assignee and user_push(assignee),
            "assignee_type": "User" if assignee else None,
            "team": team and {"id": team["id"], "name": team["name"]},
            "hmac_verified": False,
        },
        "status": conv["status"],
        "custom_attributes": conv["custom_attributes"],
        "snoozed_until": conv["snoozed_until"],
        "unread_count": unread_count(st, conv),
        "first_reply_created_at": iso(conv["first_reply_created_at"]),
        "priority": conv["priority"],
        "waiting_since": to_i(conv["waiting_since"]),
        "agent_last_seen_at": 0,
        "contact_last_seen_at": 0,
        "last_activity_at": to_i(conv["last_activity_at"]),
        "timestamp": to_i(conv["last_activity_at"]),
        "created_at": to_i(conv["created_at"]),
        "updated_at": conv["updated_at"],
    }


def conversation_json(st, conv, user_id):  # api/v1/conversations/partials/_conversation
    inbox, contact = st.get("inbox", conv["inbox_id"]), st.get("contact", conv["contact_id"])
    meta = {"sender": contact_json(st, contact), "channel": inbox["channel_type"], "hmac_verified": False}
    if conv["assignee_id"]:
        meta |= {
            "assignee": agent_json(st, conv["account_id"], st.get("user", conv["assignee_id"])),
            "assignee_type": "User",
        }
    if conv["team_id"]:
        meta["team"] = team_json(st, st.get("team", conv["team_id"]), user_id)
    msgs = conv_messages(st, conv)
    last = [m for m in msgs if m["message_type"] != "activity"][-1:]
    return {
        "meta": meta,
        "id": conv["display_id"],
        "messages": [message_push(st, m, conv) for m in msgs[-1:]],
        "account_id": conv["account_id"],
        "uuid": conv["uuid"],
        "additional_attributes": conv["additional_attributes"],
        "agent_last_seen_at": 0,
        "assignee_last_seen_at": 0,
        "can_reply": can_reply(st, conv, inbox),
        "contact_last_seen_at": 0,
        "custom_attributes": conv["custom_attributes"],
        "inbox_id": conv["inbox_id"],
        "labels": conv["labels"],
        "muted": False,
        "snoozed_until": conv["snoozed_until"],
        "status": conv["status"],
        "created_at": to_i(conv["created_at"]),
        "updated_at": conv["updated_at"],
        "timestamp": to_i(conv["last_activity_at"]),
        "first_reply_created_at": to_i(conv["first_reply_created_at"]),
        "unread_count": unread_count(st, conv),
        "last_non_activity_message": last and message_push(st, last[0], conv) or None,
        "last_activity_at": to_i(conv["last_activity_at"]),
        "priority": conv["priority"],
        "waiting_since": to_i(conv["waiting_since"]),
        "sla_policy_id": None,
    }


def conversation_webhook(st, conv):  # Conversations::EventDataPresenter#webhook_data: push_data with the account
    account = st.get("account", conv["account_id"])
    return conversation_push(st, conv) | {"account": {"id": account["id"], "name": account["name"]}}


def message_webhook(st, m, conv):  # Message#webhook_data (message_type as its name)
    inbox, account, sender = st.get("inbox", m["inbox_id"]), st.get("account", m["account_id"]), sender_of(st, m)
    if sender and m["sender_type"] == "User":  # User#webhook_data
        sender = {"id": sender["id"], "name": sender["name"], "email": sender["email"], "type": "user"}
    elif sender and m["sender_type"] == "AgentBot":  # AgentBot#webhook_data
        sender = {"id": sender["id"], "name": sender["name"], "type": "agent_bot"}
    elif sender:
        sender = contact_webhook(st, sender)
    return {
        "account": {"id": account["id"], "name": account["name"]},
        "additional_attributes": m["additional_attributes"],
        "content_attributes": m["content_attributes"],
        "content_type": m["content_type"],
        "content": m["content"],
        "conversation": conversation_webhook(st, conv),
        "created_at": iso(m["created_at"]),
        "id": m["id"],
        "inbox": {"id": inbox["id"], "name": inbox["name"]},
        "message_type": m["message_type"],
        "private": m["private"],
        "sender": sender,
        "source_id": m["source_id"],
    }


def contact_webhook(st, c):  # Contact#webhook_data: no `type` key (push_event_data has one)
    account = st.get("account", c["account_id"])
    return {
        k: c[k]
        for k in (
            "additional_attributes",
            "custom_attributes",
            "email",
            "id",
            "identifier",
            "name",
            "phone_number",
            "blocked",
        )
    } | {"account": {"id": account["id"], "name": account["name"]}, "avatar": "", "thumbnail": ""}
