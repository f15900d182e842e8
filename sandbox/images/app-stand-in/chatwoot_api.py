"""STAND-IN for the part of Chatwoot v4.15.1 that the platform's deploy and n8n workflows use. It is NOT Chatwoot.

stand_in.py loads it when STAND_IN_APP=chatwoot. It follows Chatwoot's source at v4.15.1 (controllers,
models, presenters, listeners, jobs): CONTRACT.md beside this file lists each behaviour with the source path
it follows. State lives in the Chatwoot database (table cw_objects), so it survives restarts. In short:
- the headless bootstrap `bundle exec rails runner "<code using AccountBuilder>"` (bootstrap());
- the Application API under /api/v1/accounts/{id} the platform uses, authenticated by `api_access_token`
  (a user's or an agent bot's), with Chatwoot's permissions: administrators, agents (their inboxes and
  teams only) and agent bots (BOT_ACCESSIBLE_ENDPOINTS only);
- webhooks (account webhooks, an API inbox's webhook_url, the inbox's agent bot) with Chatwoot's payloads,
  signature headers, 5 s timeout, bot retries and fall-back, refused to private addresses unless
  SAFE_FETCH_ALLOW_PRIVATE_NETWORK is true;
- conversations created `pending` in an inbox with an active bot; auto-assignment (round robin among
  online inbox members, team auto-assign) when a conversation opens or gets a team;
- WhatsApp Cloud: the credential check, Meta's verify handshake, X-Hub-Signature-256 on inbound webhooks,
  the first message or status of a payload, outbound text messages, and the callback registration a
  manual channel attempts (recorded, never sent: it would go to graph.facebook.com).

What it does not prove: anything about Chatwoot's own code, UI, Sidekiq, Redis use, presence (an agent is
online when its availability is online), assignment limits and fair distribution, automation rules,
attachments and media, WhatsApp templates, markdown conversion, email, channel types other than API and
WhatsApp Cloud, or the exact text of every error. All requests are serialised by one database lock.
Env: POSTGRES_* (via stand_in.db_params), WHATSAPP_CLOUD_BASE_URL, WHATSAPP_APP_SECRET,
SAFE_FETCH_ALLOW_PRIVATE_NETWORK, FRONTEND_URL, and for the bootstrap CW_* (see bootstrap()).
"""

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import socket
import random
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone

import psycopg2

ENV = os.environ
S, I, N, B, O, A, NULL = "string", "integer", "number", "boolean", "object", "array", "null"
WEBHOOK_EVENTS = ["conversation_created", "conversation_status_changed", "conversation_updated", "contact_created",
                  "contact_updated", "message_created", "message_updated", "webwidget_triggered", "inbox_created",
                  "inbox_updated", "conversation_typing_on", "conversation_typing_off"]  # Webhook::ALLOWED_WEBHOOK_EVENTS


def F(type_, required=False, enum=None, items=None, schema=None):
    return {"type": type_, "required": required, "enum": enum, "items": items, "schema": schema}


# The request contract: name -> (where it was transcribed from, {field: rule}). "required" marks the
# swagger's `required`, plus fields a model validation makes mandatory (noted).
CONTRACT = {
    "inbox_create": ("app/controllers/api/v1/accounts/inboxes_controller.rb#permitted_params (name, channel: Inbox validations)",
                     {"name": F(S, True), "channel": F(O, True), "enable_auto_assignment": F(B)}),
    "channel_api": ("swagger/definitions/request/inbox/channels/create_api_channel_payload.yml",
                    {"type": F(S, True, ["api"]), "webhook_url": F(S)}),
    "channel_whatsapp": ("swagger/definitions/request/inbox/channels/create_whatsapp_channel_payload.yml",
                         {"type": F(S, True, ["whatsapp"]), "phone_number": F(S, True),
                          "provider": F(S, False, ["default", "whatsapp_cloud"]), "provider_config": F(O, schema="provider_config")}),
    "provider_config": ("swagger/definitions/request/inbox/channels/update_whatsapp_channel_payload.yml (cloud keys); "
                        "webhook_verify_token, app_secret, source: app/models/channel/whatsapp.rb, meta_token_verify_concern.rb",
                        {"api_key": F(S, True), "phone_number_id": F(S, True), "business_account_id": F(S, True),
                         "webhook_verify_token": F(S), "app_secret": F(S), "source": F(S)}),
    "channel_web_widget": ("app/models/channel/web_widget.rb EDITABLE_ATTRS (website_url: its presence validation), "
                           "inboxes_controller.rb#permitted_params",
                           {"type": F(S, True, ["web_widget"]), **(WIDGET_ATTRS := {
                               "website_url": F(S, True), "widget_color": F(S), "welcome_title": F(S), "welcome_tagline": F(S),
                               "reply_time": F(S, False, ["in_a_few_minutes", "in_a_few_hours", "in_a_day"]),
                               "pre_chat_form_enabled": F(B), "continuity_via_email": F(B), "hmac_mandatory": F(B),
                               "allowed_domains": F(S), "pre_chat_form_options": F(O), "selected_feature_flags": F(A, items=F(S))})}),
    "channel_web_widget_update": ("app/models/channel/web_widget.rb EDITABLE_ATTRS",
                                  {k: {**rule, "required": False} for k, rule in WIDGET_ATTRS.items()}),
    "widget_message": ("app/controllers/api/v1/widget/messages_controller.rb#permitted_params (message)",
                       {"content": F(S), "referer_url": F(S), "timestamp": F((S, N)), "echo_id": F(S), "reply_to": F((I, NULL))}),
    "inbox_update": ("app/controllers/api/v1/accounts/inboxes_controller.rb#permitted_params",
                     {"name": F(S), "channel": F(O), "enable_auto_assignment": F(B)}),
    "channel_api_update": ("swagger/definitions/request/inbox/channels/update_api_channel_payload.yml", {"webhook_url": F(S)}),
    "channel_whatsapp_update": ("swagger/definitions/request/inbox/channels/update_whatsapp_channel_payload.yml",
                                {"phone_number": F(S), "provider": F(S, False, ["whatsapp_cloud", "default"]),
                                 "provider_config": F(O, schema="provider_config")}),
    "inbox_members": ("swagger/paths/application/inboxes/inbox_members/create.yml",
                      {"inbox_id": F(I, True), "user_ids": F(A, True, items=F(I))}),
    "agent_create": ("swagger/definitions/request/agent/create_payload.yml",
                     {"name": F(S, True), "email": F(S, True), "role": F(S, False, ["agent", "administrator"]),
                      "availability": F(S, False, ["online", "offline", "busy"]), "auto_offline": F(B)}),
    "team": ("swagger/definitions/request/team/create_update_payload.yml (name: Team validations)",
             {"name": F(S, True), "description": F(S), "allow_auto_assign": F(B)}),
    "agent_update": ("app/controllers/api/v1/accounts/agents_controller.rb#agent_params",
                     {"name": F(S), "role": F(S, False, ["agent", "administrator"]),
                      "availability": F(S, False, ["online", "offline", "busy"]), "auto_offline": F(B)}),
    "team_members": ("swagger/paths/application/team_members/create.yml", {"user_ids": F(A, True, items=F(I))}),
    "label": ("app/controllers/api/v1/accounts/labels_controller.rb#permitted_params",
              {"title": F(S, True), "description": F((S, NULL)), "color": F(S), "show_on_sidebar": F(B)}),
    "agent_bot": ("app/controllers/api/v1/accounts/agent_bots_controller.rb#permitted_params",
                  {"name": F(S, True), "description": F((S, NULL)), "outgoing_url": F((S, NULL)),
                   "bot_type": F(S, False, ["webhook"]), "bot_config": F(O)}),
    "set_agent_bot": ("app/controllers/api/v1/accounts/inboxes_controller.rb#set_agent_bot", {"agent_bot": F((I, NULL), True)}),
    "webhook": ("swagger/definitions/request/webhooks/create_update_payload.yml (url, subscriptions: Webhook validations)",
                {"url": F(S, True), "name": F((S, NULL)), "subscriptions": F(A, True, items=F(S, enum=WEBHOOK_EVENTS))}),
    "webhook_update": ("swagger/definitions/request/webhooks/create_update_payload.yml",
                       {"url": F(S), "name": F((S, NULL)), "subscriptions": F(A, items=F(S, enum=WEBHOOK_EVENTS))}),
    "contact_create": ("swagger/definitions/request/contact/create_payload.yml",
                       {"inbox_id": F(N, True), "name": F(S), "email": F(S), "phone_number": F(S), "identifier": F(S),
                        "blocked": F(B), "avatar_url": F(S), "additional_attributes": F(O), "custom_attributes": F(O)}),
    "conversation_create": ("swagger/definitions/request/conversation/create_payload.yml",
                            {"source_id": F(S, True), "inbox_id": F(I), "contact_id": F(I), "additional_attributes": F(O),
                             "custom_attributes": F(O), "status": F(S, False, ["open", "resolved", "pending"]),
                             "assignee_id": F(I), "team_id": F(I), "snoozed_until": F(S), "message": F(O, schema="conversation_message")}),
    "conversation_message": ("swagger/definitions/request/conversation/create_payload.yml (message)",
                             {"content": F(S, True), "template_params": F(O)}),
    "message_create": ("swagger/definitions/request/conversation/create_message_payload.yml",
                       {"content": F(S, True), "message_type": F(S, False, ["outgoing", "incoming"]), "private": F(B),
                        "content_type": F(S, False, ["text", "input_email", "cards", "input_select", "form", "article"]),
                        "content_attributes": F(O), "campaign_id": F(I), "template_params": F(O)}),
    "labels": ("swagger/paths/application/conversation/labels/create.yml", {"labels": F(A, True, items=F(S))}),
    "toggle_status": ("swagger/paths/application/conversation/toggle_status.yml",
                      {"status": F(S, True, ["open", "resolved", "pending", "snoozed"]), "snoozed_until": F(N)}),
    "toggle_priority": ("swagger/paths/application/conversation/toggle_priority.yml",
                        {"priority": F((S, NULL), False, ["urgent", "high", "medium", "low", None])}),
    "assignment": ("swagger/paths/application/conversation/assignments.yml",
                   {"assignee_id": F((N, NULL)), "team_id": F((N, NULL))}),
}
MESSAGE_TYPES = ["incoming", "outgoing", "activity", "template"]  # Message.message_types, in enum order
_db_params, _log, _schema_ready = None, print, False


def configure(db_params, log):
    global _db_params, _log
    _db_params, _log = db_params, log


class Reply(Exception):
    def __init__(self, status, body):
        super().__init__(status)
        self.status, self.body = status, body


def not_found():
    return Reply(404, {"error": "Resource could not be found"})


def invalid(attribute, message):  # Chatwoot's render_record_invalid
    return Reply(422, {"message": message, "attributes": [attribute]})


def _type_ok(value, types):
    for t in types if isinstance(types, tuple) else (types,):
        if (t == NULL and value is None or t == S and isinstance(value, str) or t == B and isinstance(value, bool)
                or t == I and isinstance(value, int) and not isinstance(value, bool)
                or t == N and isinstance(value, (int, float)) and not isinstance(value, bool)
                or t == O and isinstance(value, dict) or t == A and isinstance(value, list)):
            return True
    return False


