"""The config model: every group data key the deploy reads, validated once.

`load()` runs at the top of deploy.py, before any operation is collected, so a bad
value stops the run with a message naming the key, the problem and the fix, and the
host is left untouched.
"""

import ipaddress
import os
import re
from dataclasses import dataclass, field

from pyinfra.api.exceptions import PyinfraError

from . import memory

APPS = ("chatwoot", "n8n", "directus")
APP_SERVICES = {"chatwoot": ("chatwoot-web", "chatwoot-sidekiq"), "n8n": ("n8n",), "directus": ("directus",)}
IMAGE_KEYS = ("postgres", "redis", "chatwoot", "n8n", "directus", "pangolin", "traefik", "gerbil")
DOCKER_SOURCES = ("auto", "docker", "distro")

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"^(?:{_LABEL}\.)+[a-z][a-z0-9-]{{0,62}}$")
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?P<domain>[^@\s]+)$")
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# repository[:tag][@digest]; the tag is what must be pinned
IMAGE_RE = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._/:-]*?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$")


class ConfigError(PyinfraError):
    """Bad group data. The message lists every problem found, each with its fix."""


@dataclass(frozen=True)
class Config:
    stack_name: str
    stack_root: str
    domain: str
    acme_email: str
    host_ram_mb: int
    memory_profile: str
    memory_limits_mb: dict
    ssh_port: int
    ssh_allow_cidrs: tuple
    ssh_rate_limit: bool
    ssh_hardening: bool
    admin_user: str | None
    admin_ssh_keys: tuple
    swap_mb: int
    docker_source: str
    docker_log_max_size: str
    docker_log_max_file: int
    tunnels_enabled: bool
    whatsapp_numbers: dict
    images: dict
    apps: tuple
    admin_email: str
    timezone: str
    offline_images: str | None
    edge_hostnames: dict
    acme_dns_provider: str | None
    acme_dns_token_env: str | None
    badger_version: str
    smtp: dict | None
    ai_replies: bool
    postgres_major: int
    postgres_major_upgrade: bool
    backup_dir: str
    backup_schedule: str
    backup_keep: int
    backup_max_age_hours: int
    backup_offsite: str | None
    # Operator-supplied secrets the enabled features need (name -> value); never printed.
    supplied_secrets: dict = field(repr=False)

    @property
    def env_files(self):
        """Env files holding secrets, one per compose service group."""
        return ("postgres", "redis", *self.apps, *(["traefik"] if self.acme_dns_provider else []),
                *(["restic"] if self.backup_offsite else []))

    @property
    def compose_services(self):
        services = ["postgres", "redis"]
        for app in self.apps:
            services += APP_SERVICES[app]
        services += ["pangolin", "traefik"] + (["gerbil"] if self.tunnels_enabled else [])
        return tuple(services)


class _Checker:
    def __init__(self, data):
        self.data = data
        self.errors = []

    def fail(self, key, value, problem, fix):
        self.errors.append(f"- {key} = {value!r}: {problem}\n  Fix: {fix}")

    def get(self, key, default=None):
        return self.data.get(key, default)


def _domain(c):
    value = c.get("domain")
    if not value:
        c.fail("domain", value, "missing", 'set domain = "example.org" (the apps get chat., n8n. and cms. under it)')
        return ""
    if not isinstance(value, str) or not DOMAIN_RE.match(value):
        c.fail("domain", value, "not a lower-case DNS name with at least two labels",
               'set domain = "example.org": no scheme, no path, no trailing dot')
        return ""
    return value


def _acme_email(c):
    value = c.get("acme_email")
    match = EMAIL_RE.match(value) if isinstance(value, str) else None
    if not match or not DOMAIN_RE.match(match["domain"].lower()):
        c.fail("acme_email", value, "not an e-mail address",
               'set acme_email = "ops@example.org": Let\'s Encrypt sends expiry notices there')
        return ""
    return value


def _port(c, key, default):
    value = c.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        c.fail(key, value, "not a TCP port", f"set {key} to a whole number from 1 to 65535 (default {default})")
        return default
    return value


