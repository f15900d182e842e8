"""End-to-end: a fresh sandbox host of the tests' own, real pyinfra over real SSH."""

import json
import os
import runpy
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.sandbox_host.common import run_exec
from tools.sandbox_host.images import OFFLINE_ARCHIVE, UPGRADES, ensure_upgrade_images  # noqa: F401 (for the tests)

ROOT = Path(__file__).resolve().parents[2]
NAME = os.environ.get("E2E_SANDBOX_NAME", "sandbox-e2e")
PORT = os.environ.get("E2E_SANDBOX_SSH_PORT", "2223")
# PYTEST_NESTED: the audit's runs inside these tests (failing on purpose for drift) stay out of the time log.
ENV = {**os.environ, "SANDBOX_NAME": NAME, "SANDBOX_SSH_PORT": PORT, "PYTEST_NESTED": "1"}
BIN = Path(sys.executable).parent
DC = "docker compose -p msgplatform -f /opt/msgplatform/compose.yaml"
# n8n's CLI in a one-off container (as the bootstrap runs it): an exec beside the main process can hit its memory limit.
N8N_CLI = f"{DC} run --rm --no-deps -T --entrypoint sh n8n -c"


def publish_workflow(workflow):
    """A host command that imports `workflow` with n8n's CLI and publishes it through the running n8n's
    public API (with the deploy's key, as the bootstrap does), so no restart is needed."""
    return (
        f"cat > /tmp/wf.json <<'EOF'\n{json.dumps([workflow])}\nEOF\n"
        f"{N8N_CLI} 'cat > /tmp/wf.json && n8n import:workflow --input=/tmp/wf.json' < /tmp/wf.json && "
        f"{DC} exec -T n8n wget -qO- --post-data='{{}}' --header 'Content-Type: application/json' "
        '--header "X-N8N-API-KEY: $(cat /opt/msgplatform/secrets/n8n_api_key)" '
        f"http://127.0.0.1:5678/api/v1/workflows/{workflow['id']}/activate >/dev/null"
    )


APPS = ("chatwoot", "n8n", "directus")
GROUP_DATA = runpy.run_path(str(ROOT / "group_data" / "sandbox.py"))
SANDBOX_IMAGES = GROUP_DATA["images"]


def run(cmd, check=False, env=None, **kw):
    if cmd[:2] == ["docker", "exec"]:
        out = run_exec(cmd, cwd=ROOT, env={**ENV, **(env or {})}, **kw)
        if check:
            out.check_returncode()
        return out
    return subprocess.run(cmd, cwd=ROOT, env={**ENV, **(env or {})}, capture_output=True, text=True, check=check, **kw)


def run_detached(cmd):
    """A teardown nothing waits for: the hosts' removal goes on while the next tests run (or after the suite)."""
    subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


class Sandbox:
    # Everything pyinfra and the audit printed (on any host), to check that no secret ever shows.
    outputs: list[str] = []

    def __init__(self, name=NAME, port=PORT):
        self.name, self.port = name, port
        self.env = {"SANDBOX_NAME": name, "SANDBOX_SSH_PORT": str(port)}  # inventory/sandbox.py picks the host
        self.tool = [sys.executable, "tools/sandbox.py", "--name", name, "--port", str(port)]

    def up(self):
        if not os.environ.get("E2E_REUSE"):  # E2E_REUSE=1: keep the host of an earlier run (for debugging)
            run([*self.tool, "destroy", "--in-background"])
        up = run([*self.tool, "up", "--seeded"], timeout=3600)
        assert up.returncode == 0, f"sandbox host {self.name} did not come up:\n{up.stdout}\n{up.stderr}"
        return self

    def destroy(self):
        if not os.environ.get("E2E_SEED_KEEP"):  # the images, for the scale-out hosts and the next run's first host
            run([*self.tool, "seed-save"])
        if not os.environ.get("KEEP_SANDBOX"):  # KEEP_SANDBOX=1: leave it for a look after the tests
            run_detached([*self.tool, "destroy", "--in-background"])

    def deploy(self, *args, env=None):
        """pyinfra with --json: returns (returncode, results or None, log text)."""
        out = run(
            [str(BIN / "pyinfra"), "inventory/sandbox.py", "deploy.py", "-y", "--json", *args],
            env={**self.env, **(env or {})},
            timeout=1200,
        )
        self.outputs.append(out.stdout + out.stderr)
        try:
            results = json.loads(out.stdout)["results"]
        except (ValueError, KeyError, TypeError):
            results = None
        return out.returncode, results, out.stdout + out.stderr

    def audit(self, *tests):
        out = run(
            [
                sys.executable,
                "-m",
                "pytest",
                *(tests or ["tests/audit"]),
                "-q",
                "-p",
                "no:cacheprovider",
                "--inventory",
                "inventory/sandbox.py",
            ],
            env=self.env,
            timeout=600,
        )
        self.outputs.append(out.stdout + out.stderr)
        failed = sorted(
            {
                line.split("::")[1].split("[")[0]
                for line in out.stdout.splitlines()
                if line.startswith(("FAILED ", "ERROR "))
            }
        )
        return out.returncode, failed, out.stdout + out.stderr

    def sh(self, script, check=True):
        """Out-of-band access to the host (an operator's manual change), not the deploy's SSH path."""
        out = run(["docker", "exec", self.name, "sh", "-c", script])
        if check and out.returncode:
            raise AssertionError(f"{script!r} failed on {self.name}: {out.stderr}")
        return out.stdout


def psql(sandbox, db, sql, user="postgres"):
    return sandbox.sh(f'{DC} exec -T postgres psql -U {user} -d {db} -tAc "{sql}"').strip()


