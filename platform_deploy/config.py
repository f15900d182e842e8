"""Group data -> one validated Config, before any operation runs.

Each layer declares its settings next to its code (the `Settings` model of its module,
listed in SECTIONS); this module validates them all, applies the rules that cross layers
(below, in one place), and turns every problem into one message: the key, its value,
what is wrong and how to fix it. A bad value stops the run before anything changes.
"""

import difflib
import types
import typing
from dataclasses import dataclass, field

from pydantic import ValidationError

from . import allowlist, backup, base, cluster, data, docker_engine, edge, firewall, memory, pitr, stack
from .apps import chatwoot, n8n, social
from .model import ConfigError, problem_line
from .secrets import OPTIONAL_USES, SUPPLIED_SECRETS
from .services import compose_services
from .topology import ONE_HOST, Topology

SECTIONS = {
    "host": base.Settings,
    "firewall": firewall.Settings,
    "docker": docker_engine.Settings,
    "edge": edge.Settings,
    "stack": stack.Settings,
    "data": data.Settings,
    "backup": backup.Settings,
    "pitr": pitr.Settings,
    "chatwoot": chatwoot.Settings,
    "n8n": n8n.Settings,
    "social": social.Settings,
    "cluster": cluster.Settings,
    "allowlist": allowlist.Settings,
}
GERBIL_MB = 128  # not in the seed's table; WireGuard in the kernel needs little
# Keys that were renamed: old name -> (new name, what changed).
RENAMED = {
    "whatsapp_numbers": (
        "departments",
        "each number is now a department with its phone_number_id, inbox and teams: see docs/settings.md",
    )
}


@dataclass(frozen=True)
class Config:
    host: base.Settings
    firewall: firewall.Settings
    docker: docker_engine.Settings
    edge: edge.Settings
    stack: stack.Settings
    data: data.Settings
    backup: backup.Settings
    pitr: pitr.Settings
    chatwoot: chatwoot.Settings
    n8n: n8n.Settings
    social: social.Settings
    cluster: cluster.Settings
    allowlist: allowlist.Settings
    # Decided across layers, by the rules below.
    host_ram_mb: int
    memory_profile: str
    memory_limits_mb: dict  # only the services that run
    # Operator-supplied secrets the enabled features need (name -> value); never printed.
    supplied_secrets: dict = field(repr=False)
    # This host's role and its peers, from the inventory's groups (topology.py).
    topology: Topology = Topology()


def keys():
    """Every group data key: name -> (section, pydantic field)."""
    return {name: (section, f) for section, model in SECTIONS.items() for name, f in model.model_fields.items()}


def load(values, ram_mb, supplied=None, require_secrets=True, topology=ONE_HOST):
    """Validate group data (a dict) for a host with `ram_mb` of RAM; return a Config.
    `supplied`: the operator's secrets (supplied_secrets()); the audit, which reads no
    secret of the operator's, passes require_secrets=False. `topology`: the host's role
    and peers (topology.inventory_topology()); a one-host inventory's is the default."""
    required = {name for name, (_, f) in keys().items() if f.is_required()}
    values = {k: v for k, v in values.items() if v is not None or k not in required}  # None is "missing"
    problems, sections = _renamed(values) + _typos(values), {}
    for name, model in SECTIONS.items():
        try:
            sections[name] = model.model_validate(values, context={"ram_mb": ram_mb})
        except ValidationError as e:
            problems += [_message(error, model) for error in e.errors()]
    decided = {"topology": topology}
    if len(sections) == len(SECTIONS):
        sections = _cross_layer_rules(sections, values, ram_mb, supplied or {}, problems, decided, require_secrets)
    if problems:
        raise ConfigError("invalid group data; nothing was changed on the host:\n" + "\n".join(problems))
    return Config(**sections, host_ram_mb=ram_mb, **decided)


def _message(error, model):
    """A pydantic error as the project's message; the field's own problem and fix where it has them."""
    loc, context = error["loc"], error.get("ctx") or {}
    f = model.model_fields.get(loc[0]) if loc else None
    extra = (f.json_schema_extra or {}) if f else {}
    key = context.get("key") or (loc[0] + "".join(f"[{part!r}]" for part in loc[1:] if part != "[key]") if loc else "?")
    value = context.get("shown", context.get("value", error["input"]))
    if error["type"] == "missing":
        return problem_line(key, None, "missing", extra.get("fix"))
    if error["type"] == "platform":
        return problem_line(key, value, context["problem"], context["fix"])
    if loc and loc[-1] == "[key]":
        return problem_line(key, value, "unknown service", f"use one of: {context.get('expected', '')}")
    problem = extra.get("problem") or "not valid"
    return problem_line(key, value, f"{problem} ({error['msg']})", extra.get("fix"))


