"""The Chatwoot stand-in's WhatsApp Cloud channel (see chatwoot_api.py): the credential check, the callback
registration a manual channel attempts, outbound text messages, and Meta's webhook (verify handshake,
X-Hub-Signature-256, the first message or status of a payload)."""

import hashlib
import hmac
import secrets

from cw_contract import CONTRACT, Reply, invalid
from cw_core import Ctx, create_conversation, create_message, new_contact, sent
from cw_http import route
from cw_net import http, in_background
from cw_store import ENV, _log, transaction
from cw_views import message_webhook


def whatsapp_base():
    return ENV.get("WHATSAPP_CLOUD_BASE_URL", "https://graph.facebook.com")


def verify_whatsapp(config):
    """WhatsappCloudService#validate_provider_config?; gives the templates (what sync_templates stores)."""
    status, body = http(
        "GET",
        f"{whatsapp_base()}/v14.0/{config['business_account_id']}/message_templates?access_token={config['api_key']}",
    )
    if not 200 <= status < 300:
        _log(f"whatsapp credentials refused: {status}")
        raise invalid("provider_config", "Provider config Invalid Credentials")
    return body.get("data", []) if isinstance(body, dict) else []


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
        status, body = http(
            "POST",
            f"{whatsapp_base()}/v13.0/{config['phone_number_id']}/messages",
            {
                "messaging_product": "whatsapp",
                "context": None,
                "to": to,
                "text": {"body": m["content"]},
                "type": "text",
            },
            headers={"Authorization": f"Bearer {config['api_key']}"},
        )
        ok = 200 <= status < 300 and isinstance(body, dict) and not body.get("error") and body.get("messages")
        error = body.get("error") if isinstance(body, dict) else None
        sent(
            message_id,
            "WhatsApp",
            status,
            body["messages"][0]["id"] if ok else None,
            None if ok else (error.get("message") if isinstance(error, dict) else None) or f"HTTP {status}",
        )
    except Exception as e:  # a background job: log, never raise
        _log(f"sending message {message_id} to WhatsApp failed: {e!r}")


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
        m = (
            next(iter(st.find("message", source_id=status.get("id"))), None) if status.get("id") else None
        )  # not inbox-scoped
        if m and status.get("status") in ("sent", "delivered", "read", "failed"):  # no ordering guard, as there
            m["status"] = status["status"]
            errors = status.get("errors") or []
            if status["status"] == "failed" and errors:
                m["content_attributes"]["external_error"] = f"{errors[0].get('code')}: {errors[0].get('title')}"
            st.save("message", m)
            ctx.emit(
                inbox,
                message_webhook(st, m, st.get("conversation", m["conversation_id"])) | {"event": "message_updated"},
            )
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
            ctx, name=(contact_params.get("profile") or {}).get("name") or phone, phone_number=phone
        )
        ci = st.add(
            "contact_inbox",
            account_id=ctx.aid,
            contact_id=contact["id"],
            inbox_id=inbox["id"],
            source_id=wa_id,
            hmac_verified=False,
            pubsub_token=secrets.token_urlsafe(18),
        )
    open_convs = [c for c in st.find("conversation", contact_inbox_id=ci["id"]) if c["status"] != "resolved"]
    conv = open_convs[-1] if open_convs else create_conversation(ctx, ci)
    kind = message.get("type")
    content = (
        (message.get("text") or {}).get("body")
        or (message.get("button") or {}).get("text")
        or (message.get(kind) if isinstance(message.get(kind), dict) else {}).get("caption")
    )
    create_message(ctx, conv, content, "incoming", "Contact", ci["contact_id"], source_id=str(message.get("id")))
    _log(f"whatsapp message {message.get('id')} from {wa_id} -> conversation {conv['display_id']}")
    return ctx


def setup_webhooks(ctx, inbox):
    """Channel::Whatsapp#setup_webhooks (after_commit on create, unless source is embedded_signup): Chatwoot would
    register override_callback_uri = FRONTEND_URL/webhooks/whatsapp/<number> on the WABA's subscribed_apps at
    https://graph.facebook.com, which moves Meta's callback for the WABA to Chatwoot. Recorded here, never sent;
    it cannot succeed offline, so the channel is flagged for reauthorisation, as Chatwoot's rescue does."""
    if inbox.get("provider") != "whatsapp_cloud" or inbox["provider_config"].get("source") == "embedded_signup":
        return
    callback = f"{ENV.get('FRONTEND_URL', '')}/webhooks/whatsapp/{inbox['phone_number']}"
    ctx.st.add(
        "meta_registration",
        account_id=ctx.aid,
        inbox_id=inbox["id"],
        override_callback_uri=callback,
        business_account_id=inbox["provider_config"].get("business_account_id"),
    )
    _log(
        f"[WHATSAPP] Webhook setup failed: would register {callback} with graph.facebook.com "
        "(not reachable from a stand-in)"
    )
    inbox["reauthorization_required"] = True
    ctx.st.save("inbox", inbox)


def whatsapp_config(ctx, channel, inbox):
    """Channel::Whatsapp validations: unique phone_number, credentials that Meta accepts, a webhook_verify_token."""
    out = {}
    if "phone_number" in channel and any(
        i["id"] != (inbox or {}).get("id") for i in ctx.st.find("inbox", phone_number=channel["phone_number"])
    ):
        raise invalid("phone_number", "Phone number has already been taken")
    if "provider_config" not in channel and inbox is None:
        raise Reply(
            422,
            {
                "message": "channel.provider_config is required for whatsapp_cloud",
                "attributes": ["channel.provider_config"],
                "contract": CONTRACT["provider_config"][0],
            },
        )
    if "provider_config" in channel:  # replaced whole, as ActiveRecord does; a missing token is made anew
        config = dict(channel["provider_config"])
        out["message_templates"] = verify_whatsapp(config)
        config.setdefault("webhook_verify_token", secrets.token_hex(16))
        out["provider_config"] = config
    return out


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
    """WhatsappController#whatsapp_business_payload_channel: by the payload's number and phone_number_id,
    else the URL's."""
    if isinstance(body, dict) and body.get("object") == "whatsapp_business_account":
        try:
            meta = body["entry"][0]["changes"][0]["value"]["metadata"]
        except (KeyError, IndexError, TypeError):
            meta = {}
        number = "+" + str(meta.get("display_phone_number", "")).lstrip("+")
        inbox = next(iter(st.find("inbox", phone_number=number)), None)
        return (
            inbox if inbox and inbox["provider_config"].get("phone_number_id") == meta.get("phone_number_id") else None
        )
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
