# Defaults for every environment. Override per environment in group_data/<inventory name>.py;
# every key is checked by platform_deploy/config.py before anything touches a host.

stack_name = "msgplatform"  # compose project name; the stack lives in /opt/<stack_name>
domain = None  # required: apps answer on chat.<domain>, n8n.<domain>, cms.<domain>
acme_email = None  # required: Let's Encrypt account and expiry notices

# Memory: "auto" picks the largest profile of the RAM table the host can carry;
# "recommended" or "minimum" force one. Per-service limits in MB override the profile.
memory_profile = "auto"
memory_limits_mb = {}
swap_mb = "auto"  # 2 GB swap file on hosts under 7 GB of RAM; 0 for none

# SSH stays open (rate-limited) or the operator locks themself out. Restrict it to
# admin networks with e.g. ["203.0.113.0/24"]. ssh_port is also the port pyinfra uses.
ssh_port = 22
ssh_allow_cidrs = []
ssh_rate_limit = True  # UFW "limit": a source opening 6 SSH connections in 30 s is refused for a while
ssh_hardening = False  # True: key log-in only (turn on once you log in with a key)
admin_user = None  # e.g. "ops": created with sudo and admin_ssh_keys
admin_ssh_keys = []

# Docker: "auto" = Docker's apt repository on Ubuntu and Debian 12, the distribution's
# docker.io + compose v2 on Debian 13; "docker" or "distro" force one.
docker_source = "auto"
docker_log_max_size = "10m"
docker_log_max_file = 3

tunnels_enabled = False  # Pangolin tunnels (Gerbil, UDP 51820 and 21820)

# The edge: hostnames under `domain`, and Let's Encrypt's challenge (None: HTTP-01 on
# port 80; a Traefik DNS provider code such as "cloudflare" for DNS-01, its credentials
# in Traefik's environment).
edge_hostnames = {"chatwoot": "chat", "n8n": "n8n", "directus": "cms", "pangolin": "pangolin"}
acme_dns_provider = None
acme_dns_token_env = None  # with a DNS provider: e.g. "CF_DNS_API_TOKEN"; value from PLATFORM_ACME_DNS_API_TOKEN
badger_version = "v1.2.0"  # Pangolin's Traefik plugin

apps = ["chatwoot", "n8n", "directus"]  # which apps run; each gets its own database and role
admin_email = None  # Directus's first admin (password generated on the host); None: acme_email
timezone = "UTC"  # n8n's schedules

# Features that need a secret only you can supply (see the README, "Secrets"):
smtp = None  # {"host": "smtp.example.org", "port": 587, "user": "apikey", "sender": "support@example.org"}
ai_replies = False  # True: n8n gets PLATFORM_CLAUDE_API_KEY as ANTHROPIC_API_KEY

# A `docker save` archive on this machine holding the images below, for servers that
# cannot pull (air-gapped); None: images are pulled.
offline_images = None

# WhatsApp Business numbers by department, E.164: {"sales": "+5922221111"}
whatsapp_numbers = {}

# Backups (see the README, "Backups and restore"): a systemd timer dumps every app database
# (pg_dump custom format), Redis, the app volumes, the edge's config and certificates and
# the secrets into backup_dir/<UTC time>/ with a SHA256SUMS file; the newest backup_keep stay.
backup_dir = "/var/backups/msgplatform"
backup_schedule = "*-*-* 03:15:00"  # systemd OnCalendar (UTC on most servers)
backup_keep = 7
backup_max_age_hours = 26  # the audit calls the last backup stale after this
# Off-host copy with restic, e.g. "sftp:backup@host.example.org:/srv/restic/msgplatform" or
# "s3:https://s3.example.org/bucket/msgplatform"; password from PLATFORM_RESTIC_PASSWORD
# (S3 keys: PLATFORM_RESTIC_AWS_ACCESS_KEY_ID, PLATFORM_RESTIC_AWS_SECRET_ACCESS_KEY).
backup_offsite = None

# PostgreSQL's major version is read from images["postgres"] (…-pg15, postgres:15.x), or
# set here. A deploy never changes the major version of existing data by itself: see the
# README, "PostgreSQL major upgrade".
postgres_major = None
postgres_major_upgrade = False  # True: carry out that procedure when the major version changes

# Exact image tags; bump one and rerun the deploy to upgrade that service.
images = {
    "postgres": "pgvector/pgvector:0.8.0-pg15",
    "redis": "redis:7.4.5",
    "chatwoot": "chatwoot/chatwoot:v4.6.0",
    "n8n": "docker.n8n.io/n8nio/n8n:2.40.7",
    "directus": "directus/directus:12.3.1",
    "pangolin": "fosrl/pangolin:1.12.3",
    "traefik": "traefik:v3.5.3",
    "gerbil": "fosrl/gerbil:1.2.2",
}
