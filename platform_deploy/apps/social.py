"""The social auto-poster (n8n 02-social-media-auto-poster): where and when Directus
promotions are posted. The workflow is imported by the application bootstrap."""

import json
import re
from pathlib import Path
from typing import Annotated

from pydantic import model_validator

from ..model import Email, MetaId, Section, check, refuse, setting

CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
SCHEDULE_FIX = (
    'write five cron fields (minute hour day-of-month month day-of-week), e.g. "0 9 * * 1,4" (Mon and Thu 09:00)'
)


def cron_values(text, low, high):
    """The numbers a cron field names (numbers, *, lists, ranges, steps), or None if it does not parse."""
    values = set()
    for part in text.split(","):
        match = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
        if not match:
            return None
        first = low if match[1] == "*" else int(match[2])
        last = high if match[1] == "*" or (match[4] and not match[3]) else int(match[3] or match[2])
        step = int(match[4] or 1)
        if not (low <= first <= last <= high) or step == 0:
            return set()
        values.update(range(first, last + 1, step))
    return values


def cron_problem(expression):
    """What is wrong with a five-field cron expression, or None. The workflow's slot
    computation (files/n8n/02-social-media-auto-poster.json) reads the same grammar."""
    fields = expression.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields, not 5"
    sets = []
    for text, (name, low, high) in zip(fields, CRON_FIELDS, strict=True):
        values = cron_values(text, low, high)
        if values is None:
            return f"{name} field {text!r} does not parse"
        if not values:
            return f"{name} field {text!r} is outside {low}-{high} or has a step of 0"
        sets.append(values)
    days, months, weekdays = sets[2], sets[3], {d % 7 for d in sets[4]}
    # Days of month only count alone when every weekday is allowed (cron's either-rule).
    if len(weekdays) == 7 and not any(day <= MONTH_DAYS[month] for day in days for month in months):
        return "names no day that exists (e.g. 30 February), so it would never run"
    return None


MONTH_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


def schema_snapshot(path):
    """Whether `path` is a Directus schema snapshot in JSON (collections and fields)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and isinstance(document.get("collections"), list) and "fields" in document


class Settings(Section):
    directus_schema: Annotated[
        str,
        check(
            schema_snapshot,
            "not a readable Directus schema snapshot (JSON with collections and fields)",
            "give the path of a `directus schema snapshot --format json` file on this machine, or leave it unset",
        ),
    ] = setting(
        "files/directus/schema.json",
        doc="The Directus schema snapshot the deploy applies (promotions, the logs, the business context), "
        "a JSON file on this machine, relative to the repository; the shipped one by default. Fields may be "
        "added to it; the collections the workflows use must stay.",
        fix="give the path of a `directus schema snapshot --format json` file on this machine",
    )
    social_schedule: str = setting(
        "0 9 * * 1,4",
        doc="When the auto-poster runs, a cron expression in n8n's timezone; "
        "the seed's Monday and Thursday at 09:00 by default.",
        fix=SCHEDULE_FIX,
    )
    facebook_page_id: MetaId | None = setting(
        None,
        doc="The Facebook Page promotions are posted to (Graph API); needs "
        "PLATFORM_FACEBOOK_PAGE_TOKEN. None: no Facebook posts.",
        fix='copy the Page id (digits) from the Page\'s About section, e.g. "104620389612345"',
    )
    instagram_user_id: MetaId | None = setting(
        None,
        doc="The Instagram professional account (IG user id) promotions are "
        "posted to; needs PLATFORM_INSTAGRAM_ACCESS_TOKEN. None: no Instagram posts.",
        fix='copy the IG user id (digits) from Meta Business Suite, e.g. "17841400000000000"',
    )
    tiktok_notify_email: Email | None = setting(
        None,
        doc="TikTok has no posting API for this: the caption and image "
        "link are e-mailed to this address (through smtp) for someone to post. "
        "None: no TikTok notifications.",
        fix='set tiktok_notify_email = "social@example.org"',
    )
    caption_model: str = setting(
        "claude-sonnet-4-5",
        doc="The Claude model that writes each platform's caption "
        "(PLATFORM_CLAUDE_API_KEY); without a key, or when Claude fails, the promotion's own "
        "text is posted.",
        pattern=r"^claude-[a-z0-9.-]+$",
        problem="not a Claude model name",
        fix='set caption_model = "claude-sonnet-4-5"',
    )
    graph_api_base_url: str = setting(
        "https://graph.facebook.com",
        doc="Meta Graph API base URL for Page and Instagram posts; change only for a test double.",
        pattern=r"^https?://[^/\s]+$",
        problem="not a base URL (scheme://host[:port])",
        fix="leave it unset (https://graph.facebook.com)",
    )
    graph_api_version: str = setting(
        "v21.0",
        doc="Meta Graph API version in the request path.",
        pattern=r"^v[0-9]+\.[0-9]+$",
        problem="not a Graph API version",
        fix='set graph_api_version = "v21.0"',
    )

    @model_validator(mode="after")
    def _check(self):
        problem = cron_problem(self.social_schedule)
        if problem:
            raise refuse(problem, SCHEDULE_FIX, key="social_schedule", value=self.social_schedule)
        return self