def check(name, body, prefix=""):
    """Refuses (422, naming the field) a body that does not match CONTRACT[name]."""
    source, fields = CONTRACT[name]

    def refuse(path, problem):
        return Reply(422, {"message": f"{path} {problem}", "attributes": [path], "contract": source})

    def value_ok(value, rule, path):
        if not _type_ok(value, rule["type"]):
            raise refuse(path, f"must be of type {rule['type']}")
        if rule["enum"] is not None and value not in rule["enum"]:
            raise refuse(path, f"must be one of {rule['enum']}")
        for i, item in enumerate(value if rule["items"] and isinstance(value, list) else []):
            value_ok(item, rule["items"], f"{path}[{i}]")
        if rule["schema"] and isinstance(value, dict):
            check(rule["schema"], value, path + ".")

    if not isinstance(body, dict):
        raise refuse(prefix.rstrip(".") or "body", "must be a JSON object")
    for field, rule in fields.items():
        if field in body:
            value_ok(body[field], rule, prefix + field)
        elif rule["required"]:
            raise refuse(prefix + field, "is required")


# ---- storage: one table, one JSON document per object, ids per kind; every change under one lock ----

class Store:
    def __init__(self, cur):
        self.cur = cur

    def get(self, kind, id_, account_id=None):
        self.cur.execute("select data from cw_objects where kind = %s and id = %s", (kind, id_))
        row = self.cur.fetchone()
        return row[0] if row and (account_id is None or row[0].get("account_id") == account_id) else None

    def find(self, kind, **match):
        self.cur.execute("select data from cw_objects where kind = %s and data @> %s::jsonb order by id", (kind, json.dumps(match)))
        return [row[0] for row in self.cur.fetchall()]

    def add(self, kind, **data):
        self.cur.execute("select coalesce(max(id), 0) + 1 from cw_objects where kind = %s", (kind,))
        data = {"id": self.cur.fetchone()[0], **data, "created_at": time.time(), "updated_at": time.time()}
        self.cur.execute("insert into cw_objects (kind, id, data) values (%s, %s, %s)", (kind, data["id"], json.dumps(data)))
        return data

    def save(self, kind, obj):
        obj["updated_at"] = time.time()
        self.cur.execute("update cw_objects set data = %s where kind = %s and id = %s", (json.dumps(obj), kind, obj["id"]))

    def delete(self, kind, id_):
        self.cur.execute("delete from cw_objects where kind = %s and id = %s", (kind, id_))


class transaction:
    """One database transaction holding the stand-in's lock (so requests from all threads are serialised)."""

    def __enter__(self):
        global _schema_ready
        self.conn = psycopg2.connect(connect_timeout=5, **_db_params())
        cur = self.conn.cursor()
        cur.execute("select pg_advisory_xact_lock(7470001)")
        if not _schema_ready:
            cur.execute("create table if not exists cw_objects (kind text not null, id integer not null, "
                        "data jsonb not null, primary key (kind, id))")
            _schema_ready = True
        return Store(cur)

    def __exit__(self, exc_type, *_):
        (self.conn.rollback if exc_type else self.conn.commit)()
        self.conn.close()


def ensure_schema():
    with transaction():
        pass


def http(method, url, body=None, headers=None, timeout=10):
    """(status, parsed JSON) of a request; status 0 when it did not get an answer."""
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Accept": "application/json", **({"Content-Type": "application/json"} if data else {}), **(headers or {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=hdrs), timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (OSError, ValueError) as e:
        return 0, {"error": {"message": str(e)}}
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, {"raw": raw.decode(errors="replace")}


def in_background(fn, *args):
    threading.Thread(target=fn, args=args, daemon=True).start()


def private_network_allowed():  # lib/safe_fetch.rb: SafeFetch.allow_private_network?
    return ENV.get("SAFE_FETCH_ALLOW_PRIVATE_NETWORK", "").strip().lower() in ("true", "1", "t", "yes", "y", "on")


def unsafe_url(url):
    """lib/safe_fetch.rb with the ssrf_filter gem: a host that resolves to no public address is refused."""
    if private_network_allowed():
        return None
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return f"Hostname '{host}' could not be resolved"
    if not any(ipaddress.ip_address(a).is_global for a in addresses):
        return f"Hostname '{host}' has no public ip addresses"
    return None


def trigger(url, payload, secret, kind):
    """lib/webhooks/trigger.rb: POST JSON through SafeFetch, 5 s timeout (WEBHOOK_TIMEOUT), signed when the
    webhook has a secret: X-Chatwoot-Signature = sha256=HMAC(secret, "<timestamp>.<body>"). An agent bot's
    429 or 500 is tried again (3 attempts, 3 s apart). Returns None, or the failure's message."""
    refused = unsafe_url(url)
    if refused:
        _log(f"Exception: Invalid webhook URL {url} : {refused}")
        return refused
    body = json.dumps(payload, separators=(",", ":"))
    for attempt in range(3 if kind == "agent_bot_webhook" else 1):
        headers = {"Content-Type": "application/json", "Accept": "application/json", "X-Chatwoot-Delivery": str(uuid.uuid4())}
        if secret:
            stamp = str(int(time.time()))
            headers |= {"X-Chatwoot-Timestamp": stamp, "X-Chatwoot-Signature": "sha256=" + hmac.new(
                secret.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()}
        try:
            request = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)
            with urllib.request.urlopen(request, timeout=5) as answer:
                status = answer.status
        except urllib.error.HTTPError as e:
            status = e.code
        except (OSError, ValueError) as e:
            _log(f"Exception: Invalid webhook URL {url} : {e}")
            return str(e)
        _log(f"webhook {payload.get('event')} -> {url}: {status}")
        if 200 <= status < 300:
            return None
        if status not in (429, 500):
            break
        if attempt < 2:
            time.sleep(3)
    return f"{status}"


def deliver(deliveries):
    for url, payload, secret, kind in deliveries:
        failure = trigger(url, payload, secret, kind)
        if failure and kind == "agent_bot_webhook" and payload.get("event") in ("message_created", "message_updated"):
            bot_failed(payload)


def bot_failed(payload):
    """Webhooks::Trigger#handle_failure for an agent bot: a pending conversation is opened, with an activity message."""
    with transaction() as st:
        found = st.find("conversation", account_id=payload["account"]["id"], display_id=payload["conversation"]["id"])
        if not found or found[0]["status"] != "pending":
            return
        ctx = Ctx(st, st.get("account", found[0]["account_id"]))
        update_conversation(ctx, found[0], status="open")
        create_message(ctx, found[0], "Conversation was marked open by system due to an error with the agent bot.",
                       "activity", None, None)
    ctx.after_commit()


# ---- what Chatwoot renders (views, push_event_data, webhook_data) ----

def iso(ts):
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_i(ts):
    return int(ts or 0)


def user_push(u):
    return {"id": u["id"], "name": u["name"], "available_name": u["name"], "avatar_url": "", "type": "user",
            "availability_status": "offline", "thumbnail": ""}


def bot_push(b):  # AgentBot#push_event_data
    return {"id": b["id"], "name": b["name"], "avatar_url": "", "type": "agent_bot"}


def agent_json(st, account_id, u):  # api/v1/models/_agent
    au = st.find("account_user", account_id=account_id, user_id=u["id"])[0]
    return {"id": u["id"], "account_id": account_id, "availability_status": au.get("availability", "offline"),
            "auto_offline": au.get("auto_offline", False), "confirmed": u["confirmed"], "email": u["email"],
            "available_name": u["name"], "name": u["name"], "role": au["role"], "thumbnail": "", "custom_role_id": None}


def team_json(st, t, user_id):  # api/v1/models/_team
    return {"id": t["id"], "name": t["name"], "description": t["description"], "allow_auto_assign": t["allow_auto_assign"],
            "account_id": t["account_id"], "is_member": bool(st.find("team_member", team_id=t["id"], user_id=user_id))}


def contact_push(c):
    return {k: c[k] for k in ("additional_attributes", "custom_attributes", "email", "id", "identifier", "name",
                              "phone_number", "blocked")} | {"thumbnail": "", "type": "contact"}


def inbox_slim(i):
    return {"id": i["id"], "avatar_url": "", "channel_id": i["id"], "name": i["name"], "channel_type": i["channel_type"],
            "provider": i.get("provider")}


def inbox_json(i, admin=True):  # api/v1/models/_inbox
    out = inbox_slim(i) | {
        "greeting_enabled": False, "greeting_message": None, "working_hours_enabled": False, "enable_email_collect": True,
        "csat_survey_enabled": False, "enable_auto_assignment": i.get("enable_auto_assignment", True), "out_of_office_message": None, "working_hours": [],
        "timezone": "UTC", "callback_webhook_url": None, "allow_messages_after_resolved": True,
        "lock_to_single_conversation": False, "phone_number": i.get("phone_number")}
    if i["channel_type"] == "Channel::Api":
        out |= {"webhook_url": i.get("webhook_url"), "inbox_identifier": i["identifier"], "additional_attributes": {}}
        out |= {"hmac_token": i["hmac_token"]} if admin else {}
    elif i["channel_type"] == "Channel::WebWidget":
        out |= {k: i.get(k) for k in ("allowed_domains", "widget_color", "website_url", "hmac_mandatory", "welcome_title",
                                      "welcome_tagline", "website_token", "selected_feature_flags", "reply_time",
                                      "pre_chat_form_enabled", "continuity_via_email")}
        out |= {"pre_chat_form_options": i.get("pre_chat_form_options", {}),
                "web_widget_script": f"<script src=\"{ENV.get('FRONTEND_URL', '')}/packs/js/sdk.js\"></script><script>"
                                     f"window.chatwootSDK.run({{websiteToken: '{i['website_token']}', "
                                     f"baseUrl: '{ENV.get('FRONTEND_URL', '')}'}})</script>"}
        out |= {"hmac_token": i["hmac_token"]} if admin else {}
    elif i["channel_type"] == "Channel::FacebookPage":
        out |= {"page_id": i["page_id"], "reauthorization_required": bool(i.get("reauthorization_required"))}
    else:
        out |= {"callback_webhook_url": f"{ENV.get('FRONTEND_URL', '')}/webhooks/whatsapp/{i['phone_number']}",
                "message_templates": i.get("message_templates", []),
                "reauthorization_required": bool(i.get("reauthorization_required"))}
        out |= {"provider_config": i["provider_config"]} if admin else {}
    return out


def contact_json(st, c):  # api/v1/models/_contact, with_contact_inboxes
    inboxes = [{"source_id": ci["source_id"], "inbox": inbox_slim(st.get("inbox", ci["inbox_id"]))}
               for ci in st.find("contact_inbox", contact_id=c["id"])]
    return contact_push(c) | {"availability_status": "offline", "created_at": to_i(c["created_at"]),
                              "last_activity_at": c.get("last_activity_at") and to_i(c["last_activity_at"]),
                              "contact_inboxes": inboxes}


SENDER_KINDS = {"User": "user", "Contact": "contact", "AgentBot": "agent_bot"}


def sender_of(st, m):
    return st.get(SENDER_KINDS[m["sender_type"]], m["sender_id"]) if m.get("sender_id") else None


def sender_push(m, sender):
    return sender and {"User": user_push, "Contact": contact_push, "AgentBot": bot_push}[m["sender_type"]](sender)


def message_json(st, m, conv):  # api/v1/models/_message (message_type as its integer, as the API renders it)
    sender = sender_of(st, m)
    return {"id": m["id"], "content": m["content"], "inbox_id": m["inbox_id"], "conversation_id": conv["display_id"],
            "message_type": MESSAGE_TYPES.index(m["message_type"]), "content_type": m["content_type"], "status": m["status"],
            "content_attributes": m["content_attributes"], "created_at": to_i(m["created_at"]), "private": m["private"],
            "source_id": m["source_id"], "sender": sender_push(m, sender)}


