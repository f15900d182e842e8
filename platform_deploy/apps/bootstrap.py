"""The application bootstrap: the apps set up for the business once the stack is up.

The work is done on the host by bin/apps-bootstrap.py (files/bootstrap/), through the
apps' own tools and APIs on the stack's network: Chatwoot's account, inboxes, teams and
webhook; Directus's schema (files/directus/) and n8n's user there; n8n's credentials and
workflows (files/n8n/). Here: its inputs (no secret among them), and one step that runs it
when an input changed.
"""

import json
import os
from io import StringIO

from pyinfra import host, logger
from pyinfra.operations import server

from .. import converge, data
from . import chatwoot
from .chatwoot_check import MARKER, RUN, ChatwootCheckStarted, ChatwootState, chatwoot_drift

WORKFLOWS_DIR = "files/n8n"

# What n8n's Directus user may do, and nothing else: triage reads the business context (public
# facts; the team's internal notes are in business_notes, which it may not read) and logs its
# decisions; the auto-poster reads promotions and logs its attempts.
N8N_DIRECTUS_PERMISSIONS = [
    ("business_context", "read"),
    ("triage_log", "create"),
    ("promotions", "read"),
    ("social_post_logs", "create"),
]


LEAD_CAPTURE, POSTER = "platformLeadCapt", "platformPoster02"
TRIAGE, SAFETY_NET = "platformTriage01", "platformSafetyNt"
# Each workflow's check of Chatwoot's X-Chatwoot-Signature: its node, and the credential with the secret.
SIGNATURE_CHECKS = {
    TRIAGE: ("Signed by Chatwoot?", "Chatwoot webhook signing secret"),
    LEAD_CAPTURE: ("Signed by Chatwoot? (unrouted)", "Chatwoot unrouted inbox signing secret"),
}
N8N_POLICY = "n8n automation"


def shipped_workflows():
    return {
        w["id"]: w
        for w in (
            json.load(open(os.path.join(WORKFLOWS_DIR, name)))
            for name in sorted(os.listdir(WORKFLOWS_DIR))
            if name.endswith(".json")
        )
    }


class AppState(data.SuperuserQueries):
    """What the bootstrap set up, as the apps' databases hold it: n8n's published workflows
    and the poster's schedule; n8n's Directus user (role, policies) and its policy's permissions."""

    QUERIES = (
        ("n8n", "select 'published', id from workflow_entity where active"),
        ("n8n", "select 'error_workflow', id, coalesce(settings::json->>'errorWorkflow', '-') from workflow_entity"),
        *(
            (
                "n8n",
                f"select 'checks_signature', id from workflow_entity where id = '{workflow}' and nodes::text like "
                f"'%{node}%' and exists (select 1 from credentials_entity where name = '{credential}')",
            )
            for workflow, (node, credential) in SIGNATURE_CHECKS.items()
        ),
        (
            "n8n",
            "select 'poster', row_to_json(w) from (select nodes, settings from workflow_entity "
            f"where id = '{POSTER}') w",
        ),
        (
            "directus",
            "select 'user', u.email, coalesce(u.role::text, '-'), coalesce(o.name, '-') from directus_users u "
            "left join directus_access a on a.user = u.id left join directus_policies o on o.id = a.policy",
        ),
        (
            "directus",
            "select 'permission', o.admin_access, o.app_access, p.collection, p.action from directus_permissions p "
            f"join directus_policies o on o.id = p.policy where o.name = '{N8N_POLICY}'",
        ),
    )

    @staticmethod
    def default():
        return {
            "published": set(),
            "error_workflows": {},
            "checks_signature": set(),
            "poster": None,
            "users": {},
            "permissions": set(),
            "policy_access": set(),
        }

    def process(self, output):
        state = self.default()
        for line in output:
            kind, _, rest = line.partition("|")
            if kind == "published":
                state["published"].add(rest)
            elif kind == "error_workflow":
                workflow, _, target = rest.partition("|")
                state["error_workflows"][workflow] = target
            elif kind == "checks_signature":
                state["checks_signature"].add(rest)
            elif kind == "poster":
                stored = json.loads(rest)
                state["poster"] = {k: json.loads(v) if isinstance(v, str) else v for k, v in stored.items()}
            elif kind == "user":
                email, role, policy = rest.split("|")
                state["users"].setdefault(email, []).append((role, policy))
            elif kind == "permission":
                admin, app, collection, action = rest.split("|")
                state["permissions"].add((collection, action))
                state["policy_access"].add((admin, app))
        return state


