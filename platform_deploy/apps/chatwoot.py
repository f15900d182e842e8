"""Chatwoot: its settings (account, teams, the WhatsApp departments), and
`db:chatwoot_prepare` once per image (and after a fresh database). The account, inboxes,
teams and webhook are made by the application bootstrap (apps/bootstrap.py)."""

import re
import shlex
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, model_validator
from pyinfra.operations import server

from ..model import E164_RE, Email, Items, MetaId, Section, check, refuse, setting
from ..rollout import Rollout

DEPARTMENT_FIX = (
    'write each as {"name": "Sales", "number": "+5922221111", "phone_number_id": "1100000001", '
    '"inbox": "sales-whatsapp", "team": "Sales Team", "escalation_team": "Any available", '
    '"agents": [{"name": "Ana Sales", "email": "ana@example.org", "role": "agent"}], '
    '"auto_assignment": "after_triage" (or "manual")}'
)


PhoneNumber = Annotated[
    str,
    check(
        E164_RE.match,
        "not an E.164 phone number",
        'write it as + then country code and number, digits only, e.g. "+5922221111"',
    ),
]
InboxName = Annotated[
    str,
    check(
        re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$").match,
        "not an inbox name",
        'use lower-case letters, digits and -, e.g. "sales-whatsapp"',
    ),
]
Name = Annotated[
    str,
    check(
        re.compile(r"^[A-Za-z][A-Za-z0-9 _-]{0,39}$").match,
        "not a department or team name",
        'use letters, digits, spaces, - and _, e.g. "Sales Team"',
    ),
]


# An escalation to no team: Chatwoot's own auto-assignment offers the conversation to any online agent.
ANY_AVAILABLE = "Any available"
# after_triage: Chatwoot offers a conversation to a person only once triage has replied or escalated (the
# platform's bot holds it `pending` until then); manual: nobody is auto-assigned, people take conversations
# from their team's list.
AutoAssignment = Literal["after_triage", "manual"]
AUTO_ASSIGNMENT: tuple[AutoAssignment, ...] = get_args(AutoAssignment)


class Agent(BaseModel):
    """A person in Chatwoot: invited as an agent (or administrator) of the account."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")
    name: Annotated[str, check(re.compile(r"^\S.{0,79}$").match, "not a name", 'write the full name, e.g. "Ana Sales"')]
    email: Email
    role: Literal["agent", "administrator"] = "agent"


class Department(BaseModel):
    """One WhatsApp Business number: where its messages go in Chatwoot, and who works them."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")
    name: Name
    number: PhoneNumber
    phone_number_id: MetaId
    inbox: InboxName
    team: Name
    escalation_team: Name
    agents: Items[Agent] = ()
    auto_assignment: AutoAssignment = "after_triage"

    @property
    def label(self):
        """Chatwoot labels are lower-case words: "Sales" -> "sales"."""
        return self.name.lower().replace(" ", "-")


class WebChat(BaseModel):
    """A chat window on a website (Chatwoot's web widget inbox), answered by a department's triage and people."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")
    inbox: InboxName
    website_url: Annotated[
        str,
        check(
            re.compile(r"^https?://[^/\s]+(/\S*)?$").match,
            "not a website address",
            "write it as https://www.example.org",
        ),
    ]
    department: Name


class FacebookInbox(BaseModel):
    """The Facebook Page's Messenger conversations (Chatwoot's Facebook inbox), answered by a department. The Page is
    social's facebook_page_id, with PLATFORM_FACEBOOK_PAGE_TOKEN; Meta's Messenger webhook goes to Chatwoot's /bot."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")
    inbox: InboxName = "facebook"
    department: Name


