"""The Chatwoot stand-in's account resources (see chatwoot_api.py): agents, account labels, teams and team
members, and the headless bootstrap (`rails runner` with AccountBuilder)."""

import json
import re
import sys
import time

import psycopg2
from cw_contract import Reply, check, invalid, not_found
from cw_http import ACCOUNT, need, route, wrapped
from cw_store import ENV, _log, ensure_schema, new_token, transaction
from cw_views import agent_json, team_json


def members_of_account(ctx, user_ids):
    users = [ctx.st.get("user", i) for i in dict.fromkeys(user_ids)]
    if not all(u and ctx.st.find("account_user", account_id=ctx.aid, user_id=u["id"]) for u in users):
        raise Reply(401, {"error": "Invalid User IDs"})  # TeamMembersController#validate_member_id_params
    return users


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
        "user", name=body["name"], email=email, confirmed=False, access_token=new_token()
    )
    if ctx.st.find("account_user", account_id=ctx.aid, user_id=user["id"]):
        raise invalid("user_id", "User has already been taken")
    # AgentBuilder: availability offline and auto_offline false unless given
    ctx.st.add(
        "account_user",
        account_id=ctx.aid,
        user_id=user["id"],
        role=body.get("role", "agent"),
        availability=body.get("availability", "offline"),
        auto_offline=body.get("auto_offline", False),
    )
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


@route("DELETE", ACCOUNT + r"/agents/(?P<user_id>\d+)", admin=True)
def agents_destroy(ctx, user_id):
    """AgentsController#destroy: the account user goes (Agents::DestroyJob takes the person off the account's inboxes
    and teams and unassigns their conversations), and the user with it once in no account; 200, no body."""
    au = next(iter(ctx.st.find("account_user", account_id=ctx.aid, user_id=int(user_id))), None)
    if not au:
        raise not_found()
    ctx.st.delete("account_user", au["id"])
    for kind in ("inbox_member", "team_member"):
        for member in ctx.st.find(kind, account_id=ctx.aid, user_id=au["user_id"]):
            ctx.st.delete(kind, member["id"])
    for conversation in ctx.st.find("conversation", account_id=ctx.aid, assignee_id=au["user_id"]):
        ctx.st.save("conversation", conversation | {"assignee_id": None})
    if not ctx.st.find("account_user", user_id=au["user_id"]):
        ctx.st.delete("user", au["user_id"])
    return 200, None


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
    label = ctx.st.add(
        "label",
        account_id=ctx.aid,
        title=title,
        description=body.get("description"),
        color=body.get("color") or "#1f93ff",
        show_on_sidebar=body.get("show_on_sidebar", True),
    )
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
    team = ctx.st.add(
        "team",
        account_id=ctx.aid,
        name=name,
        description=body.get("description"),
        allow_auto_assign=body.get("allow_auto_assign", True),
    )
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
    return 200, [
        agent_json(ctx.st, ctx.aid, ctx.st.get("user", m["user_id"]))
        for m in ctx.st.find("team_member", team_id=team["id"])
    ]


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


def bootstrap():
    """`rails runner` with AccountBuilder: the admin (by e-mail) and its account, made once; one JSON line on stdout."""
    name, email = ENV.get("CW_ACCOUNT_NAME"), (ENV.get("CW_ADMIN_EMAIL") or "").strip().lower()
    if not all(
        ENV.get(k)
        for k in (
            "CW_ACCOUNT_NAME",
            "CW_ADMIN_NAME",
            "CW_ADMIN_EMAIL",
            "CW_ADMIN_PASSWORD",
            "CW_AUTOMATION_NAME",
            "CW_AUTOMATION_EMAIL",
        )
    ):
        sys.exit(
            "rails runner: CW_ACCOUNT_NAME, CW_ADMIN_NAME, CW_ADMIN_EMAIL, CW_ADMIN_PASSWORD, CW_AUTOMATION_NAME and "
            "CW_AUTOMATION_EMAIL are required"
        )
    for _ in range(30):
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
            user = user or st.add(
                "user",
                name=ENV["CW_ADMIN_NAME"],
                email=email,
                confirmed=True,
                type="SuperAdmin",
                access_token=new_token(),
            )
            account_id = st.add("account", name=name)["id"]
            st.add("account_user", account_id=account_id, user_id=user["id"], role="administrator")
            _log(f"created account {account_id} with administrator {email} (user {user['id']})")
        # The automation agent (files/chatwoot/bootstrap.rb): User.create!, then an agent of the account.
        bot_email = ENV["CW_AUTOMATION_EMAIL"].strip().lower()
        agent = next(iter(st.find("user", email=bot_email)), None) or st.add(
            "user", name=ENV["CW_AUTOMATION_NAME"], email=bot_email, confirmed=True, access_token=new_token()
        )
        if not st.find("account_user", account_id=account_id, user_id=agent["id"]):
            st.add(
                "account_user",
                account_id=account_id,
                user_id=agent["id"],
                role="agent",
                availability="offline",
                auto_offline=False,
            )
    print(
        json.dumps(
            {
                "account_id": account_id,
                "user_id": user["id"],
                "access_token": user["access_token"],
                "automation_user_id": agent["id"],
                "automation_token": agent["access_token"],
            }
        ),
        flush=True,
    )
