"""The stack as rendered: compose project, env files, scripts, and the sizing behind them."""

import jinja2
import pytest
import yaml

from platform_deploy import data, edge, memory, postgres_access, secrets, services, stack, stack_state
from platform_deploy.model import ConfigError
from tests.unit.test_config import ROOT, load

TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "templates"), undefined=jinja2.StrictUndefined)


def render(name, cfg):
    return TEMPLATES.get_template(name).render(
        **stack.template_vars(cfg),
        generated=secrets.GENERATED_SECRETS,
        secret_env=secrets.secret_env(cfg),
        dc="dc",
        extensions=data.CHATWOOT_EXTENSIONS,
        allowed_roles=sorted(postgres_access.allowed_roles(cfg)),
        hosts=edge.hosts(cfg),
        marker=edge.PANGOLIN_SECRET_MARKER,
    )


def compose(cfg):
    return yaml.safe_load(render("compose.yaml.j2", cfg))


EDGE = {"pangolin", "traefik"}


def test_compose_services_follow_apps_and_tunnels():
    every = {"postgres", "redis", "chatwoot-web", "chatwoot-sidekiq", "n8n", "n8n-worker", "directus"} | EDGE
    assert set(compose(load())["services"]) == every == set(services.compose_services(load()))
    assert set(compose(load(apps=["n8n"]))["services"]) == {"postgres", "redis", "n8n", "n8n-worker"} | EDGE
    assert "n8n-worker" not in compose(load(n8n_workers=0))["services"]
    assert "gerbil" in compose(load(tunnels_enabled=True))["services"]


def test_n8n_queue_mode_with_its_workers():
    cfg = load(n8n_workers=2, ram_mb=16000)
    worker = compose(cfg)["services"]["n8n-worker"]
    assert worker["command"] == ["worker", "--concurrency=6"] and worker["deploy"]["replicas"] == 2
    # The worker's Node heap and its task runner's fit its limit together.
    assert (
        int(worker["environment"]["NODE_OPTIONS"].split("=")[1])
        + int(worker["environment"]["N8N_RUNNERS_MAX_OLD_SPACE_SIZE"])
        < cfg.memory_limits_mb["n8n-worker"]
    )
    assert (
        worker["image"] == cfg.stack.images["n8n"] and worker["env_file"] == compose(cfg)["services"]["n8n"]["env_file"]
    )
    env = render("env/n8n.env.j2", cfg)
    assert (
        "EXECUTIONS_MODE=queue" in env and "QUEUE_BULL_REDIS_DB=1" in env and "QUEUE_BULL_PREFIX=msgplatform-n8n" in env
    )
    assert "N8N_DEFAULT_BINARY_DATA_MODE=database" in env
    assert "EXECUTIONS_MODE" not in render("env/n8n.env.j2", load(n8n_workers=0))


def test_only_the_edge_publishes_ports():
    project = compose(load())
    assert {name for name, service in project["services"].items() if "ports" in service} == {"traefik"}
    assert project["services"]["traefik"]["ports"] == ["80:80", "443:443"]
    tunnels = compose(load(tunnels_enabled=True))["services"]
    assert {name for name, service in tunnels.items() if "ports" in service} == {"gerbil"}
    assert tunnels["gerbil"]["ports"] == ["51820:51820/udp", "21820:21820/udp", "80:80", "443:443"]
    assert tunnels["traefik"]["network_mode"] == "service:gerbil"


def test_every_service_is_limited_hardened_and_checked():
    cfg = load()
    for name, service in compose(cfg)["services"].items():
        assert service["mem_limit"] == f"{cfg.memory_limits_mb[name]}m", name
        assert service["restart"] == "unless-stopped" and service["pids_limit"] > 0, name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["logging"]["options"]["max-size"] == cfg.docker.docker_log_max_size, name
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_only_apps_on_the_edge_and_data_internal():
    project = compose(load())
    assert project["networks"]["data"] == {"internal": True}
    for name, service in project["services"].items():
        expected = {"data"} if name in ("postgres", "redis") else {"edge"} if name in EDGE else {"data", "edge"}
        assert set(service["networks"]) == expected, name


def test_no_secret_in_rendered_files():
    cfg = load()
    for name in (
        "compose.yaml.j2",
        "redis.conf.j2",
        "env/chatwoot.env.j2",
        "env/n8n.env.j2",
        "env/directus.env.j2",
        "edge/traefik_config.yml.j2",
        "edge/pangolin_config.yml.j2",
    ):
        text = render(name, cfg)
        text = text.replace("secrets/", "").replace(edge.PANGOLIN_SECRET_MARKER, "")
        assert "PASSWORD=" not in text and "SECRET" not in text, name


