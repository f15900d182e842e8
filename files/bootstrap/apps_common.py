"""The application bootstrap's shared part (bin/apps_common.py beside bin/apps-bootstrap.py): the run's
settings, what it prints, the secrets it reads and keeps, and the stack's docker compose.

The run's settings are set by configure(), from the command line and config/apps.json: importing
this module reads nothing. The other modules read them as apps_common.ROOT etc., at call time.
"""

import json
import os
import subprocess
import time

ROOT = None  # STACK_ROOT
CHECK = False  # read only: what differs is reported, nothing is written
SETTINGS = None  # config/apps.json
DC = None  # the stack's docker compose
CHANGED = []  # what was changed (with --check: what differs)


def configure(argv):
    """The run's settings, from its command line (as sys.argv: STACK_ROOT [--check]) and config/apps.json."""
    global ROOT, CHECK, SETTINGS, DC
    ROOT = next((a for a in argv[1:] if not a.startswith("--")), "/opt/msgplatform")
    CHECK = "--check" in argv
    SETTINGS = json.load(open(f"{ROOT}/config/apps.json"))
    DC = ["docker", "compose", "-f", f"{ROOT}/compose.yaml", "-p", SETTINGS["stack_name"]]


def log(message):
    if not CHECK:
        print(f"[apps] {message}", flush=True)


def changed(message):
    CHANGED.append(message)
    log(message)


def secret(name):
    path = f"{ROOT}/secrets/{name}"
    return open(path).read().strip() if os.path.exists(path) else None


def redacted(text):
    """`text` with every secret's value replaced: the apps may echo a value in an error."""
    for name in os.listdir(f"{ROOT}/secrets"):
        value = secret(name)
        if value and len(value) >= 8:
            text = text.replace(value, f"<secrets/{name}>")
    return text


def keep_secret(name, value):
    if CHECK:
        return
    path = f"{ROOT}/secrets/{name}"
    with open(os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(value)
    os.replace(f"{path}.tmp", path)


def compose(*args, stdin=None, env=None):
    """docker compose, once more (up to 3 tries) when the container's process never started:
    runc's "OCI runtime ... init-p: connection reset by peer" has been seen now and then on
    a busy host, for exec and run alike; nothing ran, so trying again is safe."""
    for attempt in range(3):
        out = subprocess.run([*DC, *args], input=stdin, env=env, capture_output=True, text=True)
        if out.returncode == 0 or "OCI runtime" not in out.stderr or attempt == 2:
            return out
        time.sleep(3)


def container_url(service, port):
    """The service's address on the stack's edge network (nothing is published on the host). Its container is
    found by compose's name for it (<project>-<service>-1), read by one `docker inspect`: compose's own CLI takes
    longer to start than the rest of a rerun's check of Chatwoot."""
    stack = SETTINGS["stack_name"]
    ip = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            f'{{{{(index .NetworkSettings.Networks "{stack}_edge").IPAddress}}}}',
            f"{stack}-{service}-1",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"http://{ip}:{port}"


def signing_secret(thing, what, since):
    """Its `secret`: without one n8n could check no signature, and would act on events anyone on the stack's networks
    can forge, so the bootstrap stops (--check reports it)."""
    if not thing.get("secret"):
        if CHECK:
            changed(f"Chatwoot shows no signing secret for {what}")
            return None
        raise SystemExit(
            f"Chatwoot shows no signing secret for {what}: Chatwoot signs its webhooks since {since}; "
            "give group data's images a Chatwoot at least that new"
        )
    return thing["secret"]
