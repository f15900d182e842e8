"""make demo, on the sandbox host (make sandbox):

1. a signed test message to every configured WhatsApp number, and one line per message:
   what the platform did with it (number, department, inbox, the team and the person that
   hold the conversation, labels, outcome); one agent of each department is set online
   for it, so Chatwoot's own assignment has someone to give each conversation to;
2. a sample promotion in Directus, one run of the social auto-poster, and its log rows
   (platform, status, external id or error, note).
"""

import os
import sys
import time

from inbound_client import GROUP_DATA, Host, wait_for

MESSAGES = {
    "Sales": "Do you deliver to Linden?",
    "Support": "My router keeps dropping, can you help?",
    "Billing": "I want a refund for last month's invoice",
}


def inbound(host):
    # Scripted Claude answers: the refund request is uncertain, so it is escalated.
    host.simulator(
        "POST",
        "/_sim/anthropic",
        {
            "rules": [
                {
                    "match": "refund",
                    "intent": "billing",
                    "confidence": 0.4,
                    "summary": "Asks for a refund of last month's invoice.",
                }
            ]
        },
    )
    teams = {t["id"]: t["name"] for t in host.chatwoot("GET", "/teams")}
    inboxes = {i["id"]: i["name"] for i in host.chatwoot("GET", "/inboxes")["payload"]}
    # One person of each department's team online, so Chatwoot's own assignment has someone to offer it to.
    agents = {a["email"]: a for a in host.chatwoot("GET", "/agents")}
    online = [agents[d["agents"][-1]["email"]] for d in GROUP_DATA["departments"] if d.get("agents")]
    for agent in online:
        host.chatwoot("PATCH", f"/agents/{agent['id']}", {"availability": "online"})
    stamp = str(int(time.time()))[-5:]
    print(f"{'number':<14} {'department':<11} {'inbox':<18} {'team':<16} {'assignee':<14} {'labels':<28} outcome")
    for i, department in enumerate(GROUP_DATA["departments"]):
        sender = f"59260{i}{stamp}"
        status, body = host.send(department["name"], MESSAGES.get(department["name"], "Hello!"), sender)
        if status != 200:
            sys.exit(f"n8n answered {status} for {department['number']}: {body}")
        # Handed over: out of the bot's hands (open), to a team or, for "Any available", to any online agent.
        conversation = wait_for(
            f"the message to {department['number']}",
            lambda sender=sender: [
                c
                for c in host.conversations_of(sender, messages=False)
                if c.get("status") == "open" and c.get("labels")
            ],
            timeout=90,
        )[0]
        labels = conversation.get("labels") or []
        outcome = "replied" if "ai-replied" in labels else "escalated" if "escalated" in labels else "routed"
        meta = conversation.get("meta") or {}
        team = teams.get((meta.get("team") or {}).get("id"), "(any agent)")
        assignee = (meta.get("assignee") or {}).get("name") or "(nobody online)"
        print(
            f"{department['number']:<14} {department['name']:<11} {inboxes[conversation['inbox_id']]:<18} {team:<16} "
            f"{assignee:<14} {','.join(labels):<28} {outcome}"
        )
    for agent in online:
        host.chatwoot("PATCH", f"/agents/{agent['id']}", {"availability": "offline"})


def outbound(host):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    status, answer = host.directus_as(
        "directus_admin_token",
        "POST",
        "/items/promotions",
        {
            "title": f"Demo promotion {stamp}",
            "body": "Two-for-one lunch specials all week at our Georgetown branch.",
            "image": "https://cdn.example.com/promotions/lunch.jpg",
            "status": "active",
            "channels": ["facebook", "instagram", "tiktok"],
        },
    )
    if status != 200:
        sys.exit(f"Directus refused the sample promotion: {status} {answer}")
    promotion = answer["data"]
    host.run_poster()
    print(f"\npromotion #{promotion['id']} {promotion['title']!r}, posted by 02-social-media-auto-poster:")
    print(f"{'platform':<10} {'status':<9} {'external id / error':<48} note")
    for row in host.post_logs(promotion["id"]):
        print(
            f"{row['platform']:<10} {row['status']:<9} {(row['external_id'] or row['error'] or '-')[:48]:<48} "
            f"{row['note'] or ''}"
        )
    # An archived promotion is not posted again.
    host.directus_as("directus_admin_token", "PATCH", f"/items/promotions/{promotion['id']}", {"status": "archived"})


def main():
    host = Host(os.environ.get("SANDBOX_NAME", "sandbox-1"), os.environ.get("SANDBOX_SSH_PORT", "2222"))
    inbound(host)
    outbound(host)


if __name__ == "__main__":
    main()
