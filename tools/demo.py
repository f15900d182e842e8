"""make demo: a signed test message to every configured WhatsApp number on the sandbox
host (make sandbox), and one line per message: what the platform did with it.

    number  department  inbox  team  labels  replied|escalated
"""

import os
import sys
import time

from inbound_client import GROUP_DATA, Host, wait_for

MESSAGES = {"Sales": "Do you deliver to Linden?", "Support": "My router keeps dropping, can you help?",
            "Billing": "I want a refund for last month's invoice"}


def main():
    host = Host(os.environ.get("SANDBOX_NAME", "sandbox-1"), os.environ.get("SANDBOX_SSH_PORT", "2222"))
    # Scripted Claude answers: the refund request is uncertain, so it is escalated.
    host.simulator("POST", "/_sim/anthropic", {"rules": [{"match": "refund", "intent": "billing", "confidence": 0.4,
                                                          "summary": "Asks for a refund of last month's invoice."}]})
    teams = {t["id"]: t["name"] for t in host.chatwoot("GET", "/teams")}
    inboxes = {i["id"]: i["name"] for i in host.chatwoot("GET", "/inboxes")["payload"]}
    stamp = str(int(time.time()))[-5:]
    print(f"{'number':<14} {'department':<11} {'inbox':<18} {'team':<16} {'labels':<28} outcome")
    for i, department in enumerate(GROUP_DATA["departments"]):
        sender = f"59260{i}{stamp}"
        status, body = host.send(department["name"], MESSAGES.get(department["name"], "Hello!"), sender)
        if status != 200:
            sys.exit(f"n8n answered {status} for {department['number']}: {body}")
        conversation = wait_for(f"the message to {department['number']}", lambda: [
            c for c in host.conversations_of(sender, messages=False) if {"ai-replied", "escalated"} & set(c.get("labels") or [])
            or (not GROUP_DATA.get("ai_replies") and c.get("labels"))], timeout=90)[0]
        labels = conversation.get("labels") or []
        outcome = "replied" if "ai-replied" in labels else "escalated" if "escalated" in labels else "routed"
        team = teams.get(((conversation.get("meta") or {}).get("team") or {}).get("id"), "-")
        print(f"{department['number']:<14} {department['name']:<11} {inboxes[conversation['inbox_id']]:<18} {team:<16} "
              f"{','.join(labels):<28} {outcome}")


if __name__ == "__main__":
    main()
