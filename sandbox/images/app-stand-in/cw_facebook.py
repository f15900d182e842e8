"""The Chatwoot stand-in's Facebook Page channel (see chatwoot_api.py): Messenger and the linked Instagram
account's DMs in, replies out, the /bot and /webhooks/instagram endpoints, and register_facebook_page."""

import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request

from cw_contract import Reply
from cw_core import Ctx, create_conversation, create_message, new_contact, sent
from cw_http import ACCOUNT, route
from cw_net import http, in_background
from cw_store import ENV, _log, new_token, transaction


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
        status, body = http(
            "POST",
            f"{graph_base()}/v3.2/me/messages?{query}",
            {"recipient": {"id": psid}, "message": {"text": m["content"]}, "messaging_type": "RESPONSE"},
        )
        error = body.get("error") if isinstance(body, dict) else None
        ok = 200 <= status < 300 and isinstance(body, dict) and not error and body.get("message_id")
        # ErrorParser raises FacebookError: Messages::StatusUpdateService(message, 'failed', e.message)
        sent(
            message_id,
            "Messenger",
            status,
            body["message_id"] if ok else None,
            None if ok else (error.get("message") if isinstance(error, dict) else None) or f"HTTP {status}",
        )
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
            pages = st.find(
                "inbox", channel_type="Channel::FacebookPage", page_id=str((messaging.get("recipient") or {}).get("id"))
            )
        names = {
            inbox["id"]: facebook_profile_name(inbox, str(messaging["sender"]["id"]))
            for inbox in pages
            if not inbox.get("reauthorization_required")
        }
        with transaction() as st:
            ctxs = [
                _process_facebook(st, st.get("inbox", inbox_id), messaging, name) for inbox_id, name in names.items()
            ]
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
        ci = st.add(
            "contact_inbox",
            account_id=ctx.aid,
            contact_id=contact["id"],
            inbox_id=inbox["id"],
            source_id=psid,
            hmac_verified=False,
            pubsub_token=secrets.token_urlsafe(18),
        )
    open_convs = [c for c in st.find("conversation", contact_inbox_id=ci["id"]) if c["status"] != "resolved"]
    conv = open_convs[-1] if open_convs else create_conversation(ctx, ci)  # lock_to_single_conversation is off
    create_message(
        ctx,
        conv,
        message.get("text"),
        "incoming",
        "Contact",
        ci["contact_id"],
        source_id=message.get("mid"),
        content_attributes={"in_reply_to_external_id": (message.get("reply_to") or {}).get("mid")},
    )
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
                    inbox = next(
                        iter(
                            st.find(
                                "inbox",
                                channel_type="Channel::FacebookPage",
                                instagram_id=str(messaging["recipient"]["id"]),
                            )
                        ),
                        None,
                    )
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
    """Instagram::Messenger::MessageText#fetch_instagram_user: Koala get_object(igsid) with the Page's token;
    {} on error."""
    status, user = http(
        "GET", f"{graph_base()}/{igsid}?{urllib.parse.urlencode({'access_token': inbox['page_access_token']})}"
    )
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
            attributes = (
                {"social_profiles": {"instagram": user["username"]}, "social_instagram_user_name": user["username"]}
                if user.get("username")
                else {}
            )
            contact = new_contact(ctx, name=user.get("name") or "", additional_attributes=attributes)
            ci = st.add(
                "contact_inbox",
                account_id=ctx.aid,
                contact_id=contact["id"],
                inbox_id=inbox["id"],
                source_id=str(user.get("id")),
                hmac_verified=False,
                pubsub_token=secrets.token_urlsafe(18),
            )
    if not ci:
        _log(f"instagram message {message.get('mid')}: no contact for {igsid} (Graph gave no profile); dropped")
        return ctx
    if message.get("mid") and st.find("message", source_id=message["mid"]):
        _log(f"instagram message {message['mid']}: already exists; skipped")
        return ctx
    open_convs = [
        c
        for c in st.find("conversation", contact_inbox_id=ci["id"])
        if c["status"] != "resolved" and c["additional_attributes"].get("type") == "instagram_direct_message"
    ]
    conv = (
        open_convs[-1]
        if open_convs
        else create_conversation(ctx, ci, additional_attributes={"type": "instagram_direct_message"})
    )
    create_message(
        ctx,
        conv,
        message.get("text"),
        "incoming",
        "Contact",
        ci["contact_id"],
        source_id=message.get("mid"),
        content_attributes={"in_reply_to_external_id": (message.get("reply_to") or {}).get("mid")},
    )
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
            query["appsecret_proof"] = hmac.new(
                ENV["FB_APP_SECRET"].encode(), token.encode(), hashlib.sha256
            ).hexdigest()
        form = urllib.parse.urlencode({"recipient[id]": igsid, "message[text]": m["content"]}).encode()
        request = urllib.request.Request(
            f"{graph_base()}/v11.0/me/messages?{urllib.parse.urlencode(query)}",
            data=form,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                status, body = r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            status, body = e.code, json.loads(e.read() or b"null")
        error = (body.get("error") if isinstance(body, dict) else None) or {}
        ok = 200 <= status < 300 and isinstance(body, dict) and not error
        sent(
            message_id,
            "Instagram",
            status,
            body.get("message_id") if ok else None,
            None if ok else f"{error.get('code')} - {error.get('message')}",
        )
    except Exception as e:  # a background job: log, never raise
        _log(f"sending message {message_id} to Instagram failed: {e!r}")


@route("GET", r"/bot")
def facebook_verify(request):
    """Facebook::Messenger::Server#verify with ChatwootFbProvider#valid_verify_token?, which returns FB_VERIFY_TOKEN
    itself (GlobalConfigService.load: nil when unset): when set, any hub.verify_token gets hub.challenge back;
    200 always."""
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
    if secret and not hmac.compare_digest(
        given, "sha1=" + hmac.new(secret.encode(), request.raw, hashlib.sha1).hexdigest()
    ):
        return 400, "Error checking message integrity"
    for entry in body["entry"]:
        for messaging in entry.get("messaging") or []:
            message = messaging.get("message") if isinstance(messaging, dict) else None
            if isinstance(message, dict) and not message.get("is_echo"):
                in_background(process_facebook, messaging)  # Bot.on :message -> Webhooks::FacebookEventsJob
    return 200, ""


@route("GET", r"/webhooks/instagram")
def instagram_verify(request):
    """Webhooks::InstagramController#valid_token?: IG_VERIFY_TOKEN or INSTAGRAM_VERIFY_TOKEN (nil when unset, so
    no token at all matches an unset one); MetaTokenVerifyConcern#verify: the challenge, else 401."""
    given = request.query.get("hub.verify_token")
    if any(given == (ENV.get(k) or None) for k in ("IG_VERIFY_TOKEN", "INSTAGRAM_VERIFY_TOKEN")):
        return 200, request.query.get("hub.challenge", "")
    return 401, {"error": "Error; wrong verify token"}


@route("POST", r"/webhooks/instagram")
def instagram_receive(request):
    """Webhooks::InstagramController#events: verify_meta_signature! (X-Hub-Signature-256, sha256= HMAC of the raw
    body with INSTAGRAM_APP_SECRET or FB_APP_SECRET; a Page channel has no secret of its own; blank ones skipped;
    else 401); object instagram (any case), else 422; then the job; answered `render json: :ok`."""
    given = request.headers.get("X-Hub-Signature-256") or ""
    keys = [ENV.get(k) for k in ("INSTAGRAM_APP_SECRET", "FB_APP_SECRET") if ENV.get(k)]
    if not given.startswith("sha256=") or not any(
        hmac.compare_digest(given, "sha256=" + hmac.new(k.encode(), request.raw, hashlib.sha256).hexdigest())
        for k in keys
    ):
        return 401, ""
    if str((request.body or {}).get("object", "")).lower() != "instagram":
        return 422, ""
    in_background(process_instagram, request.body.get("entry"))
    return 200, '"ok"'


@route("POST", ACCOUNT + r"/callbacks/register_facebook_page")
def register_facebook_page(ctx):
    """CallbacksController#register_facebook_page (any user of the account): the channel (page_id unique per
    account) and its inbox in one transaction, then instagram_business_account read from Graph; answered by
    register_facebook_page.json.jbuilder. A failed create is rescued and the view then fails on the missing
    inbox: 500."""
    b = ctx.body
    if not all(
        isinstance(b.get(k), str) and b.get(k)
        for k in ("page_id", "page_access_token", "user_access_token", "inbox_name")
    ) or ctx.st.find("inbox", account_id=ctx.aid, channel_type="Channel::FacebookPage", page_id=b["page_id"]):
        raise Reply(500, {"status": 500, "error": "Internal Server Error"})
    inbox = ctx.st.add(
        "inbox",
        account_id=ctx.aid,
        name=b["inbox_name"],
        secret=new_token(),
        enable_auto_assignment=True,
        channel_type="Channel::FacebookPage",
        page_id=b["page_id"],
        page_access_token=b["page_access_token"],
        user_access_token=b["user_access_token"],
        instagram_id=None,
    )
    query = urllib.parse.urlencode({"fields": "instagram_business_account", "access_token": b["page_access_token"]})
    status, answer = http("GET", f"{graph_base()}/me?{query}")  # set_instagram_id: errors only logged
    if 200 <= status < 300 and isinstance(answer, dict) and (answer.get("instagram_business_account") or {}).get("id"):
        inbox["instagram_id"] = answer["instagram_business_account"]["id"]
        ctx.st.save("inbox", inbox)
    return 200, {
        "id": inbox["id"],
        "channel_id": inbox["id"],
        "name": inbox["name"],
        "channel_type": inbox["channel_type"],
        "avatar_url": "",
        "page_id": inbox["page_id"],
        "enable_auto_assignment": inbox["enable_auto_assignment"],
    }