def message_push(st, m, conv):  # Message#push_event_data
    ci = st.get("contact_inbox", conv["contact_inbox_id"])
    return message_json(st, m, conv) | {
        "account_id": m["account_id"], "updated_at": iso(m["updated_at"]), "sender_type": m["sender_type"],
        "sender_id": m["sender_id"], "additional_attributes": m["additional_attributes"], "external_source_ids": {},
        "processed_message_content": m["content"], "sentiment": {},
        "conversation": {"assignee_id": conv["assignee_id"], "unread_count": unread_count(st, conv),
                         "last_activity_at": to_i(conv["last_activity_at"]), "contact_inbox": {"source_id": ci["source_id"]}}}


def conv_messages(st, conv):
    return st.find("message", conversation_id=conv["id"])


def unread_count(st, conv):
    return min(10, sum(m["message_type"] == "incoming" for m in conv_messages(st, conv)))


def can_reply(st, conv, inbox):  # Conversations::MessageWindowService: WhatsApp and Messenger (no HUMAN_AGENT tag) within 24 h
    if inbox["channel_type"] not in ("Channel::Whatsapp", "Channel::FacebookPage"):
        return True
    incoming = [m["created_at"] for m in conv_messages(st, conv) if m["message_type"] == "incoming"]
    return bool(incoming) and time.time() - max(incoming) < 24 * 3600


def conversation_push(st, conv):  # Conversations::EventDataPresenter#push_data == Conversation#webhook_data
    inbox, contact = st.get("inbox", conv["inbox_id"]), st.get("contact", conv["contact_id"])
    assignee, team = conv["assignee_id"] and st.get("user", conv["assignee_id"]), conv["team_id"] and st.get("team", conv["team_id"])
    ci = st.get("contact_inbox", conv["contact_inbox_id"])
    chat = [m for m in conv_messages(st, conv) if m["message_type"] != "activity" and not m["private"]]
    return {"additional_attributes": conv["additional_attributes"], "can_reply": can_reply(st, conv, inbox),
            "channel": inbox["channel_type"],
            "contact_inbox": {k: ci[k] for k in ("id", "contact_id", "inbox_id", "source_id", "hmac_verified", "pubsub_token")}
            | {"created_at": iso(ci["created_at"]), "updated_at": iso(ci["updated_at"])},
            "id": conv["display_id"], "inbox_id": conv["inbox_id"], "messages": [message_push(st, m, conv) for m in chat[-1:]],
            "labels": conv["labels"],
            "meta": {"sender": contact_push(contact), "assignee": assignee and user_push(assignee),
                     "assignee_type": "User" if assignee else None, "team": team and {"id": team["id"], "name": team["name"]},
                     "hmac_verified": False},
            "status": conv["status"], "custom_attributes": conv["custom_attributes"], "snoozed_until": conv["snoozed_until"],
            "unread_count": unread_count(st, conv), "first_reply_created_at": iso(conv["first_reply_created_at"]),
            "priority": conv["priority"], "waiting_since": to_i(conv["waiting_since"]), "agent_last_seen_at": 0,
            "contact_last_seen_at": 0, "last_activity_at": to_i(conv["last_activity_at"]),
            "timestamp": to_i(conv["last_activity_at"]), "created_at": to_i(conv["created_at"]), "updated_at": conv["updated_at"]}


def conversation_json(st, conv, user_id):  # api/v1/conversations/partials/_conversation
    inbox, contact = st.get("inbox", conv["inbox_id"]), st.get("contact", conv["contact_id"])
    meta = {"sender": contact_json(st, contact), "channel": inbox["channel_type"], "hmac_verified": False}
    if conv["assignee_id"]:
        meta |= {"assignee": agent_json(st, conv["account_id"], st.get("user", conv["assignee_id"])), "assignee_type": "User"}
    if conv["team_id"]:
        meta["team"] = team_json(st, st.get("team", conv["team_id"]), user_id)
    msgs = conv_messages(st, conv)
    last = [m for m in msgs if m["message_type"] != "activity"][-1:]
    return {"meta": meta, "id": conv["display_id"], "messages": [message_push(st, m, conv) for m in msgs[-1:]],
            "account_id": conv["account_id"], "uuid": conv["uuid"], "additional_attributes": conv["additional_attributes"],
            "agent_last_seen_at": 0, "assignee_last_seen_at": 0, "can_reply": can_reply(st, conv, inbox),
            "contact_last_seen_at": 0, "custom_attributes": conv["custom_attributes"], "inbox_id": conv["inbox_id"],
            "labels": conv["labels"], "muted": False, "snoozed_until": conv["snoozed_until"], "status": conv["status"],
            "created_at": to_i(conv["created_at"]), "updated_at": conv["updated_at"], "timestamp": to_i(conv["last_activity_at"]),
            "first_reply_created_at": to_i(conv["first_reply_created_at"]), "unread_count": unread_count(st, conv),
            "last_non_activity_message": last and message_push(st, last[0], conv) or None,
            "last_activity_at": to_i(conv["last_activity_at"]), "priority": conv["priority"],
            "waiting_since": to_i(conv["waiting_since"]), "sla_policy_id": None}


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
    return {"account": {"id": account["id"], "name": account["name"]}, "additional_attributes": m["additional_attributes"],
            "content_attributes": m["content_attributes"], "content_type": m["content_type"], "content": m["content"],
            "conversation": conversation_webhook(st, conv), "created_at": iso(m["created_at"]), "id": m["id"],
            "inbox": {"id": inbox["id"], "name": inbox["name"]}, "message_type": m["message_type"], "private": m["private"],
            "sender": sender, "source_id": m["source_id"]}


def contact_webhook(st, c):  # Contact#webhook_data: no `type` key (push_event_data has one)
    account = st.get("account", c["account_id"])
    return {k: c[k] for k in ("additional_attributes", "custom_attributes", "email", "id", "identifier", "name",
                              "phone_number", "blocked")} | {"account": {"id": account["id"], "name": account["name"]},
                                                             "avatar": "", "thumbnail": ""}


# ---- behaviour shared by the API and the WhatsApp webhook ----

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
        self.deliveries += [(w["url"], payload, w.get("secret"), "account_webhook") for w in self.st.find("webhook", account_id=self.aid)
                            if payload["event"] in w["subscriptions"]]
        if inbox and inbox["channel_type"] == "Channel::Api" and inbox.get("webhook_url"):
            self.deliveries.append((inbox["webhook_url"], payload, inbox.get("secret"), "api_inbox_webhook"))
        bot = inbox and active_bot(self.st, inbox)
        if bot and bot.get("outgoing_url") and payload["event"] in BOT_EVENTS:
            self.deliveries.append((bot["outgoing_url"], payload, bot["secret"], "agent_bot_webhook"))

    def after_commit(self):
        if self.deliveries:
            in_background(deliver, self.deliveries)
        for message_id in self.sends:
            in_background(send_reply, message_id)


BOT_EVENTS = {"conversation_resolved", "conversation_opened", "conversation_status_changed", "conversation_updated",
              "message_created", "message_updated", "webwidget_triggered"}  # app/listeners/agent_bot_listener.rb


def active_bot(st, inbox):  # Inbox#active_bot?: agent_bot_inbox&.active?
    link = next(iter(st.find("agent_bot_inbox", inbox_id=inbox["id"], status="active")), None)
    return link and st.get("agent_bot", link["agent_bot_id"])


UPDATE_KEYS = {"team_id", "assignee_id", "status", "snoozed_until", "custom_attributes", "labels", "waiting_since",
               "first_reply_created_at", "priority"}  # Conversation#list_of_keys (labels is label_list there)


def online(st, account_id, user_id):
    """OnlineStatusTracker: the account user's availability is online (presence pings are not modelled)."""
    au = st.find("account_user", account_id=account_id, user_id=user_id)
    return bool(au) and au[0].get("availability", "offline") == "online"


def inbox_member_ids(st, inbox):
    return [m["user_id"] for m in st.find("inbox_member", inbox_id=inbox["id"])]


def team_member_ids(st, team_id):
    return {m["user_id"] for m in st.find("team_member", team_id=team_id)}


def round_robin(st, inbox, candidates):
    """AutoAssignment::InboxRoundRobinService: the first candidate in the inbox's queue, which then goes to its end."""
    members = inbox_member_ids(st, inbox)
    rr = next(iter(st.find("round_robin", inbox_id=inbox["id"])), None) or st.add("round_robin", inbox_id=inbox["id"], queue=[])
    queue = [u for u in rr["queue"] if u in members] + [u for u in members if u not in rr["queue"]]
    chosen = next((u for u in queue if u in candidates), None)
    if chosen is not None:
        queue.remove(chosen)
        queue.append(chosen)
    rr["queue"] = queue
    st.save("round_robin", rr)
    return chosen


def assignable(st, conv, inbox):
    """Online inbox members, limited to the conversation's team when it has one (none when the team has
    allow_auto_assign off): AutoAssignmentHandler and AutoAssignment::AssignmentService's team filter."""
    members = set(inbox_member_ids(st, inbox))
    if conv["team_id"]:
        team = st.get("team", conv["team_id"])
        members &= team_member_ids(st, team["id"]) if team and team["allow_auto_assign"] else set()
    return {u for u in members if online(st, conv["account_id"], u)}


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


def team_assignee(ctx, conv, team_id, changes):
    """AssignmentHandler#ensure_assignee_is_from_team (before_save, whatever the status): an assignee who is
    not in the new team is removed; then one of the team's online members gets it when the team auto-assigns."""
    team = team_id and ctx.st.get("team", team_id)
    if not team:
        return
    members = team_member_ids(ctx.st, team["id"])
    assignee = changes.get("assignee_id", conv["assignee_id"])
    if assignee and assignee not in members:
        changes["assignee_id"] = assignee = None
    if not assignee and team["allow_auto_assign"]:
        inbox = ctx.st.get("inbox", conv["inbox_id"])
        chosen = round_robin(ctx.st, inbox, {u for u in set(inbox_member_ids(ctx.st, inbox)) & members
                                              if online(ctx.st, conv["account_id"], u)})
        if chosen is not None:
            changes["assignee_id"] = chosen


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
    as_attrs = [{("label_list" if k == "labels" else k): {"previous_value": v[0], "current_value": v[1]}} for k, v in changed.items()]
    inbox = ctx.st.get("inbox", conv["inbox_id"])
    if "status" in changed:
        ctx.emit(inbox, conversation_webhook(ctx.st, conv) | {"event": "conversation_status_changed",
                                                             "changed_attributes": [a for a in as_attrs if "status" in a]})
    if UPDATE_KEYS & changed.keys():
        ctx.emit(inbox, conversation_webhook(ctx.st, conv) | {"event": "conversation_updated", "changed_attributes": as_attrs})
    if "status" in changed and conv["status"] in ("open", "resolved"):  # bots only (no such account webhook event)
        ctx.emit(inbox, conversation_webhook(ctx.st, conv) | {"event": f"conversation_{'opened' if conv['status'] == 'open' else 'resolved'}"})
    if "status" in changed and conv["status"] == "open":
        auto_assign(ctx, conv)
    return True


