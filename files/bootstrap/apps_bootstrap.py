#!/usr/bin/env python3
"""Managed by the platform deploy (application layer). Sets the apps up for the business,
reading state first and changing only what differs, so a rerun creates nothing twice:

- Chatwoot: the account, its admin and n8n's automation agent (through Chatwoot's own
  `rails runner`), their tokens kept in secrets/; one WhatsApp inbox per department and the
  default inbox, the agents, the teams and the inboxes with exactly their members, the
  labels, and the platform's agent bot (n8n's identity, connected to the department inboxes).
- Directus: the schema of config/directus-schema.json (promotions and their post log, the
  triage log and business context), and n8n's least-privilege user with its token.
- n8n: the credentials (encrypted by n8n on import) and the workflows of files/n8n/, with
  this deploy's settings, imported and published.

Usage: apps_bootstrap.py STACK_ROOT [--check]. Reads config/apps.json (no secret) and secrets/.
Prints what it changed, never a secret. With --check it changes nothing and prints one JSON
line, {"drift": [...]}: what it would change in Chatwoot (the deploy's and the audit's view of
Chatwoot's people, teams, members, labels, bot and webhooks). Python standard library only.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = next((a for a in sys.argv[1:] if not a.startswith("--")), "/opt/msgplatform")
CHECK = "--check" in sys.argv  # read only: what differs is reported, nothing is written
SETTINGS = json.load(open(f"{ROOT}/config/apps.json"))
DC = ["docker", "compose", "-f", f"{ROOT}/compose.yaml", "-p", SETTINGS["stack_name"]]
CHANGED = []
LEAD_CAPTURE = "platformLeadCapt"  # 03-whatsapp-lead-capture's id


def log(message):
    if not CHECK:
        print(f"[apps] {message}", flush=True)


def changed(message):
    CHANGED.append(message)
    log(message)


def secret(name):
    path = f"{ROOT}/secrets/{name}"
    return open(path).read().strip() if os.path.exists(path) else None


def redacted(text):
    """`text` with every secret's value replaced: the apps may echo a value in an error."""
    for name in os.listdir(f"{ROOT}/secrets"):
        value = secret(name)
        if value and len(value) >= 8:
            text = text.replace(value, f"<secrets/{name}>")
    return text


