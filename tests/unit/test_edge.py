"""The edge's configuration, parsed as Traefik and Pangolin would read it (no internet here)."""

import pytest
import yaml

from platform_deploy import edge, secrets
from tests.unit.test_config import load
from tests.unit.test_stack import compose, render

# Keys Pangolin needs in config.yml (docs.pangolin.net, self-host/advanced/config-file).
# Pangolin ignores unknown keys, so a misspelt one would silently fall back: check by name.
PANGOLIN_REQUIRED = {
    "app": {"dashboard_url"},
    "domains": set(),
    "server": {"secret"},
    "gerbil": {"base_endpoint", "start_port"},
    "flags": {"disable_signup_without_invite"},
}


def traefik(cfg):
    return yaml.safe_load(render("edge/traefik_config.yml.j2", cfg))


def dynamic(cfg):
    routers, services = edge.routes(cfg)
    from tests.unit.test_stack import TEMPLATES

    return yaml.safe_load(
        TEMPLATES.get_template("edge/dynamic_config.yml.j2").render(routes=routers, services=services)
    )


def pangolin(cfg):
    return yaml.safe_load(render("edge/pangolin_config.yml.j2", cfg))


def test_entry_points_redirect_and_resolver():
    static = traefik(load())
    assert static["entryPoints"]["web"]["address"] == ":80"
    assert static["entryPoints"]["web"]["http"]["redirections"]["entryPoint"] == {"to": "websecure", "scheme": "https"}
    assert static["entryPoints"]["websecure"]["address"] == ":443"
    assert static["entryPoints"]["websecure"]["http"]["tls"]["certResolver"] == "letsencrypt"
    acme = static["certificatesResolvers"]["letsencrypt"]["acme"]
    assert acme["httpChallenge"] == {"entryPoint": "web"} and acme["email"] == "ops@example.org"
    assert acme["storage"] == "/letsencrypt/acme.json"
    assert static["providers"]["http"]["endpoint"] == "http://pangolin:3001/api/v1/traefik-config"
    assert static["api"] == {"dashboard": False}


def test_dns_challenge_when_asked():
    cfg = load(
        acme_dns_provider="cloudflare", acme_dns_token_env="CF_DNS_API_TOKEN", supplied={"acme_dns_api_token": "t"}
    )
    acme = traefik(cfg)["certificatesResolvers"]["letsencrypt"]["acme"]
    assert acme["dnsChallenge"] == {"provider": "cloudflare"} and "httpChallenge" not in acme

    assert secrets.secret_env(cfg)["traefik"] == {"CF_DNS_API_TOKEN": "acme_dns_api_token"}
    assert compose(cfg)["services"]["traefik"]["env_file"] == ["secrets/traefik.env"]


def test_dns_challenge_needs_its_token():
    from tests.unit.test_config import refused

    message = refused(acme_dns_provider="cloudflare", acme_dns_token_env="CF_DNS_API_TOKEN")
    assert "PLATFORM_ACME_DNS_API_TOKEN" in message
    assert "acme_dns_token_env" in refused(acme_dns_provider="cloudflare", supplied={"acme_dns_api_token": "t"})


def test_every_app_hostname_routed_to_its_compose_service():
    cfg = load()
    config = dynamic(cfg)
    services = compose(cfg)["services"]
    expected = {
        "chat.example.org": ("chatwoot-web", 3000),
        "n8n.example.org": ("n8n", 5678),
        "cms.example.org": ("directus", 8055),
        "pangolin.example.org": ("pangolin", None),
    }
    seen = set()
    for name, router in config["http"]["routers"].items():
        host = edge.host_of(router["rule"])
        seen.add(host)
        assert router["entryPoints"] == ["websecure"] and router["tls"] == {"certResolver": "letsencrypt"}, name
        url = config["http"]["services"][router["service"]]["loadBalancer"]["servers"][0]["url"]
        target, port = url.removeprefix("http://").split(":")
        assert target in services, f"{name} routes to {target}, not a compose service"
        assert target == expected[host][0] and (expected[host][1] in (None, int(port))), name
    assert seen == set(expected)


def test_hostnames_follow_group_data_and_apps():
    config = dynamic(load(apps=["n8n"], edge_hostnames={"n8n": "flows"}))
    hosts = {edge.host_of(r["rule"]) for r in config["http"]["routers"].values()}
    assert hosts == {"flows.example.org", "pangolin.example.org"}


def test_pangolin_required_keys_present():
    config = pangolin(load())
    for section, keys in PANGOLIN_REQUIRED.items():
        assert section in config, section
        assert keys <= set(config[section]), f"{section} lacks {keys - set(config[section])}"
    assert config["server"]["secret"] == edge.PANGOLIN_SECRET_MARKER
    assert config["flags"]["disable_signup_without_invite"] is True
    assert config["app"]["dashboard_url"] == "https://pangolin.example.org"
    assert config["domains"]["domain1"]["base_domain"] == "example.org"


def test_a_misspelt_pangolin_key_fails_the_check():
    config = pangolin(load())
    config["server"]["secrte"] = config["server"].pop("secret")
    with pytest.raises(AssertionError):
        assert PANGOLIN_REQUIRED["server"] <= set(config["server"])


@pytest.mark.parametrize(
    "value, fragment",
    [
        ({"chatwoot": "Chat_1"}, "DNS label"),
        ({"mail": "mail"}, "unknown service"),
        ({"n8n": "chat"}, "share a hostname"),
    ],
)
def test_bad_edge_hostnames_refused(value, fragment):
    from tests.unit.test_config import refused

    assert fragment in refused(edge_hostnames=value)


@pytest.mark.parametrize(
    "app, refused, allowed",
    [
        (
            "n8n",
            [
                "/webhook/chatwoot-events",
                "/WEBHOOK/chatwoot-events",
                "//Webhook/x",
                "/webhook-test/x",
                "/api/v1/x",
                "/form/x",
                "/mcp/x",
                "/webhook",
            ],
            ["/webhook/whatsapp", "/", "/rest/login", "/healthz", "/webhooks", "/apidocs"],
        ),
        ("chatwoot", ["/webhooks/whatsapp/+1", "/WebHooks//WhatsApp"], ["/", "/webhooks/instagram", "/api/v1/x"]),
    ],
)
def test_internal_paths_are_refused_from_outside_in_any_letter_case(app, refused, allowed):
    """The rule as Traefik reads it: Go's regexp syntax ((?i) works the same in Python's re for these)."""
    import re

    config = dynamic(load())
    router = config["http"]["routers"][f"{app}-internal"]
    assert router["service"] == app and router["priority"] > 100
    assert config["http"]["middlewares"][router["middlewares"][0]]["ipAllowList"]["sourceRange"] == ["127.0.0.1/32"]
    pattern = re.search(r"PathRegexp\(`(.*?)`\)", router["rule"]).group(1)
    exempt = re.findall(r"!Path\(`(.*?)`\)", router["rule"])
    assert all(re.search(pattern, path) and path not in exempt for path in refused)
    assert not any(re.search(pattern, path) and path not in exempt for path in allowed)
