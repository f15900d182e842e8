"""The Chatwoot stand-in's inboxes API (see chatwoot_api.py): inboxes and their channels (API, WhatsApp Cloud,
web widget), agent bots and their inboxes, inbox members."""

import re

from cw_assignment import inbox_member_ids
from cw_contract import WIDGET_ATTRS, Reply, check, invalid, not_found
from cw_core import active_bot
from cw_http import ACCOUNT, need, route, wrapped
from cw_store import new_token
from cw_views import agent_json, inbox_json
from cw_whatsapp import setup_webhooks, whatsapp_config


@route("GET", ACCOUNT + "/inboxes")
def inboxes_index(ctx):
    inboxes = sorted(ctx.st.find("inbox", account_id=ctx.aid), key=lambda i: i["name"].lower())
    if ctx.role == "agent":  # policy_scope: the user's assigned inboxes
        inboxes = [i for i in inboxes if ctx.uid in inbox_member_ids(ctx.st, i)]
    return 200, {"payload": [inbox_json(i, ctx.admin) for i in inboxes]}


@route("POST", ACCOUNT + "/inboxes", admin=True)
def inboxes_create(ctx):
    check("inbox_create", ctx.body)
    channel, fields = ctx.body["channel"], {}
    if channel.get("type") == "api":
        check("channel_api", channel, "channel.")
        fields = {
            "channel_type": "Channel::Api",
            "webhook_url": channel.get("webhook_url"),
            "identifier": new_token(),
            "hmac_token": new_token(),
        }
    elif channel.get("type") == "whatsapp":
        check("channel_whatsapp", channel, "channel.")
        if channel.get("provider", "default") != "whatsapp_cloud":
            raise invalid("channel.provider", "this stand-in implements only the whatsapp_cloud provider")
        fields = {
            "channel_type": "Channel::Whatsapp",
            "provider": "whatsapp_cloud",
            "phone_number": channel["phone_number"],
        }
        fields |= whatsapp_config(ctx, channel, None)
    elif channel.get("type") == "web_widget":
        check("channel_web_widget", channel, "channel.")
        fields = {
            "channel_type": "Channel::WebWidget",
            "website_token": new_token(),
            "hmac_token": new_token(),  # has_secure_token
            "widget_color": "#1f93ff",
            "reply_time": "in_a_few_minutes",
            "pre_chat_form_enabled": False,
            "continuity_via_email": True,
            "hmac_mandatory": False,
            "allowed_domains": "",
            "selected_feature_flags": ["attachments", "emoji_picker", "end_conversation"],
            **{k: v for k, v in channel.items() if k in WIDGET_ATTRS},
        }  # unpermitted: dropped
    else:
        raise invalid(
            "channel.type",
            f"channel type {channel.get('type')!r} is not implemented by this stand-in (api, whatsapp, web_widget)",
        )
    inbox = ctx.st.add(
        "inbox",
        account_id=ctx.aid,
        name=ctx.body["name"],
        secret=new_token(),
        enable_auto_assignment=ctx.body.get("enable_auto_assignment", True),
        **fields,
    )
    if inbox["channel_type"] == "Channel::Whatsapp":
        setup_webhooks(ctx, inbox)
    return 200, inbox_json(inbox, ctx.admin)


@route("PATCH", ACCOUNT + r"/inboxes/(?P<inbox_id>\d+)", admin=True)
def inboxes_update(ctx, inbox_id):
    inbox = need(ctx, "inbox", inbox_id)
    check("inbox_update", ctx.body)
    channel = ctx.body.get("channel") or {}
    if inbox["channel_type"] == "Channel::Whatsapp":
        check("channel_whatsapp_update", channel, "channel.")
        inbox |= whatsapp_config(ctx, channel, inbox) | {k: channel[k] for k in ("phone_number",) if k in channel}
    elif inbox["channel_type"] == "Channel::WebWidget":
        check("channel_web_widget_update", channel, "channel.")
        inbox |= {k: v for k, v in channel.items() if k in WIDGET_ATTRS}
    else:
        check("channel_api_update", channel, "channel.")
        inbox |= {k: channel[k] for k in ("webhook_url",) if k in channel}
    inbox["name"] = ctx.body.get("name", inbox["name"])
    if "enable_auto_assignment" in ctx.body:
        inbox["enable_auto_assignment"] = ctx.body["enable_auto_assignment"]
    if channel:  # InboxesController#update: reauthorized! when channel attributes are sent
        inbox["reauthorization_required"] = False
    ctx.st.save("inbox", inbox)
    return 200, inbox_json(inbox, ctx.admin)


def inbox_agents(ctx, inbox):
    return [
        agent_json(ctx.st, ctx.aid, ctx.st.get("user", m["user_id"]))
        for m in ctx.st.find("inbox_member", inbox_id=inbox["id"])
        if ctx.st.find("account_user", account_id=ctx.aid, user_id=m["user_id"])
    ]