def create_conversation(ctx, ci, status="open", assignee_id=None, team_id=None, additional_attributes=None, custom_attributes=None):
    """Conversation#determine_conversation_status: pending in an inbox with an active bot, whatever was asked."""
    inbox = ctx.st.get("inbox", ci["inbox_id"])
    if active_bot(ctx.st, inbox):
        status = "pending"
    display_id = 1 + max([c["display_id"] for c in ctx.st.find("conversation", account_id=ctx.aid)], default=0)
    conv = ctx.st.add("conversation", account_id=ctx.aid, display_id=display_id, inbox_id=ci["inbox_id"], uuid=str(uuid.uuid4()),
                      contact_id=ci["contact_id"], contact_inbox_id=ci["id"], status=status, priority=None,
                      assignee_id=assignee_id, team_id=team_id, labels=[], additional_attributes=additional_attributes or {},
                      custom_attributes=custom_attributes or {}, snoozed_until=None, first_reply_created_at=None)
    conv |= {"last_activity_at": conv["created_at"], "waiting_since": conv["created_at"]}
    ctx.st.save("conversation", conv)
    ctx.emit(inbox, conversation_webhook(ctx.st, conv) | {"event": "conversation_created"})
    auto_assign(ctx, conv)
    return conv


def create_message(ctx, conv, content, message_type, sender_type, sender_id, private=False, content_type="text",
                   content_attributes=None, source_id=None, additional_attributes=None):
    """Message#execute_after_create_commit_callbacks, in order: reopen, last activity, message_created, waiting/first reply, send."""
    st = ctx.st
    m = st.add("message", account_id=conv["account_id"], inbox_id=conv["inbox_id"], conversation_id=conv["id"],
               content=content, message_type=message_type, content_type=content_type or "text", private=bool(private),
               content_attributes=content_attributes or {}, additional_attributes=additional_attributes or {},
               status="sent", source_id=source_id, sender_type=sender_type, sender_id=sender_id)
    if message_type == "incoming" and conv["status"] in ("snoozed", "resolved"):  # Message#reopen_conversation
        reopened = "pending" if conv["status"] == "resolved" and active_bot(st, st.get("inbox", conv["inbox_id"])) else "open"
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
    if (inbox["channel_type"] in ("Channel::Whatsapp", "Channel::FacebookPage") and message_type in ("outgoing", "template")
            and not private and not source_id):
        ctx.sends.append(m["id"])  # SendReplyJob -> Whatsapp::SendOnWhatsappService, Facebook::SendOnFacebookService
    return m


def whatsapp_base():
    return ENV.get("WHATSAPP_CLOUD_BASE_URL", "https://graph.facebook.com")


def verify_whatsapp(config):
    """WhatsappCloudService#validate_provider_config?; gives the templates (what sync_templates stores)."""
    status, body = http("GET", f"{whatsapp_base()}/v14.0/{config['business_account_id']}/message_templates"
                               f"?access_token={config['api_key']}")
    if not 200 <= status < 300:
        _log(f"whatsapp credentials refused: {status}")
        raise invalid("provider_config", "Provider config Invalid Credentials")
    return body.get("data", []) if isinstance(body, dict) else []


def sent(message_id, channel, status, source_id, error):
    """The outcome of a send on the message: its source_id, or status failed with the external error; message_updated."""
    with transaction() as st:
        m = st.get("message", message_id)
        ctx = Ctx(st, st.get("account", m["account_id"]))
        if error is None:
            m["source_id"] = source_id
        else:
            m["status"], m["content_attributes"]["external_error"] = "failed", error
        st.save("message", m)
        ctx.emit(st.get("inbox", m["inbox_id"]), message_webhook(st, m, st.get("conversation", m["conversation_id"])) | {"event": "message_updated"})
    _log(f"message {message_id} sent to {channel}: {status}, source_id={m['source_id']}, status={m['status']}")
    ctx.after_commit()


def send_whatsapp(message_id):
    """WhatsappCloudService#send_text_message, then the source_id (or failed status) on the message."""
    try:
        with transaction() as st:
            m = st.get("message", message_id)
            conv, inbox = st.get("conversation", m["conversation_id"]), st.get("inbox", m["inbox_id"])
            to, config = st.get("contact_inbox", conv["contact_inbox_id"])["source_id"], inbox["provider_config"]
        if m["additional_attributes"].get("template_params"):
            _log(f"message {message_id}: WhatsApp templates are not sent by this stand-in")
            return
        status, body = http("POST", f"{whatsapp_base()}/v13.0/{config['phone_number_id']}/messages",
                            {"messaging_product": "whatsapp", "context": None, "to": to, "text": {"body": m["content"]}, "type": "text"},
                            headers={"Authorization": f"Bearer {config['api_key']}"})
        ok = 200 <= status < 300 and isinstance(body, dict) and not body.get("error") and body.get("messages")
        error = body.get("error") if isinstance(body, dict) else None
        sent(message_id, "WhatsApp", status, body["messages"][0]["id"] if ok else None,
             None if ok else (error.get("message") if isinstance(error, dict) else None) or f"HTTP {status}")
    except Exception as e:  # a background job: log, never raise
        _log(f"sending message {message_id} to WhatsApp failed: {e!r}")


def send_reply(message_id):  # SendReplyJob: the channel's send service; a Page's Instagram conversations by Instagram's
    with transaction() as st:
        m = st.get("message", message_id)
        facebook = st.get("inbox", m["inbox_id"])["channel_type"] == "Channel::FacebookPage"
        instagram = st.get("conversation", m["conversation_id"])["additional_attributes"].get("type") == "instagram_direct_message"
    (send_instagram if facebook and instagram else send_facebook if facebook else send_whatsapp)(message_id)


# ---- Facebook Messenger (Channel::FacebookPage) ----
def graph_base():  # the facebook-messenger gem's base_uri and Koala's server: graph.facebook.com, fixed in Chatwoot
    return ENV.get("STAND_IN_GRAPH_BASE_URL", "https://graph.facebook.com")


def send_facebook(message_id):
    """Facebook::SendOnFacebookService#perform_reply: Bot.deliver POSTs {recipient, message, messaging_type: RESPONSE}
    to /v3.2/me/messages with the Page's token; message_id becomes the source_id, an error marks the message failed."""
    try:
        with transaction() as st:
            m = st.get("message", message_id)
            conv, inbox = st.get("conversation", m["conversation_id"]), st.get("inbox", m["inbox_id"])
            psid = st.get("contact_inbox", conv["contact_inbox_id"])["source_id"]
        query = urllib.parse.urlencode({"access_token": inbox["page_access_token"]})
        status, body = http("POST", f"{graph_base()}/v3.2/me/messages?{query}",
                            {"recipient": {"id": psid}, "message": {"text": m["content"]}, "messaging_type": "RESPONSE"})
        error = body.get("error") if isinstance(body, dict) else None
        ok = 200 <= status < 300 and isinstance(body, dict) and not error and body.get("message_id")
        # ErrorParser raises FacebookError: Messages::StatusUpdateService(message, 'failed', e.message)
        sent(message_id, "Messenger", status, body["message_id"] if ok else None,
             None if ok else (error.get("message") if isinstance(error, dict) else None) or f"HTTP {status}")
    except Exception as e:  # a background job: log, never raise
        _log(f"sending message {message_id} to Messenger failed: {e!r}")


def facebook_profile_name(inbox, psid):
    """Messages::Facebook::MessageBuilder#contact_params: Koala get_object(psid) with the Page's token; "John Doe" parts
    where Graph gives none (an error, e.g. 2018218 "No profile available for this user")."""
    query = urllib.parse.urlencode({"access_token": inbox["page_access_token"]})
    status, result = http("GET", f"{graph_base()}/{psid}?{query}")
    result = result if 200 <= status < 300 and isinstance(result, dict) else {}
    return f"{result.get('first_name') or 'John'} {result.get('last_name') or 'Doe'}"


def process_facebook(messaging):
    """Webhooks::FacebookEventsJob -> Integrations::Facebook::MessageCreator#create_contact_message: the message in
    every Page inbox of the recipient id. No check for a message seen before (source_id is not unique): Meta's
    redelivery makes a second message, as in Chatwoot."""
    try:
        with transaction() as st:
            pages = st.find("inbox", channel_type="Channel::FacebookPage", page_id=str((messaging.get("recipient") or {}).get("id")))
        names = {inbox["id"]: facebook_profile_name(inbox, str(messaging["sender"]["id"])) for inbox in pages
                 if not inbox.get("reauthorization_required")}
        with transaction() as st:
            ctxs = [_process_facebook(st, st.get("inbox", inbox_id), messaging, name) for inbox_id, name in names.items()]
        for ctx in ctxs:
            ctx.after_commit()
    except Exception as e:  # a background job: log, never raise
        _log(f"processing a Messenger event failed: {e!r}")


def _process_facebook(st, inbox, messaging, name):
    ctx = Ctx(st, st.get("account", inbox["account_id"]))
    psid, message = str(messaging["sender"]["id"]), messaging.get("message") or {}
    ci = next(iter(st.find("contact_inbox", inbox_id=inbox["id"], source_id=psid)), None)
    if not ci:  # ContactInboxWithContactBuilder: a new contact per new sender
        contact = new_contact(ctx, name=name)
        ci = st.add("contact_inbox", account_id=ctx.aid, contact_id=contact["id"], inbox_id=inbox["id"], source_id=psid,
                    hmac_verified=False, pubsub_token=secrets.token_urlsafe(18))
    open_convs = [c for c in st.find("conversation", contact_inbox_id=ci["id"]) if c["status"] != "resolved"]
    conv = open_convs[-1] if open_convs else create_conversation(ctx, ci)  # lock_to_single_conversation is off
    create_message(ctx, conv, message.get("text"), "incoming", "Contact", ci["contact_id"], source_id=message.get("mid"),
                   content_attributes={"in_reply_to_external_id": (message.get("reply_to") or {}).get("mid")})
    _log(f"messenger message {message.get('mid')} from {psid} -> conversation {conv['display_id']}")
    return ctx


# ---- Instagram through the Facebook Page (Channel::FacebookPage with an instagram_id) ----
def process_instagram(entries):
    """Webhooks::InstagramEventsJob: each entry's messaging (or standby) `message` events, for the Page inbox whose
    instagram_id is the recipient (a Channel::Instagram would come first: not implemented), by
    Instagram::Messenger::MessageText. Test events (`changes`), echoes, reads and deletions: not implemented."""
    try:
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("changes"):
                continue
            for messaging in entry.get("messaging") or entry.get("standby") or []:
                message = messaging.get("message")
                if not isinstance(message, dict) or message.get("is_echo") or message.get("is_deleted"):
                    continue
                with transaction() as st:
                    inbox = next(iter(st.find("inbox", channel_type="Channel::FacebookPage",
                                              instagram_id=str(messaging["recipient"]["id"]))), None)
                    igsid = str(messaging["sender"]["id"])
                    known = inbox and st.find("contact_inbox", inbox_id=inbox["id"], source_id=igsid)
                if not inbox or inbox.get("reauthorization_required"):
                    continue
                user = None if known else instagram_user(inbox, igsid)
                with transaction() as st:
                    ctx = _process_instagram(st, st.get("inbox", inbox["id"]), messaging, user)
                ctx.after_commit()
    except Exception as e:  # a background job: log, never raise
        _log(f"processing an Instagram event failed: {e!r}")


def instagram_user(inbox, igsid):
    """Instagram::Messenger::MessageText#fetch_instagram_user: Koala get_object(igsid) with the Page's token; {} on error."""
    status, user = http("GET", f"{graph_base()}/{igsid}?{urllib.parse.urlencode({'access_token': inbox['page_access_token']})}")
    return user if 200 <= status < 300 and isinstance(user, dict) else {}


