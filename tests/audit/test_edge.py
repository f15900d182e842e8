"""Edge and firewall against Docker: only the edge publishes, the DOCKER-USER guard holds,
certificates and secrets are private."""

import pytest
import yaml

from platform_deploy import cluster, edge, firewall


def _published(host):
    published = {}
    for line in host.check_output("docker ps --format '{{.Names}}\t{{.Ports}}'").splitlines():
        name, _, ports = line.partition("\t")
        if "->" in ports:
            published[name] = sorted({p.strip().split(":")[-1] for p in ports.split(",") if "->" in p})
    return published


def test_only_the_edge_publishes_ports(host, cfg):
    """The edge's ports; with peers, the primary's PostgreSQL and Redis on its private address; nothing on a peer."""
    edge_service = "gerbil" if cfg.edge.tunnels_enabled else "traefik"
    wanted = ["443->443/tcp", "80->80/tcp"] + (
        ["21820->21820/udp", "51820->51820/udp"] if cfg.edge.tunnels_enabled else []
    )
    wanted = {f"{cfg.stack.stack_name}-{edge_service}-1": sorted(wanted)} if cfg.topology.role == "primary" else {}
    wanted.update(
        {
            f"{cfg.stack.stack_name}-{service}-1": [f"{port}->{port}/tcp"]
            for service, port in cluster.link_ports(cfg).items()
        }
    )
    # A container group data allows (containers_allowed) may publish: the DOCKER-USER guard still keeps it from outside.
    published = {
        name: ports for name, ports in _published(host).items() if name not in cfg.allowlist.containers_allowed
    }
    assert published == wanted, f"published ports differ (only the edge and the private link may publish: {wanted})"


def test_docker_user_guard_in_place(host, cfg):
    live = host.check_output("iptables -S DOCKER-USER").splitlines()
    assert live == firewall.docker_guard_rules(cfg), f"DOCKER-USER drifted: {live}"
    forward = host.check_output("iptables -S FORWARD").splitlines()
    assert "-A FORWARD -j DOCKER-USER" in forward, "FORWARD does not consult DOCKER-USER"
    assert firewall.docker_guard_block(cfg) in host.file(firewall.AFTER_RULES).content_string, (
        f"the guard is not in {firewall.AFTER_RULES}: it would not survive a reboot"
    )


@pytest.mark.roles("primary")
def test_acme_json_private(host, cfg):
    acme = host.file(f"{cfg.stack.stack_root}/edge/letsencrypt/acme.json")
    assert acme.exists and (acme.user, acme.mode) == ("root", 0o600), f"acme.json is {acme.user} {oct(acme.mode)}"


@pytest.mark.roles("primary")
def test_traefik_dashboard_not_published_and_routes_complete(host, cfg):
    static = yaml.safe_load(host.file(f"{cfg.stack.stack_root}/edge/traefik/traefik_config.yml").content_string)
    assert not static.get("api", {}).get("insecure") and not static.get("api", {}).get("dashboard"), (
        "Traefik's API is open"
    )
    dynamic = yaml.safe_load(host.file(f"{cfg.stack.stack_root}/edge/traefik/dynamic_config.yml").content_string)
    routed = {edge.host_of(r["rule"]) for r in dynamic["http"]["routers"].values()}
    wanted = {h for name, h in edge.hosts(cfg).items() if name in cfg.stack.apps or name == "pangolin"}
    assert routed == wanted, f"hostnames routed {sorted(routed)}, wanted {sorted(wanted)}"


@pytest.mark.roles("primary")
def test_pangolin_config_private(host, cfg):
    config = host.file(f"{cfg.stack.stack_root}/edge/pangolin/config.yml")
    assert config.exists and (config.user, config.mode) == ("root", 0o600), (
        "Pangolin's config.yml (it holds its secret) is not root-only"
    )
    assert edge.PANGOLIN_SECRET_MARKER not in config.content_string, "Pangolin's server secret was never filled in"