def _renamed(values):
    return [
        problem_line(old, "…", f"renamed to {new}", f"move it to {new}; {what}")
        for old, (new, what) in RENAMED.items()
        if old in values
    ]


def _typos(values):
    """A key close to one of ours is most likely a typo that would silently leave a default."""
    known = set(keys()) | set(RENAMED)
    return [
        problem_line(key, "…", f"unknown key; did you mean {match[0]}?", f"rename it to {match[0]}")
        for key in sorted(values)
        if key not in known
        for match in [difflib.get_close_matches(key, known, n=1, cutoff=0.85)]
        if match
    ]


# Rules that cross layers, all here. Each appends its problems and may decide a value.


def _cross_layer_rules(sections, values, ram_mb, supplied, problems, decided, require_secrets=True):
    cluster.cross_rules(sections, decided["topology"], lambda *args: problems.append(problem_line(*args)))
    decided.update(_memory(sections, ram_mb, problems, decided["topology"]))
    sections["data"] = _postgres_major(sections, problems)
    sections["stack"] = sections["stack"].model_copy(
        update={"admin_email": sections["stack"].admin_email or sections["edge"].acme_email}
    )
    sections["n8n"] = sections["n8n"].model_copy(
        update={"n8n_owner_email": sections["n8n"].n8n_owner_email or sections["stack"].admin_email}
    )
    decided["supplied_secrets"] = _operator_secrets(sections, supplied, problems if require_secrets else [])
    if sections["chatwoot"].facebook_inbox and not sections["social"].facebook_page_id:
        problems.append(
            problem_line(
                "facebook_inbox",
                sections["chatwoot"].facebook_inbox.model_dump(),
                "needs the Facebook Page it answers for",
                'set facebook_page_id = "<your Page id>" (and PLATFORM_FACEBOOK_PAGE_TOKEN), or facebook_inbox = None',
            )
        )
    if sections["social"].tiktok_notify_email and not sections["stack"].smtp:
        problems.append(
            problem_line(
                "tiktok_notify_email",
                sections["social"].tiktok_notify_email,
                "TikTok notifications are e-mails, and smtp is not set",
                'set smtp = {"host": ..., "port": 587, "user": ..., "sender": ...}, or tiktok_notify_email = None',
            )
        )
    if sections["host"].ssh_hardening and values.get("ssh_password"):
        problems.append(
            problem_line(
                "ssh_hardening",
                True,
                "turns password log-in off while this deploy logs in with ssh_password",
                "log in with a key (ssh_key) first, or leave ssh_hardening = False",
            )
        )
    if sections["host"].ssh_root_login == "no" and (values.get("ssh_user") or "root") != sections["host"].admin_user:
        problems.append(
            problem_line(
                "ssh_root_login",
                "no",
                f"locks root out while this deploy logs in as {values.get('ssh_user') or 'root'}: "
                "the next run could not log in",
                f"log in as admin_user {sections['host'].admin_user!r} with sudo "
                '(ssh_user, _sudo = True, or --user ... --sudo) first, or keep ssh_root_login = "prohibit-password"',
            )
        )
    return sections


def _memory(sections, ram_mb, problems, topology):
    """The RAM table's profile for this host, with the operator's limits, for the services that run."""
    s = sections["stack"]
    needed_min = memory.host_needs_mb(memory.profile_limits("minimum"))
    if ram_mb < needed_min:
        problems.append(
            problem_line(
                "(host RAM)",
                ram_mb,
                f"the host has {ram_mb} MB, below the minimum profile's {needed_min} MB",
                "use a server with at least 4 GB of RAM (the seed's minimum)",
            )
        )
        return {"memory_profile": "minimum", "memory_limits_mb": {}}
    counts = {"n8n-worker": sections["n8n"].n8n_workers}
    running = set(compose_services(SimpleConfig({**sections, "topology": topology})))

    def limits_of(profile):
        limits = {**memory.profile_limits(profile), **s.memory_limits_mb, "gerbil": GERBIL_MB}
        return {service: mb for service, mb in limits.items() if service in running}

    profile = s.memory_profile
    if profile == "auto":  # the largest profile whose services, as configured, fit
        profile = memory.auto_profile(ram_mb, lambda p: memory.host_needs_mb(limits_of(p), counts)) or "minimum"
    limits = limits_of(profile)
    needed = memory.host_needs_mb(limits, counts)
    # Only the services that run count: a left-out app frees its share.
    if needed > ram_mb:
        problems.append(
            problem_line(
                "memory_limits_mb",
                s.memory_limits_mb,
                f"the limits of the services that run add up to {needed} MB with the "
                f"{memory.HOST_RESERVE_MB} MB host reserve, more than the host's {ram_mb} MB",
                'lower the limits, leave an app out of apps, use memory_profile = "minimum", or use a larger server',
            )
        )
    return {"memory_profile": profile, "memory_limits_mb": limits}


