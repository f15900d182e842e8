"""What the inbound tests share: the sandbox host's Chatwoot stand-in and the vendors'
simulator (tools/inbound_client.py), fresh simulator rules for every test, new senders."""

import json
import shlex
import time

import pytest

from tools.inbound_client import Host

from conftest import DC, GROUP_DATA, NAME, PORT

DEPARTMENTS = {d["name"]: d for d in GROUP_DATA["departments"]}
AUTOMATION = f"n8n-automation@{GROUP_DATA['admin_email'].split('@')[1]}"
HOST = Host(NAME, PORT)
simulator, chatwoot = HOST.simulator, HOST.chatwoot


def host_secret(sandbox, name):
    return sandbox.sh(f"cat /opt/msgplatform/secrets/{name}").strip()


def inbox_ids():
    return {i["name"]: i["id"] for i in chatwoot("GET", "/inboxes")["payload"]}


def new_sender():
    """A customer this run has not seen (the tests may run again on the same host)."""
    time.sleep(0.001)
    return f"5926{time.time_ns() // 1000 % 10**7:07d}"


def labelled(sender, label):
    return [c for c in HOST.conversations_of(sender) if label in (c.get("labels") or [])]


@pytest.fixture(autouse=True)
def fresh_simulator(sandbox):
    simulator("POST", "/_sim/reset")
    simulator(
        "POST",
        "/_sim/anthropic",
        {
            "rules": [
                {"match": "refund", "intent": "billing", "confidence": 0.3, "summary": "Wants a refund."},
                {"match": "rate-limited", "error": 429},
                {"match": "broken", "error": 500},
                {"match": "slow", "delay": 40},
                {"match": "take your time", "delay": 10},
                {"match": "speak to a manager", "intent": "complaint", "confidence": 0.99},
                {"match": "cut short", "stop_reason": "max_tokens"},
                {"match": "busy once", "error": 529, "times": 1},
            ]
        },
    )


def chatwoot_objects(sandbox, kind):
    """The stand-in's own records of a kind (what it would have sent to Meta, for one)."""
    sql = f"select data from cw_objects where kind = '{kind}'"
    out = sandbox.sh(f"{DC} exec -T postgres psql -U postgres -d chatwoot -tAc {shlex.quote(sql)}")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def lead_captures(sandbox, *fragments, status=None):
    """Executions of 03-whatsapp-lead-capture whose data holds every fragment (n8n's own records)."""
    sql = (
        'select count(*) from execution_entity e join execution_data d on d."executionId" = e.id '
        "where e.\"workflowId\" = 'platformLeadCapt'"
        + (f" and e.status = '{status}'" if status else "")
        + "".join(f" and d.data like '%{f}%'" for f in fragments)
    )
    return int(sandbox.sh(f"{DC} exec -T postgres psql -U postgres -d n8n -tAc {shlex.quote(sql)}").strip() or 0)
