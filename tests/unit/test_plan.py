"""The host layers' decisions per OS, checked as a plan (no Ubuntu archive is reachable here)."""

import json

import jinja2
import pytest

from platform_deploy import config, docker_engine
from tests.unit.test_config import ROOT, load

ROOT_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(ROOT / "templates"), undefined=jinja2.StrictUndefined
)


@pytest.mark.parametrize(
    "os_name, major, codename, url",
    [
        ("Ubuntu", 24, "noble", "https://download.docker.com/linux/ubuntu"),
        ("Ubuntu", 22, "jammy", "https://download.docker.com/linux/ubuntu"),
        ("Debian", 12, "bookworm", "https://download.docker.com/linux/debian"),
    ],
)
def test_docker_repo_on_ubuntu_and_debian_12(os_name, major, codename, url):
    plan = docker_engine.plan(os_name, major, codename, "amd64", "auto")
    assert plan["source"] == "docker"
    assert plan["repo"] == {"url": url, "key_url": f"{url}/gpg", "suite": codename, "arch": "amd64"}
    assert "docker-compose-plugin" in plan["install"] and "docker-ce" in plan["install"]
    assert "docker.io" in plan["remove"]


def test_distribution_packages_on_debian_13():
    plan = docker_engine.plan("Debian", 13, "trixie", "amd64", "auto")
    assert plan == {
        "source": "distro",
        "repo": None,
        "install": ("docker.io", "docker-cli", "docker-compose"),
        "remove": (),
    }


def test_forced_sources():
    assert docker_engine.plan("Debian", 13, "trixie", "arm64", "docker")["repo"]["arch"] == "arm64"
    assert docker_engine.plan("Ubuntu", 24, "noble", "amd64", "distro")["install"] == ("docker.io", "docker-compose-v2")
    with pytest.raises(config.ConfigError, match="docker_source"):
        docker_engine.plan("Debian", 12, "bookworm", "amd64", "distro")


def test_deb822_source_is_signed():
    repo = docker_engine.plan("Ubuntu", 24, "noble", "amd64", "auto")["repo"]
    text = ROOT_TEMPLATES.get_template("docker.sources.j2").render(repo=repo, keyring=docker_engine.KEYRING)
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith("#"))
    assert fields == {
        "Types": "deb",
        "URIs": "https://download.docker.com/linux/ubuntu",
        "Suites": "noble",
        "Components": "stable",
        "Architectures": "amd64",
        "Signed-By": "/etc/apt/keyrings/docker.asc",
    }


def test_daemon_json_renders_the_settings():
    settings = docker_engine.daemon_settings(load(docker_log_max_size="50m", docker_log_max_file=5))
    rendered = json.loads(ROOT_TEMPLATES.get_template("daemon.json.j2").render(settings=settings))
    assert rendered == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "50m", "max-file": "5"},
        "live-restore": True,
        "no-new-privileges": True,
        "icc": False,
        "userland-proxy": False,
    }