def _cidrs(c):
    values = c.get("ssh_allow_cidrs", []) or []
    if not isinstance(values, (list, tuple)):
        c.fail("ssh_allow_cidrs", values, "not a list", 'set ssh_allow_cidrs = ["203.0.113.0/24"], or [] for anywhere')
        return ()
    cidrs = []
    for value in values:
        try:
            cidrs.append(str(ipaddress.ip_network(value, strict=True)))
        except (TypeError, ValueError) as e:
            hint = ""
            try:
                hint = f" (did you mean {ipaddress.ip_network(value, strict=False)}?)"
            except (TypeError, ValueError):
                pass
            c.fail("ssh_allow_cidrs", value, f"not a network in CIDR notation: {e}{hint}",
                   'write each entry as address/prefix with no host bits, e.g. "203.0.113.0/24"')
    return tuple(cidrs)


def _choice(c, key, choices, default):
    value = c.get(key, default)
    if value not in choices:
        c.fail(key, value, "unknown value", f"set {key} to one of: {', '.join(choices)}")
        return default
    return value


def _bool(c, key, default):
    value = c.get(key, default)
    if not isinstance(value, bool):
        c.fail(key, value, "not a boolean", f"set {key} = True or {key} = False")
        return default
    return value


def _whatsapp(c):
    numbers = c.get("whatsapp_numbers", {}) or {}
    if not isinstance(numbers, dict):
        c.fail("whatsapp_numbers", numbers, "not a mapping", 'set whatsapp_numbers = {"sales": "+5922221111"}')
        return {}
    for department, number in numbers.items():
        if not isinstance(number, str) or not E164_RE.match(number):
            c.fail(f"whatsapp_numbers[{department!r}]", number, "not an E.164 phone number",
                   'write it as + then country code and number, digits only, e.g. "+5922221111"')
    return dict(numbers)


def _images(c):
    images = c.get("images", {}) or {}
    if not isinstance(images, dict):
        c.fail("images", images, "not a mapping", 'set images = {"redis": "redis:7.4.5", ...}')
        return {}
    for name, ref in images.items():
        if name not in IMAGE_KEYS:
            c.fail(f"images[{name!r}]", ref, "unknown service", f"use one of: {', '.join(IMAGE_KEYS)}")
            continue
        match = IMAGE_RE.match(ref) if isinstance(ref, str) else None
        if not match:
            c.fail(f"images[{name!r}]", ref, "not an image reference", 'write it as repository:tag, e.g. "redis:7.4.5"')
        elif not match["tag"] or match["tag"] == "latest":
            c.fail(f"images[{name!r}]", ref, "the tag must be pinned (no tag and 'latest' both float)",
                   f'name an exact version, e.g. "{match["repo"]}:<version>"; upgrades then happen only when you bump it')
    return dict(images)


def _apps(c):
    apps = c.get("apps", list(APPS))
    if not isinstance(apps, (list, tuple)) or not apps:
        c.fail("apps", apps, "not a non-empty list", f"list the apps to run, e.g. apps = {list(APPS)}")
        return APPS
    unknown = [a for a in apps if a not in APPS]
    if unknown:
        c.fail("apps", apps, f"unknown service {unknown}", f"use names from: {', '.join(APPS)}")
    # Keep the canonical order so the rendered files do not depend on how the list was written.
    return tuple(a for a in APPS if a in apps)


def _images_present(c, images, apps, tunnels):
    for name in ("postgres", "redis", *apps, "pangolin", "traefik", *(["gerbil"] if tunnels else [])):
        if name not in images:
            c.fail(f"images[{name!r}]", None, "missing", f'pin the image for {name}, e.g. in group_data/all.py')


def _memory(c, ram_mb):
    profile = c.get("memory_profile", "auto")
    if profile not in ("auto",) + memory.PROFILES:
        c.fail("memory_profile", profile, "unknown profile", "set memory_profile to auto, recommended or minimum")
        return "minimum", memory.profile_limits("minimum")

    needed_min = memory.host_needs_mb(memory.profile_limits("minimum"))
    if ram_mb < needed_min:
        c.fail("(host RAM)", ram_mb, f"the host has {ram_mb} MB, below the minimum profile's {needed_min} MB",
               "use a server with at least 4 GB of RAM (the seed's minimum)")
        return "minimum", memory.profile_limits("minimum")
    if profile == "auto":
        profile = memory.auto_profile(ram_mb)
    limits = memory.profile_limits(profile)

    overrides = c.get("memory_limits_mb", {}) or {}
    if not isinstance(overrides, dict):
        c.fail("memory_limits_mb", overrides, "not a mapping", 'set memory_limits_mb = {"postgres": 3072}')
        overrides = {}
    for service, mb in overrides.items():
        if service not in memory.RAM_TABLE_MB:
            c.fail(f"memory_limits_mb[{service!r}]", mb, "unknown service",
                   f"use one of: {', '.join(memory.RAM_TABLE_MB)}")
        elif isinstance(mb, bool) or not isinstance(mb, int) or mb < 32:
            c.fail(f"memory_limits_mb[{service!r}]", mb, "not a size in MB", "give a whole number of MB, at least 32")
        else:
            limits[service] = mb
    return profile, limits


