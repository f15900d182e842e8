"""The application bootstrap's Directus part (bin/apps_directus.py): the schema of
config/directus-schema.json, and n8n's least-privilege user with its token."""

import json
import os
import urllib.parse

import apps_common as common
from apps_common import changed, container_url, secret
from apps_http import call


def setup_directus():
    base, auth = container_url("directus", 8055), {"Authorization": f"Bearer {secret('directus_admin_token')}"}
    # What is compared below is read fresh: a change made behind Directus's back (SQL, a restore) is not in its cache.
    call("POST", f"{base}/utils/cache/clear", headers=auth)
    apply_schema(base, auth)
    service_user(base, auth, common.SETTINGS["directus"]["service_user"])
    public_grants_nothing(base, auth)


def find(base, auth, path, **fields):
    query = "&".join(f"filter[{k}][_eq]={urllib.parse.quote(str(v))}" for k, v in fields.items())
    return call("GET", f"{base}{path}?{query}&limit=-1", headers=auth)["data"]


def public_grants_nothing(base, auth):
    """Directus's Public policy (what anyone may do without signing in) grants nothing: the platform
    publishes nothing through Directus, and anything granted there could be read from the internet."""
    for policy in find(base, auth, "/policies", name="$t:public_label"):
        for permission in find(base, auth, "/permissions", policy=policy["id"]):
            call("DELETE", f"{base}/permissions/{permission['id']}", headers=auth)
            changed(f"Directus Public policy: {permission['action']} on {permission['collection']} revoked")
        if policy["admin_access"] or policy["app_access"]:
            call("PATCH", f"{base}/policies/{policy['id']}", {"admin_access": False, "app_access": False}, auth)
            changed("Directus Public policy: admin and app access revoked")


def apply_schema(base, auth):
    """The collections of config/directus-schema.json (a Directus schema snapshot), through
    Directus's own diff and apply: what is missing or changed is applied, rows are kept.
    Other collections, and fields an operator added to ours, are left as they are; a field
    a former snapshot shipped and this one dropped is removed (its column with it)."""
    ours = json.load(open(f"{common.ROOT}/config/directus-schema.json"))
    shipped_file = f"{common.ROOT}/state/directus-schema-fields"  # the fields the last applied snapshot shipped
    shipped = set(json.load(open(shipped_file))) if os.path.exists(shipped_file) else set()
    current = call("GET", f"{base}/schema/snapshot", headers=auth)["data"]
    names = {c["collection"] for c in ours["collections"]}
    key = lambda x: f"{x['collection']}.{x['field']}" if "field" in x else x["collection"]  # noqa: E731
    wanted = {
        **current,
        **{
            part: [x for x in current[part] if x["collection"] not in names] + ours[part]
            for part in ("collections", "fields", "relations")
        },
    }
    for part in ("fields", "relations"):
        listed = {key(x) for x in ours[part]}
        wanted[part] += [
            x for x in current[part] if x["collection"] in names and key(x) not in listed and key(x) not in shipped
        ]
    diff = call("POST", f"{base}/schema/diff?force=true", wanted, auth)  # 204, no body: nothing differs
    if diff and diff.get("data"):
        call("POST", f"{base}/schema/apply", diff["data"], auth)
        changed(f"Directus schema applied ({', '.join(sorted(names))})")
    fields = sorted({key(x) for x in ours["fields"]})
    if sorted(shipped) != fields:
        with open(shipped_file, "w") as f:
            json.dump(fields, f)


def service_user(base, auth, user):
    """n8n's Directus user: a policy with exactly the listed permissions (no app, no admin
    access), and a static token kept in secrets/directus_n8n_token."""

    policy = (find(base, auth, "/policies", name=user["policy"]) or [None])[0]
    if policy is None:
        policy = call(
            "POST",
            f"{base}/policies",
            {
                "name": user["policy"],
                "icon": "smart_toy",
                "admin_access": False,
                "app_access": False,
                "description": "Managed by the platform deploy",
            },
            auth,
        )["data"]
        changed(f"Directus policy {user['policy']} created")
    wanted = {(c, a) for c, a in user["permissions"]}
    have = {(p["collection"], p["action"]): p["id"] for p in find(base, auth, "/permissions", policy=policy["id"])}
    for extra in set(have) - wanted:
        call("DELETE", f"{base}/permissions/{have[extra]}", headers=auth)
        changed(f"Directus policy {user['policy']}: {extra[1]} on {extra[0]} removed")
    for collection, action in sorted(wanted - set(have)):
        call(
            "POST",
            f"{base}/permissions",
            {
                "policy": policy["id"],
                "collection": collection,
                "action": action,
                "fields": ["*"],
                "permissions": {},
                "validation": {},
            },
            auth,
        )
        changed(f"Directus policy {user['policy']}: {action} on {collection} granted")
    token = secret("directus_n8n_token")
    # The user is the one its token signs in as; else found by e-mail, or made.
    me = (
        call("GET", f"{base}/users/me?fields=id", headers={"Authorization": f"Bearer {token}"}, ok=(200, 401, 403))
        or {}
    )
    uid = (me.get("data") or {}).get("id")
    found = (
        call("GET", f"{base}/users/{uid}?fields=id,email", headers=auth)["data"]
        if uid
        else (find(base, auth, "/users", email=user["email"]) or [None])[0]
    )
    if found is None:
        found = call(
            "POST",
            f"{base}/users",
            {
                "email": user["email"],
                "first_name": "n8n",
                "last_name": "automation",
                "status": "active",
                "token": token,
                "policies": [{"policy": policy["id"]}],
            },
            auth,
        )["data"]
        changed(f"Directus user {user['email']} created for n8n")
    elif not uid or found["email"] != user["email"]:
        call("PATCH", f"{base}/users/{found['id']}", {"token": token, "status": "active", "email": user["email"]}, auth)
        changed(f"Directus user {user['email']}: token and e-mail set")
    # Its policy and nothing else: no role, no other policy.
    now = call("GET", f"{base}/users/{found['id']}?fields=role,policies.id,policies.policy", headers=auth)["data"]
    others = [a["id"] for a in now["policies"] if a["policy"] != policy["id"]]
    missing = [{"policy": policy["id"]}] if len(others) == len(now["policies"]) else []
    if now["role"] or others or missing:
        call(
            "PATCH",
            f"{base}/users/{found['id']}",
            {"role": None, "policies": {"create": missing, "delete": others}},
            auth,
        )
        changed(f"Directus user {user['email']}: policy {user['policy']} only, no role")
