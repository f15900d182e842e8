"""The Chatwoot stand-in's account webhooks API (see chatwoot_api.py); their delivery is in cw_delivery.py."""

import re

from cw_contract import check, invalid
from cw_http import ACCOUNT, need, route, wrapped
from cw_store import new_token


def webhook_json(w):
    return {
        "id": w["id"],
        "name": w["name"],
        "url": w["url"],
        "account_id": w["account_id"],
        "subscriptions": w["subscriptions"],
        "secret": w.get("secret"),
    }


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
    return 200, {
        "payload": {
            "webhook": webhook_json(
                ctx.st.add("webhook", account_id=ctx.aid, webhook_type="account_type", secret=new_token(), **hook)
            )
        }
    }


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