def _memory_fits(c, limits, ram_mb):
    """Only the services that run count: a left-out app frees its share."""
    if memory.host_needs_mb(limits) > ram_mb:
        c.fail("memory_limits_mb", c.get("memory_limits_mb", {}),
               f"the limits of the services that run add up to {memory.host_needs_mb(limits)} MB with the "
               f"{memory.HOST_RESERVE_MB} MB host reserve, more than the host's {ram_mb} MB",
               "lower the limits, leave an app out of apps, use memory_profile = \"minimum\", or use a larger server")


def _swap(c, ram_mb):
    value = c.get("swap_mb", "auto")
    if value == "auto":
        # Small hosts get a safety net against the OOM killer; large ones do not need it.
        return 2048 if ram_mb < 7 * 1024 else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        c.fail("swap_mb", value, "not a size in MB", 'set swap_mb = "auto", 0 (no swap file) or a size in MB')
        return 0
    return value


def _admin(c):
    user = c.get("admin_user")
    keys = c.get("admin_ssh_keys", []) or []
    if user is not None and (not isinstance(user, str) or not USER_RE.match(user) or user == "root"):
        c.fail("admin_user", user, "not a valid non-root user name", 'set admin_user = "ops" or None')
    if not isinstance(keys, (list, tuple)) or not all(
        isinstance(k, str) and re.match(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+|sk-\S+) [A-Za-z0-9+/=]+", k) for k in keys
    ):
        c.fail("admin_ssh_keys", keys, "not a list of OpenSSH public keys",
               'paste each key as one line, e.g. "ssh-ed25519 AAAA... you@laptop"')
        keys = []
    if user and not keys:
        c.fail("admin_ssh_keys", keys, f"admin_user {user!r} would have no way to log in",
               "add at least one public key to admin_ssh_keys")
    return user, tuple(keys)


# Generated secrets: name -> length. Alphanumeric only, so they are safe in URLs and SQL.
GENERATED_SECRETS = {
    "postgres_password": 40,
    "redis_password": 40,
    "chatwoot_db_password": 40,
    "n8n_db_password": 40,
    "directus_db_password": 40,
    "chatwoot_secret_key_base": 128,
    "n8n_encryption_key": 48,
    "directus_secret": 64,
    "directus_admin_password": 24,
    "pangolin_server_secret": 48,
}
# Secrets only the operator can supply: name -> the feature that needs it.
SUPPLIED_SECRETS = {
    "smtp_password": "smtp",
    "acme_dns_api_token": "acme_dns_provider",
    "claude_api_key": "ai_replies",
    "whatsapp_access_token": "whatsapp_numbers",
    "restic_password": "backup_offsite",
    "restic_aws_access_key_id": "backup_offsite_s3",
    "restic_aws_secret_access_key": "backup_offsite_s3",
}
SUPPLIED_SECRETS_FILE = "secrets.env"


def supplied_secrets(directory="."):
    """Operator secrets from the environment (PLATFORM_SMTP_PASSWORD, ...) or from the
    git-ignored secrets.env beside deploy.py (same names, KEY=VALUE lines)."""
    found = {}
    path = os.path.join(directory, SUPPLIED_SECRETS_FILE)
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    value = value.strip()
                    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                        value = value[1:-1]
                    found[key.strip()] = value
    found.update({k: v for k, v in os.environ.items() if k.startswith("PLATFORM_")})
    return {name: found[f"PLATFORM_{name.upper()}"] for name in SUPPLIED_SECRETS if found.get(f"PLATFORM_{name.upper()}")}