def _process_instagram(st, inbox, messaging, user):
    """Instagram::BaseMessageText#perform, WebhooksBaseService#find_or_create_contact and
    Messages::Instagram::Messenger::MessageBuilder: a first message whose sender Graph does not describe is dropped;
    a `mid` seen before (any inbox) makes nothing; the contact's unresolved Instagram conversation, or a new one
    with additional_attributes.type instagram_direct_message."""
    ctx = Ctx(st, st.get("account", inbox["account_id"]))
    igsid, message = str(messaging["sender"]["id"]), messaging["message"]
    ci = next(iter(st.find("contact_inbox", inbox_id=inbox["id"], source_id=igsid)), None)
    if not ci and inbox.get("instagram_id") and user:
        ci = next(iter(st.find("contact_inbox", inbox_id=inbox["id"], source_id=str(user.get("id")))), None)
        if not ci:  # Channel::FacebookPage#create_contact_inbox
            attributes = ({"social_profiles": {"instagram": user["username"]}, "social_instagram_user_name": user["username"]}
                          if user.get("username") else {})
            contact = new_contact(ctx, name=user.get("name") or "", additional_attributes=attributes)
            ci = st.add("contact_inbox", account_id=ctx.aid, contact_id=contact["id"], inbox_id=inbox["id"],
                        source_id=str(user.get("id")), hmac_verified=False, pubsub_token=secrets.token_urlsafe(18))
    if not ci:
        _log(f"instagram message {message.get('mid')}: no contact for {igsid} (Graph gave no profile); dropped")
        return ctx
    if message.get("mid") and st.find("message", source_id=message["mid"]):
        _log(f"instagram message {message['mid']}: already exists; skipped")
        return ctx
    open_convs = [c for c in st.find("conversation", contact_inbox_id=ci["id"]) if c["status"] != "resolved"
                  and c["additional_attributes"].get("type") == "instagram_direct_message"]
    conv = open_convs[-1] if open_convs else create_conversation(ctx, ci, additional_attributes={"type": "instagram_direct_message"})
    create_message(ctx, conv, message.get("text"), "incoming", "Contact", ci["contact_id"], source_id=message.get("mid"),
                   content_attributes={"in_reply_to_external_id": (message.get("reply_to") or {}).get("mid")})
    _log(f"instagram message {message.get('mid')} from {igsid} -> conversation {conv['display_id']}")
    return ctx


def send_instagram(message_id):
    """Instagram::Messenger::SendOnInstagramService: POST graph.facebook.com/v11.0/me/messages, the body form-encoded
    (HTTParty with a Hash) as recipient[id] and message[text], no messaging_type, with the Page token and
    appsecret_proof (HMAC-SHA256 of the token with FB_APP_SECRET); message_id becomes the source_id, an error
    "code - message" marks the message failed."""
    try:
        with transaction() as st:
            m = st.get("message", message_id)
            conv, inbox = st.get("conversation", m["conversation_id"]), st.get("inbox", m["inbox_id"])
            igsid = st.get("contact_inbox", conv["contact_inbox_id"])["source_id"]
        token = inbox["page_access_token"]
        query = {"access_token": token}
        if ENV.get("FB_APP_SECRET"):
            query["appsecret_proof"] = hmac.new(ENV["FB_APP_SECRET"].encode(), token.encode(), hashlib.sha256).hexdigest()
        form = urllib.parse.urlencode({"recipient[id]": igsid, "message[text]": m["content"]}).encode()
        request = urllib.request.Request(f"{graph_base()}/v11.0/me/messages?{urllib.parse.urlencode(query)}", data=form, method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                status, body = r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            status, body = e.code, json.loads(e.read() or b"null")
        error = (body.get("error") if isinstance(body, dict) else None) or {}
        ok = 200 <= status < 300 and isinstance(body, dict) and not error
        sent(message_id, "Instagram", status, body.get("message_id") if ok else None,
             None if ok else f"{error.get('code')} - {error.get('message')}")
    except Exception as e:  # a background job: log, never raise
        _log(f"sending message {message_id} to Instagram failed: {e!r}")


def process_whatsapp(phone_number, params):
    """Webhooks::WhatsappEventsJob + Whatsapp::IncomingMessageWhatsappCloudService (first message only, as there)."""
    try:
        with transaction() as st:
            ctx = _process_whatsapp(st, phone_number, params)
        if ctx:
            ctx.after_commit()
    except Exception as e:  # a background job: log, never raise
        _log(f"processing a whatsapp webhook failed: {e!r}")


def _process_whatsapp(st, phone_number, params):
    if params.get("object") == "whatsapp_business_account":
        value = params["entry"][0]["changes"][0]["value"]
        meta = value.get("metadata", {})
        inbox = next(iter(st.find("inbox", phone_number=f"+{meta.get('display_phone_number')}")), None)
        if inbox and inbox["provider_config"].get("phone_number_id") != meta.get("phone_number_id"):
            inbox = None
    else:
        value, inbox = params, next(iter(st.find("inbox", phone_number=phone_number)), None)
    if not inbox:
        _log(f"whatsapp webhook for {phone_number}: no WhatsApp inbox matches its number and phone_number_id; dropped")
        return None
    ctx = Ctx(st, st.get("account", inbox["account_id"]))
    if value.get("statuses"):  # IncomingMessageBaseService#process_statuses: the first status only; messages ignored
        status = value["statuses"][0]
        m = next(iter(st.find("message", source_id=status.get("id"))), None) if status.get("id") else None  # not inbox-scoped
        if m and status.get("status") in ("sent", "delivered", "read", "failed"):  # no ordering guard, as there
            m["status"] = status["status"]
            errors = status.get("errors") or []
            if status["status"] == "failed" and errors:
                m["content_attributes"]["external_error"] = f"{errors[0].get('code')}: {errors[0].get('title')}"
            st.save("message", m)
            ctx.emit(inbox, message_webhook(st, m, st.get("conversation", m["conversation_id"])) | {"event": "message_updated"})
        return ctx
    message = (value.get("messages") or [None])[0]
    contact_params = (value.get("contacts") or [None])[0]
    if not message or message.get("type") in ("reaction", "ephemeral", "unsupported", "request_welcome"):
        return ctx
    if st.find("message", inbox_id=inbox["id"], source_id=message.get("id")) or not contact_params:
        _log(f"whatsapp message {message.get('id')}: already processed, or no contact; skipped")
        return ctx
    wa_id, phone = contact_params.get("wa_id"), f"+{message.get('from')}"
    ci = next(iter(st.find("contact_inbox", inbox_id=inbox["id"], source_id=wa_id)), None)
    if not ci:  # ContactInboxWithContactBuilder
        contact = next(iter(st.find("contact", account_id=ctx.aid, phone_number=phone)), None) or new_contact(
            ctx, name=(contact_params.get("profile") or {}).get("name") or phone, phone_number=phone)
        ci = st.add("contact_inbox", account_id=ctx.aid, contact_id=contact["id"], inbox_id=inbox["id"], source_id=wa_id,
                    hmac_verified=False, pubsub_token=secrets.token_urlsafe(18))
    open_convs = [c for c in st.find("conversation", contact_inbox_id=ci["id"]) if c["status"] != "resolved"]
    conv = open_convs[-1] if open_convs else create_conversation(ctx, ci)
    kind = message.get("type")
    content = ((message.get("text") or {}).get("body") or (message.get("button") or {}).get("text")
               or (message.get(kind) if isinstance(message.get(kind), dict) else {}).get("caption"))
    create_message(ctx, conv, content, "incoming", "Contact", ci["contact_id"], source_id=str(message.get("id")))
    _log(f"whatsapp message {message.get('id')} from {wa_id} -> conversation {conv['display_id']}")
    return ctx


def new_contact(ctx, **fields):
    contact = ctx.st.add("contact", account_id=ctx.aid, **{"name": "", "email": None, "phone_number": None, "identifier": None,
                                                           "blocked": False, "additional_attributes": {},
                                                           "custom_attributes": {}, **fields})
    ctx.emit(None, contact_webhook(ctx.st, contact) | {"event": "contact_created"})
    return contact


def new_token():  # has_secure_token: 24 characters of base58
    return "".join(secrets.choice("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz") for _ in range(24))


# ---- HTTP ----

ROUTES = []
ACCOUNT = r"/api/v1/accounts/(?P<account_id>\d+)"


def route(method, pattern, admin=False, bot=False):
    """`admin`: administrators only (the resource's Pundit policy); `bot`: in BOT_ACCESSIBLE_ENDPOINTS
    (app/controllers/concerns/access_token_auth_helper.rb)."""
    def register(fn):
        fn.admin_only, fn.bot_ok = admin, bot
        ROUTES.append((method, re.compile(f"^{pattern}/?$"), fn))
        return fn
    return register


def handles(path):
    return (path.startswith("/api/v1/") or path.startswith("/webhooks/whatsapp/") or path.rstrip("/") in ("/bot", "/webhooks/instagram"))


# ---- the web widget: a website visitor's side (no account in the path) ----

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
    inbox = next(iter(st.find("inbox", channel_type="Channel::WebWidget", website_token=req.query.get("website_token") or "")), None)
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
        token = widget_token({"source_id": ci["source_id"], "inbox_id": inbox["id"], "iat": now, "exp": now + 180 * 86400})
        contact = st.get("contact", ci["contact_id"])
        body = {"website_channel_config": {"auth_token": token, "website_name": inbox["name"], **{
                    k: inbox.get(k) for k in ("website_token", "widget_color", "welcome_title", "welcome_tagline", "reply_time",
                                              "pre_chat_form_enabled", "pre_chat_form_options")}},
                "contact": {k: contact[k] for k in ("id", "name", "email", "phone_number", "identifier")} | {"pubsub_token": ci["pubsub_token"]},
                "global_config": {}}
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
            ctx, ci, additional_attributes={"referer": params.get("referer_url"), "initiated_at": {"timestamp": params.get("timestamp")}})
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
    return {"id": m["id"], "content": m["content"], "inbox_id": m["inbox_id"],
            "conversation_id": st.get("conversation", m["conversation_id"])["display_id"],
            "message_type": MESSAGE_TYPES.index(m["message_type"]), "created_at": to_i(m["created_at"]), "private": m["private"],
            "source_id": m["source_id"], "content_attributes": m["content_attributes"],
            "sender": sender_push(m, sender) if sender else None}


class Request:
    def __init__(self, body, query, raw, headers):
        self.body, self.query, self.raw, self.headers = body, query, raw, headers


def serve_request(handler, method):
    url = urllib.parse.urlsplit(handler.path)
    raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    status, body = 404, {"error": f"stand-in: {method} {url.path} is not implemented"}
    try:
        try:
            data = json.loads(raw) if raw.strip() and "json" in (handler.headers.get("Content-Type") or "") else {}
        except ValueError:
            raise Reply(400, {"error": "the request body is not valid JSON"})
        query = dict(urllib.parse.parse_qsl(url.query))
        for m, pattern, fn in ROUTES:
            match = pattern.match(url.path)
            if match and m == method:
                args = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
                if "account_id" not in args:
                    status, body = fn(Request(data, query, raw, handler.headers), **args)
                    break
                with transaction() as st:
                    ctx = authenticate(st, handler.headers, int(args.pop("account_id")), fn)
                    ctx.body, ctx.query = data, query
                    status, body = fn(ctx, **args)
                ctx.after_commit()
                break
    except Reply as r:
        status, body = r.status, r.body
    except Exception as e:  # a database outage or a stand-in bug: answer 500 like Rails would, and log it
        _log(f"{method} {url.path} failed: {e!r}")
        status, body = 500, {"error": f"stand-in error: {e}".strip()}
    out = b"" if body is None and status == 200 or body == "" else (body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(out)))
    handler.end_headers()
    handler.wfile.write(out)


