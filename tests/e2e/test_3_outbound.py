"""Outbound, end to end: the shipped 02-social-media-auto-poster run by the real n8n (its
"Run now" trigger, by n8n's CLI), promotions and post logs in the real Directus (schema
from files/directus/), the vendors' SIMULATOR answering as Meta's Graph API and Claude,
and its SMTP sink receiving the TikTok e-mail over real SMTP."""

import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tools.inbound_client import POSTER, Host

from conftest import DC, GROUP_DATA, N8N_CLI, NAME, PORT, ROOT, assert_no_secret_in_the_apps, changed

HOST = Host(NAME, PORT)
simulator = HOST.simulator
SCHEMA = ROOT / "files" / "directus" / "schema.json"


@pytest.fixture(autouse=True)
def fresh_simulator(sandbox):
    simulator("POST", "/_sim/reset")


@pytest.fixture
def promotion(sandbox):
    """Makes active promotions (a unique title each); archives them afterwards, so later runs leave them alone."""
    made = []

    def make(channels=("facebook", "instagram", "tiktok"), image="https://cdn.example.com/promo.jpg", **fields):
        title = f"Promo {time.time_ns()}"
        body = {
            "title": title,
            "body": f"Two for one at {title}.",
            "status": "active",
            "channels": list(channels),
            "image": image,
            "start_date": "2026-01-01T00:00:00Z",
            "end_date": "2099-01-01T00:00:00Z",
            **fields,
        }
        item = admin("POST", "/items/promotions", body)["data"]
        made.append(item["id"])
        return item

    yield make
    for item_id in made:
        admin("PATCH", f"/items/promotions/{item_id}", {"status": "archived"})


def admin(method, path, body=None):
    status, answer = HOST.directus_as("directus_admin_token", method, path, body)
    assert status in (200, 204), f"{method} {path}: {status} {answer}"
    return answer


def graph(service):
    return [r for r in simulator("GET", "/_sim/requests") if r.get("service") == service]


def logs(item):
    return {row["platform"]: row for row in HOST.post_logs(item["id"])}


def stored_poster():
    """(the schedule trigger's rule, the time zone, whether it is published) as n8n exports the poster."""
    exported = json.loads(
        HOST.sh(f"{N8N_CLI} 'n8n export:workflow --id={POSTER} --output=/tmp/w.json >/dev/null && cat /tmp/w.json'")
    )[0]
    schedule = next(n for n in exported["nodes"] if n["type"] == "n8n-nodes-base.scheduleTrigger")
    return schedule["parameters"]["rule"]["interval"], exported["settings"]["timezone"], exported["active"]


def test_the_poster_is_published_on_the_seed_schedule_in_the_operators_time_zone(sandbox):
    # The shipped file holds no schedule: the deploy writes social_schedule and timezone in.
    assert stored_poster() == ([{"field": "cronExpression", "expression": "0 9 * * 1,4"}], "America/Guyana", True)


def test_the_schema_snapshot_is_applied(sandbox):
    snapshot = json.loads(SCHEMA.read_text())
    for collection in ("promotions", "social_post_logs", "triage_log", "business_context"):
        fields = {f["field"] for f in admin("GET", f"/fields/{collection}")["data"]}
        assert fields == {f["field"] for f in snapshot["fields"] if f["collection"] == collection}, collection


def test_n8n_can_read_promotions_and_write_logs_and_nothing_else(sandbox, promotion):
    item = promotion()

    def as_n8n(method, path, body=None):
        return HOST.directus_as("directus_n8n_token", method, path, body)[0]

    assert as_n8n("GET", f"/items/promotions/{item['id']}") == 200
    assert as_n8n("POST", "/items/social_post_logs", {"platform": "test", "status": "skipped", "note": "e2e"}) in (
        200,
        204,
    )
    assert as_n8n("GET", "/items/business_context") == 200
    assert as_n8n("POST", "/items/triage_log", {"action": "e2e"}) in (200, 204)
    for method, path, body in [
        ("POST", "/items/promotions", {"title": "x", "body": "x"}),
        ("PATCH", f"/items/promotions/{item['id']}", {"status": "archived"}),
        ("DELETE", f"/items/promotions/{item['id']}", None),
        ("GET", "/items/social_post_logs", None),
        ("GET", "/items/triage_log", None),
        ("GET", "/users", None),
        ("POST", "/collections", {"collection": "x"}),
        ("GET", "/schema/snapshot", None),
    ]:
        assert as_n8n(method, path, body) in (401, 403), f"n8n's Directus user may {method} {path}"


