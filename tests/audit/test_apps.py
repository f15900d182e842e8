"""The application layer: the shipped workflows published with this group data's
schedule and time zone, and n8n's Directus user no wider than the deploy made it."""

import json
import shlex

import pytest
from conftest import ROOT

from platform_deploy.apps import bootstrap

SHIPPED = {w["id"]: w for w in (json.loads(p.read_text()) for p in (ROOT / bootstrap.WORKFLOWS_DIR).glob("*.json"))}
LEAD_CAPTURE, POSTER = "platformLeadCapt", "platformPoster02"


@pytest.fixture(scope="module")
def psql(host, cfg):
    if not bootstrap.enabled(cfg):
        pytest.skip("the application layer needs chatwoot, n8n and directus in apps")
    dc = f"docker compose -f {cfg.stack.stack_root}/compose.yaml -p {cfg.stack.stack_name}"

    def query(database, sql):
        out = host.check_output(f"{dc} exec -T postgres psql -U postgres -d {database} -tAc {shlex.quote(sql)}")
        return [line for line in out.splitlines() if line]
    return query


def test_shipped_workflows_are_published(psql, cfg):
    published = {line.split("|")[0] for line in psql("n8n", "select id, active from workflow_entity") if line.endswith("|t")}
    # Without departments there is no Meta app secret to check signatures with: 03 stays off.
    wanted = {i for i in SHIPPED if i != LEAD_CAPTURE or cfg.chatwoot.departments}
    assert wanted <= published, f"not published: {sorted(wanted - published)}"


def test_the_poster_runs_on_the_configured_schedule_and_time_zone(psql, cfg):
    [row] = psql("n8n", f"select row_to_json(w) from (select nodes, settings from workflow_entity where id = '{POSTER}') w")
    stored = json.loads(row)
    nodes, settings = (json.loads(v) if isinstance(v, str) else v for v in (stored["nodes"], stored["settings"]))
    schedule = next(n for n in nodes if n["type"] == "n8n-nodes-base.scheduleTrigger")
    assert schedule["parameters"]["rule"]["interval"] == [{"field": "cronExpression", "expression": cfg.social.social_schedule}]
    assert settings["timezone"] == cfg.n8n.timezone


def test_n8ns_directus_user_has_no_role_and_only_its_policy(psql, cfg):
    email = bootstrap.n8n_directus_email(cfg)
    rows = psql("directus", "select coalesce(u.role::text, '-'), coalesce(o.name, '-') from directus_users u "
                            "left join directus_access a on a.user = u.id left join directus_policies o on o.id = a.policy "
                            f"where u.email = '{email}'")
    assert rows == ["-|n8n automation"], f"n8n's Directus user {email}: role|policy {rows}"


def test_n8ns_directus_user_has_only_its_permissions(psql):
    rows = psql("directus", "select o.admin_access, o.app_access, p.collection, p.action from directus_permissions p "
                            "join directus_policies o on o.id = p.policy where o.name = 'n8n automation'")
    rows = [row.split("|") for row in rows]
    assert {(c, a) for _, _, c, a in rows} == set(bootstrap.N8N_DIRECTUS_PERMISSIONS)
    assert {(admin, app) for admin, app, _, _ in rows} == {("f", "f")}, "n8n's Directus policy has admin or app access"
