"""The Chatwoot stand-in's web widget (see chatwoot_api.py): a website visitor's side (no account in the path),
its JWT, config and messages."""

import base64
import hashlib
import hmac
import json
import secrets
import time

from cw_contract import check, not_found
from cw_core import Ctx, contact_inbox_for, create_conversation, create_message, new_contact
from cw_http import route
from cw_store import ENV, transaction
from cw_views import MESSAGE_TYPES, conv_messages, sender_of, sender_push, to_i


def widget_token(payload):  # Widget::TokenService#generate_token: a JWT, HS256 with the secret key base
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()

    head = part({"alg": "HS256", "typ": "JWT"}) + "." + part(payload)
    sig = hmac.new(ENV.get("SECRET_KEY_BASE", "").encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def widget_claims(token):  # Widget::TokenService#decode_token: {} when the token does not verify
    try:
        head, body, sig = (token or "").split(".")
        good = hmac.new(ENV.get("SECRET_KEY_BASE", "").encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.urlsafe_b64encode(good).rstrip(b"=").decode(), sig):
            return {}
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return claims if claims.get("exp", 0) > time.time() else {}
    except ValueError:
        return {}


def web_widget(st, req):  # WebsiteTokenHelper#set_web_widget: find_by! website_token (404)
    inbox = next(
        iter(st.find("inbox", channel_type="Channel::WebWidget", website_token=req.query.get("website_token") or "")),
        None,
    )
    if not inbox:
        raise not_found()
    return inbox


def widget_contact(st, req, inbox):  # WebsiteTokenHelper#set_contact: the contact inbox of the token's source_id (404)
    claims = widget_claims(req.headers.get("X-Auth-Token"))
    ci = next(iter(st.find("contact_inbox", inbox_id=inbox["id"], source_id=claims.get("source_id") or "")), None)
    if not ci or claims.get("inbox_id") != inbox["id"]:
        raise not_found()
    return ci


@route("POST", "/api/v1/widget/config")
def widget_config(req):
    """Widget::ConfigsController#create: a new visitor becomes a contact of the inbox; its auth token names it."""
    with transaction() as st:
        inbox = web_widget(st, req)
        ctx = Ctx(st, st.get("account", inbox["account_id"]))
        claims = widget_claims(req.headers.get("X-Auth-Token"))
        ci = next(iter(st.find("contact_inbox", inbox_id=inbox["id"], source_id=claims.get("source_id") or "")), None)
        if not ci:  # Channel::WebWidget#create_contact_inbox: a contact with a random name, source_id a UUID
            contact = new_contact(ctx, name=f"visitor-{secrets.token_hex(3)}")
            ci = contact_inbox_for(ctx, contact, inbox, None)
        now = int(time.time())  # BaseTokenService: iat, and exp after WIDGET_TOKEN_EXPIRY (180 days)
        token = widget_token(
            {"source_id": ci["source_id"], "inbox_id": inbox["id"], "iat": now, "exp": now + 180 * 86400}
        )
        contact = st.get("contact", ci["contact_id"])
        body = {
            "website_channel_config": {
                "auth_token": token,
                "website_name": inbox["name"],
                **{
                    k: inbox.get(k)
                    for k in (
                        "website_token",
                        "widget_color",
                        "welcome_title",
                        "welcome_tagline",
                        "reply_time",
                        "pre_chat_form_enabled",
                        "pre_chat_form_options",
                    )
                },
            },
            "contact": {k: contact[k] for k in ("id", "name", "email", "phone_number", "identifier")}
            | {"pubsub_token": ci["pubsub_token"]},
            "global_config": {},
        }
    ctx.after_commit()
    return 200, body


@route("POST", "/api/v1/widget/messages")
def widget_message_create(req):
    """Widget::MessagesController#create: the visitor's message, in its last conversation of the inbox, or a new one."""
    with transaction() as st:
        inbox = web_widget(st, req)
        ci = widget_contact(st, req, inbox)
        params = req.body.get("message") or {}
        check("widget_message", params, "message.")
        ctx = Ctx(st, st.get("account", inbox["account_id"]))
        conv = (st.find("conversation", contact_inbox_id=ci["id"]) or [None])[-1] or create_conversation(
            ctx,
            ci,
            additional_attributes={
                "referer": params.get("referer_url"),
                "initiated_at": {"timestamp": params.get("timestamp")},
            },
        )
        m = create_message(ctx, conv, params.get("content"), "incoming", "Contact", ci["contact_id"])
        body = widget_message_json(st, m)
    ctx.after_commit()
    return 200, body


@route("GET", "/api/v1/widget/messages")
def widget_messages_index(req):
    """Widget::MessagesController#index: the visitor's last conversation, without private notes (MessageFinder)."""
    with transaction() as st:
        ci = widget_contact(st, req, web_widget(st, req))
        conv = (st.find("conversation", contact_inbox_id=ci["id"]) or [None])[-1]
        messages = [widget_message_json(st, m) for m in (conv_messages(st, conv) if conv else []) if not m["private"]]
        return 200, {"payload": messages, "meta": {"contact_last_seen_at": None}}


def widget_message_json(st, m):  # api/v1/widget/messages/create.json.jbuilder (message_type as its integer)
    sender = sender_of(st, m)
    return {
        "id": m["id"],
        "content": m["content"],
        "inbox_id": m["inbox_id"],
        "conversation_id": st.get("conversation", m["conversation_id"])["display_id"],
        "message_type": MESSAGE_TYPES.index(m["message_type"]),
        "created_at": to_i(m["created_at"]),
        "private": m["private"],
        "source_id": m["source_id"],
        "content_attributes": m["content_attributes"],
        "sender": sender_push(m, sender) if sender else None,
    }