class SimpleConfig:
    """Sections as attributes, for helpers that take a Config while it is being made."""

    def __init__(self, sections):
        self.__dict__.update(sections)


def _postgres_major(sections, problems):
    """postgres_major, or the major version read from images['postgres'] (postgres:15.8, …-pg15)."""
    d, image = sections["data"], sections["stack"].images["postgres"]
    if d.postgres_major is not None:
        return d
    major = data.postgres_major_of(image)
    if not major:
        problems.append(
            problem_line(
                "images['postgres']",
                image,
                "its PostgreSQL major version cannot be read from the name",
                "set postgres_major = 15 (the image's major version) in group data",
            )
        )
    return d.model_copy(update={"postgres_major": major})


def features(sections):
    """Which features that need an operator secret are on (SUPPLIED_SECRETS' values)."""
    offsite = sections["backup"].backup_offsite
    return {
        "smtp": sections["stack"].smtp is not None,
        "ai_replies": sections["n8n"].ai_replies,
        "departments": bool(sections["chatwoot"].departments),
        "facebook": sections["social"].facebook_page_id is not None,
        "instagram": sections["social"].instagram_user_id is not None,
        "social_posts": any(
            getattr(sections["social"], key) for key in ("facebook_page_id", "instagram_user_id", "tiktok_notify_email")
        ),
        "acme_dns_provider": sections["edge"].acme_dns_provider is not None,
        "backup_offsite": bool(offsite),
        "backup_offsite_s3": str(offsite).startswith("s3:"),
        "pitr_s3": bool(sections["pitr"].pitr and sections["pitr"].pitr_repo_s3_bucket),
    }


def _operator_secrets(sections, supplied, problems):
    enabled = features(sections)
    for name, feature in SUPPLIED_SECRETS.items():
        variable = f"PLATFORM_{name.upper()}"
        if name in supplied and ("'" in supplied[name] or "\n" in supplied[name]):
            problems.append(
                problem_line(
                    variable,
                    "(not shown)",
                    "contains a single quote or a line break",
                    "use a value without ' or line breaks (the env files quote values with ')",
                )
            )
        if enabled[feature] and name not in supplied:
            problems.append(
                problem_line(
                    variable,
                    None,
                    f"missing, and {feature} needs it",
                    f"export {variable}=... before the deploy, or add a {variable}=... line to "
                    f"{sections['stack'].secrets_file} (secrets_file; git-ignored if secrets.env); "
                    "it is stored on the host root-only and never printed",
                )
            )
    return {
        name: value
        for name, value in supplied.items()
        if enabled[SUPPLIED_SECRETS[name]] or enabled.get(OPTIONAL_USES.get(name))
    }


def _type_name(annotation):
    """A field's type as an operator reads it: "list of str", "int or None", "one of 'auto', 'docker', 'distro'"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in args)
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping {_type_name(args[0])} -> {_type_name(args[1])}"
    if annotation is typing.Any:
        return "see meaning"
    return "None" if annotation is type(None) else annotation.__name__


def reference():
    """docs/settings.md: every group data key with its type, default and meaning, from the models."""
    lines = [
        "# Settings reference",
        "",
        "Every group data key, by the layer that owns it. Generated from the settings models "
        "(`make settings-reference`); a unit test fails when this file is stale. Set keys in "
        "`group_data/<inventory name>.py`; what is not set takes the default below.",
        "",
    ]
    for section, model in SECTIONS.items():
        lines += [
            f"## {section} (`{model.__module__.replace('.', '/')}.py`)",
            "",
            "| key | type | default | meaning |",
            "|---|---|---|---|",
        ]
        for name, f in model.model_fields.items():
            default = "required" if f.is_required() else f"`{f.default!r}`"
            lines.append(f"| `{name}` | {_type_name(f.annotation)} | {default} | {f.description} |".replace("\n", " "))
        lines.append("")
    return "\n".join(lines)