def app_drift(cfg, state):
    """{what: how it differs} between the apps and what the bootstrap makes of this group data."""
    drift = {}
    # Without departments there is no Meta app secret to check signatures with: 03 stays off.
    wanted = {i for i in shipped_workflows() if i != LEAD_CAPTURE or cfg.chatwoot.departments}
    if wanted - state["published"]:
        drift["published"] = f"n8n workflows not published: {sorted(wanted - state['published'])}"
    shipped = shipped_workflows()
    unsafe = sorted(
        i for i in wanted if shipped[i]["settings"].get("errorWorkflow", "-") != state["error_workflows"].get(i, "-")
    )
    if unsafe:
        drift["error_workflow"] = f"n8n workflows whose failures do not reach {SAFETY_NET}: {unsafe}"
    unsigned = [
        f"{w} ({SIGNATURE_CHECKS[w][1]})" for w in sorted(wanted & set(SIGNATURE_CHECKS) - state["checks_signature"])
    ]
    if unsigned:
        drift["signature"] = f"n8n workflows that do not check Chatwoot's signature: {', '.join(unsigned)}"
    poster = state["poster"] or {"nodes": [], "settings": {}}
    schedule = next(
        (n["parameters"]["rule"]["interval"] for n in poster["nodes"] if n["type"] == "n8n-nodes-base.scheduleTrigger"),
        None,
    )
    timezone = (poster["settings"] or {}).get("timezone")
    if (schedule, timezone) != (
        [{"field": "cronExpression", "expression": cfg.social.social_schedule}],
        cfg.n8n.timezone,
    ):
        drift["schedule"] = (
            f"the poster runs on {schedule} in {timezone}, wanted {cfg.social.social_schedule!r} in {cfg.n8n.timezone}"
        )
    email = n8n_directus_email(cfg)
    if state["users"].get(email) != [("-", N8N_POLICY)]:
        drift["user"] = (
            f"n8n's Directus user {email}: (role, policy) {state['users'].get(email)}, "
            f"wanted no role and {N8N_POLICY!r} only"
        )
    if state["permissions"] != set(N8N_DIRECTUS_PERMISSIONS) or state["policy_access"] != {("f", "f")}:
        drift["permissions"] = (
            f"{N8N_POLICY!r}: {sorted(state['permissions'])} (admin, app access {sorted(state['policy_access'])}), "
            f"wanted {sorted(N8N_DIRECTUS_PERMISSIONS)} without admin or app access"
        )
    return drift


def start_checks(cfg):
    """The apps' read-only checks begun now, read by apply()."""
    if enabled(cfg):
        host.get_fact(ChatwootCheckStarted, root=cfg.stack.stack_root, run=RUN)


def enabled(cfg):
    return set(cfg.stack.apps) == {"chatwoot", "n8n", "directus"}


def settings_document(cfg):
    """config/apps.json: what the bootstrap and the workflows need to know; never a secret."""
    departments = _departments(cfg.chatwoot)
    return {
        "stack_name": cfg.stack.stack_name,
        "chatwoot": _chatwoot_settings(cfg, departments),
        "directus": {
            "service_user": {
                "email": n8n_directus_email(cfg),
                "policy": N8N_POLICY,
                "permissions": N8N_DIRECTUS_PERMISSIONS,
            }
        },
        "n8n": {
            "owner_email": cfg.n8n.n8n_owner_email,
            "redis_db": data.REDIS_DB["n8n"],
            "smtp": smtp_credential(cfg.stack.smtp),
            "workflow_settings": _workflow_settings(cfg, departments),
        },
    }


