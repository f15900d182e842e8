# Production group data. Copy to group_data/production.py (the name must match the
# inventory file) and fill in. Secrets never go here: see the README.

domain = "example.org"  # DNS: chat., n8n., cms. and pangolin. point at the server
acme_email = "ops@example.org"

# Ubuntu cloud images log in as a sudo user, not root:
ssh_user = "ubuntu"
_sudo = True

ssh_allow_cidrs = []  # e.g. ["203.0.113.0/24"] to accept SSH from your office only
ssh_hardening = True  # key log-in only

# admin_user = "ops"
# admin_ssh_keys = ["ssh-ed25519 AAAA... ops@laptop"]

# whatsapp_numbers = {"sales": "+5922221111", "support": "+5922222222", "billing": "+5922223333"}
