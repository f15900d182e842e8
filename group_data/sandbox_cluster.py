# The sandbox cluster (make sandbox-cluster): the sandbox's group data, with the primary's
# ACME server and vendors' simulator. Roles and private addresses are in inventory/sandbox_cluster.py.
import os
import runpy

_PRIMARY_PORT = 2241
globals().update(
    {
        key: value
        for key, value in runpy.run_path(
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox.py"),
            init_globals={"_PRIMARY_PORT": _PRIMARY_PORT},
        ).items()
        if not key.startswith("__") and key != "os"
    }
)

# Small, so the test of a replica that stays down can go past it in seconds.
max_slot_wal_keep_size_mb = 64
