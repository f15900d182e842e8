"""The application bootstrap's n8n part (bin/apps_n8n.py): the credentials (encrypted by n8n on import)
and the workflows of files/n8n/, with this deploy's settings, imported through n8n's CLI and published
through its public API, so the running n8n takes them without a restart."""

import hashlib
import json
import os
import urllib.request

import apps_common as common
import apps_http as http
from apps_common import changed, compose, container_url, keep_secret, secret

LEAD_CAPTURE = "platformLeadCapt"  # 03-whatsapp-lead-capture's id
POSTER = "platformPoster02"  # 02-social-media-auto-poster's: its schedule is group data's


def n8n(script, stdin=None, check=True):
    """n8n's CLI in a one-off container of the n8n service (same image, settings and database),
    not an exec into the running one, whose memory limit is sized for the main process."""
    out = compose("run", "--rm", "--no-deps", "-T", "--entrypoint", "sh", "n8n", "-c", script, stdin=stdin)
    if out.returncode and check:
        raise SystemExit(f"n8n CLI failed: {out.stderr[-800:] or out.stdout[-800:]}")
    return out.stdout


def credentials():
    """n8n credentials from the secrets; n8n encrypts them with its key on import."""
    wanted = {
        # Chatwoot's agent bot (triage, routing, replies) and the automation agent (the default inbox): never the admin.
        "chatwoot": (
            "Chatwoot bot",
            "httpHeaderAuth",
            {"name": "api_access_token", "value": secret("chatwoot_bot_token")},
        ),
        "cwagent": (
            "Chatwoot automation agent",
            "httpHeaderAuth",
            {"name": "api_access_token", "value": secret("chatwoot_automation_token")},
        ),
        # n8n's own least-privilege Directus user, not the admin.
        "directus": (
            "Directus",
            "httpHeaderAuth",
            {"name": "Authorization", "value": f"Bearer {secret('directus_n8n_token')}"},
        ),
        "redis": (
            "Platform Redis",
            "redis",
            {
                "host": "redis",
                "port": 6379,
                "database": common.SETTINGS["n8n"]["redis_db"],
                "password": secret("redis_password"),
            },
        ),
        "meta": ("Meta app secret", "crypto", {"hmacSecret": secret("meta_app_secret") or "unset"}),
        "cwsign": (
            "Chatwoot webhook signing secret",
            "crypto",
            {"hmacSecret": secret("chatwoot_webhook_secret") or "unset"},
        ),
        "cwunrouted": (
            "Chatwoot unrouted inbox signing secret",
            "crypto",
            {"hmacSecret": secret("chatwoot_unrouted_secret") or "unset"},
        ),
        "whatsapp": (
            "WhatsApp Cloud API",
            "httpHeaderAuth",
            {"name": "Authorization", "value": f"Bearer {secret('whatsapp_access_token')}"},
        ),
        "claude": ("Claude API", "httpHeaderAuth", {"name": "x-api-key", "value": secret("claude_api_key") or "unset"}),
        "facebook": (
            "Facebook Page token",
            "httpHeaderAuth",
            {"name": "Authorization", "value": f"Bearer {secret('facebook_page_token')}"},
        ),
        "instagram": (
            "Instagram token",
            "httpHeaderAuth",
            {"name": "Authorization", "value": f"Bearer {secret('instagram_access_token')}"},
        ),
        "smtp": (
            "Platform SMTP",
            "smtp",
            {**common.SETTINGS["n8n"]["smtp"], "password": secret("smtp_password") or ""},
        ),
    }
    return [
        {"id": f"platform{key.capitalize()}Cred"[:16].ljust(16, "0"), "name": name, "type": kind, "data": data}
        for key, (name, kind, data) in wanted.items()
    ]


