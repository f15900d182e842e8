"""What tests/e2e/test_5_cluster.py drives its four sandbox hosts with: their names and
addresses, a shell, psql and redis-cli on each, the cluster's pyinfra run and audit, and
n8n's workflows published and called on the primary."""

import json
import sys
import time

from conftest import BIN, DC, publish_workflow, run
from test_3_apps import WORKFLOW

INVENTORY = "inventory/sandbox_cluster.py"
TOOL = [sys.executable, "tools/sandbox.py"]
PRIMARY, REPLICA, WORKER, OUTSIDER = "sandbox-primary", "sandbox-replica", "sandbox-worker", "sandbox-outsider"
ADDRESS = {
    name: f"10.213.77.{3 * (port - 2200) + 10}"
    for name, port in ((PRIMARY, 2241), (REPLICA, 2242), (WORKER, 2243), (OUTSIDER, 2244))
}
# A probe that answers at once and runs later: its executions wait in the queue while no worker runs.
QUEUED = {
    **WORKFLOW,
    "id": "e2eQueuedProbe1",
    "name": "e2e queued probe",
    "nodes": [
        {
            **WORKFLOW["nodes"][0],
            "parameters": {"httpMethod": "POST", "path": "e2e-queued", "responseMode": "onReceived"},
            "webhookId": "e2e-queued",
        },
        WORKFLOW["nodes"][1],
    ],
}


def sh(name, script, check=True):
    out = run(["docker", "exec", name, "sh", "-c", script])
    if check and out.returncode:
        raise AssertionError(f"{script!r} failed on {name}: {out.stderr}")
    return out.stdout.strip()


def psql(name, sql, db="n8n"):
    return sh(name, f'{DC} exec -T postgres psql -U postgres -d {db} -tAc "{sql}"')


def redis(name, *args):
    return sh(
        name, f"{DC} exec -T redis sh -c 'REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli {' '.join(args)}'", check=False
    )


def reaches(name, port):
    """Whether a TCP connection from the host `name` to `port` on the primary opens."""
    return (
        sh(
            name,
            f"timeout 3 bash -c '</dev/tcp/{ADDRESS[PRIMARY]}/{port}' && echo open || echo closed",
            check=False,
        )
        == "open"
    )


def deploy(env=None):
    out = run([str(BIN / "pyinfra"), INVENTORY, "deploy.py", "-y", "--json"], env=env, timeout=1800)
    try:
        results = json.loads(out.stdout)["results"]
    except (ValueError, KeyError, TypeError):
        results = None
    return out.returncode, results, out.stdout + out.stderr


def audit(env=None):
    for _ in range(2):
        out = run(
            [sys.executable, "-m", "pytest", "tests/audit", "-q", "-p", "no:cacheprovider", "--inventory", INVENTORY],
            env=env,
            timeout=600,
        )
        # Once more only when a `docker exec` of the audit hit runc's transient "read init-p" (seen under load here).
        if out.returncode == 0 or "read init-p" not in out.stdout + out.stderr:
            break
    return out.returncode, out.stdout + out.stderr


def audit_failed(log):
    """The names of the audit's failed checks in its output, sorted, without their parameters."""
    return sorted({line.split("::")[1].split("[")[0] for line in log.splitlines() if line.startswith("FAILED ")})


def wait_until(check, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"not within {timeout} s: {what}")


def booted(name):
    """A sandbox host started again: until its systemd has booted (sshd, Docker, the containers' restart policies)."""
    run(["docker", "start", name])
    wait_until(
        lambda: (
            run(["docker", "exec", name, "systemctl", "is-system-running"]).stdout.strip() in ("running", "degraded")
        ),
        f"{name} booted",
        timeout=120,
    )


def publish(workflow):
    sh(PRIMARY, publish_workflow(workflow))


def call_webhook(path, timeout=60):
    call = (
        f"{DC} exec -T n8n wget -T {timeout} -qO- --post-data='{{}}' --header 'Content-Type: application/json' "
        f"http://127.0.0.1:5678/webhook/{path}"
    )
    return sh(PRIMARY, f"{call} || {call}")


def finished(count_before):
    """How many more of QUEUED's executions succeeded than `count_before`."""
    return (
        int(
            psql(
                PRIMARY,
                "select count(*) from execution_entity "
                f"where \\\"workflowId\\\" = '{QUEUED['id']}' and status = 'success'",
            )
        )
        - count_before
    )