def _smtp(c):
    smtp = c.get("smtp")
    if smtp is None:
        return None
    fix = 'set smtp = {"host": "smtp.example.org", "port": 587, "user": "apikey", "sender": "support@example.org"}, or None'
    if not isinstance(smtp, dict) or set(smtp) != {"host", "port", "user", "sender"}:
        # Only the keys: a password put here by mistake must not reach the console.
        keys = sorted(smtp) if isinstance(smtp, dict) else type(smtp).__name__
        c.fail("smtp", keys, "needs exactly the keys host, port, user, sender (the password comes from PLATFORM_SMTP_PASSWORD)", fix)
        return None
    if not isinstance(smtp["host"], str) or not DOMAIN_RE.match(smtp["host"]):
        c.fail("smtp['host']", smtp["host"], "not a host name", fix)
    if isinstance(smtp["port"], bool) or not isinstance(smtp["port"], int) or not 1 <= smtp["port"] <= 65535:
        c.fail("smtp['port']", smtp["port"], "not a TCP port", "use 587 (STARTTLS) or 465 (TLS)")
    if not isinstance(smtp["sender"], str) or not EMAIL_RE.match(smtp["sender"]):
        c.fail("smtp['sender']", smtp["sender"], "not an e-mail address", fix)
    return dict(smtp)


def _supplied(c, supplied, enabled):
    for name, feature in SUPPLIED_SECRETS.items():
        if name in supplied and ("'" in supplied[name] or "\n" in supplied[name]):
            c.fail(f"PLATFORM_{name.upper()}", "(not shown)", "contains a single quote or a line break",
                   "use a value without ' or line breaks (the env files quote values with ')")
        if enabled[feature] and name not in supplied:
            variable = f"PLATFORM_{name.upper()}"
            c.fail(variable, None, f"missing, and {feature} needs it",
                   f"export {variable}=... before the deploy, or add a {variable}=... line to {SUPPLIED_SECRETS_FILE} "
                   "beside deploy.py (git-ignored); it is stored on the host root-only and never printed")
    return {name: value for name, value in supplied.items() if enabled[SUPPLIED_SECRETS[name]]}


def _postgres_major(c, image):
    """The image's PostgreSQL major version: postgres_major, or read from the reference
    (postgres:15.8, pgvector/pgvector:0.8.0-pg15)."""
    major = c.get("postgres_major")
    if major is not None:
        if isinstance(major, bool) or not isinstance(major, int) or not 12 <= major <= 99:
            c.fail("postgres_major", major, "not a PostgreSQL major version", "set the image's major version, e.g. 15")
            return 0
        return major
    match = re.search(r"(?:pg|postgres(?:ql)?[-_]?)(\d{2})(?!\d)|:(\d{2})(?:[.-]|$)", image or "")
    if not match:
        if image:
            c.fail("images['postgres']", image, "its PostgreSQL major version cannot be read from the name",
                   "set postgres_major = 15 (the image's major version) in group data")
        return 0
    return int(match[1] or match[2])


def _backup(c):
    backup_dir = c.get("backup_dir", "/var/backups/msgplatform")
    if not isinstance(backup_dir, str) or not re.match(r"^/[A-Za-z0-9._/-]+$", backup_dir) or backup_dir.rstrip("/").count("/") < 2:
        c.fail("backup_dir", backup_dir, "not a dedicated absolute directory", 'set backup_dir = "/var/backups/msgplatform"')
    schedule = c.get("backup_schedule", "*-*-* 03:15:00")
    if not isinstance(schedule, str) or not re.match(r"^[A-Za-z0-9*:/,. ~-]+$", schedule):
        c.fail("backup_schedule", schedule, "not a systemd calendar expression",
               'use e.g. "*-*-* 03:15:00" (nightly) or "daily"; see `man systemd.time`')
    keep = c.get("backup_keep", 7)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        c.fail("backup_keep", keep, "not a count", "keep at least 1 backup, e.g. backup_keep = 7")
    max_age = c.get("backup_max_age_hours", 26)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 1:
        c.fail("backup_max_age_hours", max_age, "not a number of hours",
               "set how old the last backup may be before the audit calls it stale, e.g. 26 for a nightly schedule")
    offsite = c.get("backup_offsite")
    # No credentials in the URL: it is not a secret and shows in logs.
    if offsite is not None and (not isinstance(offsite, str) or not re.match(r"^(sftp:|s3:|rest:|/)[^\s'\"]+$", offsite)
                                or re.search(r"://[^/]*:[^/]*@", offsite)):
        c.fail("backup_offsite", offsite, "not a restic repository",
               'use e.g. "sftp:backup@host.example.org:/srv/restic/msgplatform" or "s3:https://s3.example.org/bucket/msgplatform" '
               "(credentials come from PLATFORM_RESTIC_* secrets, never the URL), or None")
    return {"backup_dir": str(backup_dir).rstrip("/"), "backup_schedule": schedule, "backup_keep": keep,
            "backup_max_age_hours": max_age, "backup_offsite": offsite}


