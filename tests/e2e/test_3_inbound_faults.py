"""Inbound loses nothing: a burst of WhatsApp messages, delivered by the simulator as Meta delivers them
(again while not answered 2xx in time), with a fault in the middle. For each fault, once it is over:
every message was answered 2xx, is in Chatwoot once, in one conversation per customer, and that
conversation was triaged or escalated (open, with a team or labelled escalated), with at most one
automatic reply.

The faults are real: processes killed, containers stopped and restarted on the sandbox host."""

import shlex
import subprocess
import time

import pytest

from conftest import DC
from inbound_helpers import (
    HOST,
    fresh_simulator,  # noqa: F401 (an autouse fixture: pytest finds it in the module, unreferenced)
    new_sender,
    simulator,
)

BURST = 6
WORKER = "msgplatform-n8n-worker-1"


def burst(department="Sales", text="Do you deliver on Sundays?", tags=("",)):
    senders = [new_sender() for _ in range(BURST)]
    texts = [(s, f"{text} ({i}) {tags[i % len(tags)]}".rstrip()) for i, s in enumerate(senders)]
    ids = HOST.deliver_like_meta(department, texts, timeout=20, first_pause=1, max_pause=10)
    return senders, ids


def handed_over(conversation):
    """Triaged (open, with the department's team) or escalated (open, labelled so; a department whose
    escalation team is "Any available" escalates to no team)."""
    return conversation["status"] == "open" and (
        conversation["meta"].get("team") or "escalated" in (conversation.get("labels") or [])
    )


def settled(senders, ids, timeout):
    """Waits until every delivery was answered 2xx and every customer's conversation is open with a team;
    then checks that nothing was lost or done twice."""
    # The bursts' conversations are among those active in the last 15 minutes (the list's first pages).
    deadline, state, since = time.time() + timeout, "no poll yet", int(time.time()) - 900
    while time.time() < deadline:
        deliveries = [d for d in simulator("GET", "/_sim/meta/deliveries") if d["id"] in ids]
        try:
            by_sender = HOST.conversations_by_sender(senders, since=since)
        except RuntimeError as e:  # Chatwoot still starting after its fault
            state = f"Chatwoot not answering: {str(e)[-200:]}"
            time.sleep(3)
            continue
        undelivered = [d for d in deliveries if not d["delivered"]]
        handled = {s for s, cs in by_sender.items() if any(handed_over(c) for c in cs)}
        waiting = set(senders) - handled
        state = f"{len(undelivered)} deliveries not answered 2xx, {len(waiting)} customers not triaged nor escalated"
        if not undelivered and not waiting and len(deliveries) == len(ids):
            break
        time.sleep(3)
    else:
        raise AssertionError(f"not settled within {timeout} s: {state}")
    replies = {s: 0 for s in senders}
    for r in simulator("GET", "/_sim/requests"):
        to = (r.get("body") or {}).get("to") if r["service"] == "whatsapp" and r["method"] == "POST" else None
        if to in replies:
            replies[to] += 1
    for sender, conversations in by_sender.items():
        assert len(conversations) == 1, f"{sender}: {len(conversations)} conversations"
        incoming = [m for m in messages_of(conversations[0]) if m["message_type"] in (0, "incoming")]
        assert len(incoming) == 1, f"{sender}: the message is there {len(incoming)} times"
        assert replies[sender] <= 1, f"{sender}: {replies[sender]} automatic replies"
    return deliveries


def messages_of(conversation, timeout=60):
    """The conversation's messages; Chatwoot may still be failing for a while after its fault (the fault's
    service restarted under it): asked again until it answers."""
    deadline = time.time() + timeout
    while True:
        try:
            return HOST.chatwoot("GET", f"/conversations/{conversation['id']}/messages")["payload"]
        except (RuntimeError, ValueError, KeyError):  # not answering, or answering an error page
            if time.time() > deadline:
                raise
            time.sleep(2)


def in_flight(senders, ids):
    """How much of the burst is unfinished: deliveries not answered 2xx yet, and customers not yet triaged
    nor escalated. A fault must come while some is: on a fast machine all six may be handed off to Chatwoot
    within a second, while their triage takes longer."""
    undelivered = sum(not d["delivered"] for d in simulator("GET", "/_sim/meta/deliveries") if d["id"] in ids)
    by_sender = HOST.conversations_by_sender(senders, since=int(time.time()) - 900)
    return undelivered + sum(not any(handed_over(c) for c in cs) for cs in by_sender.values())