def test_postgres_settings_follow_its_limit():
    for profile, shared, cache in (("recommended", "512MB", "1024MB"), ("minimum", "128MB", "256MB")):
        size = memory.sizing(load(memory_profile=profile))
        assert size["postgres"]["shared_buffers"] == shared
        assert size["postgres"]["effective_cache_size"] == cache
        assert size["postgres"]["max_connections"] >= sum(size["pools"].values())


def test_app_settings_follow_their_limits():
    rec = memory.sizing(load(memory_profile="recommended"))
    small = memory.sizing(load(memory_profile="minimum"))
    limits = memory.profile_limits("recommended")
    assert rec["redis_maxmemory_mb"] == limits["redis"] * 3 // 4 < limits["redis"]
    assert (
        rec["node_heap_mb"]["n8n"] == limits["n8n"] * 3 // 4
        and small["node_heap_mb"]["n8n"] == memory.profile_limits("minimum")["n8n"] * 3 // 4
    )
    assert rec["node_heap_mb"]["n8n-worker"] + rec["runner_heap_mb"]["n8n-worker"] < limits["n8n-worker"]
    assert rec["node_heap_mb"]["directus"] == limits["directus"] * 3 // 4
    assert rec["chatwoot"]["web_concurrency"] == 2 and small["chatwoot"]["web_concurrency"] == 1
    assert rec["chatwoot"]["sidekiq_concurrency"] == 10 and small["chatwoot"]["sidekiq_concurrency"] == 5


def test_env_files_carry_urls_and_redis_indexes():
    cfg = load()
    chatwoot, n8n, directus = (render(f"env/{a}.env.j2", cfg) for a in ("chatwoot", "n8n", "directus"))
    assert "FRONTEND_URL=https://chat.example.org" in chatwoot and "REDIS_URL=redis://redis:6379/0" in chatwoot
    assert (
        "WEBHOOK_URL=https://n8n.example.org/" in n8n and "N8N_PROXY_HOPS=1" in n8n and "QUEUE_BULL_REDIS_DB=1" in n8n
    )
    assert "PUBLIC_URL=https://cms.example.org" in directus and "REDIS_DB=2" in directus
    renamed = load(edge_hostnames={"chatwoot": "support"})
    assert "FRONTEND_URL=https://support.example.org" in render("env/chatwoot.env.j2", renamed)


def test_smtp_wiring_only_when_configured():
    cfg = load(
        smtp={"host": "smtp.example.org", "port": 587, "user": "u", "sender": "s@example.org"},
        supplied={"smtp_password": "x"},
    )
    assert "SMTP_ADDRESS=smtp.example.org" in render("env/chatwoot.env.j2", cfg)
    assert secrets.secret_env(cfg)["chatwoot"]["SMTP_PASSWORD"] == "smtp_password"
    assert "SMTP_PASSWORD" not in secrets.secret_env(load())["chatwoot"]


def test_databases_script_covers_each_app():
    script = render("databases.sh.j2", load(apps=["n8n", "directus"]))
    assert "CREATE DATABASE n8n OWNER n8n" in script and "CREATE DATABASE directus OWNER directus" in script
    assert "chatwoot" not in script
    assert "REVOKE ALL ON DATABASE n8n FROM PUBLIC" in script


def role(*attributes, owns=0):
    return {"attributes": set(attributes), "owns": owns}


def test_database_drift():
    cfg = load(apps=["n8n"])
    good = {
        "roles": {"postgres": role(*postgres_access.ROLE_ATTRIBUTES), "n8n": role("login")},
        "dbs": {"n8n": {"owner": "n8n", "grantees": {"n8n"}}},
        "extensions": set(),
    }
    assert data.database_drift(cfg, good) == []
    assert data.database_drift(cfg, {**good, "dbs": {"n8n": {"owner": "n8n", "grantees": {""}}}}) == [
        "database n8n open to ['']"
    ]
    assert data.database_drift(cfg, data.DatabaseState.default()) == ["role n8n", "database n8n"]
    assert "extension vector" in data.database_drift(load(), good)


def test_roles_are_audited_by_allowlist():
    cfg = load(apps=["n8n"], postgres_roles_allowed=["reporting"])
    roles = {"postgres": role(*postgres_access.ROLE_ATTRIBUTES), "n8n": role("login"), "reporting": role("login")}
    assert postgres_access.role_drift(cfg, {"roles": roles}) == []
    extra = {
        "intruder": role("login"),
        "owner": role(owns=3),
        "n8n": role("login", "superuser", "createrole"),
        "reporting": role("login", "bypassrls"),
    }
    assert postgres_access.role_drift(cfg, {"roles": roles | extra}) == [
        "role intruder not allowed (group data postgres_roles_allowed)",
        "role n8n has createrole, superuser",
        "role owner not allowed (group data postgres_roles_allowed, owns 3 objects)",
        "role reporting has bypassrls",
    ]
    # The replicas' role only with replicas, and only with REPLICATION beside LOGIN.
    assert postgres_access.role_drift(cfg, {"roles": roles | {"replicator": role("login", "replication")}}) == [
        "role replicator not allowed (group data postgres_roles_allowed)"
    ]


