"""The application bootstrap's Chatwoot part (bin/apps_chatwoot.py): the account, its admin and n8n's
automation agent (through Chatwoot's own `rails runner`), their tokens kept in secrets/; the inboxes,
agents, teams, inbox members, labels and the platform's agent bot, through Chatwoot's API."""

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import apps_common as common
from apps_chatwoot_people import People
from apps_common import changed, compose, container_url, keep_secret, redacted, secret, signing_secret
from apps_http import call


class Chatwoot(People):
    def __init__(self):
        self.base = container_url("chatwoot-web", 3000)
        self.token, self.account = self._account()
        self.prefix = f"{self.base}/api/v1/accounts/{self.account}"
        self.read = {}  # --check: every GET it makes, asked at once (it writes nothing, so none goes stale)
        if common.CHECK:
            self.prefetch(["/inboxes", "/agents", "/teams", "/labels", "/agent_bots", "/webhooks"])
            inboxes = [i["id"] for i in self.read["/inboxes"]["payload"]]
            self.prefetch(
                [f"/teams/{t['id']}/team_members" for t in self.read["/teams"]]
                + [f"/inbox_members/{i}" for i in inboxes]
                + [f"/inboxes/{i}/agent_bot" for i in inboxes]
            )

    def api(self, method, path, body=None):
        if common.CHECK and method != "GET":
            return None  # the caller's changed() names what differs
        if path in self.read:
            return self.read[path]
        return call(method, f"{self.prefix}{path}", body, {"api_access_token": self.token})

    def prefetch(self, paths):
        with ThreadPoolExecutor(8) as pool:
            self.read |= dict(zip(paths, pool.map(lambda path: self.api("GET", path), paths), strict=True))

    def _account(self):
        token = secret("chatwoot_api_token")
        # Not a secret, nor the user id of the automation agent.
        account_file = f"{common.ROOT}/state/chatwoot-account-id"
        automation_file = f"{common.ROOT}/state/chatwoot-automation-user-id"
        account = open(account_file).read().strip() if os.path.exists(account_file) else None
        self.automation_id = int(open(automation_file).read()) if os.path.exists(automation_file) else None
        if token and account and self.automation_id and secret("chatwoot_automation_token"):
            answer = call(
                "GET",
                f"{self.base}/api/v1/accounts/{account}/inboxes",
                headers={"api_access_token": token},
                ok=(200, 401),
            )
            if not (isinstance(answer, dict) and "error" in answer):
                return token, account
            # Refused: a restored database holds another token. Asked of Chatwoot again, below.
        if common.CHECK:
            print(
                json.dumps(
                    {
                        "drift": [
                            "Chatwoot's account, its admin or n8n's automation agent: not set up, "
                            "or the admin's token is refused"
                        ]
                    }
                )
            )
            sys.exit(0)
        # Chatwoot's own tools make the account, its admin and n8n's automation agent: no sign-up page, no set-up by
        # hand.
        cw = common.SETTINGS["chatwoot"]
        env = {
            **os.environ,
            "CW_ACCOUNT_NAME": cw["account_name"],
            "CW_ADMIN_NAME": cw["admin_name"],
            "CW_ADMIN_EMAIL": cw["admin_email"],
            "CW_ADMIN_PASSWORD": secret("chatwoot_admin_password"),
            "CW_AUTOMATION_NAME": cw["automation"]["name"],
            "CW_AUTOMATION_EMAIL": cw["automation"]["email"],
        }
        code = open(f"{common.ROOT}/bin/chatwoot_bootstrap.rb").read()
        names = [k for k in env if k.startswith("CW_")]
        out = compose(
            "exec", "-T", *(f"-e{k}" for k in names), "chatwoot-web", "bundle", "exec", "rails", "runner", code, env=env
        )
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
            config = {
                "api_key": secret("whatsapp_access_token"),
                "phone_number_id": d["phone_number_id"],
                "business_account_id": cw["business_account_id"],
                "app_secret": secret("meta_app_secret"),
                "source": "embedded_signup",
            }
            auto = d["auto_assignment"] == "after_triage"
            inbox = have.get(name)
            if inbox is not None and inbox.get("phone_number") != d["number"]:
                raise SystemExit(
                    f"Chatwoot inbox {name} is for {inbox.get('phone_number')}, but department {d['name']} now says "
                    f"{d['number']}: a WhatsApp inbox keeps its number. Give the department a new inbox name "
                    "(the old inbox and its conversations stay), or put the number back."
                )
            if inbox is None:
                inbox = self.api(
                    "POST",
                    "/inboxes",
                    {
                        "name": name,
                        "enable_auto_assignment": auto,
                        "channel": {
                            "type": "whatsapp",
                            "phone_number": d["number"],
                            "provider": "whatsapp_cloud",
                            "provider_config": config,
                        },
                    },
                )
                changed(f"Chatwoot inbox {name} created for {d['number']}")
                if inbox is None:  # --check
                    continue
            elif (
                any((inbox.get("provider_config") or {}).get(k) != v for k, v in config.items())
                or inbox.get("reauthorization_required")
                or inbox.get("enable_auto_assignment") != auto
            ):
                # Sending the channel's settings also clears a reauthorisation flag (InboxesController#update).
                self.api(
                    "PATCH",
                    f"/inboxes/{inbox['id']}",
                    {"enable_auto_assignment": auto, "channel": {"provider_config": config}},
                )
                changed(f"Chatwoot inbox {name}: credentials and auto-assignment set")
            ids[name] = inbox["id"]
        for w in cw["web_chats"]:
            auto = departments[w["department"]]["auto_assignment"] == "after_triage"
            inbox = have.get(w["inbox"])
            if inbox is None:
                inbox = self.api(
                    "POST",
                    "/inboxes",
                    {
                        "name": w["inbox"],
                        "enable_auto_assignment": auto,
                        "channel": {
                            "type": "web_widget",
                            "website_url": w["website_url"],
                            "welcome_title": cw["account_name"],
                        },
                    },
                )
                changed(f"Chatwoot inbox {w['inbox']} created (web chat on {w['website_url']})")
                if inbox is None:  # --check
                    continue
            if inbox.get("channel_type") != "Channel::WebWidget":
                raise SystemExit(
                    f"Chatwoot inbox {w['inbox']} is a {inbox.get('channel_type')}, not a web chat: give the web chat "
                    "of web_chats another inbox name"
                )
            if (inbox.get("website_url"), inbox.get("enable_auto_assignment")) != (w["website_url"], auto):
                self.api(
                    "PATCH",
                    f"/inboxes/{inbox['id']}",
                    {"enable_auto_assignment": auto, "channel": {"website_url": w["website_url"]}},
                )
                changed(f"Chatwoot inbox {w['inbox']}: website and auto-assignment set")
            ids[w["inbox"]] = inbox["id"]
        fb = cw["facebook_inbox"]
        fb_id = fb and self.facebook_inbox(fb, have, departments[fb["department"]]["auto_assignment"] == "after_triage")
        if fb_id is not None:  # None: no Facebook inbox, or --check found it missing
            ids[fb["inbox"]] = fb_id
        # An API inbox sends nothing itself: its webhook gives n8n an agent's reply to send on WhatsApp.
        default, hook = have.get(cw["default_inbox"]), "http://n8n:5678/webhook/chatwoot-events/unrouted"
        if default is None:
            default = self.api(
                "POST", "/inboxes", {"name": cw["default_inbox"], "channel": {"type": "api", "webhook_url": hook}}
            )
            changed(f"Chatwoot inbox {cw['default_inbox']} created (numbers not in departments)")
        elif default.get("webhook_url") != hook:
            self.api("PATCH", f"/inboxes/{default['id']}", {"channel": {"webhook_url": hook}})
            changed(f"Chatwoot inbox {cw['default_inbox']}: its replies sent through n8n")
        if default is not None:
            ids[cw["default_inbox"]] = default["id"]
            # Chatwoot signs that webhook with the inbox's secret (v4.13.0+): n8n checks it, so that an
            # agent's reply forged from inside the stack's networks goes to no customer.
            key = signing_secret(default, "the default inbox", "v4.13.0")
            if key and secret("chatwoot_unrouted_secret") != key:
                keep_secret("chatwoot_unrouted_secret", key)
                changed(f"Chatwoot inbox {cw['default_inbox']}: signing secret stored")
        return ids

    def facebook_inbox(self, fb, have, auto):
        """The Page's inbox, by CallbacksController#register_facebook_page (the dashboard's Facebook login ends there).
        A Page token stands for the user token too: Chatwoot keeps that one only to reauthorise through the login."""
        inbox = have.get(fb["inbox"])
        other = next(
            (i["name"] for i in have.values() if i.get("page_id") == fb["page_id"] and i["name"] != fb["inbox"]), None
        )
        if inbox is None and other:
            raise SystemExit(
                f"Facebook Page {fb['page_id']} already has the Chatwoot inbox {other}: set facebook_inbox's inbox "
                f"to {other!r} (a Page has one inbox per account)"
            )
        if inbox is None:
            token = secret("facebook_page_token")
            inbox = self.api(
                "POST",
                "/callbacks/register_facebook_page",
                {
                    "page_id": fb["page_id"],
                    "page_access_token": token,
                    "user_access_token": token,
                    "inbox_name": fb["inbox"],
                },
            )
            changed(f"Chatwoot inbox {fb['inbox']} created (Messenger of Facebook Page {fb['page_id']})")
            if inbox is None:  # --check
                return None
        if inbox.get("channel_type") != "Channel::FacebookPage" or inbox.get("page_id") != fb["page_id"]:
            raise SystemExit(
                f"Chatwoot inbox {fb['inbox']} is a {inbox.get('channel_type')} (page {inbox.get('page_id')}), not the "
                f"Messenger of Facebook Page {fb['page_id']}: give facebook_inbox another inbox name"
            )
        if inbox.get("reauthorization_required"):
            print(
                f"[apps] WARNING: Chatwoot inbox {fb['inbox']} needs the Page reauthorised: "
                "Chatwoot, Settings > Inboxes",
                flush=True,
            )
        if inbox.get("enable_auto_assignment") != auto:
            self.api("PATCH", f"/inboxes/{inbox['id']}", {"enable_auto_assignment": auto})
            changed(f"Chatwoot inbox {fb['inbox']}: auto-assignment set")
        return inbox["id"]

    def labels(self, wanted):
        have = {x["title"]: x for x in self.api("GET", "/labels")["payload"]}
        for title, (color, description) in wanted.items():
            label = have.get(title)
            if label is None:
                self.api(
                    "POST",
                    "/labels",
                    {"title": title, "color": color, "description": description, "show_on_sidebar": True},
                )
                changed(f"Chatwoot label {title} created")
            elif (label["color"], label["description"]) != (color, description):
                self.api("PATCH", f"/labels/{label['id']}", {"color": color, "description": description})
                changed(f"Chatwoot label {title}: colour and description set")

    def bot(self, cw, inbox_ids):
        """The platform's agent bot: n8n acts in Chatwoot as it, with its own token (never the admin's). Connected to
        the department inboxes (WhatsApp, web chat, Messenger), it keeps their new conversations `pending` (offered to
        nobody) until triage hands them over. It has no outgoing URL, so Chatwoot sends it no event
        (AgentBotListener#process_webhook_bot_event returns on a blank one): the account webhook below brings triage
        the messages, about a fifth of the events a bot gets."""
        name = cw["bot_name"]
        bot = next((b for b in self.api("GET", "/agent_bots") if b["name"] == name), None)
        if bot is None:
            bot = self.api(
                "POST",
                "/agent_bots",
                {"name": name, "description": "n8n triage and routing (platform deploy)", "bot_type": "webhook"},
            )
            changed(f"Chatwoot agent bot {name} created")
        elif bot["outgoing_url"]:
            bot = self.api("PATCH", f"/agent_bots/{bot['id']}", {"outgoing_url": ""}) or bot
            changed(f"Chatwoot agent bot {name}: no outgoing URL (the account webhook brings triage its events)")
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

    def account_webhook(self, url):
        """Triage's events: one account webhook to n8n, for message_created only (a bot would get every label, team,
        status and reply of the conversation too: about nine events, so nine n8n executions, for each customer
        message). Chatwoot signs it with the webhook's secret (X-Chatwoot-Signature), which n8n checks, so that an
        event forged from inside the stack's networks is dropped too."""
        hooks = [h for h in self.api("GET", "/webhooks")["payload"]["webhooks"] if h["url"].split("?")[0] == url]
        for extra in hooks[1:]:
            self.api("DELETE", f"/webhooks/{extra['id']}")
            changed(f"Chatwoot: a second account webhook to n8n removed ({extra['url']})")
        hook = hooks[0] if hooks else None
        if hook is None:
            hook = self.api("POST", "/webhooks", {"url": url, "subscriptions": WEBHOOK_EVENTS})
            hook = hook and hook["payload"]["webhook"]
            changed("Chatwoot: the account webhook to n8n created (message_created)")
        elif hook["url"] != url or hook["subscriptions"] != WEBHOOK_EVENTS:
            self.api("PATCH", f"/webhooks/{hook['id']}", {"url": url, "subscriptions": WEBHOOK_EVENTS})
            changed(f"Chatwoot: the account webhook to n8n set to {url}, {WEBHOOK_EVENTS}")
        key = hook and signing_secret(hook, "the account webhook to n8n", "v4.11.2")
        if key and secret("chatwoot_webhook_secret") != key:
            keep_secret("chatwoot_webhook_secret", key)
            changed("Chatwoot: the account webhook's signing secret stored")


WEBHOOK_EVENTS = ["message_created"]


def setup_chatwoot():
    cw = common.SETTINGS["chatwoot"]
    chatwoot = Chatwoot()
    people = chatwoot.people(cw, chatwoot.automation_id)
    inbox_ids = chatwoot.inboxes(cw)
    team_ids = chatwoot.teams(cw, people)
    chatwoot.inbox_members(cw, people, inbox_ids)
    chatwoot.labels(cw["labels"])
    # Over the stack's network; the edge refuses this path from outside.
    url = "http://n8n:5678/webhook/chatwoot-events"
    chatwoot.bot(cw, inbox_ids)
    chatwoot.account_webhook(url)
    return {"account_id": int(chatwoot.account), "inbox_ids": inbox_ids, "team_ids": team_ids}
