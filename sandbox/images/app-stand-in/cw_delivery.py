"""What a commit of the Chatwoot stand-in sets off (see chatwoot_api.py): webhook deliveries (lib/webhooks/trigger.rb,
with an agent bot's failure handled) and replies sent through their channel (SendReplyJob)."""

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid

from cw_core import Ctx, create_message, update_conversation
from cw_facebook import send_facebook, send_instagram
from cw_net import unsafe_url
from cw_store import _log, transaction
from cw_whatsapp import send_whatsapp


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
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Chatwoot-Delivery": str(uuid.uuid4()),
        }
        if secret:
            stamp = str(int(time.time()))
            headers |= {
                "X-Chatwoot-Timestamp": stamp,
                "X-Chatwoot-Signature": "sha256="
                + hmac.new(secret.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest(),
            }
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
        create_message(
            ctx,
            found[0],
            "Conversation was marked open by system due to an error with the agent bot.",
            "activity",
            None,
            None,
        )
    ctx.after_commit()


def send_reply(message_id):  # SendReplyJob: the channel's send service; a Page's Instagram conversations by Instagram's
    with transaction() as st:
        m = st.get("message", message_id)
        facebook = st.get("inbox", m["inbox_id"])["channel_type"] == "Channel::FacebookPage"
        instagram = (
            st.get("conversation", m["conversation_id"])["additional_attributes"].get("type")
            == "instagram_direct_message"
        )
    (send_instagram if facebook and instagram else send_facebook if facebook else send_whatsapp)(message_id)