def authenticate(st, headers, account_id, fn):
    """AccessTokenAuthHelper and EnsureCurrentAccountHelper: a user's or an agent bot's token; then the policy."""
    token = headers.get("api_access_token") or headers.get("api-access-token")
    user = next(iter(st.find("user", access_token=token)), None) if token else None
    bot = None if user or not token else next(iter(st.find("agent_bot", access_token=token)), None)
    if not user and not bot:
        raise Reply(401, {"error": "Invalid Access Token"})
    account = st.get("account", account_id)
    if not account:
        raise not_found()
    if bot:
        if bot["account_id"] != account_id and not st.find("agent_bot_inbox", agent_bot_id=bot["id"], account_id=account_id):
            raise Reply(401, {"error": "Bot is not authorized to access this account"})
        if not fn.bot_ok:
            raise Reply(401, {"error": "Access to this endpoint is not authorized for bots"})
        ctx = Ctx(st, account, None)
        ctx.bot, ctx.role, ctx.admin = bot, "bot", False
        return ctx
    membership = st.find("account_user", account_id=account_id, user_id=user["id"])
    if not membership:
        raise Reply(401, {"error": "You are not authorized to access this account"})
    ctx = Ctx(st, account, user)
    ctx.role = membership[0]["role"]
    ctx.admin = ctx.role == "administrator"
    if fn.admin_only and not ctx.admin:
        raise Reply(401, {"error": "You are not authorized to do this action"})
    return ctx


def need(ctx, kind, id_):
    obj = ctx.st.get(kind, int(id_), ctx.aid)
    if not obj:
        raise not_found()
    return obj


def may_see(ctx, conv):
    """ConversationPolicy#show?: administrators, bots, and agents of its inbox or team."""
    return ctx.role != "agent" or ctx.uid in inbox_member_ids(ctx.st, ctx.st.get("inbox", conv["inbox_id"])) or (
        conv["team_id"] and ctx.uid in team_member_ids(ctx.st, conv["team_id"]))


def conversation(ctx, display_id):
    found = ctx.st.find("conversation", account_id=ctx.aid, display_id=int(display_id))
    if not found:
        raise not_found()
    if not may_see(ctx, found[0]):
        raise Reply(401, {"error": "You are not authorized to do this action"})
    return found[0]


def wrapped(ctx, key):
    """Rails' ParamsWrapper: {"team": {...}} or the same keys at the top level; (body, field prefix)."""
    return (ctx.body[key], f"{key}.") if isinstance(ctx.body, dict) and key in ctx.body else (ctx.body, "")


def page_of(ctx, items, size):  # Kaminari's ?page=N (1 when absent or not a number)
    page = int(ctx.query["page"]) if ctx.query.get("page", "").isdigit() and int(ctx.query["page"]) > 0 else 1
    return page, items[(page - 1) * size:page * size]


def members_of_account(ctx, user_ids):
    users = [ctx.st.get("user", i) for i in dict.fromkeys(user_ids)]
    if not all(u and ctx.st.find("account_user", account_id=ctx.aid, user_id=u["id"]) for u in users):
        raise Reply(401, {"error": "Invalid User IDs"})  # TeamMembersController#validate_member_id_params
    return users


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
        fields = {"channel_type": "Channel::Api", "webhook_url": channel.get("webhook_url"), "identifier": new_token(),
                  "hmac_token": new_token()}
    elif channel.get("type") == "whatsapp":
        check("channel_whatsapp", channel, "channel.")
        if channel.get("provider", "default") != "whatsapp_cloud":
            raise invalid("channel.provider", "this stand-in implements only the whatsapp_cloud provider")
        fields = {"channel_type": "Channel::Whatsapp", "provider": "whatsapp_cloud", "phone_number": channel["phone_number"]}
        fields |= whatsapp_config(ctx, channel, None)
    elif channel.get("type") == "web_widget":
        check("channel_web_widget", channel, "channel.")
        fields = {"channel_type": "Channel::WebWidget", "website_token": new_token(), "hmac_token": new_token(),  # has_secure_token
                  "widget_color": "#1f93ff", "reply_time": "in_a_few_minutes", "pre_chat_form_enabled": False,
                  "continuity_via_email": True, "hmac_mandatory": False, "allowed_domains": "", "selected_feature_flags":
                  ["attachments", "emoji_picker", "end_conversation"], **{k: v for k, v in channel.items() if k in WIDGET_ATTRS}}  # unpermitted: dropped
    else:
        raise invalid("channel.type", f"channel type {channel.get('type')!r} is not implemented by this stand-in (api, whatsapp, web_widget)")
    inbox = ctx.st.add("inbox", account_id=ctx.aid, name=ctx.body["name"], secret=new_token(),
                       enable_auto_assignment=ctx.body.get("enable_auto_assignment", True), **fields)
    if inbox["channel_type"] == "Channel::Whatsapp":
        setup_webhooks(ctx, inbox)
    return 200, inbox_json(inbox, ctx.admin)


def setup_webhooks(ctx, inbox):
    """Channel::Whatsapp#setup_webhooks (after_commit on create, unless source is embedded_signup): Chatwoot would
    register override_callback_uri = FRONTEND_URL/webhooks/whatsapp/<number> on the WABA's subscribed_apps at
    https://graph.facebook.com, which moves Meta's callback for the WABA to Chatwoot. Recorded here, never sent;
    it cannot succeed offline, so the channel is flagged for reauthorisation, as Chatwoot's rescue does."""
    if inbox.get("provider") != "whatsapp_cloud" or inbox["provider_config"].get("source") == "embedded_signup":
        return
    callback = f"{ENV.get('FRONTEND_URL', '')}/webhooks/whatsapp/{inbox['phone_number']}"
    ctx.st.add("meta_registration", account_id=ctx.aid, inbox_id=inbox["id"], override_callback_uri=callback,
               business_account_id=inbox["provider_config"].get("business_account_id"))
    _log(f"[WHATSAPP] Webhook setup failed: would register {callback} with graph.facebook.com (not reachable from a stand-in)")
    inbox["reauthorization_required"] = True
    ctx.st.save("inbox", inbox)


def whatsapp_config(ctx, channel, inbox):
    """Channel::Whatsapp validations: unique phone_number, credentials that Meta accepts, a webhook_verify_token."""
    out = {}
    if "phone_number" in channel and any(i["id"] != (inbox or {}).get("id") for i in ctx.st.find("inbox", phone_number=channel["phone_number"])):
        raise invalid("phone_number", "Phone number has already been taken")
    if "provider_config" not in channel and inbox is None:
        raise Reply(422, {"message": "channel.provider_config is required for whatsapp_cloud", "attributes": ["channel.provider_config"],
                          "contract": CONTRACT["provider_config"][0]})
    if "provider_config" in channel:  # replaced whole, as ActiveRecord does; a missing token is made anew
        config = dict(channel["provider_config"])
        out["message_templates"] = verify_whatsapp(config)
        config.setdefault("webhook_verify_token", secrets.token_hex(16))
        out["provider_config"] = config
    return out


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
    return [agent_json(ctx.st, ctx.aid, ctx.st.get("user", m["user_id"])) for m in ctx.st.find("inbox_member", inbox_id=inbox["id"])
            if ctx.st.find("account_user", account_id=ctx.aid, user_id=m["user_id"])]


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
    bot = ctx.st.add("agent_bot", account_id=ctx.aid, name=body["name"], description=body.get("description"),
                     outgoing_url=body.get("outgoing_url"), bot_type="webhook", bot_config=body.get("bot_config") or {},
                     access_token=new_token(), secret=new_token())
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


@route("GET", ACCOUNT + "/agents")
def agents_index(ctx):
    users = [ctx.st.get("user", au["user_id"]) for au in ctx.st.find("account_user", account_id=ctx.aid)]
    return 200, [agent_json(ctx.st, ctx.aid, u) for u in sorted(users, key=lambda u: u["name"].lower())]


@route("POST", ACCOUNT + "/agents", admin=True)
def agents_create(ctx):
    body, prefix = wrapped(ctx, "agent")
    check("agent_create", body, prefix)
    email = body["email"].strip().lower()
    user = next(iter(ctx.st.find("user", email=email)), None) or ctx.st.add(
        "user", name=body["name"], email=email, confirmed=False, access_token=new_token())
    if ctx.st.find("account_user", account_id=ctx.aid, user_id=user["id"]):
        raise invalid("user_id", "User has already been taken")
    # AgentBuilder: availability offline and auto_offline false unless given
    ctx.st.add("account_user", account_id=ctx.aid, user_id=user["id"], role=body.get("role", "agent"),
               availability=body.get("availability", "offline"), auto_offline=body.get("auto_offline", False))
    return 200, agent_json(ctx.st, ctx.aid, user)


@route("PATCH", ACCOUNT + r"/agents/(?P<user_id>\d+)", admin=True)
def agents_update(ctx, user_id):  # AgentsController#update: the name, and the account user's role and availability
    body, prefix = wrapped(ctx, "agent")
    check("agent_update", body, prefix)
    au = next(iter(ctx.st.find("account_user", account_id=ctx.aid, user_id=int(user_id))), None)
    if not au:
        raise not_found()
    user = ctx.st.get("user", au["user_id"])
    if "name" in body:
        user["name"] = body["name"]
        ctx.st.save("user", user)
    au |= {k: body[k] for k in ("role", "availability", "auto_offline") if k in body}
    ctx.st.save("account_user", au)
    return 200, agent_json(ctx.st, ctx.aid, user)


LABEL_TITLE = re.compile(r"^[^\W_][\w-]+$")  # lib/regex_helper.rb UNICODE_CHARACTER_NUMBER_HYPHEN_UNDERSCORE


def label_json(label):  # api/v1/accounts/labels/_label
    return {k: label[k] for k in ("id", "title", "description", "color", "show_on_sidebar")}


@route("GET", ACCOUNT + "/labels")
def labels_index_account(ctx):
    return 200, {"payload": [label_json(x) for x in ctx.st.find("label", account_id=ctx.aid)]}


@route("POST", ACCOUNT + "/labels", admin=True)
def labels_create_account(ctx):  # Label: title downcased, unique per account, letters, digits, _ and -
    body, prefix = wrapped(ctx, "label")
    check("label", body, prefix)
    title = body["title"].lower()
    if not LABEL_TITLE.match(title):
        raise invalid("title", "Title is invalid")
    if ctx.st.find("label", account_id=ctx.aid, title=title):
        raise invalid("title", "Title has already been taken")
    label = ctx.st.add("label", account_id=ctx.aid, title=title, description=body.get("description"),
                       color=body.get("color") or "#1f93ff", show_on_sidebar=body.get("show_on_sidebar", True))
    return 200, label_json(label)


@route("PATCH", ACCOUNT + r"/labels/(?P<label_id>\d+)", admin=True)
def labels_update_account(ctx, label_id):
    label, (body, prefix) = need(ctx, "label", label_id), wrapped(ctx, "label")
    check("label", {"title": label["title"], **body}, prefix)
    label |= {k: body[k] for k in ("description", "color", "show_on_sidebar") if k in body}
    ctx.st.save("label", label)
    return 200, label_json(label)


@route("GET", ACCOUNT + "/teams")
def teams_index(ctx):
    teams = sorted(ctx.st.find("team", account_id=ctx.aid), key=lambda t: t["name"])
    return 200, [team_json(ctx.st, t, ctx.uid) for t in teams]


