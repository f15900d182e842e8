"""Chatwoot: its settings, and `db:chatwoot_prepare` once per image (and after a fresh database)."""

import shlex

from pydantic import field_validator
from pyinfra.operations import server

from ..model import E164_RE, Section, refuse, setting


class Settings(Section):
    whatsapp_numbers: dict[str, str] = setting(
        {}, doc='WhatsApp Business numbers by department, E.164, e.g. {"sales": "+5922221111"}; they need '
                "PLATFORM_WHATSAPP_ACCESS_TOKEN.", problem="not a mapping", fix='set whatsapp_numbers = {"sales": "+5922221111"}')

    @field_validator("whatsapp_numbers")
    @classmethod
    def _e164(cls, numbers):
        for department, number in numbers.items():
            if not E164_RE.match(number):
                raise refuse("not an E.164 phone number", 'write it as + then country code and number, digits only, e.g. "+5922221111"',
                             key=f"whatsapp_numbers[{department!r}]", value=number)
        return numbers


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