def test_a_role_that_owns_objects_stops_the_deploy_before_anything_changes():
    cfg = load(apps=["n8n"])
    roles = {"n8n": role("login"), "intruder": role("login")}
    postgres_access.check_unknown_roles(cfg, {"roles": roles})  # owns nothing: the deploy drops it
    with pytest.raises(ConfigError) as refused:
        postgres_access.check_unknown_roles(cfg, {"roles": roles | {"owner": role(owns=2)}})
    message = str(refused.value)
    assert "postgres_roles_allowed" in message and "'owner' owns 2 objects" in message
    assert "REASSIGN OWNED BY owner" in message and "intruder" not in message


def test_databases_script_drops_only_roles_not_allowed():
    script = render("databases.sh.j2", load(apps=["n8n"], postgres_roles_allowed=["reporting"]))
    unknown = next(line for line in script.splitlines() if line.startswith("\\set unknown"))
    assert "NOT IN (''n8n'', ''postgres'', ''reporting'')" in unknown and "deptype = ''o''" in unknown
    assert "ALTER ROLE reporting NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS" in script
    assert script.index("DROP OWNED BY") < script.index("DROP ROLE")


def test_pg_hba_rules_compared_as_postgresql_parses_them():
    rendered = "# comment\nlocal all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    rendered += "host all all samenet scram-sha-256\nhost replication replicator 10.0.0.2/32 scram-sha-256\n"
    wanted = postgres_access.wanted_hba(rendered)
    assert wanted == [
        "local all all trust",
        "host all all 127.0.0.1 255.255.255.255 scram-sha-256",
        "host all all samenet scram-sha-256",
        "host replication replicator 10.0.0.2 255.255.255.255 scram-sha-256",
    ]
    state = data.DatabaseState().process([f"hba|{rule}||" for rule in wanted])
    assert postgres_access.hba_drift(state, wanted) == []
    assert postgres_access.hba_drift({"hba": wanted[::-1]}, wanted) == ["pg_hba rules in another order"]
    state["hba"].append("host all all 0.0.0.0 0.0.0.0 trust")
    assert postgres_access.hba_drift(state, wanted) == ["pg_hba rule not wanted: host all all 0.0.0.0 0.0.0.0 trust"]


def test_database_state_parsing():
    state = data.DatabaseState().process(
        [
            "role|n8n|login|0",
            "role|owner|superuser,createdb|4",
            "db|n8n|n8n|{n8n=CTc/n8n}",
            "db|template1|postgres|{=c/postgres,postgres=CTc/postgres}",
            "db|open|open|",
            "ext|vector||",
            "hba|local  all all   trust||",
        ]
    )
    assert state["roles"]["n8n"] == {"attributes": {"login"}, "owns": 0}
    assert state["roles"]["owner"] == {"attributes": {"superuser", "createdb"}, "owns": 4}
    assert state["dbs"]["n8n"]["grantees"] == {"n8n"}
    assert state["dbs"]["template1"]["grantees"] == {"", "postgres"}
    assert state["dbs"]["open"]["grantees"] == {""}
    assert state["extensions"] == {"vector"}
    assert state["hba"] == ["local all all trust"]


def test_stack_state_parsing():
    state = stack_state.StackState().process(
        [
            "secret redis_password",
            "prepared img:1",
            "pg-upgrade 20270101T031500Z",
            "pangolin-config",
            "service postgres pg:15 running Up 5 minutes (healthy)",
            "service n8n n8n:2 running Up 3 seconds (health: starting)",
            "service redis redis:7 running Up 1 hour (unhealthy)",
            "service directus d:1 exited Exited (1) 2 minutes ago",
        ]
    )
    assert state["secrets"] == {"redis_password"} and state["prepared"] == "img:1" and state["pangolin_config"]
    assert state["pg_upgrade"] == "20270101T031500Z"
    assert state["services"] == {
        "postgres": ("running", "healthy"),
        "n8n": ("running", "starting"),
        "redis": ("running", "unhealthy"),
        "directus": ("exited", ""),
    }
    assert state["images"] == {"postgres": "pg:15", "n8n": "n8n:2", "redis": "redis:7", "directus": "d:1"}