def redis(sandbox, *args):
    return sandbox.sh(
        f"{DC} exec -T redis sh -c 'REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli {' '.join(args)}'"
    ).strip()


def wait_healthy(sandbox, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = sandbox.sh(
            f"{DC} ps -a --format '{{{{.Service}}}} {{{{.State}}}} {{{{.Health}}}}'", check=False
        ).split("\n")
        states = [s for s in states if s.strip()]
        expected = len(sandbox.sh(f"{DC} config --services", check=False).split())
        if states and len(states) == expected and all(s.endswith("running healthy") for s in states):
            return
        time.sleep(3)
    raise AssertionError(f"the stack did not come back healthy: {states}")


def write_marks(sandbox, mark):
    for app in APPS:
        psql(sandbox, app, f"create table if not exists marks (v text); insert into marks values ('{mark}')", user=app)
    for index in range(len(APPS)):  # each app's Redis database
        redis(sandbox, "-n", str(index), "set", "mark", mark)


def read_marks(sandbox):
    rows = {app: psql(sandbox, app, "select string_agg(v, ',') from marks", user=app) for app in APPS}
    keys = {app: redis(sandbox, "-n", str(index), "get", "mark") for index, app in enumerate(APPS)}
    return rows, keys


def changed(results):
    return [op["name"] for op in results["operations"] if op["success"]]


@pytest.fixture(scope="session")
def upgrade_images():
    """The other releases the upgrade tests use: built on the first test that needs them
    (make test builds them before the tests; make sandbox never does)."""
    ensure_upgrade_images()


@pytest.fixture(scope="session")
def sandbox():
    host = Sandbox().up()
    yield host
    host.destroy()


# Data the real apps hold, written and read through the apps themselves: an n8n workflow
# (n8n's CLI) and a Directus item (Directus's REST API, with the admin's token).
WORKFLOW_ID = "e2eDayTwoFlow001"
NOTES = {
    "collection": "e2e_notes",
    "schema": {},
    "meta": {},
    "fields": [
        {
            "field": "id",
            "type": "integer",
            "meta": {"hidden": True},
            "schema": {"is_primary_key": True, "has_auto_increment": True},
        },
        {"field": "note", "type": "string", "meta": {}, "schema": {}},
    ],
}


def directus_api(sandbox, method, path, body=None):
    data = (
        f"--method={method} --body-data={shlex.quote(json.dumps(body))}" if body is not None else f"--method={method}"
    )
    script = (
        f'wget -qO- {data} --header "Authorization: Bearer $ADMIN_TOKEN" '
        f"--header 'Content-Type: application/json' http://127.0.0.1:8055{path}"
    )
    return sandbox.sh(f"{DC} exec -T directus sh -c {shlex.quote(script)}", check=False)


def write_app_items(sandbox, mark):
    workflow = {
        "id": WORKFLOW_ID,
        "name": f"e2e {mark}",
        "active": False,
        "nodes": [],
        "connections": {},
        "settings": {"executionOrder": "v1"},
    }
    sandbox.sh(
        f"cat > /tmp/wf.json <<'EOF'\n{json.dumps([workflow])}\nEOF\n"
        f"{N8N_CLI} 'cat > /tmp/wf.json && n8n import:workflow --input=/tmp/wf.json' < /tmp/wf.json"
    )
    if not directus_api(sandbox, "GET", "/collections/e2e_notes"):
        directus_api(sandbox, "POST", "/collections", NOTES)
    assert directus_api(sandbox, "POST", "/items/e2e_notes", {"note": mark}), "Directus refused the item"


def read_app_items(sandbox):
    """(the workflow's name as n8n exports it, the newest Directus note as its API returns it)"""
    exported = sandbox.sh(
        f"{N8N_CLI} 'n8n export:workflow --id={WORKFLOW_ID} --output=/tmp/out.json >/dev/null && cat /tmp/out.json'",
        check=False,
    )
    name = json.loads(exported)[0]["name"] if exported.strip().startswith("[") else None
    notes = directus_api(sandbox, "GET", "/items/e2e_notes?sort=-id&limit=1")
    note = json.loads(notes)["data"][0]["note"] if notes else None
    return name, note


def assert_no_secret_in_the_apps(sandbox):
    """No secret (the host's, and the operator's from the sandbox's secrets_file) in the
    shipped workflows, n8n's exports, the apps' logs or anything the deploy printed."""
    names = sandbox.sh("ls /opt/msgplatform/secrets | grep -v '\\.env$'").split()
    values = {name: sandbox.sh(f"cat /opt/msgplatform/secrets/{name}").strip() for name in names}
    values.update(line.split("=", 1) for line in Path(GROUP_DATA["secrets_file"]).read_text().split())
    shipped = "".join(p.read_text() for p in (ROOT / "files" / "n8n").glob("*.json"))
    exported = sandbox.sh(
        f"{N8N_CLI} 'n8n export:workflow --all --output=/tmp/all.json >/dev/null && cat /tmp/all.json'"
    )
    credentials = sandbox.sh(
        f"{N8N_CLI} 'n8n export:credentials --all --output=/tmp/c.json >/dev/null && cat /tmp/c.json'"
    )
    logs = sandbox.sh(f"{DC} logs --no-color n8n n8n-worker chatwoot-web directus 2>&1 | tail -n 20000")
    for where, text in (
        ("files/n8n", shipped),
        ("n8n's workflow export", exported),
        ("n8n's credential export", credentials),
        ("the containers' logs", logs),
        ("the deploy's output", "".join(sandbox.outputs)),
    ):
        shown = sorted(name for name, value in values.items() if len(value) >= 8 and value in text)
        assert not shown, f"secrets in {where}: {shown}"