class Settings(Section):
    chatwoot_account_name: str = setting(
        "Customer support",
        doc="Name of the Chatwoot account the deploy creates.",
        fix='set chatwoot_account_name = "Acme support"',
        min_length=1,
        max_length=80,
    )
    chatwoot_admin_name: str = setting(
        "Platform admin",
        doc="Full name of Chatwoot's first admin (e-mail: admin_email; password generated on the host).",
        fix='set chatwoot_admin_name = "Jane Doe"',
        min_length=1,
        max_length=80,
    )
    teams: Items[Name] = setting(
        (),
        doc='Chatwoot teams, e.g. ["Sales Team", "Support Team", "Shared Pool", '
        '"Technical leads", "Accounts team"]; departments name their teams from this list. '
        f"{ANY_AVAILABLE!r} is no team: any online agent.",
        problem="not a list of team names",
        fix='set teams = ["Sales Team", "Support Team"]',
    )
    team_members: dict[Name, Items[Email]] = setting(
        {},
        doc="Members of a team besides the agents of the departments it serves, by e-mail (each an agent of a "
        'department or a supervisor), e.g. {"Technical leads": ["lead@example.org"]}. Every escalation team needs one.',
        problem="not a mapping of team name to e-mail addresses",
        fix='set team_members = {"Technical leads": ["lead@example.org"]}',
    )
    supervisors: Items[Email] = setting(
        (),
        doc="Agents (e-mail addresses) made members of every inbox, beside the admin: they see every conversation.",
        fix='set supervisors = ["lead@example.org"]',
    )
    departments: Items[Department] = setting(
        (),
        doc="The WhatsApp Business numbers, one per department: name, number (E.164, as Meta displays it), "
        "phone_number_id (Meta's id of that number), inbox (its Chatwoot inbox), team (who gets its conversations), "
        "escalation_team (who gets what triage cannot answer), agents (name, email, role: its people, members of its "
        "team and inbox), auto_assignment (after_triage: offered to an online person once triage replied or escalated; "
        "manual: nobody is auto-assigned). Needs PLATFORM_META_APP_SECRET and "
        "PLATFORM_WHATSAPP_ACCESS_TOKEN.",
        problem="not a valid department",
        fix=DEPARTMENT_FIX,
    )
    web_chats: Items[WebChat] = setting(
        (),
        doc="Web chat windows (Chatwoot web widget inboxes), one per website: inbox (its Chatwoot inbox), website_url, "
        "department (whose triage, team, escalation team and agents serve it). The inbox's widget script is in "
        "Chatwoot, Settings > Inboxes.",
        problem="not a valid web chat",
        fix='write each as {"inbox": "website", "website_url": "https://www.example.org", "department": "Support"}',
    )
    facebook_inbox: FacebookInbox | None = setting(
        None,
        doc="Messenger conversations of the Facebook Page (facebook_page_id, PLATFORM_FACEBOOK_PAGE_TOKEN) in a "
        "Chatwoot inbox: inbox (its name), department (whose triage and people serve it). Meta's Messenger webhook: "
        "https://<chatwoot domain>/bot, signed with PLATFORM_META_APP_SECRET. None: no Facebook inbox.",
        problem="not a valid Facebook inbox",
        fix='write it as {"inbox": "facebook", "department": "Support"}',
    )
    whatsapp_business_account_id: MetaId | None = setting(
        None,
        doc="Meta's WhatsApp Business Account id (WABA) the numbers belong to; required with departments.",
        fix='set whatsapp_business_account_id = "102290129340398" (Meta Business Manager, WhatsApp accounts)',
    )
    default_inbox: InboxName = setting(
        "unrouted-whatsapp",
        doc="Inbox (an API inbox) for messages to a number not in "
        "departments; they are labelled `unrouted`, never dropped.",
        fix='set default_inbox = "unrouted-whatsapp"',
    )
    whatsapp_api_base_url: str = setting(
        "https://graph.facebook.com",
        doc="WhatsApp Cloud API base URL (Chatwoot's WHATSAPP_CLOUD_BASE_URL); change only for a test double.",
        pattern=r"^https?://[^/\s]+$",
        problem="not a base URL (scheme://host[:port])",
        fix="leave it unset (https://graph.facebook.com)",
    )

    @model_validator(mode="after")
    def _departments(self):
        seen = {}
        for i, d in enumerate(self.departments):
            for team in (d.team, d.escalation_team):
                if team not in self.teams and not (team == d.escalation_team == ANY_AVAILABLE):
                    raise refuse(
                        f"team {team!r} is not defined",
                        f"add {team!r} to teams, or name one of {list(self.teams)}",
                        key=f"departments[{i}]",
                        value=d.name,
                    )
            for what in ("name", "number", "phone_number_id", "inbox"):
                value = getattr(d, what)
                if (what, value) in seen:
                    raise refuse(
                        f"{what} {value!r} is already used by department {seen[what, value]!r}",
                        f"give each department its own {what}",
                        key=f"departments[{i}]",
                        value=d.name,
                    )
                seen[what, value] = d.name
            if d.inbox == self.default_inbox:
                raise refuse(
                    f"inbox {d.inbox!r} is the default_inbox",
                    "give the department an inbox of its own",
                    key=f"departments[{i}]",
                    value=d.name,
                )
        names = [d.name for d in self.departments]
        # The other channels a department answers: each names a department and has an inbox of its own.
        channels = [(f"web_chats[{i}]", w, f"web chat {w.website_url}") for i, w in enumerate(self.web_chats)]
        channels += [("facebook_inbox", self.facebook_inbox, "the Facebook Page")] * bool(self.facebook_inbox)
        for key, c, what in channels:
            if c.department not in names:
                raise refuse(
                    f"department {c.department!r} is not defined",
                    f"name one of {names}",
                    key=f"{key}.department",
                    value=c.department,
                )
            if ("inbox", c.inbox) in seen or c.inbox == self.default_inbox:
                raise refuse(
                    f"inbox {c.inbox!r} is already used by {seen.get(('inbox', c.inbox), 'the default_inbox')!r}",
                    "give each channel an inbox of its own",
                    key=f"{key}.inbox",
                    value=c.inbox,
                )
            seen["inbox", c.inbox] = what
        self._people()
        if self.departments and not self.whatsapp_business_account_id:
            raise refuse(
                "missing, and departments need it",
                'set whatsapp_business_account_id = "<your WABA id>"',
                key="whatsapp_business_account_id",
                value=None,
            )
        return self

    def _people(self):
        """Agents agree across departments; every team members name exists; every escalation team has someone;
        a team serves departments of one auto-assignment policy (its allow_auto_assign follows it)."""
        people = {}
        for i, d in enumerate(self.departments):
            for agent in d.agents:
                known = people.setdefault(agent.email, (agent, d.name))
                if known[0] != agent:
                    raise refuse(
                        f"agent {agent.email} is {agent.name!r} ({agent.role}) here and "
                        f"{known[0].name!r} ({known[0].role}) in department {known[1]!r}",
                        "give the agent the same name and role in every department",
                        key=f"departments[{i}].agents",
                        value=agent.email,
                    )
        known = set(people) | set(self.supervisors)
        for team, emails in self.team_members.items():
            if team not in self.teams:
                raise refuse(
                    f"team {team!r} is not defined",
                    f"add it to teams, or name one of {list(self.teams)}",
                    key="team_members",
                    value=team,
                )
            for email in emails:
                if email not in known:
                    raise refuse(
                        f"{email} is neither an agent of a department nor a supervisor",
                        "list the person in a department's agents or in supervisors",
                        key=f"team_members[{team!r}]",
                        value=email,
                    )
        policies = {}
        for i, d in enumerate(self.departments):
            for team in (d.team, d.escalation_team):
                if (
                    team != ANY_AVAILABLE
                    and policies.setdefault(team, (d.auto_assignment, d.name))[0] != d.auto_assignment
                ):
                    raise refuse(
                        f"team {team!r} serves department {policies[team][1]!r} ({policies[team][0]}) and this one "
                        f"({d.auto_assignment})",
                        "give departments that share a team the same auto_assignment",
                        key=f"departments[{i}].auto_assignment",
                        value=d.auto_assignment,
                    )
            if d.escalation_team != ANY_AVAILABLE and not self.members(d.escalation_team):
                raise refuse(
                    f"escalation team {d.escalation_team!r} has no members: escalations would reach nobody",
                    f"list its people in team_members[{d.escalation_team!r}], "
                    "or give it a department whose agents it holds",
                    key=f"departments[{i}].escalation_team",
                    value=d.escalation_team,
                )

    def members(self, team):
        """E-mails of a team's members: the agents of the departments it is the team of, and team_members."""
        found = [a.email for d in self.departments if d.team == team for a in d.agents] + list(
            self.team_members.get(team, ())
        )
        return list(dict.fromkeys(found))

    def agents(self):
        """Every person the deploy keeps in Chatwoot: e-mail -> (name, role); supervisors are agents."""
        people = {a.email: (a.name, a.role) for d in self.departments for a in d.agents}
        return {**{e: (e.split("@")[0], "agent") for e in self.supervisors}, **people}


def apply(cfg, rollout: Rollout, database_drift: list[str]):
    """Chatwoot's schema prepared for its image (`database_drift`: what data.apply found, a
    database made afresh among it)."""
    if "chatwoot" not in cfg.stack.apps:
        return
    image, root = cfg.stack.images["chatwoot"], cfg.stack.stack_root
    server.shell(
        name=f"Chatwoot db:chatwoot_prepare for {image}",
        commands=[
            rollout.explain_failure(
                f"{rollout.dc} run --rm --no-deps chatwoot-web bundle exec rails db:chatwoot_prepare"
            ),
            f"echo {shlex.quote(image)} > {root}/state/chatwoot-prepared",
        ],
        # A new image, or a database made afresh by this run (its schema is not there yet).
        _if=lambda: rollout.state["prepared"] != image or "database chatwoot" in database_drift,
    )