def test_one_run_posts_to_facebook_and_instagram_and_mails_tiktok(sandbox, promotion):
    item = promotion()
    draft, expired = promotion(status="draft"), promotion(end_date="2026-01-02T00:00:00Z")
    future = promotion(start_date="2099-01-01T00:00:00Z")
    simulator(
        "POST",
        "/_sim/anthropic",
        {"rules": [{"match": item["title"], "reply": f"Caption by Claude for {item['title']}"}]},
    )
    HOST.run_poster()
    rows = logs(item)
    assert {p: r["status"] for p, r in rows.items()} == {
        "facebook": "posted",
        "instagram": "posted",
        "tiktok": "notified",
    }, rows
    assert all(
        r["external_id"] and not r["error"] and r["caption"].startswith("Caption by Claude") for r in rows.values()
    ), rows
    # Facebook: a photo post with the caption; Instagram: container, status until FINISHED, publish.
    photo = [r for r in graph("facebook") if r["edge"] == "photos"]
    assert [(r["params"]["url"], r["params"]["caption"]) for r in photo] == [
        (item["image"], f"Caption by Claude for {item['title']}")
    ]
    assert rows["facebook"]["external_id"] == photo[0]["answer"]["post_id"]
    steps = [r["edge"] for r in graph("instagram")]
    assert steps[0] == "media" and steps[-1] == "media_publish" and "status" in steps, steps
    assert rows["instagram"]["external_id"] == graph("instagram")[-1]["answer"]["id"]
    # TikTok: an e-mail over real SMTP with the caption and the image link.
    mail = simulator("GET", "/_sim/mail")
    assert (
        len(mail) == 1 and mail[0]["to"] == [GROUP_DATA["tiktok_notify_email"]] and item["title"] in mail[0]["subject"]
    )
    assert f"Caption by Claude for {item['title']}" in mail[0]["body"] and item["image"] in mail[0]["body"]
    assert mail[0]["login"] == "platform"
    # Not active, or out of its dates: nothing posted, nothing logged.
    assert not HOST.post_logs(draft["id"]) and not HOST.post_logs(expired["id"]) and not HOST.post_logs(future["id"])


def test_a_second_run_in_the_same_slot_posts_nothing_twice(sandbox, promotion):
    item = promotion()
    HOST.run_poster()
    first = HOST.post_logs(item["id"])
    posts = len(simulator("GET", "/_sim/graph")["posts"])
    HOST.run_poster()
    assert HOST.post_logs(item["id"]) == first and len(first) == 3
    assert len(simulator("GET", "/_sim/graph")["posts"]) == posts and len(simulator("GET", "/_sim/mail")) == 1


FAULTS = [  # (the Graph simulator's scripted fault, the platform it fails, the error logged)
    ({"platform": "facebook", "error": 190}, "facebook", "Graph error 190"),
    ({"platform": "facebook", "status": 500}, "facebook", "HTTP 500"),
    ({"platform": "instagram", "container_status": "ERROR"}, "instagram", "media container ended in ERROR"),
    ({"platform": "instagram", "container_status": "EXPIRED"}, "instagram", "media container ended in EXPIRED"),
]


def test_one_platform_failing_does_not_stop_the_others(sandbox, promotion):
    """One promotion per fault, all in one run (each fault matched by its promotion's caption)."""
    items = [promotion() for _ in FAULTS]
    simulator(
        "POST",
        "/_sim/anthropic",
        {"rules": [{"match": i["title"], "reply": f"Caption for {i['title']}"} for i in items]},
    )
    simulator(
        "POST",
        "/_sim/graph",
        {"rules": [{**fault, "match": i["title"]} for i, (fault, _, _) in zip(items, FAULTS, strict=True)]},
    )
    HOST.run_poster()
    first = {}
    for item, (fault, platform, error) in zip(items, FAULTS, strict=True):
        rows = first[item["id"]] = logs(item)
        assert rows[platform]["status"] == "failed" and error in rows[platform]["error"], (fault, rows[platform])
        assert {p: r["status"] for p, r in rows.items() if p != platform} == {
            p: s
            for p, s in {"facebook": "posted", "instagram": "posted", "tiktok": "notified"}.items()
            if p != platform
        }, fault
    # The failures released their claims: once the faults are gone, a rerun in the same slot posts those only.
    simulator("POST", "/_sim/graph", {"rules": []})
    HOST.run_poster()
    for item, (fault, platform, _) in zip(items, FAULTS, strict=True):
        again = [
            r for r in HOST.post_logs(item["id"]) if r["id"] not in {row["id"] for row in first[item["id"]].values()}
        ]
        assert [(r["platform"], r["status"]) for r in again] == [(platform, "posted")], (fault, again)


def test_when_claude_fails_the_promotions_own_text_is_posted_and_logged(sandbox, promotion):
    item = promotion(channels=["facebook"])
    simulator("POST", "/_sim/anthropic", {"rules": [{"match": item["title"], "error": 500}]})
    HOST.run_poster()
    row = logs(item)["facebook"]
    assert row["status"] == "posted" and "Claude failed (HTTP 500" in row["note"], row
    assert [r["params"]["caption"] for r in graph("facebook")] == [f"{item['title']}\n\n{item['body']}"]