@route("POST", ACCOUNT + "/teams", admin=True)
def teams_create(ctx):
    body, prefix = wrapped(ctx, "team")
    check("team", body, prefix)
    name = body["name"].lower()  # Team: before_validation downcases the name
    if not name.strip():
        raise invalid("name", "Name must not be blank")
    if ctx.st.find("team", account_id=ctx.aid, name=name):
        raise invalid("name", "Name has already been taken")
    team = ctx.st.add("team", account_id=ctx.aid, name=name, description=body.get("description"),
                      allow_auto_assign=body.get("allow_auto_assign", True))
    return 200, team_json(ctx.st, team, ctx.uid)


@route("PATCH", ACCOUNT + r"/teams/(?P<team_id>\d+)", admin=True)
def teams_update(ctx, team_id):
    team, (body, prefix) = need(ctx, "team", team_id), wrapped(ctx, "team")
    check("team", {"name": team["name"], **body}, prefix)
    team |= {k: body[k] for k in ("description", "allow_auto_assign") if k in body}
    ctx.st.save("team", team)
    return 200, team_json(ctx.st, team, ctx.uid)


@route("GET", ACCOUNT + r"/teams/(?P<team_id>\d+)/team_members")
def team_members_index(ctx, team_id):
    team = need(ctx, "team", team_id)
    return 200, [agent_json(ctx.st, ctx.aid, ctx.st.get("user", m["user_id"])) for m in ctx.st.find("team_member", team_id=team["id"])]


@route("POST", ACCOUNT + r"/teams/(?P<team_id>\d+)/team_members", admin=True)
def team_members_create(ctx, team_id):  # TeamMembersController#create: adds the missing ones, answers those added
    team = need(ctx, "team", team_id)
    check("team_members", ctx.body)
    added = []
    for user in members_of_account(ctx, ctx.body["user_ids"]):
        if not ctx.st.find("team_member", team_id=team["id"], user_id=user["id"]):
            ctx.st.add("team_member", account_id=ctx.aid, team_id=team["id"], user_id=user["id"])
            added.append(user)
    return 200, [agent_json(ctx.st, ctx.aid, u) for u in added]


@route("PATCH", ACCOUNT + r"/teams/(?P<team_id>\d+)/team_members", admin=True)
def team_members_update(ctx, team_id):  # TeamMembersController#update: the list replaced, all members answered
    team = need(ctx, "team", team_id)
    check("team_members", ctx.body)
    wanted = {u["id"] for u in members_of_account(ctx, ctx.body["user_ids"])}
    for member in ctx.st.find("team_member", team_id=team["id"]):
        if member["user_id"] not in wanted:
            ctx.st.delete("team_member", member["id"])
    team_members_create(ctx, team_id)
    return team_members_index(ctx, team_id)


def webhook_json(w):
    return {"id": w["id"], "name": w["name"], "url": w["url"], "account_id": w["account_id"], "subscriptions": w["subscriptions"],
            "secret": w.get("secret")}


def validate_webhook(ctx, w):  # Webhook validations
    if not re.match(r"^https?://[^\s/]+", w["url"]):
        raise invalid("url", "Url is invalid")
    if any(o["url"] == w["url"] and o["id"] != w.get("id") for o in ctx.st.find("webhook", account_id=ctx.aid)):
        raise invalid("url", "Url has already been taken")
    if not w["subscriptions"]:
        raise invalid("subscriptions", "Subscriptions Invalid events")


@route("GET", ACCOUNT + "/webhooks", admin=True)
def webhooks_index(ctx):
    return 200, {"payload": {"webhooks": [webhook_json(w) for w in ctx.st.find("webhook", account_id=ctx.aid)]}}


@route("POST", ACCOUNT + "/webhooks", admin=True)
def webhooks_create(ctx):
    body, prefix = wrapped(ctx, "webhook")
    check("webhook", body, prefix)
    hook = {"url": body["url"], "name": body.get("name"), "subscriptions": list(dict.fromkeys(body["subscriptions"]))}
    validate_webhook(ctx, hook)
    return 200, {"payload": {"webhook": webhook_json(ctx.st.add("webhook", account_id=ctx.aid, webhook_type="account_type",
                                                                secret=new_token(), **hook))}}


@route("PATCH", ACCOUNT + r"/webhooks/(?P<webhook_id>\d+)", admin=True)
def webhooks_update(ctx, webhook_id):
    hook, (body, prefix) = need(ctx, "webhook", webhook_id), wrapped(ctx, "webhook")
    check("webhook_update", body, prefix)
    hook |= {k: body[k] for k in ("url", "name", "subscriptions") if k in body}
    validate_webhook(ctx, hook)
    ctx.st.save("webhook", hook)
    return 200, {"payload": {"webhook": webhook_json(hook)}}


@route("DELETE", ACCOUNT + r"/webhooks/(?P<webhook_id>\d+)", admin=True)
def webhooks_delete(ctx, webhook_id):
    ctx.st.delete("webhook", need(ctx, "webhook", webhook_id)["id"])
    return 200, None


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
    return ctx.st.add("contact_inbox", account_id=ctx.aid, contact_id=contact["id"], inbox_id=inbox["id"],
                      source_id=source_id, hmac_verified=False, pubsub_token=secrets.token_urlsafe(18))


@route("POST", ACCOUNT + "/contacts")
def contacts_create(ctx):
    body = ctx.body
    check("contact_create", body)
    inbox = need(ctx, "inbox", body["inbox_id"])
    fields = {k: body[k] for k in ("name", "phone_number", "identifier", "blocked", "additional_attributes", "custom_attributes") if k in body}
    fields["email"] = body["email"].lower() if body.get("email") else None
    if fields.get("phone_number") and not re.fullmatch(r"\+[1-9]\d{1,14}", fields["phone_number"]):
        raise invalid("phone_number", "Phone number should be in e164 format")
    for key in ("identifier", "email"):
        if fields.get(key) and ctx.st.find("contact", account_id=ctx.aid, **{key: fields[key]}):
            raise invalid(key, f"{key.capitalize()} has already been taken")
    contact = new_contact(ctx, **fields)
    ci = contact_inbox_for(ctx, contact, inbox, body.get("source_id"))
    raw_inbox = {"id": inbox["id"], "channel_id": inbox["id"], "account_id": inbox["account_id"], "name": inbox["name"],
                 "channel_type": inbox["channel_type"], "created_at": iso(inbox["created_at"]), "updated_at": iso(inbox["updated_at"])}
    return 200, {"payload": {"contact": contact_json(ctx.st, contact), "contact_inbox": {"inbox": raw_inbox, "source_id": ci["source_id"]}}}


@route("GET", ACCOUNT + "/contacts/search")
def contacts_search(ctx):
    q = ctx.query.get("q", "").strip().lower()
    if not q:
        raise Reply(422, {"error": "Specify search string with parameter q"})
    found = [c for c in ctx.st.find("contact", account_id=ctx.aid)
             if any(q in (c.get(k) or "").lower() for k in ("name", "email", "phone_number", "identifier"))]
    page, shown = page_of(ctx, found, 15)
    return 200, {"meta": {"count": len(found), "current_page": page}, "payload": [contact_json(ctx.st, c) for c in shown]}


@route("GET", ACCOUNT + r"/contacts/(?P<contact_id>\d+)/conversations")
def contact_conversations(ctx, contact_id):
    """Contacts::ConversationsController#index: the contact's conversations in the inboxes the user may see, by last activity."""
    contact = need(ctx, "contact", contact_id)
    convs = [c for c in ctx.st.find("conversation", account_id=ctx.aid, contact_id=contact["id"])
             if ctx.role != "agent" or ctx.uid in inbox_member_ids(ctx.st, ctx.st.get("inbox", c["inbox_id"]))]
    convs = sorted(convs, key=lambda c: c["last_activity_at"], reverse=True)[:20]
    return 200, {"payload": [conversation_json(ctx.st, c, ctx.uid) for c in convs]}


def account_object(ctx, kind, id_, attribute):
    if id_ is None:
        return None
    if not ctx.st.get(kind, id_, None if kind == "user" else ctx.aid) or kind == "user" and not ctx.st.find(
            "account_user", account_id=ctx.aid, user_id=id_):
        raise invalid(attribute, f"{attribute.capitalize()} must exist")
    return id_


@route("POST", ACCOUNT + "/conversations", bot=True)
def conversations_create(ctx):
    body = ctx.body
    check("conversation_create", body)
    if body.get("contact_id") is not None and body.get("inbox_id") is not None:
        ci = contact_inbox_for(ctx, need(ctx, "contact", body["contact_id"]), need(ctx, "inbox", body["inbox_id"]), body["source_id"])
    else:  # the old lookup by source_id alone
        ci = next(iter(ctx.st.find("contact_inbox", account_id=ctx.aid, source_id=body["source_id"])), None)
        if not ci:
            raise not_found()
    conv = create_conversation(ctx, ci, body.get("status", "open"), account_object(ctx, "user", body.get("assignee_id"), "assignee"),
                               account_object(ctx, "team", body.get("team_id"), "team"),
                               body.get("additional_attributes"), body.get("custom_attributes"))
    if body.get("message"):
        template = {"template_params": body["message"]["template_params"]} if body["message"].get("template_params") else {}
        create_message(ctx, conv, body["message"]["content"], "outgoing", *ctx.sender, additional_attributes=template)
    return 200, conversation_json(ctx.st, conv, ctx.uid)


@route("GET", ACCOUNT + "/conversations")
def conversations_index(ctx):
    q = ctx.query
    status, assignee_type = q.get("status", "open"), q.get("assignee_type", "all")
    if status not in ("all", "open", "resolved", "pending", "snoozed") or assignee_type not in ("me", "unassigned", "all", "assigned"):
        raise Reply(422, {"message": "status or assignee_type is not one of the values the swagger lists", "attributes": ["status"],
                          "contract": "swagger/paths/application/conversation/index.yml"})
    convs = ctx.st.find("conversation", account_id=ctx.aid)
    for key in ("inbox_id", "team_id"):
        if key in q:
            if not q[key].isdigit():
                raise Reply(422, {"message": f"{key} must be of type integer", "attributes": [key]})
            convs = [c for c in convs if c[key] == int(q[key])]
    convs = [c for c in convs if status == "all" or c["status"] == status]
    groups = {"me": [c for c in convs if c["assignee_id"] == ctx.uid], "assigned": [c for c in convs if c["assignee_id"]],
              "unassigned": [c for c in convs if not c["assignee_id"]], "all": convs}
    _, page = page_of(ctx, sorted(groups[assignee_type], key=lambda c: c["last_activity_at"], reverse=True), 25)
    return 200, {"data": {"meta": {f"{k}_count": len(v) for k, v in (("mine", groups["me"]), ("assigned", groups["assigned"]),
                                                                    ("unassigned", groups["unassigned"]), ("all", convs))},
                          "payload": [conversation_json(ctx.st, c, ctx.uid) for c in page]}}


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
    m = create_message(ctx, conv, body["content"], message_type, *sender, private=body.get("private", False),
                       content_type=body.get("content_type"), content_attributes=body.get("content_attributes"), additional_attributes=extra)
    return 200, message_json(ctx.st, m, conv)


