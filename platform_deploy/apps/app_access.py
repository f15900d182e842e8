"""Who may do what in the apps, by allowlist: n8n's users and their roles, and Directus's
policies (Public's and every role's) with what they grant, read from the apps' databases
before a run.

The audit fails on what group data does not allow. The deploy revokes whatever Directus's
Public policy grants (the platform publishes nothing through Directus: anyone on the
internet could read it) and refuses to go on, before it changes anything, at an n8n user or
a Directus policy that group data does not allow or that holds more than it may, naming it
and the key that would allow it (allowlist.check). n8n's own users and Chatwoot's agents are people: removing
one is the operator's call. (Chatwoot's agents are checked by the bootstrap, against its API.)"""

from .. import data
from .bootstrap import N8N_POLICY

# Directus's built-in policies: what anyone may do without signing in, and full access.
PUBLIC_POLICY, ADMIN_POLICY = "$t:public_label", "Administrator"
N8N_OWNER, N8N_MEMBER = "global:owner", "global:member"


class AppAccess(data.SuperuserQueries):
    """n8n's users with their roles; every Directus policy with its admin and app access, whom it is attached
    to (a role, a user, or nobody: then it applies to the public) and what it grants."""

    QUERIES = (
        ("n8n", "select 'n8n_user', coalesce(email, '-'), \"roleSlug\" from \"user\""),
        (
            "directus",
            "select 'policy', o.id, o.name, o.admin_access, o.app_access, "
            "case when a.id is null then '-' when a.role is not null then 'role ' || r.name "
            "when a.user is not null then 'user ' || u.email else 'public' end "
            "from directus_policies o left join directus_access a on a.policy = o.id "
            'left join directus_roles r on r.id = a.role left join directus_users u on u.id = a."user"',
        ),
        (
            "directus",
            "select 'grant', p.policy, p.collection, p.action from directus_permissions p",
        ),
    )

    @staticmethod
    def default():
        return {"n8n_users": {}, "policies": {}, "grants": {}}

    def process(self, output):
        state = self.default()
        for line in output:
            kind, *fields = line.split("|")
            if kind == "n8n_user":
                state["n8n_users"][fields[0]] = fields[1]
            elif kind == "policy":
                key, name, admin, app, holder = fields
                policy = state["policies"].setdefault(
                    key, {"name": name, "admin": admin == "t", "app": app == "t", "holders": set()}
                )
                if holder != "-":
                    policy["holders"].add(holder)
            elif kind == "grant":
                state["grants"].setdefault(fields[0], set()).add(f"{fields[2]} on {fields[1]}")
        return state


def refused(cfg, state):
    """[(group data key, what is there)]: what the deploy will not remove by itself."""
    found = []
    owners = sorted(email for email, role in state["n8n_users"].items() if role == N8N_OWNER)
    if len(owners) > 1:
        found.append(("n8n_users_allowed", f"n8n has {len(owners)} owners: {', '.join(owners)}"))
    members = {email.lower() for email in cfg.allowlist.n8n_users_allowed}
    for email, role in sorted(state["n8n_users"].items()):
        if role == N8N_OWNER:
            continue
        if email.lower() not in members:
            found.append(("n8n_users_allowed", f"n8n user {email} ({role})"))
        elif role != N8N_MEMBER:
            found.append(("n8n_users_allowed", f"n8n user {email} is {role}, may be {N8N_MEMBER} only"))
    allowed = {PUBLIC_POLICY, ADMIN_POLICY, N8N_POLICY, *cfg.allowlist.directus_policies_allowed}
    for policy in sorted(state["policies"].values(), key=lambda p: p["name"]):
        name, holders = policy["name"], _holders(policy)
        if name not in allowed:
            found.append(("directus_policies_allowed", f"Directus policy {name!r} ({holders})"))
        elif policy["admin"] and not (name == ADMIN_POLICY and policy["holders"] <= {f"role {ADMIN_POLICY}"}):
            found.append(("directus_policies_allowed", f"Directus policy {name!r} has admin access ({holders})"))
        elif name != PUBLIC_POLICY and "public" in policy["holders"]:
            found.append(("directus_policies_allowed", f"Directus policy {name!r} applies to the public"))
    return found


def public_grants(state):
    """What Directus's Public policy grants (the deploy revokes it all)."""
    grants: set[str] = set()
    access = []
    for key, policy in state["policies"].items():
        if policy["name"] == PUBLIC_POLICY:
            grants |= state["grants"].get(key, set())
            access += [f"{kind} access" for kind in ("admin", "app") if policy[kind]]
    return sorted(grants) + access


def _holders(policy):
    return ", ".join(sorted(policy["holders"])) or "given to no one"


def drift(cfg, state):
    """{"n8n_users" / "directus_policies": [what differs from group data]}, for the audit."""
    found: dict[str, list[str]] = {}
    # An app always has its own: none read means the read failed (another schema), not that all is well.
    if not state["n8n_users"]:
        found["n8n_users"] = ["n8n's users could not be read (AppAccess)"]
    if not state["policies"]:
        found["directus_policies"] = ["Directus's policies could not be read (AppAccess)"]
    for key, what in refused(cfg, state):
        found.setdefault("n8n_users" if key.startswith("n8n") else "directus_policies", []).append(
            f"{what} (not in {key})"
        )
    if public_grants(state):
        found.setdefault("directus_policies", []).append(f"Directus's Public policy grants {public_grants(state)}")
    return found


def repairs(state):
    """{what: how it differs} the bootstrap mends: Directus's Public policy granting anything."""
    return {"public": f"Directus's Public policy grants {public_grants(state)}"} if public_grants(state) else {}


def refusals(cfg, state):
    """[(group data key, what is there, the fix)] for allowlist.check's refusal."""
    return [(key, what, FIXES[key]) for key, what in refused(cfg, state)]


FIXES = {
    "n8n_users_allowed": "remove the user (or set its role back) in n8n's Settings > Users, or allow it there "
    "(as a member)",
    "directus_policies_allowed": "remove the policy (or its admin access, or its public attachment) in Directus's "
    "Settings > Access Policies, or allow it there (without admin access)",
}


def reads(cfg):
    return [(AppAccess, {"container": f"{cfg.stack.stack_name}-postgres-1"})]
