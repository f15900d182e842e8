# Production group data. Copy to group_data/production.py (the name must match the
# inventory file) and fill in. Secrets never go here: see the README.

domain = "example.org"  # DNS: chat., n8n., cms. and pangolin. point at the server
acme_email = "ops@example.org"

# Ubuntu cloud images log in as a sudo user, not root:
ssh_user = "ubuntu"
_sudo = True

ssh_allow_cidrs: list[str] = []  # e.g. ["203.0.113.0/24"] to accept SSH from your office only
ssh_hardening = True  # key log-in only

# admin_user = "ops"
# admin_ssh_keys = ["ssh-ed25519 AAAA... ops@laptop"]
# Every key in an authorized_keys file and every sudo right must be allowed here (or be the
# admin user's): the deploy stops, naming it, at anything else (docs/hardening.md).
ssh_keys_allowed = {"ubuntu": ["ssh-ed25519 AAAA... you@laptop"], "root": ["ssh-ed25519 AAAA... you@laptop"]}
sudo_users_allowed = ["ubuntu"]

# The business (see the README's "The application layer"). Each WhatsApp number is a
# department: its Chatwoot inbox, the team that gets its conversations, and who gets
# what triage cannot answer. Needs PLATFORM_META_APP_SECRET and
# PLATFORM_WHATSAPP_ACCESS_TOKEN (and PLATFORM_CLAUDE_API_KEY with ai_replies).
# chatwoot_account_name = "Acme support"
# teams = ["Sales Team", "Support Team", "Shared Pool", "Any available", "Technical leads", "Accounts team"]
# supervisors = ["lead@example.org"]
# whatsapp_business_account_id = "102290129340398"
# departments = [
#     {"name": "Sales", "number": "+5922221111", "phone_number_id": "1100000001", "inbox": "sales-whatsapp",
#      "team": "Sales Team", "escalation_team": "Any available"},
#     {"name": "Support", "number": "+5922222222", "phone_number_id": "1100000002", "inbox": "support-whatsapp",
#      "team": "Support Team", "escalation_team": "Technical leads"},
#     {"name": "Billing", "number": "+5922223333", "phone_number_id": "1100000003", "inbox": "billing-whatsapp",
#      "team": "Shared Pool", "escalation_team": "Accounts team"},
# ]
# web_chats = [{"inbox": "website", "website_url": "https://www.example.org", "department": "Support"}]
# The Page's Messenger in Chatwoot (needs facebook_page_id below and PLATFORM_FACEBOOK_PAGE_TOKEN; in
# Meta's app, Messenger's webhook is https://<chatwoot domain>/bot with the verify token of secrets/
# whatsapp_verify_token):
# facebook_inbox = {"inbox": "facebook", "department": "Sales"}
# ai_replies = True                    # Claude answers what it is sure of; the rest is escalated
# triage_confidence_threshold = 0.75
#
# The social auto-poster (n8n 02-social-media-auto-poster) posts active Directus
# promotions on this schedule, in n8n's timezone. Each platform is on once configured:
# facebook_page_id with PLATFORM_FACEBOOK_PAGE_TOKEN, instagram_user_id with
# PLATFORM_INSTAGRAM_ACCESS_TOKEN, tiktok_notify_email with smtp (TikTok gets an e-mail).
# timezone = "America/Guyana"
# social_schedule = "0 9 * * 1,4"     # Monday and Thursday at 09:00
# facebook_page_id = "104620389612345"
# instagram_user_id = "17841400000000000"
# tiktok_notify_email = "social@example.org"
