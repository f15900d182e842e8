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

# pgBackRest's repository in a bucket: the S3 stand-in beside the primary's vendors' simulator
# (moto, sandbox/simulators/sim_s3.py), over TLS from the sandbox CA. The replica is seeded from it.
pitr_repo_s3_bucket = "msgplatform-pitr"
pitr_repo_s3_endpoint = globals()["_addresses"][2]  # from sandbox.py, above
pitr_repo_s3_region = "eu-central-1"
pitr_repo_s3_uri_style = "path"
pitr_repo_s3_ca_file = globals()["acme_ca_certificate"]  # the sandbox CA
