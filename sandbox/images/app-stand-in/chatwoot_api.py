"""STAND-IN for the part of Chatwoot v4.15.1 that the platform's deploy and n8n workflows use. It is NOT Chatwoot.

stand_in.py loads it when STAND_IN_APP=chatwoot. It follows Chatwoot's source at v4.15.1 (controllers,
models, presenters, listeners, jobs): CONTRACT.md beside this file lists each behaviour with the source path
it follows. State lives in the Chatwoot database (table cw_objects), so it survives restarts. In short:
- the headless bootstrap `bundle exec rails runner "<code using AccountBuilder>"` (bootstrap());
- the Application API under /api/v1/accounts/{id} the platform uses, authenticated by `api_access_token`
  (a user's or an agent bot's), with Chatwoot's permissions: administrators, agents (their inboxes and
  teams only) and agent bots (BOT_ACCESSIBLE_ENDPOINTS only);
- webhooks (account webhooks, an API inbox's webhook_url, the inbox's agent bot) with Chatwoot's payloads,
  signature headers, 5 s timeout, bot retries and fall-back, refused to private addresses unless
  SAFE_FETCH_ALLOW_PRIVATE_NETWORK is true;
- conversations created `pending` in an inbox with an active bot; auto-assignment (round robin among
  online inbox members, team auto-assign) when a conversation opens or gets a team;
- WhatsApp Cloud: the credential check, Meta's verify handshake, X-Hub-Signature-256 on inbound webhooks,
  the first message or status of a payload, outbound text messages, and the callback registration a
  manual channel attempts (recorded, never sent: it would go to graph.facebook.com).

What it does not prove: anything about Chatwoot's own code, UI, Sidekiq, Redis use, presence (an agent is
online when its availability is online), assignment limits and fair distribution, automation rules,
attachments and media, WhatsApp templates, markdown conversion, email, channel types other than API and
WhatsApp Cloud, or the exact text of every error. All requests are serialised by one database lock.
Env: POSTGRES_* (via stand_in.db_params), WHATSAPP_CLOUD_BASE_URL, WHATSAPP_APP_SECRET,
SAFE_FETCH_ALLOW_PRIVATE_NETWORK, FRONTEND_URL, and for the bootstrap CW_* (see bootstrap()).

The code is split by area, each module beside this one (this module loads them and is the entry point
stand_in.py imports: configure, ensure_schema, handles, serve_request, bootstrap):
- cw_store.py: the shared state (environment, database parameters, log) and the storage (table cw_objects);
- cw_contract.py: the request contract and the error answers; cw_views.py: what Chatwoot renders;
- cw_core.py: the request context, its webhook listeners and the models' callbacks (conversations, messages,
  contacts); cw_assignment.py: auto-assignment and round robin;
- cw_net.py: outbound HTTP and SafeFetch; cw_delivery.py: webhook deliveries and replies after a commit;
- cw_http.py: routing, authentication and permissions;
- the API by resource: cw_inboxes.py (inboxes, channels, agent bots, inbox members), cw_accounts.py (agents,
  labels, teams, the bootstrap), cw_webhooks.py, cw_contacts.py, cw_conversations.py, cw_widget.py;
- the channels: cw_whatsapp.py (WhatsApp Cloud), cw_facebook.py (Messenger and Instagram through a Page).
"""

# Each API module registers its routes in cw_http.ROUTES when it loads; cw_delivery is loaded now, not at the
# first commit (cw_core.Ctx.after_commit imports it).
import cw_accounts  # noqa: F401
import cw_contacts  # noqa: F401
import cw_conversations  # noqa: F401
import cw_delivery  # noqa: F401
import cw_facebook  # noqa: F401
import cw_inboxes  # noqa: F401
import cw_webhooks  # noqa: F401
import cw_whatsapp  # noqa: F401
import cw_widget  # noqa: F401
from cw_accounts import bootstrap
from cw_http import handles, serve_request
from cw_net import unsafe_url  # tests/e2e/test_3_chatwoot_contract.py probes it
from cw_store import configure, ensure_schema

__all__ = ["bootstrap", "configure", "ensure_schema", "handles", "serve_request", "unsafe_url"]
