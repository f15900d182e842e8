"""What every part of the sandbox shares: paths, the sandbox's names, running commands."""

import os
import runpy
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".sandbox"
KEY = STATE / "id_ed25519"
# Bump the suffixes when a recipe changes.
IMAGE = "platform-sandbox-host:trixie-1"
VENDORS_IMAGE = "platform-vendors:trixie-1"  # the host's, with moto (sandbox/images/vendors)
BASE_IMAGE = "platform-sandbox-base:bookworm-1"
# The sandbox's Docker Hub: a real distribution registry in a container of its own, which
# the sandbox hosts pull from by name like production pulls (TLS, the sandbox CA).
REGISTRY = "registry.sandbox.test:5000"
REGISTRY_CONTAINER, REGISTRY_IMAGE, REGISTRY_LOCAL = "platform-registry", "platform-registry:1", "127.0.0.1:5000"
# One CA and one registry for every checkout on this machine (they share the registry
# container, so they must trust the same certificate); .sandbox/ca.pem is a copy for group data.
SHARED = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "platform-sandbox"
CA, CA_KEY = SHARED / "ca.pem", SHARED / "ca.key"
# The sandbox's Let's Encrypt: one Pebble per host, with a DNS that points every name at that
# host, both on a network of their own with fixed addresses (group_data/sandbox.py).
NETWORK, ACME_IMAGE = "platform-sandbox-net", "platform-acme:1"
GROUP_DATA = runpy.run_path(str(ROOT / "group_data" / "sandbox.py"))
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The default user of a cloud image: key log-in, password-less sudo.
SUDO_USER = "admin"


def log(msg):
    print(f"[sandbox] {msg}", flush=True)


def run(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


# runc's transient under load: the exec's process was never started ("read init-p:
# connection reset by peer"), so running the same command again is safe.
RUNC_TRANSIENT = ("read init-p", "OCI runtime exec failed: exec failed: unable to start container process")


def run_exec(cmd, tries=3, **kw):
    """subprocess.run of a `docker exec` (captured), again when runc failed to start its process."""
    for attempt in range(tries):
        out = subprocess.run(cmd, capture_output=True, text=True, **kw)
        if out.returncode == 0 or attempt == tries - 1 or not any(t in out.stderr for t in RUNC_TRANSIENT):
            return out
        log(f"runc did not start the process ({out.stderr.strip()[-200:]}); again: {' '.join(cmd)[:120]}")
    raise AssertionError("unreachable")


def privileged(cmd):
    return cmd if os.geteuid() == 0 else ["sudo", *cmd]


def docker_ok():
    return shutil.which("docker") and run(["docker", "info"], check=False, capture_output=True).returncode == 0


def image_exists(ref):
    return run(["docker", "image", "inspect", ref], check=False, capture_output=True).returncode == 0


def container_state(name):
    out = run(["docker", "inspect", "-f", "{{.State.Running}}", name], check=False, capture_output=True, text=True)
    return None if out.returncode else out.stdout.strip() == "true"
