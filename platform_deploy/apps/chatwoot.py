"""Chatwoot: its settings (account, teams, the WhatsApp departments), and
`db:chatwoot_prepare` once per image (and after a fresh database). The account, inboxes,
teams and webhook are made by the application bootstrap (apps/bootstrap.py)."""

import re
import shlex
from typing import Annotated

from pydantic import BaseModel, ConfigDict, model_validator
from pyinfra.operations import server

from ..model import E164_RE, Email, Section, check, items, refuse, setting

DEPARTMENT_FIX = ('write each as {"name": "Sales", "number": "+5922221111", "phone_number_id": "1100000001", '
                  '"inbox": "sales-whatsapp", "team": "Sales Team", "escalation_team": "Any available"}')


PhoneNumber = Annotated[str, check(E164_RE.match, "not an E.164 phone number",
                                   'write it as + then country code and number, digits only, e.g. "+5922221111"')]
MetaId = Annotated[str, check(re.compile(r"^[0-9]{5,20}$").match, "not a numeric Meta id",
                              'copy it from Meta\'s WhatsApp Manager (digits only), e.g. "1100000001"')]
InboxName = Annotated[str, check(re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$").match, "not an inbox name",
                                 'use lower-case letters, digits and -, e.g. "sales-whatsapp"')]
Name = Annotated[str, check(re.compile(r"^[A-Za-z][A-Za-z0-9 _-]{0,39}$").match, "not a department or team name",
                            'use letters, digits, spaces, - and _, e.g. "Sales Team"')]


class Department(BaseModel):
    """One WhatsApp Business number: where its messages go in Chatwoot."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")
    name: Name
    number: PhoneNumber
    phone_number_id: MetaId
    inbox: InboxName
    team: Name
    escalation_team: Name

    @property
    def label(self):
        """Chatwoot labels are lower-case words: "Sales" -> "sales"."""
        return self.name.lower().replace(" ", "-")


class Settings(Section):
    chatwoot_account_name: str = setting("Customer support", doc="Name of the Chatwoot account the deploy creates.",
                                         fix='set chatwoot_account_name = "Acme support"', min_length=1, max_length=80)
    chatwoot_admin_name: str = setting("Platform admin", doc="Full name of Chatwoot's first admin (e-mail: admin_email; "
                                       "password generated on the host).", fix='set chatwoot_admin_name = "Jane Doe"',
                                       min_length=1, max_length=80)
    teams: items(Name) = setting((), doc='Chatwoot teams, e.g. ["Sales Team", "Support Team", "Shared Pool", "Any available", '
                                "\"Technical leads\", \"Accounts team\"]; departments name their teams from this list.",
                                problem="not a list of team names", fix='set teams = ["Sales Team", "Support Team"]')
    supervisors: items(Email) = setting((), doc="Agents (e-mail addresses) made members of every inbox, beside the admin: "
                                        "they see every conversation.", fix='set supervisors = ["lead@example.org"]')
    departments: items(Department) = setting(
        (), doc="The WhatsApp Business numbers, one per department: name, number (E.164, as Meta displays it), "
                "phone_number_id (Meta's id of that number), inbox (its Chatwoot inbox), team (who gets its conversations), "
                "escalation_team (who gets what triage cannot answer). Needs PLATFORM_META_APP_SECRET and "
                "PLATFORM_WHATSAPP_ACCESS_TOKEN.", problem="not a valid department", fix=DEPARTMENT_FIX)
    whatsapp_business_account_id: MetaId | None = setting(
        None, doc="Meta's WhatsApp Business Account id (WABA) the numbers belong to; required with departments.",
        fix='set whatsapp_business_account_id = "102290129340398" (Meta Business Manager, WhatsApp accounts)')
    default_inbox: InboxName = setting("unrouted-whatsapp", doc="Inbox (an API inbox) for messages to a number not in "
                                       "departments; they are labelled `unrouted`, never dropped.",
                                       fix='set default_inbox = "unrouted-whatsapp"')
    whatsapp_api_base_url: str = setting("https://graph.facebook.com", doc="WhatsApp Cloud API base URL (Chatwoot's "
                                         "WHATSAPP_CLOUD_BASE_URL); change only for a test double.",
                                         pattern=r"^https?://[^/\s]+$", problem="not a base URL (scheme://host[:port])",
                                         fix='leave it unset (https://graph.facebook.com)')

    @model_validator(mode="after")
    def _departments(self):
        seen = {}
        for i, d in enumerate(self.departments):
            for team in (d.team, d.escalation_team):
                if team not in self.teams:
                    raise refuse(f"team {team!r} is not defined", f"add {team!r} to teams, or name one of {list(self.teams)}",
                                 key=f"departments[{i}]", value=d.name)
            for what in ("name", "number", "phone_number_id", "inbox"):
                value = getattr(d, what)
                if (what, value) in seen:
                    raise refuse(f"{what} {value!r} is already used by department {seen[what, value]!r}",
                                 f"give each department its own {what}", key=f"departments[{i}]", value=d.name)
                seen[what, value] = d.name
            if d.inbox == self.default_inbox:
                raise refuse(f"inbox {d.inbox!r} is the default_inbox", "give the department an inbox of its own",
                             key=f"departments[{i}]", value=d.name)
        if self.departments and not self.whatsapp_business_account_id:
            raise refuse("missing, and departments need it", "set whatsapp_business_account_id = \"<your WABA id>\"",
                         key="whatsapp_business_account_id", value=None)
        return self


def apply(cfg, rollout):
    if "chatwoot" not in cfg.stack.apps:
        return
    image, root = cfg.stack.images["chatwoot"], cfg.stack.stack_root
    server.shell(
        name=f"Chatwoot db:chatwoot_prepare for {image}",
        commands=[rollout.explain_failure(f"{rollout.dc} run --rm --no-deps chatwoot-web bundle exec rails db:chatwoot_prepare"),
                  f"echo {shlex.quote(image)} > {root}/state/chatwoot-prepared"],
        # A new image, or a database made afresh by this run (its schema is not there yet).
        _if=lambda: rollout.state["prepared"] != image or "database chatwoot" in rollout.database_drift,
    )
