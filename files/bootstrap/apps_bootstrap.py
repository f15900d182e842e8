#!/usr/bin/env python3
"""Managed by the platform deploy (application layer). Sets the apps up for the business,
reading state first and changing only what differs, so a rerun creates nothing twice:

- Chatwoot: the account, its admin and n8n's automation agent (through Chatwoot's own
  `rails runner`), their tokens kept in secrets/; one WhatsApp inbox per department and the
  default inbox, the agents, the teams and the inboxes with exactly their members, the
  labels, and the platform's agent bot (n8n's identity, connected to the department inboxes).
- Directus: the schema of config/directus-schema.json (promotions and their post log, the
  triage log and business context), and n8n's least-privilege user with its token.
- n8n: the credentials (encrypted by n8n on import) and the workflows of files/n8n/, with
  this deploy's settings, imported and published.

Usage: apps_bootstrap.py STACK_ROOT [--check]. Reads config/apps.json (no secret) and secrets/.
Prints what it changed, never a secret. With --check it changes nothing and prints one JSON
line, {"drift": [...]}: what it would change in Chatwoot (the deploy's and the audit's view of
Chatwoot's people, teams, members, labels, bot and webhooks). Python standard library only.

The work is done by the modules beside this script, run by its path (so that its directory is
on sys.path): apps_common.py (the run's settings, output, secrets, docker compose), apps_http.py
(the apps' APIs), apps_chatwoot.py, apps_directus.py and apps_n8n.py.
"""

import json
import sys


def main():
    # The modules beside this script, imported here: importing this one does nothing, and no
    # __pycache__ is left beside the scripts of bin/, which only root reads.
    sys.dont_write_bytecode = True
    import apps_common as common
    from apps_chatwoot import setup_chatwoot
    from apps_directus import setup_directus
    from apps_n8n import setup_n8n

    common.configure(sys.argv)
    if common.CHECK:
        setup_chatwoot()
        print(json.dumps({"drift": common.CHANGED}))
        return
    ids = setup_chatwoot()
    setup_directus()
    setup_n8n(ids)
    common.log(f"done: {len(common.CHANGED)} change(s)" if common.CHANGED else "nothing to change")


if __name__ == "__main__":
    main()
