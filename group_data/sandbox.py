# The local sandbox host (make sandbox): a Debian 13 systemd container on this machine.
import os

domain = "sandbox.test"
acme_email = "ops@sandbox.test"
docker_source = "distro"

# The tests open many SSH connections in quick succession from one address; UFW's
# limit rule would refuse them. tests/e2e turns it on once and checks that it bites.
ssh_rate_limit = False

# Exercise the admin user and SSH hardening with the sandbox's own key (made by
# tools/sandbox.py before any deploy).
ssh_hardening = True
_public_key = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".sandbox", "id_ed25519.pub")
admin_ssh_keys = [open(_public_key).read().strip()] if os.path.exists(_public_key) else []
admin_user = "ops" if admin_ssh_keys else None

# Real PostgreSQL 15 + pgvector and Redis 7 built from Debian's packages, and labelled
# STAND-INs for the apps and the edge, whose images cannot be fetched here (sandbox/images/). They are
# built by tools/sandbox.py and delivered to the host as archives, not pulled.
images = {
    "postgres": "sandbox.local/postgres-pg15-pgvector:r1",
    "redis": "sandbox.local/redis-7:r1",
    "chatwoot": "sandbox.local/chatwoot-stand-in:v4.6.0-r3",
    "n8n": "sandbox.local/n8n-stand-in:2.40.7-r3",
    "directus": "sandbox.local/directus-stand-in:12.3.1-r3",
    "pangolin": "sandbox.local/pangolin-stand-in:1.12.3-r3",
    "traefik": "sandbox.local/traefik-stand-in:v3.5.3-r3",
}
offline_images = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".sandbox", "images.tar")
