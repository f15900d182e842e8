# The sandbox cluster that `make sandbox-cluster` starts (tools/sandbox.py cluster): a
# primary, a PostgreSQL/Redis replica and an n8n worker host on one Docker network (the
# "private network"), each a systemd host reached over SSH on 127.0.0.1. A fourth host,
# sandbox-outsider, is on the same network but in no group: what a stranger reaches.
import os
import runpy

_root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
_state = os.path.join(_root, ".sandbox")
_addresses = runpy.run_path(os.path.join(_root, "group_data", "sandbox.py"))["_sandbox_addresses"]


def _host(name, port, **data):
    return (
        name,
        {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": port,
            "ssh_user": "root",
            "ssh_key": os.path.join(_state, "id_ed25519"),
            "ssh_known_hosts_file": os.path.join(_state, f"{name}.known_hosts"),
            "ssh_strict_host_key_checking": "accept-new",
            "private_address": _addresses(port)[0],
            **data,
        },
    )


if os.environ.get("CLUSTER_PROMOTED"):
    # After the README's promotion: the replica is the primary, the old primary is gone.
    primary = [_host("sandbox-replica", 2242)]
else:
    primary = [_host("sandbox-primary", 2241)]
    replicas = [_host("sandbox-replica", 2242)]
# CLUSTER_WITHOUT_WORKER=1: the worker host taken out (the tests check it loses access).
workers = [] if os.environ.get("CLUSTER_WITHOUT_WORKER") else [_host("sandbox-worker", 2243, n8n_workers=2)]
