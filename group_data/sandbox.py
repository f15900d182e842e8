# The local sandbox host (make sandbox): a Debian 13 systemd container on this machine.
import os

domain = "sandbox.test"
acme_email = "ops@sandbox.test"
# Directus refuses an admin address under .test (it checks the TLD); example.com is reserved.
admin_email = "ops@example.com"
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
# tools/sandbox.py gives root and the image's sudo user "admin" (as a cloud image's "ubuntu")
# the same key; anything else in an authorized_keys file or in sudoers stops the deploy.
ssh_keys_allowed = {"root": admin_ssh_keys, "admin": admin_ssh_keys}
sudo_users_allowed = ["admin"]

# The sandbox's network: each host and its own ACME server (Pebble) at fixed addresses,
# from the host's SSH port (tools/sandbox.py starts them).
_SANDBOX_SUBNET = "10.213.77.0/24"


def _sandbox_addresses(port):
    """(host, its ACME server, its vendors' simulator) on _SANDBOX_SUBNET for the host whose SSH port is `port`."""
    offset = int(port) - 2200
    assert 0 < offset < 75, f"sandbox SSH ports are 2201-2274, not {port}"
    return tuple(f"10.213.77.{3 * offset + 10 + i}" for i in range(3))


_name = os.environ.get("SANDBOX_NAME", "sandbox-1")
_state = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".sandbox")
# TLS for real: Traefik gets its certificates from the host's Pebble by HTTP-01, validated
# against the host's port 80 (Pebble's TLS certificate is the sandbox CA's).
# (group_data/sandbox_cluster.py runs this file with its primary's port.)
_addresses = _sandbox_addresses(globals().get("_PRIMARY_PORT") or os.environ.get("SANDBOX_SSH_PORT", "2222"))
acme_ca_server = f"https://{_addresses[1]}:14000/dir"
acme_ca_certificate = os.path.join(_state, "ca.pem") if os.path.exists(os.path.join(_state, "ca.pem")) else None

# Real PostgreSQL 15 + pgvector and Redis 7 from Debian's packages; the real n8n, Directus
# and Traefik built from npm and PyPI the way their vendors build their images; labelled
# STAND-INs for Chatwoot and Pangolin, which cannot be had here (sandbox/images/).
# tools/sandbox.py builds them and pushes them to the sandbox's registry, which stands in
# for Docker Hub: the host pulls them like production does.
_registry = "registry.sandbox.test:5000"
images = {
    "postgres": f"{_registry}/postgres-pg15-pgvector:r1",
    "redis": f"{_registry}/redis-7:r1",
    "chatwoot": f"{_registry}/chatwoot-stand-in:v4.15.1-r16",
    "n8n": f"{_registry}/n8n:2.40.7-real1",
    "directus": f"{_registry}/directus:12.4.0-real1",
    "pangolin": f"{_registry}/pangolin-stand-in:1.12.3-r3",
    "traefik": f"{_registry}/traefik:3.5.3-real2",
}

# The business: the seed's three WhatsApp numbers and its routing table. Meta, WhatsApp
# Cloud and Claude are a labelled SIMULATOR beside the host (sandbox/simulators/vendors.py):
# only the sandbox points the base URLs at it; production keeps the vendors' defaults.
# People in every department and escalation team, and a supervisor on every inbox, so the demo and
# the tests exercise Chatwoot's real assignment.
teams = ["Sales Team", "Support Team", "Shared Pool", "Technical leads", "Accounts team"]
whatsapp_business_account_id = "102290129340398"
departments = [
    {
        "name": "Sales",
        "number": "+5922221111",
        "phone_number_id": "1100000001",
        "inbox": "sales-whatsapp",
        "team": "Sales Team",
        "escalation_team": "Any available",
        "agents": [
            {"name": "Sam Sales", "email": "sam.sales@example.com"},
            {"name": "Sue Sales", "email": "sue.sales@example.com"},
        ],
    },
    {
        "name": "Support",
        "number": "+5922222222",
        "phone_number_id": "1100000002",
        "inbox": "support-whatsapp",
        "team": "Support Team",
        "escalation_team": "Technical leads",
        "agents": [
            {"name": "Pat Support", "email": "pat.support@example.com"},
            {"name": "Lee Lead", "email": "lee.lead@example.com"},
        ],
    },
    {
        "name": "Billing",
        "number": "+5922223333",
        "phone_number_id": "1100000003",
        "inbox": "billing-whatsapp",
        "team": "Shared Pool",
        "escalation_team": "Accounts team",
        "agents": [
            {"name": "Bea Billing", "email": "bea.billing@example.com"},
            {"name": "Ace Accounts", "email": "ace.accounts@example.com"},
        ],
    },
]
# The website's chat window, answered like the Support number (docs: web_chats).
web_chats = [{"inbox": "website", "website_url": "https://www.sandbox.test", "department": "Support"}]
# The Facebook Page's Messenger conversations (facebook_page_id below), answered like the Sales number.
facebook_inbox = {"inbox": "facebook", "department": "Sales"}
team_members = {"Technical leads": ["lee.lead@example.com"], "Accounts team": ["ace.accounts@example.com"]}
supervisors = ["supervisor@example.com"]
ai_replies = True
# The fault tests' bound: a conversation triage never finished goes to people this long after it went quiet.
triage_deadline_s = 60
_simulator = f"http://{_addresses[2]}:8090"
whatsapp_api_base_url = _simulator
anthropic_api_base_url = _simulator

# The auto-poster: a Page, an Instagram account and TikTok notifications, posted to the
# simulator's Graph API; mail goes to its SMTP sink (it speaks real SMTP).
facebook_page_id = "104620389612345"
instagram_user_id = "17841400000000001"
tiktok_notify_email = "social@example.com"
graph_api_base_url = _simulator
smtp = {"host": _addresses[2], "port": 25, "user": "platform", "sender": "platform@example.com"}
timezone = "America/Guyana"

# The simulator's made-up credentials (tools/sandbox.py writes them once), handed to the
# deploy the way an operator hands real ones: a secrets file of PLATFORM_* lines.
secrets_file = os.path.join(_state, "vendors.env")
