"""The config model: every bad value is refused with the key, the problem and the fix."""

import runpy
from pathlib import Path

import pytest

from platform_deploy import base, config, memory, secrets, services

ROOT = Path(__file__).resolve().parents[2]
RAM_8G = 7800  # what an "8 GB" server reports
DEFAULTS = {k: v for k, v in runpy.run_path(str(ROOT / "group_data" / "all.py")).items() if not k.startswith("__")}
GOOD = {**DEFAULTS, "domain": "example.org", "acme_email": "ops@example.org"}


def load(ram_mb=RAM_8G, supplied=None, **overrides):
    return config.load({**GOOD, **overrides}, ram_mb=ram_mb, supplied=supplied)


def refused(ram_mb=RAM_8G, supplied=None, **overrides):
    with pytest.raises(config.ConfigError) as error:
        load(ram_mb, supplied, **overrides)
    return str(error.value)


def test_defaults_with_domain_and_email_are_valid():
    cfg = load()
    assert cfg.edge.domain == "example.org"
    assert cfg.stack.stack_root == "/opt/msgplatform"
    assert cfg.memory_profile == "recommended"


@pytest.mark.parametrize("env", ["sandbox", "production.example"])
def test_shipped_group_data_is_valid(env):
    data = {
        **DEFAULTS,
        **{k: v for k, v in runpy.run_path(str(ROOT / "group_data" / f"{env}.py")).items() if not k.startswith("__")},
    }
    # The operator's secrets its features need (the sandbox's come from tools/sandbox.py).
    supplied = {
        name: "x"
        for name in (
            "claude_api_key",
            "whatsapp_access_token",
            "meta_app_secret",
            "smtp_password",
            "facebook_page_token",
            "instagram_access_token",
        )
    }
    config.load(data, ram_mb=RAM_8G, supplied=supplied)


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("domain", None, "missing"),
        ("domain", "https://example.org", "DNS name"),
        ("domain", "localhost", "DNS name"),
        ("domain", "Example.org.", "DNS name"),
        ("acme_email", "ops-at-example.org", "not an e-mail"),
        ("acme_email", "ops@localhost", "not an e-mail"),
        ("memory_profile", "huge", "unknown profile"),
        ("ssh_port", 0, "not a TCP port"),
        ("ssh_port", 70000, "not a TCP port"),
        ("ssh_port", "22", "not a TCP port"),
        ("ssh_allow_cidrs", ["10.0.0.1/8"], "did you mean 10.0.0.0/8"),
        ("ssh_allow_cidrs", ["10.0.0.0/33"], "not a network"),
        ("ssh_allow_cidrs", "10.0.0.0/8", "not a list"),
        ("memory_limits_mb", {"postgress": 1024}, "unknown service"),
        ("images", {"mysql": "mysql:8.0.40"}, "unknown service"),
        ("images", {"redis": "redis:latest"}, "must be pinned"),
        ("images", {"redis": "redis"}, "must be pinned"),
        ("images", {"redis": "Redis With Spaces"}, "not an image reference"),
        ("whatsapp_numbers", {"sales": "+5922221111"}, "renamed to departments"),
        ("triage_confidence_threshold", 1.5, "from 0 to 1"),
        ("triage_confidence_threshold", -0.1, "from 0 to 1"),
        ("docker_source", "snap", "unknown value"),
        ("tunnels_enabled", "yes", "not a boolean"),
        ("admin_user", "ops", "no way to log in"),
        ("stack_root", "opt/x", "absolute"),
    ],
)
def test_bad_value_is_refused_with_key_and_fix(key, value, fragment):
    message = refused(**{key: value})
    assert key in message
    assert fragment in message
    assert "Fix:" in message
    assert "nothing was changed on the host" in message


def test_host_below_minimum_profile_is_refused():
    message = refused(ram_mb=2048)
    assert "(host RAM)" in message and "2048 MB" in message and "4 GB" in message


def test_explicit_limits_larger_than_host_are_refused():
    message = refused(memory_limits_mb={"postgres": 6000})
    assert "memory_limits_mb" in message and "more than the host's 7800 MB" in message


def test_every_problem_is_reported_at_once():
    message = refused(domain="bad", acme_email="bad", ssh_port=0)
    assert all(key in message for key in ("domain", "acme_email", "ssh_port"))


def test_password_login_with_hardening_is_refused():
    message = refused(ssh_hardening=True, ssh_password="x")
    assert "ssh_hardening" in message and "ssh_password" in message


