"""Scale-out without a host: roles from the inventory's groups, the refusals, and what
each role renders (services, published ports, the guard, pg_hba)."""

import pytest
from pyinfra.api.util import get_template
from test_config import GOOD, RAM_8G

from platform_deploy import cluster, config, firewall, memory, services, stack, topology

HOSTS = [
    ("db1", ["primary"], {"private_address": "10.0.0.1"}),
    ("db2", ["replicas"], {"private_address": "10.0.0.2"}),
    ("w1", ["workers"], {"private_address": "10.0.0.3", "n8n_workers": 3}),
]


def topology_of(name, hosts=HOSTS):
    found, problems = topology.topology(name, hosts)
    assert not problems, problems
    return found


def load(name, **overrides):
    return config.load({**GOOD, **overrides}, ram_mb=RAM_8G, topology=topology_of(name))


def test_a_one_host_inventory_is_a_primary_without_peers():
    found = topology_of("platform", [("platform", ["production"], {})])
    assert (found.role, found.clustered, found.peers) == ("primary", False, ())


def test_roles_and_peers_follow_the_groups():
    found = topology_of("db2")
    assert found.role == "replica" and found.primary.address == "10.0.0.1"
    assert [p.address for p in found.peers] == ["10.0.0.2", "10.0.0.3"]
    assert found.me.slot == "replica_db2" and found.workers[0].n8n_workers == 3
    assert found.primary.n8n_workers == 1  # unset: n8n's default
    assert topology_of("w1").role == "worker" and topology_of("db1").role == "primary"


@pytest.mark.parametrize(
    "hosts, expected",
    [
        ([HOSTS[0], ("db2", ["replicas"], {})], "db2: private_address"),
        (
            [HOSTS[0], ("db2", ["replicas", "workers"], {"private_address": "10.0.0.2"})],
            "in more than one of primary, replicas and workers",
        ),
        (
            [("db1", ["primary", "replicas"], {"private_address": "10.0.0.1"}), HOSTS[2]],
            "in more than one of primary, replicas and workers",
        ),
        (
            [("a", [], {"private_address": "10.0.0.1"}), ("b", [], {"private_address": "10.0.0.4"}), HOSTS[1]],
            "2 primary hosts",
        ),
        ([HOSTS[0], ("db2", ["replicas"], {"private_address": "10.0.0"})], "not an IPv4 address"),
        ([HOSTS[0], ("db2", ["replicas"], {"private_address": "fd00::2"})], "not an IPv4 address"),
        ([*HOSTS, ("stray", [], {"private_address": "10.0.0.9"})], "in none of primary, replicas and workers"),
    ],
)
def test_an_inventory_that_cannot_be_a_cluster_is_refused(hosts, expected):
    _, problems = topology.topology(hosts[-1][0], hosts)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "name, overrides, expected",
    [
        ("w1", {"apps": ["chatwoot", "directus"]}, "n8n is not among the apps"),
        ("w1", {"n8n_workers": 0}, "a worker host runs n8n's queue workers"),
        ("db1", {"n8n_workers": 0}, "needs queue mode on the primary"),
        ("db1", {"chatwoot_sidekiq_on_workers": True}, "Sidekiq reads and writes attachments on the host it runs on"),
    ],
)
def test_settings_a_cluster_cannot_run_are_refused(name, overrides, expected):
    with pytest.raises(config.ConfigError) as error:
        load(name, **overrides)
    assert expected in str(error.value)


def test_each_role_runs_only_its_services():
    assert services.compose_services(load("db2")) == ("postgres", "redis")
    assert services.compose_services(load("w1")) == ("n8n-worker",)
    assert {"traefik", "n8n", "postgres"} <= set(services.compose_services(load("db1")))


def test_the_primary_publishes_the_databases_on_its_private_address_only_with_peers():
    services = stack.compose_document(load("db1"))["services"]
    assert services["postgres"]["ports"] == ["10.0.0.1:5432:5432"] and services["redis"]["ports"] == [
        "10.0.0.1:6379:6379"
    ]
    alone = config.load(GOOD, ram_mb=RAM_8G)
    assert "ports" not in stack.compose_document(alone)["services"]["postgres"]
    assert stack.compose_document(load("db2"))["services"]["postgres"].get("ports") is None


def test_only_the_peers_pass_the_guard_and_only_to_the_databases():
    rules = firewall.docker_guard_rules(load("db1"))
    assert "-A DOCKER-USER -s 10.0.0.3/32 -p tcp -m conntrack --ctorigdstport 5432 -j RETURN" in rules
    assert not [r for r in rules if "10.0.0.9" in r]
    assert not cluster.guard_rules(load("w1")) and not [
        r for r in firewall.docker_guard_rules(load("w1")) if "443" in r
    ]


def test_only_the_replicas_may_stream_the_wal_and_the_worker_hosts_reach_only_n8n():
    hba = get_template("templates/pg_hba.conf.j2").render(**stack.template_vars(load("db1")))
    peers = [
        line.split()[1:4] for line in hba.splitlines() if line.startswith("host") and line.split()[3].startswith("10.")
    ]
    assert peers == [["replication", "replicator", "10.0.0.2/32"], ["n8n", "n8n", "10.0.0.3/32"]]
    # Nobody else over the network: no line for every address.
    assert not [line for line in hba.splitlines() if line.split()[3:4] == ["all"]]


def test_the_primary_budgets_connections_for_the_worker_hosts():
    alone = memory.sizing(config.load(GOOD, ram_mb=RAM_8G))["postgres"]["max_connections"]
    assert memory.sizing(load("db1"))["postgres"]["max_connections"] == alone + 5 * (1 + 3)


def test_a_peer_without_n8n_workers_counts_as_n8ns_default():
    from platform_deploy.apps import n8n

    assert topology.N8N_WORKERS_DEFAULT == n8n.Settings.model_fields["n8n_workers"].default


def test_a_peer_keeps_the_primary_secrets_it_needs():
    assert set(cluster.secret_names(load("w1"))) == {"n8n_db_password", "n8n_encryption_key", "redis_password"}
    assert "n8n_encryption_key" in cluster.secret_names(load("db2")) and "replication_password" in cluster.secret_names(
        load("db2")
    )