def _departments(cw):
    """A department's inboxes: its WhatsApp number's, then its web chats', then the Facebook Page's."""
    fb = cw.facebook_inbox
    return [
        {
            **d.model_dump(),
            "label": d.label,
            "inboxes": [
                d.inbox,
                *(w.inbox for w in cw.web_chats if w.department == d.name),
                *([fb.inbox] if fb and fb.department == d.name else []),
            ],
        }
        for d in cw.departments
    ]


def _chatwoot_settings(cfg, departments):
    cw, fb = cfg.chatwoot, cfg.chatwoot.facebook_inbox
    return {
        "account_name": cw.chatwoot_account_name,
        "admin_name": cw.chatwoot_admin_name,
        "admin_email": cfg.stack.admin_email,
        "teams": list(cw.teams),
        "supervisors": list(cw.supervisors),
        "departments": departments,
        "default_inbox": cw.default_inbox,
        "web_chats": [w.model_dump() for w in cw.web_chats],
        "business_account_id": cw.whatsapp_business_account_id,
        "facebook_inbox": fb and {**fb.model_dump(), "page_id": cfg.social.facebook_page_id},
        "agents": cw.agents(),
        "agents_allowed": list(cfg.allowlist.chatwoot_agents_allowed),
        "team_members": {t: cw.members(t) for t in cw.teams},
        "team_auto_assign": {
            t: all(d.auto_assignment == "after_triage" for d in cw.departments if t in (d.team, d.escalation_team))
            for t in cw.teams
        },
        "any_available": chatwoot.ANY_AVAILABLE,
        "labels": labels(cfg),
        "bot_name": BOT_NAME,
        "automation": {"name": "n8n automation", "email": f"n8n-automation@{cfg.stack.admin_email.split('@')[1]}"},
    }


def _workflow_settings(cfg, departments):
    cw, n8n, social = cfg.chatwoot, cfg.n8n, cfg.social
    return {
        # The apps by name on the stack's network; the vendors by their base URLs.
        "chatwoot_url": "http://chatwoot-web:3000",
        "directus_url": "http://directus:8055",
        "anthropic_url": n8n.anthropic_api_base_url,
        "whatsapp_url": cw.whatsapp_api_base_url,
        "ai_replies": n8n.ai_replies,
        "triage_model": n8n.triage_model,
        "triage_confidence_threshold": n8n.triage_confidence_threshold,
        "escalate_intents": list(n8n.triage_escalate_intents),
        "triage_deadline_s": n8n.triage_deadline_s,
        "departments": departments,
        "default_inbox": cw.default_inbox,
        # The auto-poster (02): a post per promotion, platform and slot of the schedule.
        "timezone": n8n.timezone,
        "social_schedule": social.social_schedule,
        "caption_model": social.caption_model,
        "graph_url": f"{social.graph_api_base_url}/{social.graph_api_version}",
        "facebook_page_id": social.facebook_page_id,
        "instagram_user_id": social.instagram_user_id,
        "tiktok_notify_email": social.tiktok_notify_email,
        "claude_key": "claude_api_key" in cfg.supplied_secrets,
        "mail_from": cfg.stack.smtp["sender"] if cfg.stack.smtp else cfg.stack.admin_email,
        "social_key_prefix": f"{cfg.stack.stack_name}:social",
    }


BOT_NAME = "Platform triage"


def labels(cfg):
    """The account's labels: title -> (colour, description)."""
    found = {
        d.label: ("#1f93ff", f"Conversations of the {d.name} department (WhatsApp {d.number})")
        for d in cfg.chatwoot.departments
    }
    return found | {
        "escalated": ("#e0301e", "Triage could not answer: a person of the escalation team takes it"),
        "ai-replied": ("#44ce4b", "Triage replied automatically"),
        "unrouted": ("#f5a623", "Sent to a number that is in no department"),
    }


def n8n_directus_email(cfg):
    return f"n8n-automation@{cfg.stack.admin_email.split('@')[1]}"


def smtp_credential(smtp):
    """n8n's SMTP credential without its password (added on the host from secrets/)."""
    if not smtp:
        return {"host": "", "port": 587, "user": "", "secure": False}
    return {"host": smtp["host"], "port": smtp["port"], "user": smtp["user"], "secure": smtp["port"] == 465}