@route("POST", ACCOUNT + r"/inboxes/(?P<inbox_id>\d+)/set_agent_bot", admin=True)
def inboxes_set_agent_bot(ctx, inbox_id):  # InboxesController#set_agent_bot: upserts the active link, nil removes it
    inbox = need(ctx, "inbox", inbox_id)
    check("set_agent_bot", ctx.body)
    for link in ctx.st.find("agent_bot_inbox", inbox_id=inbox["id"]):
        ctx.st.delete("agent_bot_inbox", link["id"])
    if ctx.body["agent_bot"] is not None:
        bot = ctx.st.get("agent_bot", ctx.body["agent_bot"])
        if not bot or bot["account_id"] not in (None, ctx.aid):
            raise not_found()
        ctx.st.add("agent_bot_inbox", account_id=ctx.aid, inbox_id=inbox["id"], agent_bot_id=bot["id"], status="active")
    return 200, None


@route("GET", ACCOUNT + r"/inboxes/(?P<inbox_id>\d+)/agent_bot")
def inboxes_agent_bot(ctx, inbox_id):
    bot = active_bot(ctx.st, need(ctx, "inbox", inbox_id))
    return 200, {"agent_bot": bot and agent_bot_json(ctx, bot)}


def agent_bot_json(ctx, bot):  # api/v1/models/_agent_bot via AgentBotPresenter
    out = {k: bot.get(k) for k in ("id", "name", "description", "outgoing_url", "bot_type", "bot_config", "account_id")}
    out |= {"thumbnail": "", "system_bot": bot["account_id"] is None}
    out |= {"access_token": bot["access_token"]} if bot["account_id"] == ctx.aid else {}
    return out | ({"secret": bot["secret"]} if ctx.admin else {})


@route("GET", ACCOUNT + "/agent_bots")
def agent_bots_index(ctx):
    return 200, [agent_bot_json(ctx, b) for b in ctx.st.find("agent_bot", account_id=ctx.aid)]


@route("POST", ACCOUNT + "/agent_bots", admin=True)
def agent_bots_create(ctx):  # AgentBot: an access token after create, a secret (WebhookSecretable)
    body, prefix = wrapped(ctx, "agent_bot")
    check("agent_bot", body, prefix)
    if body.get("outgoing_url") and not re.match(r"^https?://[^\s/]+", body["outgoing_url"]):
        raise invalid("outgoing_url", "Outgoing url is invalid")
    bot = ctx.st.add(
        "agent_bot",
        account_id=ctx.aid,
        name=body["name"],
        description=body.get("description"),
        outgoing_url=body.get("outgoing_url"),
        bot_type="webhook",
        bot_config=body.get("bot_config") or {},
        access_token=new_token(),
        secret=new_token(),
    )
    return 200, agent_bot_json(ctx, bot)


@route("PATCH", ACCOUNT + r"/agent_bots/(?P<bot_id>\d+)", admin=True)
def agent_bots_update(ctx, bot_id):
    bot, (body, prefix) = need(ctx, "agent_bot", bot_id), wrapped(ctx, "agent_bot")
    check("agent_bot", {"name": bot["name"], **body}, prefix)
    bot |= {k: body[k] for k in ("name", "description", "outgoing_url", "bot_config") if k in body}
    ctx.st.save("agent_bot", bot)
    return 200, agent_bot_json(ctx, bot)


def inbox_users(ctx):
    check("inbox_members", ctx.body)
    inbox = need(ctx, "inbox", ctx.body["inbox_id"])
    if not all(ctx.st.get("user", i) for i in ctx.body["user_ids"]):
        raise Reply(422, {"message": "User must exist", "attributes": ["user"]})
    return inbox, list(dict.fromkeys(ctx.body["user_ids"]))


@route("POST", ACCOUNT + "/inbox_members", admin=True)
def inbox_members_create(ctx):  # InboxMembersController#create: adds the missing ones
    inbox, user_ids = inbox_users(ctx)
    for user_id in user_ids:
        if not ctx.st.find("inbox_member", inbox_id=inbox["id"], user_id=user_id):
            ctx.st.add("inbox_member", account_id=ctx.aid, inbox_id=inbox["id"], user_id=user_id)
    return 200, {"payload": inbox_agents(ctx, inbox)}


@route("PATCH", ACCOUNT + "/inbox_members", admin=True)
def inbox_members_update(ctx):  # InboxMembersController#update: the list replaced
    inbox, user_ids = inbox_users(ctx)
    for member in ctx.st.find("inbox_member", inbox_id=inbox["id"]):
        if member["user_id"] not in user_ids:
            ctx.st.delete("inbox_member", member["id"])
    return inbox_members_create(ctx)


@route("GET", ACCOUNT + r"/inbox_members/(?P<inbox_id>\d+)")
def inbox_members_show(ctx, inbox_id):
    return 200, {"payload": inbox_agents(ctx, need(ctx, "inbox", inbox_id))}
