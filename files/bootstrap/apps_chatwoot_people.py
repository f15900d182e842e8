"""The application bootstrap's Chatwoot people (bin/apps_chatwoot_people.py): the agents of group data with their
roles, anyone else only as chatwoot_agents_allowed allows, the teams and the inboxes' members."""

import sys

import apps_common as common
from apps_common import changed


class People:
    """Chatwoot's methods for its people; `api` is Chatwoot.api."""

    def people(self, cw, automation_id):
        """Every person of group data is an agent with its name and role. Anyone else must be allowed (as an agent):
        a stranger stops the run before anything in Chatwoot changes, since removing a person is the operator's call."""
        have = {a["email"]: a for a in self.api("GET", "/agents")}
        others = {e: a for e, a in have.items() if e not in cw["agents"] and a["id"] != automation_id}
        others.pop(cw["admin_email"], None)
        strangers = sorted(f"{e} ({a['role']})" for e, a in others.items() if e not in cw.get("agents_allowed", []))
        if strangers:
            changed(f"Chatwoot agents not in group data nor in chatwoot_agents_allowed: {', '.join(strangers)}")
            if not common.CHECK:
                sys.exit(f"{common.CHANGED[-1]}: remove them in Chatwoot, or allow them there (as agents)")
        for email in sorted(e for e, a in others.items() if e in cw.get("agents_allowed", []) and a["role"] != "agent"):
            self.api("PATCH", f"/agents/{others[email]['id']}", {"role": "agent"})
            changed(f"Chatwoot agent {email}: role agent (chatwoot_agents_allowed)")
        for email, (name, role) in sorted(cw["agents"].items()):
            agent = have.get(email)
            if agent is None:
                have[email] = self.api("POST", "/agents", {"name": name, "email": email, "role": role})
                changed(f"Chatwoot agent {email} invited ({role})")
            elif email != common.SETTINGS["chatwoot"]["admin_email"] and (agent["name"], agent["role"]) != (name, role):
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
                team = self.api(
                    "POST",
                    "/teams",
                    {"name": name, "description": "Managed by the platform deploy", "allow_auto_assign": auto},
                )
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
        everyone = [common.SETTINGS["chatwoot"]["admin_email"], *cw["supervisors"], "automation"]
        wanted = {
            inbox: everyone
            + ([*cw["agents"]] if d["escalation_team"] == cw["any_available"] else [a["email"] for a in d["agents"]])
            for d in cw["departments"]
            for inbox in d["inboxes"]
        }
        wanted[cw["default_inbox"]] = everyone
        for name, emails in wanted.items():
            if name not in inbox_ids:  # --check: the inbox is missing
                continue
            ids = sorted({people[e] for e in emails if e in people})
            if sorted(m["id"] for m in self.api("GET", f"/inbox_members/{inbox_ids[name]}")["payload"]) != ids:
                self.api("PATCH", "/inbox_members", {"inbox_id": inbox_ids[name], "user_ids": ids})
                changed(f"Chatwoot inbox {name}: members set ({len(ids)})")