def workflows(ids):
    """files/n8n/*.json with this deploy's settings in their Settings node (never a secret)."""
    settings = {
        **common.SETTINGS["n8n"]["workflow_settings"],
        **ids,
        "verify_token_sha256": hashlib.sha256(secret("whatsapp_verify_token").encode()).hexdigest(),
    }
    for department in settings["departments"]:
        department["inbox_id"] = ids["inbox_ids"][department["inbox"]]
        department["inbox_ids"] = [ids["inbox_ids"][inbox] for inbox in department["inboxes"]]
        department["team_id"] = ids["team_ids"][department["team"]]
        department["escalation_team_id"] = ids["team_ids"].get(department["escalation_team"])  # None: "Any available"
    settings["default_inbox_id"] = ids["inbox_ids"][settings["default_inbox"]]
    creds = {c["type"] + ":" + c["name"]: {"id": c["id"], "name": c["name"]} for c in credentials()}
    result = []
    for name in sorted(os.listdir(f"{common.ROOT}/config/n8n")):
        workflow = json.load(open(f"{common.ROOT}/config/n8n/{name}"))
        for node in workflow["nodes"]:
            if node["name"].startswith("Settings"):
                node["parameters"]["jsonOutput"] = json.dumps(settings, indent=1, sort_keys=True)
            if node["type"] == "n8n-nodes-base.scheduleTrigger" and workflow["id"] == POSTER:
                node["parameters"]["rule"]["interval"] = [
                    {"field": "cronExpression", "expression": settings["social_schedule"]}
                ]
            for kind, ref in (node.get("credentials") or {}).items():
                node["credentials"][kind] = creds[f"{kind}:{ref['name']}"]
        workflow["settings"]["timezone"] = settings["timezone"]
        # A version per content: n8n publishes the version named here, not an older one it kept.
        digest = hashlib.sha256(json.dumps(workflow, sort_keys=True).encode()).hexdigest()
        workflow["versionId"] = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        result.append(workflow)
    return result


def api_key(base):
    """The deploy's own n8n API key (secrets/n8n_api_key), made once through the owner's login; a key
    n8n no longer knows (its database restored from elsewhere, say) is replaced."""
    key = secret("n8n_api_key")
    if key and "data" in (
        http.call("GET", f"{base}/api/v1/workflows?limit=1", None, {"X-N8N-API-KEY": key}, ok=(401,)) or {}
    ):
        return key
    login = urllib.request.Request(
        f"{base}/rest/login",
        data=json.dumps(
            {"emailOrLdapLoginId": common.SETTINGS["n8n"]["owner_email"], "password": secret("n8n_owner_password")}
        ).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=30) as answer:
        cookie = answer.headers["Set-Cookie"].split(";", 1)[0]
    # n8n keeps labels unique: a key of ours it still has (its database promoted or restored from another
    # host, whose secrets/ kept the key) is deleted, and the new one takes its label.
    for old in http.call("GET", f"{base}/rest/api-keys", None, {"Cookie": cookie})["data"]["items"]:
        if old.get("label") == API_KEY_LABEL:
            http.call("DELETE", f"{base}/rest/api-keys/{old['id']}", None, {"Cookie": cookie})
    made = http.call(
        "POST",
        f"{base}/rest/api-keys",
        {"label": API_KEY_LABEL, "scopes": API_KEY_SCOPES, "expiresAt": None},
        {"Cookie": cookie},
    )
    keep_secret("n8n_api_key", made["data"]["rawApiKey"])
    return made["data"]["rawApiKey"]


API_KEY_LABEL = "platform deploy"
API_KEY_SCOPES = ["workflow:read", "workflow:list", "workflow:activate", "workflow:deactivate"]


def setup_n8n(ids):
    state = f"{common.ROOT}/state/n8n-imported"
    creds, flows = credentials(), workflows(ids)
    digest = hashlib.sha256(json.dumps([creds, flows], sort_keys=True).encode()).hexdigest()
    if os.path.exists(state) and open(state).read().strip() == digest:
        return
    base = container_url("n8n", 5678)
    key = {"X-N8N-API-KEY": api_key(base)}
    # Unpublished through the running n8n first, so that it drops their webhooks and schedules
    # itself (the CLI's own unpublish reaches only the database); published again after the import,
    # which gives each workflow a new version. Webhooks answer 404 in between, for seconds.
    for workflow in flows:
        http.call("POST", f"{base}/api/v1/workflows/{workflow['id']}/deactivate", {}, key, ok=(404,))
    # Through stdin (one line each) into the container's private /tmp, removed at once: never on the host's disk.
    n8n(
        'd=$(mktemp -d) && { IFS= read -r c && printf "%s" "$c" > "$d/c" && cat > "$d/w"; }'
        ' && n8n import:credentials --input="$d/c" && n8n import:workflow --input="$d/w"; s=$?; rm -rf "$d"; exit $s',
        stdin=json.dumps(creds) + "\n" + json.dumps(flows),
    )
    for workflow in flows:
        if workflow["id"] == LEAD_CAPTURE and not common.SETTINGS["chatwoot"]["departments"]:
            continue  # no WhatsApp numbers, so no Meta app secret to check signatures with: not published
        http.call("POST", f"{base}/api/v1/workflows/{workflow['id']}/activate", {}, key)
    with open(state, "w") as f:
        f.write(digest)
    changed(f"n8n: {len(creds)} credentials and {len(flows)} workflows imported and published")