def apply(cfg, rollout, repairs):
    """`repairs`: {what: how it differs} the bootstrap mends besides its own drift (app_access.check)."""
    if not enabled(cfg):
        logger.info(f"{host.name}: application bootstrap skipped: it needs chatwoot, n8n and directus in apps")
        return
    root = cfg.stack.stack_root
    inputs = _inputs(cfg, root)
    drift = app_drift(cfg, converge.fact(AppState, container=f"{cfg.stack.stack_name}-postgres-1"))
    drift |= chatwoot_drift(cfg, host.get_fact(ChatwootState, root=root, run=RUN)) | repairs
    # The bootstrap skips n8n when its inputs are those it last imported; drift in n8n makes it import again.
    reimport = (
        [f"rm -f {root}/state/n8n-imported"]
        if {"published", "schedule", "error_workflow", "signature"} & set(drift)
        else []
    )
    # On a new host nothing exists yet: all of it is "drift", which is not worth naming.
    first = MARKER.split("/")[1] not in converge.entries(f"{root}/state")
    server.shell(
        name="Apps set up for the business (Chatwoot, Directus, n8n)"
        + (f" (drifted: {', '.join(sorted(drift))})" if drift and not first else ""),
        # The marker goes first: a run that fails half-way is run again by the next deploy.
        commands=[
            f"rm -f {root}/{MARKER}",
            *reimport,
            rollout.explain_failure(f"python3 {root}/bin/apps-bootstrap.py {root}"),
            f"touch {root}/{MARKER}",
        ],
        # Again when an input, a secret or the running stack changed, or what it made
        # drifted; the script reads state first, so running it again creates nothing twice.
        _if=lambda: (
            first
            or any(op.did_change() for op in inputs)
            or rollout.secrets.did_change()
            or rollout.needs_up()
            or bool(drift)
        ),
    )


def _inputs(cfg, root):
    """The files the bootstrap reads, uploaded; retired workflow files removed."""
    converge.directory(
        name=f"Directory {root}/config/n8n", path=f"{root}/config/n8n", user="root", group="root", mode="700"
    )
    inputs = [
        _upload(
            "Application bootstrap script",
            "files/bootstrap/apps_bootstrap.py",
            f"{root}/bin/apps-bootstrap.py",
            mode="700",
        ),
        # Its modules, beside it: run by its path, the script has bin/ on its sys.path.
        *(
            _upload(f"Application bootstrap module {name}", f"files/bootstrap/{name}", f"{root}/bin/{name}")
            for name in sorted(os.listdir("files/bootstrap"))
            if name.startswith("apps_") and name.endswith(".py") and name != "apps_bootstrap.py"
        ),
        _upload(
            "Chatwoot account bootstrap (rails runner)",
            "files/chatwoot/bootstrap.rb",
            f"{root}/bin/chatwoot_bootstrap.rb",
        ),
        _upload("Directus schema snapshot", cfg.social.directus_schema, f"{root}/config/directus-schema.json"),
        _upload(
            "Application settings",
            StringIO(json.dumps(settings_document(cfg), indent=1, sort_keys=True) + "\n"),
            f"{root}/config/apps.json",
        ),
        *(
            _upload(f"n8n workflow {name}", os.path.join(WORKFLOWS_DIR, name), f"{root}/config/n8n/{name}")
            for name in sorted(os.listdir(WORKFLOWS_DIR))
            if name.endswith(".json")
        ),
    ]
    stale = [
        f"{root}/config/n8n/{name}"
        for name in converge.entries(f"{root}/config/n8n")
        if not os.path.exists(os.path.join(WORKFLOWS_DIR, name))
    ]
    return inputs + [converge.absent(name=f"Retired workflow file {path}", path=path) for path in stale]


def _upload(name, src, dest, mode="600"):
    return converge.put(name=name, src=src, dest=dest, mode=mode, create_remote_dir=False)


def reads(cfg):
    """The facts this layer reads on the primary, for converge.read_ahead."""
    return [(AppState, {"container": f"{cfg.stack.stack_name}-postgres-1"})] if enabled(cfg) else []