@route("GET", ACCOUNT + r"/conversations/(?P<display_id>\d+)/messages")
def messages_index(ctx, display_id):
    conv = conversation(ctx, display_id)
    assignee = conv["assignee_id"] and ctx.st.get("user", conv["assignee_id"])
    meta = {"labels": conv["labels"], "additional_attributes": conv["additional_attributes"],
            "contact": contact_push(ctx.st.get("contact", conv["contact_id"])), "agent_last_seen_at": None, "assignee_last_seen_at": None}
    meta |= {"assignee": user_push(assignee)} if assignee else {}
    before = int(ctx.query["before"]) if ctx.query.get("before", "").isdigit() else None  # MessageFinder: 20 before `before`
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
    takes = {"assignee_id": ctx.uid} if ctx.role == "agent" and ctx.body["status"] == "open" and not conv["assignee_id"] else {}
    update_conversation(ctx, conv, status=ctx.body["status"], snoozed_until=snoozed_until, **takes)
    return 200, {"meta": {}, "payload": {"success": True, "conversation_id": conv["display_id"], "current_status": conv["status"],
                                         "snoozed_until": conv["snoozed_until"]}}


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
        user = user_id is not None and ctx.st.find("account_user", account_id=ctx.aid, user_id=user_id) and ctx.st.get("user", user_id)
        update_conversation(ctx, conv, assignee_id=user["id"] if user else None)
        return 200, agent_json(ctx.st, ctx.aid, user) if user else "null"
    if "team_id" in ctx.body:
        team = ctx.body["team_id"] is not None and ctx.st.get("team", ctx.body["team_id"], ctx.aid)
        update_conversation(ctx, conv, team_id=team["id"] if team else None)
        return 200, {k: team[k] for k in ("id", "name", "description", "allow_auto_assign", "account_id")} if team else "null"
    return 200, "null"


@route("GET", r"/webhooks/whatsapp/(?P<phone_number>[^/]+)")
def whatsapp_verify(request, phone_number):  # MetaTokenVerifyConcern#verify (hub.mode is not checked)
    with transaction() as st:
        inbox = next(iter(st.find("inbox", phone_number=phone_number)), None)
    token = inbox and inbox["provider_config"].get("webhook_verify_token")
    if token and request.query.get("hub.verify_token") == token:
        return 200, request.query.get("hub.challenge", "")
    return 401, {"error": "Error; wrong verify token"}


APP_SECRET_KEYS = ("app_secret", "app_secret_key", "client_secret", "api_secret")


def payload_channel(st, phone_number, body):
    """WhatsappController#whatsapp_business_payload_channel: by the payload's number and phone_number_id, else the URL's."""
    if isinstance(body, dict) and body.get("object") == "whatsapp_business_account":
        try:
            meta = body["entry"][0]["changes"][0]["value"]["metadata"]
        except (KeyError, IndexError, TypeError):
            meta = {}
        number = "+" + str(meta.get("display_phone_number", "")).lstrip("+")
        inbox = next(iter(st.find("inbox", phone_number=number)), None)
        return inbox if inbox and inbox["provider_config"].get("phone_number_id") == meta.get("phone_number_id") else None
    return next(iter(st.find("inbox", phone_number=phone_number)), None)


def signature_valid(inbox, raw, given):
    """Webhooks::WhatsappController#verify_meta_signature!: required when no channel matches, when the channel has
    an app secret, or for an embedded-signup channel; skipped otherwise. Any of the channel's secrets or
    WHATSAPP_APP_SECRET may match the HMAC-SHA256 of the raw body."""
    config = (inbox or {}).get("provider_config") or {}
    own = [config[k] for k in APP_SECRET_KEYS if config.get(k)]
    if inbox and (inbox.get("provider") != "whatsapp_cloud" or not own and config.get("source") != "embedded_signup"):
        return True
    for secret in own + [ENV["WHATSAPP_APP_SECRET"]] * bool(ENV.get("WHATSAPP_APP_SECRET")):
        if hmac.compare_digest(given or "", "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()):
            return True
    return False


@route("POST", r"/webhooks/whatsapp/(?P<phone_number>[^/]+)")
def whatsapp_receive(request, phone_number):  # Webhooks::WhatsappController#process_payload: head :ok, then the job
    with transaction() as st:
        inbox = payload_channel(st, phone_number, request.body)
    if not signature_valid(inbox, request.raw, request.headers.get("X-Hub-Signature-256")):
        return 401, ""  # head :unauthorized
    in_background(process_whatsapp, phone_number, request.body if isinstance(request.body, dict) else {})
    return 200, None


@route("GET", r"/bot")
def facebook_verify(request):
    """Facebook::Messenger::Server#verify with ChatwootFbProvider#valid_verify_token?, which returns FB_VERIFY_TOKEN
    itself (GlobalConfigService.load: nil when unset): when set, any hub.verify_token gets hub.challenge back; 200 always."""
    return 200, request.query.get("hub.challenge", "") if ENV.get("FB_VERIFY_TOKEN") else "Error; wrong verify token"


@route("POST", r"/bot")
def facebook_receive(request):
    """Facebook::Messenger::Server#receive: with an app secret (ChatwootFbProvider#app_secret_for: FB_APP_SECRET; nil
    when unset, and then nothing is checked), X-Hub-Signature must be sha1= HMAC-SHA1 of the raw body, else 400 and a
    plain-text reason; then each entry's messaging events (Bot.receive), answered 200 with no body."""
    try:
        body = json.loads(request.raw)
        body["entry"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return 400, "Error parsing request body format"
    given, secret = request.headers.get("X-Hub-Signature") or "", ENV.get("FB_APP_SECRET")
    if secret and not given.startswith("sha1="):
        return 400, "Error getting integrity signature"
    if secret and not hmac.compare_digest(given, "sha1=" + hmac.new(secret.encode(), request.raw, hashlib.sha1).hexdigest()):
        return 400, "Error checking message integrity"
    for entry in body["entry"]:
        for messaging in entry.get("messaging") or []:
            message = messaging.get("message") if isinstance(messaging, dict) else None
            if isinstance(message, dict) and not message.get("is_echo"):
                in_background(process_facebook, messaging)  # Bot.on :message -> Webhooks::FacebookEventsJob
    return 200, ""


@route("GET", r"/webhooks/instagram")
def instagram_verify(request):
    """Webhooks::InstagramController#valid_token?: IG_VERIFY_TOKEN or INSTAGRAM_VERIFY_TOKEN (nil when unset, so no token
    at all matches an unset one); MetaTokenVerifyConcern#verify: the challenge, else 401."""
    given = request.query.get("hub.verify_token")
    if any(given == (ENV.get(k) or None) for k in ("IG_VERIFY_TOKEN", "INSTAGRAM_VERIFY_TOKEN")):
        return 200, request.query.get("hub.challenge", "")
    return 401, {"error": "Error; wrong verify token"}


@route("POST", r"/webhooks/instagram")
def instagram_receive(request):
    """Webhooks::InstagramController#events: verify_meta_signature! (X-Hub-Signature-256, sha256= HMAC of the raw body with
    INSTAGRAM_APP_SECRET or FB_APP_SECRET; a Page channel has no secret of its own; blank ones skipped; else 401);
    object instagram (any case), else 422; then the job; answered `render json: :ok`."""
    given = request.headers.get("X-Hub-Signature-256") or ""
    keys = [ENV.get(k) for k in ("INSTAGRAM_APP_SECRET", "FB_APP_SECRET") if ENV.get(k)]
    if not given.startswith("sha256=") or not any(
            hmac.compare_digest(given, "sha256=" + hmac.new(k.encode(), request.raw, hashlib.sha256).hexdigest()) for k in keys):
        return 401, ""
    if str((request.body or {}).get("object", "")).lower() != "instagram":
        return 422, ""
    in_background(process_instagram, request.body.get("entry"))
    return 200, '"ok"'


@route("POST", ACCOUNT + r"/callbacks/register_facebook_page")
def register_facebook_page(ctx):
    """CallbacksController#register_facebook_page (any user of the account): the channel (page_id unique per account)
    and its inbox in one transaction, then instagram_business_account read from Graph; answered by
    register_facebook_page.json.jbuilder. A failed create is rescued and the view then fails on the missing inbox: 500."""
    b = ctx.body
    if (not all(isinstance(b.get(k), str) and b.get(k) for k in ("page_id", "page_access_token", "user_access_token", "inbox_name"))
            or ctx.st.find("inbox", account_id=ctx.aid, channel_type="Channel::FacebookPage", page_id=b["page_id"])):
        raise Reply(500, {"status": 500, "error": "Internal Server Error"})
    inbox = ctx.st.add("inbox", account_id=ctx.aid, name=b["inbox_name"], secret=new_token(), enable_auto_assignment=True,
                       channel_type="Channel::FacebookPage", page_id=b["page_id"], page_access_token=b["page_access_token"],
                       user_access_token=b["user_access_token"], instagram_id=None)
    query = urllib.parse.urlencode({"fields": "instagram_business_account", "access_token": b["page_access_token"]})
    status, answer = http("GET", f"{graph_base()}/me?{query}")  # set_instagram_id: errors only logged
    if 200 <= status < 300 and isinstance(answer, dict) and (answer.get("instagram_business_account") or {}).get("id"):
        inbox["instagram_id"] = answer["instagram_business_account"]["id"]
        ctx.st.save("inbox", inbox)
    return 200, {"id": inbox["id"], "channel_id": inbox["id"], "name": inbox["name"], "channel_type": inbox["channel_type"],
                 "avatar_url": "", "page_id": inbox["page_id"], "enable_auto_assignment": inbox["enable_auto_assignment"]}


def bootstrap():
    """`rails runner` with AccountBuilder: the admin (by e-mail) and its account, made once; one JSON line on stdout."""
    name, email = ENV.get("CW_ACCOUNT_NAME"), (ENV.get("CW_ADMIN_EMAIL") or "").strip().lower()
    if not all(ENV.get(k) for k in ("CW_ACCOUNT_NAME", "CW_ADMIN_NAME", "CW_ADMIN_EMAIL", "CW_ADMIN_PASSWORD",
                                    "CW_AUTOMATION_NAME", "CW_AUTOMATION_EMAIL")):
        sys.exit("rails runner: CW_ACCOUNT_NAME, CW_ADMIN_NAME, CW_ADMIN_EMAIL, CW_ADMIN_PASSWORD, CW_AUTOMATION_NAME and "
                 "CW_AUTOMATION_EMAIL are required")
    for attempt in range(30):
        try:
            ensure_schema()
            break
        except psycopg2.OperationalError as e:
            _log(f"database not reachable yet: {e}".strip())
            time.sleep(2)
    with transaction() as st:
        user = next(iter(st.find("user", email=email)), None)
        memberships = st.find("account_user", user_id=user["id"]) if user else []
        if memberships:
            account_id = memberships[0]["account_id"]
            _log(f"user {email} exists (id {user['id']}): reused with its account {account_id}")
        else:
            user = user or st.add("user", name=ENV["CW_ADMIN_NAME"], email=email, confirmed=True, type="SuperAdmin",
                                  access_token=new_token())
            account_id = st.add("account", name=name)["id"]
            st.add("account_user", account_id=account_id, user_id=user["id"], role="administrator")
            _log(f"created account {account_id} with administrator {email} (user {user['id']})")
        # The automation agent (files/chatwoot/bootstrap.rb): User.create!, then an agent of the account.
        bot_email = ENV["CW_AUTOMATION_EMAIL"].strip().lower()
        agent = next(iter(st.find("user", email=bot_email)), None) or st.add(
            "user", name=ENV["CW_AUTOMATION_NAME"], email=bot_email, confirmed=True, access_token=new_token())
        if not st.find("account_user", account_id=account_id, user_id=agent["id"]):
            st.add("account_user", account_id=account_id, user_id=agent["id"], role="agent", availability="offline", auto_offline=False)
    print(json.dumps({"account_id": account_id, "user_id": user["id"], "access_token": user["access_token"],
                      "automation_user_id": agent["id"], "automation_token": agent["access_token"]}), flush=True)
