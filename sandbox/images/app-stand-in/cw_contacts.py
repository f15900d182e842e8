"""The Chatwoot stand-in's contacts API (see chatwoot_api.py): create, search, a contact's conversations."""

import re

from cw_assignment import inbox_member_ids
from cw_contract import Reply, check, invalid
from cw_core import contact_inbox_for, new_contact
from cw_http import ACCOUNT, need, page_of, route
from cw_views import contact_json, conversation_json, iso


@route("POST", ACCOUNT + "/contacts")
def contacts_create(ctx):
    body = ctx.body
    check("contact_create", body)
    inbox = need(ctx, "inbox", body["inbox_id"])
    fields = {
        k: body[k]
        for k in ("name", "phone_number", "identifier", "blocked", "additional_attributes", "custom_attributes")
        if k in body
    }
    fields["email"] = body["email"].lower() if body.get("email") else None
    if fields.get("phone_number") and not re.fullmatch(r"\+[1-9]\d{1,14}", fields["phone_number"]):
        raise invalid("phone_number", "Phone number should be in e164 format")
    for key in ("identifier", "email"):
        if fields.get(key) and ctx.st.find("contact", account_id=ctx.aid, **{key: fields[key]}):
            raise invalid(key, f"{key.capitalize()} has already been taken")
    contact = new_contact(ctx, **fields)
    ci = contact_inbox_for(ctx, contact, inbox, body.get("source_id"))
    raw_inbox = {
        "id": inbox["id"],
        "channel_id": inbox["id"],
        "account_id": inbox["account_id"],
        "name": inbox["name"],
        "channel_type": inbox["channel_type"],
        "created_at": iso(inbox["created_at"]),
        "updated_at": iso(inbox["updated_at"]),
    }
    return 200, {
        "payload": {
            "contact": contact_json(ctx.st, contact),
            "contact_inbox": {"inbox": raw_inbox, "source_id": ci["source_id"]},
        }
    }


@route("GET", ACCOUNT + "/contacts/search")
def contacts_search(ctx):
    q = ctx.query.get("q", "").strip().lower()
    if not q:
        raise Reply(422, {"error": "Specify search string with parameter q"})
    found = [
        c
        for c in ctx.st.find("contact", account_id=ctx.aid)
        if any(q in (c.get(k) or "").lower() for k in ("name", "email", "phone_number", "identifier"))
    ]
    page, shown = page_of(ctx, found, 15)
    return 200, {
        "meta": {"count": len(found), "current_page": page},
        "payload": [contact_json(ctx.st, c) for c in shown],
    }


@route("GET", ACCOUNT + r"/contacts/(?P<contact_id>\d+)/conversations")
def contact_conversations(ctx, contact_id):
    """Contacts::ConversationsController#index: the contact's conversations in the inboxes the user may see,
    by last activity."""
    contact = need(ctx, "contact", contact_id)
    convs = [
        c
        for c in ctx.st.find("conversation", account_id=ctx.aid, contact_id=contact["id"])
        if ctx.role != "agent" or ctx.uid in inbox_member_ids(ctx.st, ctx.st.get("inbox", c["inbox_id"]))
    ]
    convs = sorted(convs, key=lambda c: c["last_activity_at"], reverse=True)[:20]
    return 200, {"payload": [conversation_json(ctx.st, c, ctx.uid) for c in convs]}
