"""The Chatwoot stand-in's HTTP side (see chatwoot_api.py): the routes and their dispatch, authentication and
permissions (AccessTokenAuthHelper, the Pundit policies), and helpers the controllers share."""

import json
import re
import urllib.parse

from cw_assignment import inbox_member_ids, team_member_ids
from cw_contract import Reply, not_found
from cw_core import Ctx
from cw_store import _log, transaction

ROUTES: list = []
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
    return (
        path.startswith("/api/v1/")
        or path.startswith("/webhooks/whatsapp/")
        or path.rstrip("/") in ("/bot", "/webhooks/instagram")
    )


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
        except ValueError as e:
            raise Reply(400, {"error": "the request body is not valid JSON"}) from e
        query = dict(urllib.parse.parse_qsl(url.query))
        for m, pattern, fn in ROUTES:
            match = pattern.match(url.path)
            if match and m == method:
                args = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
                if "account_id" not in args:
                    status, body = fn(Request(data, query, raw, handler.headers), **args)
                    break
                with transaction(read_only=method == "GET") as st:
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
    out = (
        b""
        if body is None and status == 200 or body == ""
        else (body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))).encode()
    )
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
        if bot["account_id"] != account_id and not st.find(
            "agent_bot_inbox", agent_bot_id=bot["id"], account_id=account_id
        ):
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
    return (
        ctx.role != "agent"
        or ctx.uid in inbox_member_ids(ctx.st, ctx.st.get("inbox", conv["inbox_id"]))
        or (conv["team_id"] and ctx.uid in team_member_ids(ctx.st, conv["team_id"]))
    )


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
    return page, items[(page - 1) * size : page * size]