def test_without_an_image_facebook_gets_a_feed_post_and_instagram_is_skipped(sandbox, promotion):
    item = promotion(channels=["facebook", "instagram", "MySpace"], image=None)
    HOST.run_poster()
    rows = logs(item)
    assert rows["myspace"]["status"] == "skipped" and "unknown channel myspace" in rows["myspace"]["note"]
    assert rows["facebook"]["status"] == "posted" and [r["edge"] for r in graph("facebook")] == ["feed"]
    assert (
        rows["instagram"]["status"] == "skipped" and "no image" in rows["instagram"]["note"] and not graph("instagram")
    )


def test_a_log_row_directus_refuses_fails_the_run_after_every_post_and_the_deploy_repairs_the_grant(sandbox, promotion):
    item = promotion(channels=["facebook", "tiktok"])
    policy = admin("GET", "/policies?filter[name][_eq]=n8n%20automation")["data"][0]["id"]
    grant = admin("GET", f"/permissions?filter[policy][_eq]={policy}&filter[collection][_eq]=social_post_logs")["data"][
        0
    ]
    admin("DELETE", f"/permissions/{grant['id']}")
    with pytest.raises(RuntimeError, match="2 post attempt\\(s\\) not logged in Directus"):
        HOST.run_poster()
    assert len(simulator("GET", "/_sim/graph")["posts"]) == 1 and len(simulator("GET", "/_sim/mail")) == 1
    assert "create on social_post_logs granted" in sandbox.sh(
        "python3 /opt/msgplatform/bin/apps-bootstrap.py /opt/msgplatform"
    )
    assert not HOST.post_logs(item["id"])


def test_a_new_schedule_and_a_changed_snapshot_are_applied_by_the_next_deploy_and_undone_by_the_one_after(
    sandbox, promotion, tmp_path
):
    """One deploy with both changes (each restarts what it must once): the schedule is stored and its slot posts
    again; the snapshot's new field is applied and the rows are kept. The deploy after it undoes both."""
    item = promotion(channels=["facebook"])
    HOST.run_poster()
    assert [r["status"] for r in HOST.post_logs(item["id"])] == ["posted"]
    snapshot = json.loads(SCHEMA.read_text())
    hashtags = {
        **next(f for f in snapshot["fields"] if f["collection"] == "promotions" and f["field"] == "title"),
        "field": "hashtags",
    }
    hashtags["meta"] = {**hashtags["meta"], "field": "hashtags", "required": False}
    hashtags["schema"] = {**hashtags["schema"], "name": "hashtags", "is_nullable": True}
    # The operator's own snapshot (group data's directus_schema), the shipped one left as it is.
    extended = tmp_path / "schema-with-hashtags.json"
    extended.write_text(json.dumps({**snapshot, "fields": snapshot["fields"] + [hashtags]}))
    try:
        # New Year's Day at 08:00: its latest occurrence is a slot no other test uses,
        # and it does not fire during the tests.
        rc, results, log = sandbox.deploy(
            "--data", "social_schedule=0 8 1 1 *", "--data", f"directus_schema={extended}"
        )
        assert rc == 0, log[-3000:]
        assert "hashtags" in {f["field"] for f in admin("GET", "/fields/promotions")["data"]}
        assert admin("GET", f"/items/promotions/{item['id']}")["data"]["title"] == item["title"]
        assert stored_poster()[0] == [{"field": "cronExpression", "expression": "0 8 1 1 *"}]
        HOST.run_poster()
    finally:
        rc, results, log = sandbox.deploy()
        assert rc == 0, log[-3000:]
    rows = HOST.post_logs(item["id"])
    assert [r["status"] for r in rows] == ["posted", "posted"]
    now = datetime.now(ZoneInfo(GROUP_DATA["timezone"]))
    new_year = datetime(now.year, 1, 1, 8, 0, tzinfo=ZoneInfo(GROUP_DATA["timezone"]))
    assert datetime.fromisoformat(rows[1]["slot"]) == (
        new_year if new_year <= now else new_year.replace(year=now.year - 1)
    )
    assert stored_poster()[0] == [{"field": "cronExpression", "expression": "0 9 * * 1,4"}]
    assert admin("GET", f"/items/promotions/{item['id']}")["data"]["title"] == item["title"]
    # The snapshot's collections are as shipped again; a rerun applies nothing new.
    rc, results, log = sandbox.deploy()
    assert rc == 0 and changed(results) == [], changed(results)
    assert "nothing to change" in sandbox.sh("python3 /opt/msgplatform/bin/apps-bootstrap.py /opt/msgplatform")


def test_no_secret_in_the_poster_its_executions_or_the_logs(sandbox):
    """After the poster's runs: no token of Meta's, Claude's key, the SMTP or Directus password
    in what n8n exports or logs."""
    assert_no_secret_in_the_apps(sandbox)
    executions = sandbox.sh(
        f"{DC} exec -T postgres psql -U postgres -d n8n -tAc \"select string_agg(data, '') from execution_data\""
    )
    secrets = {line.split("=", 1)[1] for line in Path(GROUP_DATA["secrets_file"]).read_text().split()}
    assert not [s for s in secrets if s in executions], "an operator secret is in n8n's execution data"