def load(data, ram_mb, supplied=None):
    """Validate group data (a dict) for a host with `ram_mb` of RAM; return a Config.
    `supplied`: the operator's secrets (supplied_secrets())."""
    c = _Checker(data)
    domain = _domain(c)
    acme_email = _acme_email(c)
    profile, limits = _memory(c, ram_mb)
    limits["gerbil"] = 128  # not in the seed's table; WireGuard in the kernel needs little
    ssh_port = _port(c, "ssh_port", 22)
    ssh_allow_cidrs = _cidrs(c)
    ssh_rate_limit = _bool(c, "ssh_rate_limit", True)
    ssh_hardening = _bool(c, "ssh_hardening", False)
    if ssh_hardening and c.get("ssh_password"):
        c.fail("ssh_hardening", True, "turns password log-in off while this deploy logs in with ssh_password",
               "log in with a key (ssh_key) first, or leave ssh_hardening = False")
    admin_user, admin_keys = _admin(c)
    swap_mb = _swap(c, ram_mb)
    docker_source = _choice(c, "docker_source", DOCKER_SOURCES, "auto")
    log_max_size = c.get("docker_log_max_size", "10m")
    if not isinstance(log_max_size, str) or not re.match(r"^[1-9][0-9]*[kmg]$", log_max_size):
        c.fail("docker_log_max_size", log_max_size, "not a size", 'write it like "10m" (k, m or g)')
    log_max_file = c.get("docker_log_max_file", 3)
    if isinstance(log_max_file, bool) or not isinstance(log_max_file, int) or log_max_file < 1:
        c.fail("docker_log_max_file", log_max_file, "not a count", "set a whole number of files, at least 1")
    tunnels = _bool(c, "tunnels_enabled", False)
    whatsapp = _whatsapp(c)
    images = _images(c)
    apps = _apps(c)
    _images_present(c, images, apps, tunnels)
    running = ("postgres", "redis", *(s for app in apps for s in APP_SERVICES[app]), "pangolin", "traefik",
               *(["gerbil"] if tunnels else []))
    limits = {service: mb for service, mb in limits.items() if service in running}
    _memory_fits(c, limits, ram_mb)
    edge_hostnames = {"chatwoot": "chat", "n8n": "n8n", "directus": "cms", "pangolin": "pangolin",
                      **(c.get("edge_hostnames") or {})}
    for name, label in edge_hostnames.items():
        if name not in ("chatwoot", "n8n", "directus", "pangolin"):
            c.fail(f"edge_hostnames[{name!r}]", label, "unknown service", "use chatwoot, n8n, directus or pangolin")
        elif not isinstance(label, str) or not re.match(rf"^{_LABEL}(\.{_LABEL})*$", label):
            c.fail(f"edge_hostnames[{name!r}]", label, "not a DNS label", 'give the part before the domain, e.g. "chat"')
    if len(set(edge_hostnames.values())) != len(edge_hostnames):
        c.fail("edge_hostnames", edge_hostnames, "two services share a hostname", "give each service its own name")
    acme_dns_provider = c.get("acme_dns_provider")
    if acme_dns_provider is not None and (not isinstance(acme_dns_provider, str) or not re.match(r"^[a-z0-9]+$", acme_dns_provider)):
        c.fail("acme_dns_provider", acme_dns_provider, "not a Traefik DNS provider name",
               'use None for the HTTP-01 challenge, or a provider code such as "cloudflare"')
    badger_version = c.get("badger_version", "v1.2.0")
    acme_dns_token_env = c.get("acme_dns_token_env")
    if acme_dns_provider and (not isinstance(acme_dns_token_env, str) or not re.match(r"^[A-Z][A-Z0-9_]*$", acme_dns_token_env)):
        c.fail("acme_dns_token_env", acme_dns_token_env, "missing or not an environment variable name",
               'name the variable your provider reads its token from, e.g. "CF_DNS_API_TOKEN" for cloudflare')
    admin_email = c.get("admin_email") or acme_email
    if not isinstance(admin_email, str) or not EMAIL_RE.match(admin_email):
        c.fail("admin_email", admin_email, "not an e-mail address", "set admin_email (the apps' first admin), or leave it unset to use acme_email")
    timezone = c.get("timezone", "UTC")
    if not isinstance(timezone, str) or not re.match(r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", timezone):
        c.fail("timezone", timezone, "not a time zone name", 'use a tz database name, e.g. "America/Guyana" or "UTC"')
    smtp = _smtp(c)
    backup = _backup(c)
    postgres_major = _postgres_major(c, images.get("postgres"))
    postgres_major_upgrade = _bool(c, "postgres_major_upgrade", False)
    ai_replies = _bool(c, "ai_replies", False)
    supplied = _supplied(c, supplied or {}, {"smtp": smtp is not None, "ai_replies": ai_replies,
                                             "whatsapp_numbers": bool(whatsapp),
                                             "acme_dns_provider": c.get("acme_dns_provider") is not None,
                                             "backup_offsite": bool(backup["backup_offsite"]),
                                             "backup_offsite_s3": str(backup["backup_offsite"]).startswith("s3:")})
    offline_images = c.get("offline_images")
    if offline_images is not None and not isinstance(offline_images, str):
        c.fail("offline_images", offline_images, "not a path", "give the path of a `docker save` archive on this machine, or None")
    stack_name = c.get("stack_name", "msgplatform")
    if not isinstance(stack_name, str) or not re.match(r"^[a-z0-9][a-z0-9_-]*$", stack_name):
        c.fail("stack_name", stack_name, "not a valid compose project name", "use lower-case letters, digits, - and _")
    stack_root = c.get("stack_root") or f"/opt/{stack_name}"
    if not isinstance(stack_root, str) or not stack_root.startswith("/") or stack_root.rstrip("/") in ("", "/opt"):
        c.fail("stack_root", stack_root, "not a dedicated absolute directory", 'set stack_root = "/opt/msgplatform"')

    if c.errors:
        raise ConfigError("invalid group data; nothing was changed on the host:\n" + "\n".join(c.errors))

    return Config(
        stack_name=stack_name,
        stack_root=stack_root.rstrip("/"),
        domain=domain,
        acme_email=acme_email,
        host_ram_mb=ram_mb,
        memory_profile=profile,
        memory_limits_mb=limits,
        ssh_port=ssh_port,
        ssh_allow_cidrs=ssh_allow_cidrs,
        ssh_rate_limit=ssh_rate_limit,
        ssh_hardening=ssh_hardening,
        admin_user=admin_user,
        admin_ssh_keys=admin_keys,
        swap_mb=swap_mb,
        docker_source=docker_source,
        docker_log_max_size=log_max_size,
        docker_log_max_file=log_max_file,
        tunnels_enabled=tunnels,
        whatsapp_numbers=whatsapp,
        images=images,
        apps=apps,
        admin_email=admin_email,
        timezone=timezone,
        offline_images=offline_images,
        edge_hostnames=edge_hostnames,
        acme_dns_provider=acme_dns_provider,
        acme_dns_token_env=acme_dns_token_env,
        badger_version=badger_version,
        smtp=smtp,
        ai_replies=ai_replies,
        postgres_major=postgres_major,
        postgres_major_upgrade=postgres_major_upgrade,
        **backup,
        supplied_secrets=supplied,
    )


SUPPORTED_OS = {("Ubuntu", 22), ("Ubuntu", 24), ("Debian", 12), ("Debian", 13)}


def check_os(distro):
    """(name, major, codename) from pyinfra's LinuxDistribution fact; refuse anything else."""
    name, major = distro.get("name"), distro.get("major")
    if (name, major) not in SUPPORTED_OS:
        raise ConfigError(
            f"unsupported operating system {name} {major}; nothing was changed on the host.\n"
            "  Fix: use Ubuntu 24.04 or 22.04, or Debian 12 or 13."
        )
    return name, major, distro.get("release_meta", {}).get("VERSION_CODENAME")
