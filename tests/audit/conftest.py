"""The testinfra audit: checks a live host against the same group data the deploy uses.

    pytest tests/audit --inventory inventory/production.py

The hosts come from the inventory (SSH user, port, key, sudo) unless --hosts is given.
Expectations are computed by the deploy's own code from the group data, never copied.
"""

import json
from pathlib import Path

import pytest
from pyinfra.api import State
from pyinfra.context import ctx_state
from pyinfra.facts.hardware import Memory
from pyinfra_cli.inventory import make_inventory

from platform_deploy import config, topology

ROOT = Path(__file__).resolve().parents[2]
_TARGETS: dict[str, dict] = {}  # testinfra host name -> that host's group data
_TOPOLOGY: dict[str, topology.Topology] = {}  # testinfra host name -> its role and peers (topology.py)


def pytest_addoption(parser):
    parser.addoption(
        "--inventory",
        default=str(ROOT / "inventory" / "sandbox.py"),
        help="pyinfra inventory whose hosts and group data the audit checks",
    )
    parser.addoption(
        "--data",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override group data as the deploy's --data did (VALUE read as JSON when it parses)",
    )


def _override(item):
    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _spec(data):
    user = data.get("ssh_user") or "root"
    query = []
    if data.get("ssh_key"):
        query.append(f"ssh_identity_file={data['ssh_key']}")
    if data.get("_sudo") and user != "root":
        query.append("sudo=true")
    return f"paramiko://{user}@{data['ssh_hostname']}:{data.get('ssh_port', 22)}" + (
        "?" + "&".join(query) if query else ""
    )


def pytest_configure(config):
    _register_markers(config)
    with ctx_state.use(State()):
        inventory = make_inventory(config.getoption("--inventory"), cwd=str(ROOT))
    hosts = [(h.name, list(h.groups), h.data.dict()) for h in inventory]
    for pyinfra_host in inventory:
        data = {**pyinfra_host.data.dict(), **dict(map(_override, config.getoption("--data")))}
        data.setdefault("ssh_hostname", pyinfra_host.name)
        key = f"{data['ssh_hostname']}:{data.get('ssh_port', 22)}"  # the cluster's hosts share 127.0.0.1
        found = topology.topology(pyinfra_host.name, hosts)[0]
        for name in (key, pyinfra_host.name, data["ssh_hostname"]):  # by name alone too, for --hosts=ssh://<name>
            _TARGETS[name], _TOPOLOGY[name] = data, found
    if not config.option.hosts:
        config.option.hosts = ",".join(_spec(_TARGETS[h.name]) for h in inventory)


def run_fact(host, fact_cls, *args):
    """A pyinfra fact, gathered through testinfra: the deploy and the audit read the host alike."""
    fact = fact_cls()
    command = fact.command(*args)
    result = host.run(command if isinstance(command, str) else command.get_raw_value())
    if result.rc != 0:
        return fact.default()
    return fact.process(result.stdout.splitlines())


def _key(host):
    spec = host.backend.host
    name = f"{spec.name}:{spec.port or 22}"
    name = name if name in _TARGETS else spec.name
    if name not in _TARGETS:
        pytest.fail(f"host {name} is not in the inventory; pass --inventory with the file that lists it")
    return name


@pytest.fixture(scope="module")
def group_data(host):
    return _TARGETS[_key(host)]


@pytest.fixture(scope="module")
def cfg(host, group_data):
    return config.load(group_data, ram_mb=run_fact(host, Memory), require_secrets=False, topology=_TOPOLOGY[_key(host)])


def _register_markers(config):
    config.addinivalue_line("markers", "roles(*names): the check applies to hosts of these roles only (cluster.py)")


@pytest.fixture(autouse=True)
def _role_applies(request):
    """A check marked roles(...) is skipped on a host of another role: each host is checked
    for what its group asks, and nothing more."""
    marker = request.node.get_closest_marker("roles")
    if marker and "host" in request.fixturenames:
        role = _TOPOLOGY[_key(request.getfixturevalue("host"))].role
        if role not in marker.args:
            pytest.skip(f"not asked of a {role} host")