def test_valid_values_pass():
    cfg = load(
        ram_mb=16000,
        supplied={"whatsapp_access_token": "token", "meta_app_secret": "secret"},
        ssh_allow_cidrs=["203.0.113.0/24", "2001:db8::/32"],
        teams=["Sales Team", "Any available"],
        whatsapp_business_account_id="102290129340398",
        departments=[
            {
                "name": "Sales",
                "number": "+5922221111",
                "phone_number_id": "1100000001",
                "inbox": "sales-whatsapp",
                "team": "Sales Team",
                "escalation_team": "Any available",
            }
        ],
        images={"redis": "redis:7.4.5", "postgres": "pgvector/pgvector:0.8.0-pg15@sha256:" + "a" * 64},
        memory_limits_mb={"postgres": 3072},
        admin_user="ops",
        admin_ssh_keys=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB ops@laptop"],
    )
    assert cfg.firewall.ssh_allow_cidrs == ("203.0.113.0/24", "2001:db8::/32")
    assert cfg.memory_limits_mb["postgres"] == 3072
    # The keys given replace the pinned ones; the others stay.
    assert cfg.stack.images["redis"] == "redis:7.4.5" and cfg.stack.images["n8n"] == services.IMAGES["n8n"]


@pytest.mark.parametrize(
    "ram_mb, profile",
    [(3800, "minimum"), (6000, "minimum"), (RAM_8G, "recommended"), (16000, "recommended")],
)
def test_profile_follows_host_ram(ram_mb, profile):
    cfg = load(ram_mb=ram_mb)
    assert cfg.memory_profile == profile
    assert cfg.memory_limits_mb == memory.profile_limits(profile)


def test_forced_profile_wins():
    assert load(memory_profile="minimum").memory_profile == "minimum"


@pytest.mark.parametrize("ram_mb, swap", [(3800, 2048), (RAM_8G, 0)])
def test_swap_follows_host_ram(ram_mb, swap):
    assert load(ram_mb=ram_mb).host.swap_mb == swap


@pytest.mark.parametrize(
    "distro, expected",
    [
        ({"name": "Ubuntu", "major": 24, "release_meta": {"VERSION_CODENAME": "noble"}}, ("Ubuntu", 24, "noble")),
        ({"name": "Debian", "major": 13, "release_meta": {"VERSION_CODENAME": "trixie"}}, ("Debian", 13, "trixie")),
    ],
)
def test_supported_os(distro, expected):
    assert base.check_os(distro) == expected


@pytest.mark.parametrize("name, major", [("Ubuntu", 20), ("CentOS", 9), (None, None)])
def test_unsupported_os_is_refused(name, major):
    with pytest.raises(config.ConfigError, match="unsupported operating system"):
        base.check_os({"name": name, "major": major, "release_meta": {}})


SMTP = {"host": "smtp.example.org", "port": 587, "user": "apikey", "sender": "support@example.org"}


@pytest.mark.parametrize(
    "overrides, variable",
    [
        ({"smtp": SMTP}, "PLATFORM_SMTP_PASSWORD"),
        ({"ai_replies": True}, "PLATFORM_CLAUDE_API_KEY"),
        (
            {
                "teams": ["T"],
                "whatsapp_business_account_id": "10229012934",
                "departments": [
                    {
                        "name": "Sales",
                        "number": "+5922221111",
                        "phone_number_id": "1100000001",
                        "inbox": "sales-whatsapp",
                        "team": "T",
                        "escalation_team": "T",
                        "agents": [{"name": "Ana", "email": "ana@example.org"}],
                    }
                ],
            },
            "PLATFORM_WHATSAPP_ACCESS_TOKEN",
        ),
        (
            {
                "teams": ["T"],
                "whatsapp_business_account_id": "10229012934",
                "departments": [
                    {
                        "name": "Sales",
                        "number": "+5922221111",
                        "phone_number_id": "1100000001",
                        "inbox": "sales-whatsapp",
                        "team": "T",
                        "escalation_team": "T",
                        "agents": [{"name": "Ana", "email": "ana@example.org"}],
                    }
                ],
            },
            "PLATFORM_META_APP_SECRET",
        ),
    ],
)
def test_a_feature_needs_its_operator_secret(overrides, variable):
    message = refused(**overrides)
    assert variable in message and "secrets.env" in message