def sh(script):
    return HOST.sh(script)


def test_the_worker_killed_with_sigkill_mid_burst(sandbox):
    senders, ids = burst()
    time.sleep(1)
    assert in_flight(senders, ids), "the burst was over before the fault"
    # The container's first process, killed as a crash would: Docker's restart policy brings it back.
    sh(f"kill -9 $(docker inspect -f '{{{{.State.Pid}}}}' {WORKER})")
    settled(senders, ids, timeout=300)
    assert sh(f"docker inspect -f '{{{{.RestartCount}}}}' {WORKER}").strip() != "0", "the worker was not restarted"


@pytest.mark.parametrize("service", ["n8n", "redis"])
def test_a_service_restarted_mid_burst(sandbox, service):
    """n8n's main process (webhooks in flight are cut) or Redis (the queue's store) restarted mid-burst."""
    senders, ids = burst()
    time.sleep(0.5)
    assert in_flight(senders, ids), "the burst was over before the fault"
    sh(f"{DC} restart {service}")
    settled(senders, ids, timeout=300)


def test_chatwoot_unavailable_for_60_s(sandbox):
    sh(f"{DC} stop chatwoot-web")
    try:
        senders, ids = burst()
        time.sleep(60)
        attempts = {d["id"]: len(d["attempts"]) for d in simulator("GET", "/_sim/meta/deliveries") if d["id"] in ids}
        assert all(n > 1 for n in attempts.values()), f"answered 2xx while Chatwoot was down: {attempts}"
    finally:
        sh(f"{DC} start chatwoot-web")
    settled(senders, ids, timeout=300)


def test_directus_unavailable(sandbox):
    sh(f"{DC} stop directus")
    try:
        senders, ids = burst(department="Support", text="What are your opening hours?")
        time.sleep(20)
    finally:
        sh(f"{DC} start directus")
    settled(senders, ids, timeout=300)


def test_claude_busy_for_a_minute(sandbox):
    """Half the customers' messages meet 529 (overloaded), the other half 429 (rate limited), for a minute."""
    rules = [{"match": "[529]", "error": 529}, {"match": "[429]", "error": 429}]
    simulator("POST", "/_sim/anthropic", {"rules": rules})
    try:
        senders, ids = burst(department="Support", text="What are your opening hours?", tags=("[529]", "[429]"))
        time.sleep(60)
    finally:
        simulator("POST", "/_sim/anthropic", {"rules": []})
    settled(senders, ids, timeout=300)


def test_the_worker_oom_killed_mid_burst(sandbox):
    """A real kernel OOM kill of the worker at its memory limit: the worker's process is made the OOM killer's
    first choice (oom_score_adj 1000, set from the host) and a memory hog inside its container fills the limit,
    so the kernel kills the worker; Docker's restart policy starts the worker again."""
    restarts, started = sh(f"docker inspect -f '{{{{.RestartCount}}}}' {WORKER}").strip(), int(time.time()) - 1
    kills = kernel_oom_kills()
    sh("for p in $(pgrep -f '[n]8n worker'); do echo 1000 > /proc/$p/oom_score_adj; done")
    hog = "setTimeout(() => { const a = []; setInterval(() => a.push(Buffer.alloc(16 << 20, 1)), 100); }, 2000)"
    senders, ids = burst()
    sh(f"docker exec -d {WORKER} node -e {shlex.quote(hog)}")
    wait = time.time() + 90
    while time.time() < wait and sh(f"docker inspect -f '{{{{.RestartCount}}}}' {WORKER}").strip() == restarts:
        time.sleep(1)
    assert sh(f"docker inspect -f '{{{{.RestartCount}}}}' {WORKER}").strip() != restarts, (
        "the worker was not OOM-killed"
    )
    events = f"docker events --since {started} --until $(date +%s) --filter container={WORKER} --filter event=oom"
    assert sh(events).strip() or kernel_oom_kills() > kills, "the worker stopped, but not for lack of memory"
    settled(senders, ids, timeout=300)


def kernel_oom_kills():
    """The kernel's records of OOM kills in the worker's cgroup (`oom-kill:... task_memcg=/docker/<id>`).
    They stand in for Docker's `oom` event, which is not certain on cgroup v1: containerd drops it when
    the container's cgroup is gone before it reads the notice, as a restart right after the kill causes."""
    container_id = sh(f"docker inspect -f '{{{{.Id}}}}' {WORKER}").strip()
    kernel = subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout
    return sum("oom-kill:" in line and container_id in line for line in kernel.splitlines())