def keep_secret(name, value):
    if CHECK:
        return
    path = f"{ROOT}/secrets/{name}"
    with open(os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(value)
    os.replace(f"{path}.tmp", path)


def compose(*args, stdin=None, env=None):
    """docker compose, once more (up to 3 tries) when the container's process never started:
    runc's "OCI runtime ... init-p: connection reset by peer" has been seen now and then on
    a busy host, for exec and run alike; nothing ran, so trying again is safe."""
    for attempt in range(3):
        out = subprocess.run([*DC, *args], input=stdin, env=env, capture_output=True, text=True)
        if out.returncode == 0 or "OCI runtime" not in out.stderr or attempt == 2:
            return out
        time.sleep(3)


def container_url(service, port):
    """The service's address on the stack's edge network (nothing is published on the host)."""
    cid = subprocess.run([*DC, "ps", "-q", service], capture_output=True, text=True, check=True).stdout.strip()
    network = f"{SETTINGS['stack_name']}_edge"
    ip = subprocess.run(["docker", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', cid],
                        capture_output=True, text=True, check=True).stdout.strip()
    return f"http://{ip}:{port}"


def call(method, url, body=None, headers=None, ok=(200, 201, 204)):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    for attempt in range(30):
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                text = answer.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            if e.code in ok:
                return json.loads(detail) if detail else None
            if e.code >= 500 and attempt < 29:
                time.sleep(2)
                continue
            raise SystemExit(f"{method} {url.split('/', 3)[-1]}: HTTP {e.code}: {redacted(detail)}")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if attempt == 29:
                raise
            time.sleep(2)


# --- Chatwoot -----------------------------------------------------------------------

class Chatwoot:
    def __init__(self):
        self.base = container_url("chatwoot-web", 3000)
        self.token, self.account = self._account()
        self.prefix = f"{self.base}/api/v1/accounts/{self.account}"

    def api(self, method, path, body=None):
        if CHECK and method != "GET":
            return None  # the caller's changed() names what differs
        return call(method, f"{self.prefix}{path}", body, {"api_access_token": self.token})

    def _account(self):
        token = secret("chatwoot_api_token")
        account_file = f"{ROOT}/state/chatwoot-account-id"  # not a secret, nor the user id of the automation agent
        automation_file = f"{ROOT}/state/chatwoot-automation-user-id"
        account = open(account_file).read().strip() if os.path.exists(account_file) else None
        self.automation_id = int(open(automation_file).read()) if os.path.exists(automation_file) else None
        if token and account and self.automation_id and secret("chatwoot_automation_token"):
            answer = call("GET", f"{self.base}/api/v1/accounts/{account}/inboxes", headers={"api_access_token": token}, ok=(200, 401))
            if not (isinstance(answer, dict) and "error" in answer):
                return token, account
            # Refused: a restored database holds another token. Asked of Chatwoot again, below.
        if CHECK:
            print(json.dumps({"drift": ["Chatwoot's account, its admin or n8n's automation agent: not set up, "
                                        "or the admin's token is refused"]}))
            sys.exit(0)
        # Chatwoot's own tools make the account, its admin and n8n's automation agent: no sign-up page, no set-up by hand.
        cw = SETTINGS["chatwoot"]
        env = {**os.environ, "CW_ACCOUNT_NAME": cw["account_name"], "CW_ADMIN_NAME": cw["admin_name"],
               "CW_ADMIN_EMAIL": cw["admin_email"], "CW_ADMIN_PASSWORD": secret("chatwoot_admin_password"),
               "CW_AUTOMATION_NAME": cw["automation"]["name"], "CW_AUTOMATION_EMAIL": cw["automation"]["email"]}
        code = open(f"{ROOT}/bin/chatwoot_bootstrap.rb").read()
        names = [k for k in env if k.startswith("CW_")]
        out = compose("exec", "-T", *(f"-e{k}" for k in names), "chatwoot-web", "bundle", "exec", "rails", "runner", code, env=env)
        if out.returncode:
            raise SystemExit(f"Chatwoot's account bootstrap failed: {redacted(out.stderr[-800:])}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        keep_secret("chatwoot_api_token", result["access_token"])
        keep_secret("chatwoot_automation_token", result["automation_token"])
        for path, value in ((account_file, result["account_id"]), (automation_file, result["automation_user_id"])):
            with open(path, "w") as f:
                f.write(str(value))
        self.automation_id = result["automation_user_id"]
        changed(f"Chatwoot account {result['account_id']}, its admin and n8n's automation agent ready")
        return result["access_token"], str(result["account_id"])

    def inboxes(self, cw):
        """A WhatsApp Cloud inbox per department, marked embedded_signup so that Chatwoot never registers its own
        callback with Meta (Meta's callback stays n8n's one URL), with the Meta app secret so that Chatwoot checks
        X-Hub-Signature-256 on every forward; a web widget inbox per web chat; the auto-assignment of each as its
        department's policy says."""
        wanted = {d["inbox"]: d for d in cw["departments"]}
        departments = {d["name"]: d for d in cw["departments"]}
        have = {i["name"]: i for i in self.api("GET", "/inboxes")["payload"]}
        ids = {}
        for name, d in wanted.items():
            config = {"api_key": secret("whatsapp_access_token"), "phone_number_id": d["phone_number_id"],
                      "business_account_id": cw["business_account_id"], "app_secret": secret("meta_app_secret"),
                      "source": "embedded_signup"}
            auto = d["auto_assignment"] == "after_triage"
            inbox = have.get(name)
            if inbox is not None and inbox.get("phone_number") != d["number"]:
                raise SystemExit(f"Chatwoot inbox {name} is for {inbox.get('phone_number')}, but department {d['name']} now says "
                                 f"{d['number']}: a WhatsApp inbox keeps its number. Give the department a new inbox name "
                                 "(the old inbox and its conversations stay), or put the number back.")
            if inbox is None:
                inbox = self.api("POST", "/inboxes", {"name": name, "enable_auto_assignment": auto, "channel": {
                    "type": "whatsapp", "phone_number": d["number"], "provider": "whatsapp_cloud", "provider_config": config}})
                changed(f"Chatwoot inbox {name} created for {d['number']}")
                if inbox is None:  # --check
                    continue
            elif (any((inbox.get("provider_config") or {}).get(k) != v for k, v in config.items())
                  or inbox.get("reauthorization_required") or inbox.get("enable_auto_assignment") != auto):
                # Sending the channel's settings also clears a reauthorisation flag (InboxesController#update).
                self.api("PATCH", f"/inboxes/{inbox['id']}", {"enable_auto_assignment": auto, "channel": {"provider_config": config}})
                changed(f"Chatwoot inbox {name}: credentials and auto-assignment set")
            ids[name] = inbox["id"]
        for w in cw["web_chats"]:
            auto = departments[w["department"]]["auto_assignment"] == "after_triage"
            inbox = have.get(w["inbox"])
            if inbox is None:
                inbox = self.api("POST", "/inboxes", {"name": w["inbox"], "enable_auto_assignment": auto, "channel": {
                    "type": "web_widget", "website_url": w["website_url"], "welcome_title": cw["account_name"]}})
                changed(f"Chatwoot inbox {w['inbox']} created (web chat on {w['website_url']})")
                if inbox is None:  # --check
                    continue
            if inbox.get("channel_type") != "Channel::WebWidget":
                raise SystemExit(f"Chatwoot inbox {w['inbox']} is a {inbox.get('channel_type')}, not a web chat: give the web chat "
                                 "of web_chats another inbox name")
            if (inbox.get("website_url"), inbox.get("enable_auto_assignment")) != (w["website_url"], auto):
                self.api("PATCH", f"/inboxes/{inbox['id']}", {"enable_auto_assignment": auto, "channel": {"website_url": w["website_url"]}})
                changed(f"Chatwoot inbox {w['inbox']}: website and auto-assignment set")
            ids[w["inbox"]] = inbox["id"]
        fb = cw["facebook_inbox"]
        fb_id = fb and self.facebook_inbox(fb, have, departments[fb["department"]]["auto_assignment"] == "after_triage")
        if fb_id is not None:  # None: no Facebook inbox, or --check found it missing
            ids[fb["inbox"]] = fb_id
        # An API inbox sends nothing itself: its webhook gives n8n an agent's reply to send on WhatsApp.
        default, hook = have.get(cw["default_inbox"]), "http://n8n:5678/webhook/chatwoot-events/unrouted"
        if default is None:
            default = self.api("POST", "/inboxes", {"name": cw["default_inbox"], "channel": {"type": "api", "webhook_url": hook}})
            changed(f"Chatwoot inbox {cw['default_inbox']} created (numbers not in departments)")
        elif default.get("webhook_url") != hook:
            self.api("PATCH", f"/inboxes/{default['id']}", {"channel": {"webhook_url": hook}})
            changed(f"Chatwoot inbox {cw['default_inbox']}: its replies sent through n8n")
        if default is not None:
            ids[cw["default_inbox"]] = default["id"]
        return ids

    def facebook_inbox(self, fb, have, auto):
        """The Page's inbox, by CallbacksController#register_facebook_page (the dashboard's Facebook login ends there). A
        Page token stands for the user token too: Chatwoot keeps that one only to reauthorise through the login."""
        inbox = have.get(fb["inbox"])
        other = next((i["name"] for i in have.values() if i.get("page_id") == fb["page_id"] and i["name"] != fb["inbox"]), None)
        if inbox is None and other:
            raise SystemExit(f"Facebook Page {fb['page_id']} already has the Chatwoot inbox {other}: set facebook_inbox's inbox "
                             f"to {other!r} (a Page has one inbox per account)")
        if inbox is None:
            token = secret("facebook_page_token")
            inbox = self.api("POST", "/callbacks/register_facebook_page", {
                "page_id": fb["page_id"], "page_access_token": token, "user_access_token": token, "inbox_name": fb["inbox"]})
            changed(f"Chatwoot inbox {fb['inbox']} created (Messenger of Facebook Page {fb['page_id']})")
            if inbox is None:  # --check
                return None
        if inbox.get("channel_type") != "Channel::FacebookPage" or inbox.get("page_id") != fb["page_id"]:
            raise SystemExit(f"Chatwoot inbox {fb['inbox']} is a {inbox.get('channel_type')} (page {inbox.get('page_id')}), not the "
                             f"Messenger of Facebook Page {fb['page_id']}: give facebook_inbox another inbox name")
        if inbox.get("reauthorization_required"):
            print(f"[apps] WARNING: Chatwoot inbox {fb['inbox']} needs the Page reauthorised: Chatwoot, Settings > Inboxes", flush=True)
        if inbox.get("enable_auto_assignment") != auto:
            self.api("PATCH", f"/inboxes/{inbox['id']}", {"enable_auto_assignment": auto})
            changed(f"Chatwoot inbox {fb['inbox']}: auto-assignment set")
        return inbox["id"]

    def people(self, cw, automation_id):
        """Every person of group data is an agent with its name and role; agents added by hand are left alone."""
        have = {a["email"]: a for a in self.api("GET", "/agents")}
        for email, (name, role) in sorted(cw["agents"].items()):
            agent = have.get(email)
            if agent is None:
                have[email] = self.api("POST", "/agents", {"name": name, "email": email, "role": role})
                changed(f"Chatwoot agent {email} invited ({role})")
            elif email != SETTINGS["chatwoot"]["admin_email"] and (agent["name"], agent["role"]) != (name, role):
                self.api("PATCH", f"/agents/{agent['id']}", {"name": name, "role": role})
                changed(f"Chatwoot agent {email}: name and role set ({role})")
        ids = {email: a["id"] for email, a in have.items() if a}
        return ids | {"automation": automation_id}

    def teams(self, cw, people):
        """The teams with exactly their members; allow_auto_assign as their departments' policy says."""
        have = {t["name"].lower(): t for t in self.api("GET", "/teams")}
        ids = {}
        for name in cw["teams"]:
            auto = cw["team_auto_assign"][name]
            team = have.get(name.lower())
            if team is None:
                team = self.api("POST", "/teams", {"name": name, "description": "Managed by the platform deploy", "allow_auto_assign": auto})
                changed(f"Chatwoot team {name} created")
                if team is None:  # --check
                    continue
            elif team["allow_auto_assign"] != auto:
                self.api("PATCH", f"/teams/{team['id']}", {"allow_auto_assign": auto})
                changed(f"Chatwoot team {name}: allow_auto_assign {auto}")
            wanted = sorted(people[e] for e in cw["team_members"][name] if e in people)  # --check: all may not exist
            if sorted(m["id"] for m in self.api("GET", f"/teams/{team['id']}/team_members")) != wanted:
                self.api("PATCH", f"/teams/{team['id']}/team_members", {"user_ids": wanted})
                changed(f"Chatwoot team {name}: members set ({len(wanted)})")
            ids[name] = team["id"]
        return ids

    def inbox_members(self, cw, people, inbox_ids):
        """Exactly these members per inbox: its department's agents, every agent where escalations go to anyone,
        the supervisors, the admin and the automation agent everywhere (n8n reads a conversation's last messages
        as that agent; it is never online, so Chatwoot never assigns it a conversation)."""
        everyone = [SETTINGS["chatwoot"]["admin_email"], *cw["supervisors"], "automation"]
        wanted = {inbox: everyone + ([*cw["agents"]] if d["escalation_team"] == cw["any_available"] else
                                     [a["email"] for a in d["agents"]]) for d in cw["departments"] for inbox in d["inboxes"]}
        wanted[cw["default_inbox"]] = everyone
        for name, emails in wanted.items():
            if name not in inbox_ids:  # --check: the inbox is missing
                continue
            ids = sorted({people[e] for e in emails if e in people})
            if sorted(m["id"] for m in self.api("GET", f"/inbox_members/{inbox_ids[name]}")["payload"]) != ids:
                self.api("PATCH", "/inbox_members", {"inbox_id": inbox_ids[name], "user_ids": ids})
                changed(f"Chatwoot inbox {name}: members set ({len(ids)})")

    def labels(self, wanted):
        have = {x["title"]: x for x in self.api("GET", "/labels")["payload"]}
        for title, (color, description) in wanted.items():
            label = have.get(title)
            if label is None:
                self.api("POST", "/labels", {"title": title, "color": color, "description": description, "show_on_sidebar": True})
                changed(f"Chatwoot label {title} created")
            elif (label["color"], label["description"]) != (color, description):
                self.api("PATCH", f"/labels/{label['id']}", {"color": color, "description": description})
                changed(f"Chatwoot label {title}: colour and description set")

    def bot(self, cw, url, inbox_ids):
        """The platform's agent bot: n8n acts in Chatwoot as it, with its own token (never the admin's). Connected to
        the department inboxes (WhatsApp, web chat, Messenger), it gets their events, and their new conversations stay `pending` (offered to
        nobody) until triage hands them over."""
        name = cw["bot_name"]
        bot = next((b for b in self.api("GET", "/agent_bots") if b["name"] == name), None)
        if bot is None:
            bot = self.api("POST", "/agent_bots", {"name": name, "description": "n8n triage and routing (platform deploy)",
                                                   "outgoing_url": url, "bot_type": "webhook"})
            changed(f"Chatwoot agent bot {name} created")
        elif bot["outgoing_url"] != url:
            bot = self.api("PATCH", f"/agent_bots/{bot['id']}", {"outgoing_url": url}) or bot
            changed(f"Chatwoot agent bot {name}: outgoing URL set")
        if bot is None:  # --check
            return
        if secret("chatwoot_bot_token") != bot["access_token"]:
            keep_secret("chatwoot_bot_token", bot["access_token"])
            changed(f"Chatwoot agent bot {name}: token stored")
        for inbox in (inbox for d in cw["departments"] for inbox in d["inboxes"]):
            if inbox not in inbox_ids:  # --check
                continue
            connected = (self.api("GET", f"/inboxes/{inbox_ids[inbox]}/agent_bot") or {}).get("agent_bot") or {}
            if connected.get("id") != bot["id"]:
                self.api("POST", f"/inboxes/{inbox_ids[inbox]}/set_agent_bot", {"agent_bot": bot["id"]})
                changed(f"Chatwoot inbox {inbox}: agent bot {name} connected")

    def no_account_webhook(self, url):
        """Events reach n8n through the agent bot; an account webhook to n8n would deliver them twice."""
        for hook in self.api("GET", "/webhooks")["payload"]["webhooks"]:
            if hook["url"].split("?")[0] == url:
                self.api("DELETE", f"/webhooks/{hook['id']}")
                changed("Chatwoot: the account webhook to n8n removed (the agent bot delivers the events)")


def setup_chatwoot():
    cw = SETTINGS["chatwoot"]
    chatwoot = Chatwoot()
    inbox_ids = chatwoot.inboxes(cw)
    people = chatwoot.people(cw, chatwoot.automation_id)
    team_ids = chatwoot.teams(cw, people)
    chatwoot.inbox_members(cw, people, inbox_ids)
    chatwoot.labels(cw["labels"])
    # Over the stack's network; the edge refuses this path from outside.
    url = "http://n8n:5678/webhook/chatwoot-events"
    chatwoot.bot(cw, url, inbox_ids)
    chatwoot.no_account_webhook(url)
    return {"account_id": int(chatwoot.account), "inbox_ids": inbox_ids, "team_ids": team_ids}


# --- Directus -------------------------------------------------------------------------

def setup_directus():
    base, auth = container_url("directus", 8055), {"Authorization": f"Bearer {secret('directus_admin_token')}"}
    # What is compared below is read fresh: a change made behind Directus's back (SQL, a restore) is not in its cache.
    call("POST", f"{base}/utils/cache/clear", headers=auth)
    apply_schema(base, auth)
    service_user(base, auth, SETTINGS["directus"]["service_user"])


def apply_schema(base, auth):
    """The collections of config/directus-schema.json (a Directus schema snapshot), through
    Directus's own diff and apply: what is missing or changed is applied, rows are kept.
    Other collections, and fields an operator added to ours, are left as they are; a field
    a former snapshot shipped and this one dropped is removed (its column with it)."""
    ours = json.load(open(f"{ROOT}/config/directus-schema.json"))
    shipped_file = f"{ROOT}/state/directus-schema-fields"  # the fields the last applied snapshot shipped
    shipped = set(json.load(open(shipped_file))) if os.path.exists(shipped_file) else set()
    current = call("GET", f"{base}/schema/snapshot", headers=auth)["data"]
    names = {c["collection"] for c in ours["collections"]}
    key = lambda x: f"{x['collection']}.{x['field']}" if "field" in x else x["collection"]  # noqa: E731
    wanted = {**current, **{part: [x for x in current[part] if x["collection"] not in names] + ours[part]
                            for part in ("collections", "fields", "relations")}}
    for part in ("fields", "relations"):
        listed = {key(x) for x in ours[part]}
        wanted[part] += [x for x in current[part]
                         if x["collection"] in names and key(x) not in listed and key(x) not in shipped]
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
    def find(path, **fields):
        query = "&".join(f"filter[{k}][_eq]={urllib.parse.quote(str(v))}" for k, v in fields.items())
        return call("GET", f"{base}{path}?{query}&limit=-1", headers=auth)["data"]

    policy = (find("/policies", name=user["policy"]) or [None])[0]
    if policy is None:
        policy = call("POST", f"{base}/policies", {"name": user["policy"], "icon": "smart_toy", "admin_access": False,
                                                   "app_access": False, "description": "Managed by the platform deploy"}, auth)["data"]
        changed(f"Directus policy {user['policy']} created")
    wanted = {(c, a) for c, a in user["permissions"]}
    have = {(p["collection"], p["action"]): p["id"] for p in find("/permissions", policy=policy["id"])}
    for extra in set(have) - wanted:
        call("DELETE", f"{base}/permissions/{have[extra]}", headers=auth)
        changed(f"Directus policy {user['policy']}: {extra[1]} on {extra[0]} removed")
    for collection, action in sorted(wanted - set(have)):
        call("POST", f"{base}/permissions", {"policy": policy["id"], "collection": collection, "action": action,
                                             "fields": ["*"], "permissions": {}, "validation": {}}, auth)
        changed(f"Directus policy {user['policy']}: {action} on {collection} granted")
    token = secret("directus_n8n_token")
    # The user is the one its token signs in as; else found by e-mail, or made.
    me = call("GET", f"{base}/users/me?fields=id", headers={"Authorization": f"Bearer {token}"}, ok=(200, 401, 403)) or {}
    uid = (me.get("data") or {}).get("id")
    found = (call("GET", f"{base}/users/{uid}?fields=id,email", headers=auth)["data"] if uid
             else (find("/users", email=user["email"]) or [None])[0])
    if found is None:
        found = call("POST", f"{base}/users", {"email": user["email"], "first_name": "n8n", "last_name": "automation",
                                               "status": "active", "token": token,
                                               "policies": [{"policy": policy["id"]}]}, auth)["data"]
        changed(f"Directus user {user['email']} created for n8n")
    elif not uid or found["email"] != user["email"]:
        call("PATCH", f"{base}/users/{found['id']}", {"token": token, "status": "active", "email": user["email"]}, auth)
        changed(f"Directus user {user['email']}: token and e-mail set")
    # Its policy and nothing else: no role, no other policy.
    now = call("GET", f"{base}/users/{found['id']}?fields=role,policies.id,policies.policy", headers=auth)["data"]
    others = [a["id"] for a in now["policies"] if a["policy"] != policy["id"]]
    missing = [{"policy": policy["id"]}] if len(others) == len(now["policies"]) else []
    if now["role"] or others or missing:
        call("PATCH", f"{base}/users/{found['id']}", {"role": None, "policies": {"create": missing, "delete": others}}, auth)
        changed(f"Directus user {user['email']}: policy {user['policy']} only, no role")


# --- n8n -------------------------------------------------------------------------------

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
        "chatwoot": ("Chatwoot bot", "httpHeaderAuth", {"name": "api_access_token", "value": secret("chatwoot_bot_token")}),
        "cwagent": ("Chatwoot automation agent", "httpHeaderAuth",
                          {"name": "api_access_token", "value": secret("chatwoot_automation_token")}),
        # n8n's own least-privilege Directus user, not the admin.
        "directus": ("Directus", "httpHeaderAuth", {"name": "Authorization", "value": f"Bearer {secret('directus_n8n_token')}"}),
        "redis": ("Platform Redis", "redis", {"host": "redis", "port": 6379, "database": SETTINGS["n8n"]["redis_db"],
                                              "password": secret("redis_password")}),
        "meta": ("Meta app secret", "crypto", {"hmacSecret": secret("meta_app_secret") or "unset"}),
        "whatsapp": ("WhatsApp Cloud API", "httpHeaderAuth", {"name": "Authorization", "value": f"Bearer {secret('whatsapp_access_token')}"}),
        "claude": ("Claude API", "httpHeaderAuth", {"name": "x-api-key", "value": secret("claude_api_key") or "unset"}),
        "facebook": ("Facebook Page token", "httpHeaderAuth", {"name": "Authorization", "value": f"Bearer {secret('facebook_page_token')}"}),
        "instagram": ("Instagram token", "httpHeaderAuth", {"name": "Authorization", "value": f"Bearer {secret('instagram_access_token')}"}),
        "smtp": ("Platform SMTP", "smtp", {**SETTINGS["n8n"]["smtp"], "password": secret("smtp_password") or ""}),
    }
    return [{"id": f"platform{key.capitalize()}Cred"[:16].ljust(16, "0"), "name": name, "type": kind, "data": data}
            for key, (name, kind, data) in wanted.items()]


def workflows(ids):
    """files/n8n/*.json with this deploy's settings in their Settings node (never a secret)."""
    settings = {**SETTINGS["n8n"]["workflow_settings"], **ids,
                "verify_token_sha256": hashlib.sha256(secret("whatsapp_verify_token").encode()).hexdigest()}
    for department in settings["departments"]:
        department["inbox_id"] = ids["inbox_ids"][department["inbox"]]
        department["inbox_ids"] = [ids["inbox_ids"][inbox] for inbox in department["inboxes"]]
        department["team_id"] = ids["team_ids"][department["team"]]
        department["escalation_team_id"] = ids["team_ids"].get(department["escalation_team"])  # None: "Any available"
    settings["default_inbox_id"] = ids["inbox_ids"][settings["default_inbox"]]
    creds = {c["type"] + ":" + c["name"]: {"id": c["id"], "name": c["name"]} for c in credentials()}
    result = []
    for name in sorted(os.listdir(f"{ROOT}/config/n8n")):
        workflow = json.load(open(f"{ROOT}/config/n8n/{name}"))
        for node in workflow["nodes"]:
            if node["name"].startswith("Settings"):
                node["parameters"]["jsonOutput"] = json.dumps(settings, indent=1, sort_keys=True)
            if node["type"] == "n8n-nodes-base.scheduleTrigger":
                node["parameters"]["rule"]["interval"] = [{"field": "cronExpression", "expression": settings["social_schedule"]}]
            for kind, ref in (node.get("credentials") or {}).items():
                node["credentials"][kind] = creds[f"{kind}:{ref['name']}"]
        workflow["settings"]["timezone"] = settings["timezone"]
        # A version per content: n8n publishes the version named here, not an older one it kept.
        digest = hashlib.sha256(json.dumps(workflow, sort_keys=True).encode()).hexdigest()
        workflow["versionId"] = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        result.append(workflow)
    return result


def setup_n8n(ids):
    state = f"{ROOT}/state/n8n-imported"
    creds, flows = credentials(), workflows(ids)
    digest = hashlib.sha256(json.dumps([creds, flows], sort_keys=True).encode()).hexdigest()
    if os.path.exists(state) and open(state).read().strip() == digest:
        return
    # Through stdin into the container's private /tmp, removed at once: never on the host's disk.
    script = 'f=$(mktemp) && cat > "$f" && n8n {cmd} --input="$f"; s=$?; rm -f "$f"; exit $s'
    n8n(script.format(cmd="import:credentials"), stdin=json.dumps(creds))
    n8n(script.format(cmd="import:workflow"), stdin=json.dumps(flows))
    commands = []
    for workflow in flows:
        if workflow["id"] == LEAD_CAPTURE and not SETTINGS["chatwoot"]["departments"]:
            # No WhatsApp numbers, so no Meta app secret to check signatures with: not published.
            n8n(f"n8n unpublish:workflow --id={LEAD_CAPTURE} || true")
            continue
        commands.append(f"n8n publish:workflow --id={workflow['id']}")
    n8n(" && ".join(commands))
    # CLI writes reach the running n8n only through a restart (n8n's CLI docs).
    subprocess.run([*DC, "restart", "n8n"], check=True, capture_output=True)
    subprocess.run([*DC, "up", "-d", "--wait", "--wait-timeout", "180", "n8n"], check=True, capture_output=True)
    with open(state, "w") as f:
        f.write(digest)
    changed(f"n8n: {len(creds)} credentials and {len(flows)} workflows imported and published")


def main():
    if CHECK:
        setup_chatwoot()
        print(json.dumps({"drift": CHANGED}))
        return
    ids = setup_chatwoot()
    setup_directus()
    setup_n8n(ids)
    log(f"done: {len(CHANGED)} change(s)" if CHANGED else "nothing to change")


if __name__ == "__main__":
    main()