def test_operator_secrets_only_for_enabled_features_and_never_in_repr():
    cfg = load(smtp=SMTP, supplied={"smtp_password": "s3cret-value", "claude_api_key": "unused"})
    assert cfg.supplied_secrets == {"smtp_password": "s3cret-value"}
    assert "s3cret-value" not in repr(cfg)


def test_operator_secrets_from_environment_over_file(tmp_path, monkeypatch):
    (tmp_path / "secrets.env").write_text("# comment\nPLATFORM_SMTP_PASSWORD=from-file\nPLATFORM_CLAUDE_API_KEY=key\n")
    monkeypatch.setenv("PLATFORM_SMTP_PASSWORD", "from-env")
    assert secrets.supplied_secrets(str(tmp_path)) == {"smtp_password": "from-env", "claude_api_key": "key"}


def test_bad_smtp_settings_are_refused():
    assert "smtp['port']" in refused(smtp={**SMTP, "port": 0}, supplied={"smtp_password": "x"})
    assert "needs exactly the keys" in refused(smtp={"host": "x.org"}, supplied={"smtp_password": "x"})


@pytest.mark.parametrize("apps", [["chatwoot", "mailchimp"], [], "n8n"])
def test_unknown_or_empty_apps_are_refused(apps):
    assert "apps" in refused(apps=apps)


def test_secrets_env_quotes_stripped(tmp_path, monkeypatch):
    monkeypatch.delenv("PLATFORM_SMTP_PASSWORD", raising=False)
    (tmp_path / "secrets.env").write_text('PLATFORM_SMTP_PASSWORD="quoted value"\n')
    assert secrets.supplied_secrets(str(tmp_path)) == {"smtp_password": "quoted value"}


def test_supplied_secret_with_a_single_quote_refused_without_showing_it():
    message = refused(smtp=SMTP, supplied={"smtp_password": "it's-secret"})
    assert "PLATFORM_SMTP_PASSWORD" in message and "it's-secret" not in message


def test_smtp_error_never_shows_values():
    message = refused(smtp={**SMTP, "password": "hunter2"}, supplied={"smtp_password": "x"})
    assert "hunter2" not in message and "password" in message


def test_memory_check_counts_only_the_services_that_run():
    # 4.9 GB for PostgreSQL does not fit an 8 GB host with every app, but fits with n8n alone.
    assert "more than the host's 7800 MB" in refused(memory_limits_mb={"postgres": 4900})
    cfg = load(apps=["n8n"], memory_limits_mb={"postgres": 4900})
    assert set(cfg.memory_limits_mb) == {"postgres", "redis", "n8n", "n8n-worker", "pangolin", "traefik"}
    assert load(tunnels_enabled=True).memory_limits_mb["gerbil"] == 128


def test_settings_reference_is_current():
    written = (ROOT / "docs" / "settings.md").read_text()
    assert written == config.reference() + "\n", "docs/settings.md is stale: run `make settings-reference`"


def test_every_key_has_its_default_in_one_place():
    # Defaults live on the models only: group_data/all.py repeats none of them.
    assert DEFAULTS == {}
    for name, (section, f) in config.keys().items():
        assert f.description and f.json_schema_extra["fix"], f"{section}.{name} needs a meaning and a fix"
    assert config.reference().count("\n| `") == len(config.keys())


def test_a_misspelt_key_is_refused_with_the_right_name():
    message = refused(backup_kep=3)
    assert "backup_kep" in message and "did you mean backup_keep?" in message
    assert load(ssh_user="admin", _sudo=True)  # pyinfra's own keys pass


def test_n8n_workers_are_budgeted_beside_the_table():
    table = memory.profile_limits("recommended")
    assert load().memory_limits_mb["n8n"] == 1024  # the seed's n8n share: the main process
    assert "n8n-worker" not in load(n8n_workers=0).memory_limits_mb
    # An "8 GB" host carries the recommended profile with one worker; three need the minimum.
    assert load().memory_profile == "recommended"
    three = load(n8n_workers=3, ram_mb=16000)
    assert (
        memory.host_needs_mb(three.memory_limits_mb, {"n8n-worker": 3})
        == memory.host_needs_mb(load(ram_mb=16000).memory_limits_mb) + 2 * table["n8n-worker"]
    )
    assert load(n8n_workers=3).memory_profile == "minimum"
    assert "more than the host's 7800 MB" in refused(n8n_workers=3, memory_profile="recommended")
    assert "n8n_workers" in refused(n8n_workers=-1)
