"""n8n: its settings (workers, owner, Claude triage). The workflows and credentials are
imported by the application bootstrap (apps/bootstrap.py)."""

import re
from typing import Annotated

from ..model import Email, Items, Section, check, setting

IntentName = Annotated[
    str,
    check(
        re.compile(r"^[a-z][a-z_-]{1,29}$").match,
        "not an intent name",
        'use lower-case letters, _ and -, e.g. "refund"',
    ),
]


class Settings(Section):
    timezone: str = setting(
        "UTC",
        doc='Time zone of n8n\'s schedules, a tz database name, e.g. "America/Guyana".',
        problem="not a time zone name",
        pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$",
        fix='use a tz database name, e.g. "America/Guyana" or "UTC"',
    )
    ai_replies: bool = setting(
        False,
        doc="True: inbound messages are classified by Claude (PLATFORM_CLAUDE_API_KEY) and "
        "answered automatically above triage_confidence_threshold; False: every "
        "conversation goes to its department's team, with no automatic reply.",
        problem="not a boolean",
        fix="set ai_replies = True or False",
    )
    triage_model: str = setting(
        "claude-sonnet-4-5",
        doc="The Claude model that classifies inbound messages.",
        pattern=r"^claude-[a-z0-9.-]+$",
        problem="not a Claude model name",
        fix='set triage_model = "claude-sonnet-4-5"',
    )
    triage_confidence_threshold: float = setting(
        0.75,
        doc="Claude's confidence from which triage replies by itself; below it, the conversation is escalated.",
        problem="not a number from 0 to 1",
        fix="set triage_confidence_threshold to a number from 0 to 1, e.g. 0.75",
        ge=0,
        le=1,
    )
    triage_escalate_intents: Items[IntentName] = setting(
        ("complaint", "refund", "legal", "human"),
        doc="Intents that always go to a person, whatever confidence Claude reports: Claude is asked to use these "
        "names when they apply (a complaint, a refund, a legal matter, a request for a human).",
        problem="not a list of intent names",
        fix='set triage_escalate_intents = ["complaint", "refund", "legal", "human"]',
    )
    triage_deadline_s: int = setting(
        300,
        doc="A conversation still waiting for triage (pending in a department's inbox) this many seconds after "
        "its last activity is escalated by the inbound safety net (04): a private note, its department's "
        "team, status open. It catches what a crash, an error or an outage kept from being triaged.",
        problem="not a number of seconds from 60 to 86400",
        fix="set triage_deadline_s = 300",
        ge=60,
        le=86400,
    )
    anthropic_api_base_url: str = setting(
        "https://api.anthropic.com",
        doc="Anthropic Messages API base URL; change only for a test double.",
        pattern=r"^https?://[^/\s]+$",
        problem="not a base URL (scheme://host[:port])",
        fix="leave it unset (https://api.anthropic.com)",
    )
    n8n_owner_email: Email | None = setting(
        None,
        doc="n8n's owner, set from n8n's environment (password generated on the host); None: admin_email.",
        fix='set n8n_owner_email = "ops@example.org"',
    )
    n8n_workers: int = setting(
        1,
        doc="Queue-mode workers (n8n-worker containers) that run the executions, on Redis database 1; 0: regular "
        "mode, the main process runs them. n8n's share of the RAM table is the main process; each worker "
        "has a limit of its own beside the table (memory_limits_mb['n8n-worker']).",
        problem="not a worker count",
        fix="set n8n_workers to a whole number from 0 to 16",
        ge=0,
        le=16,
    )
