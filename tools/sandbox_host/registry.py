"""The sandbox's Docker Hub: Debian's docker-registry in a container, TLS from the sandbox CA."""

import subprocess
import sys
import time

from .common import (
    BASE_IMAGE,
    CA,
    REGISTRY,
    REGISTRY_CONTAINER,
    REGISTRY_IMAGE,
    REGISTRY_LOCAL,
    ROOT,
    SHARED,
    container_state,
    image_exists,
    log,
    run,
)
from .pki import issue_cert


def ensure_registry():
    certs = SHARED / "registry-certs"
    if not (certs / "registry.pem").exists():
        issue_cert(certs, "registry", [REGISTRY.split(":")[0], "localhost"], ips=["127.0.0.1"])
    if not image_exists(REGISTRY_IMAGE):
        log(f"building {REGISTRY_IMAGE} (Debian's docker-registry)")
        run(
            [
                "docker",
                "build",
                "-q",
                "-t",
                REGISTRY_IMAGE,
                f"--build-arg=BASE={BASE_IMAGE}",
                str(ROOT / "sandbox" / "images" / "registry"),
            ],
            stdout=subprocess.DEVNULL,
        )
    state = container_state(REGISTRY_CONTAINER)
    if state is not None and (
        not state
        or run(
            ["docker", "exec", REGISTRY_CONTAINER, "cat", "/certs/registry.pem"], check=False, capture_output=True
        ).stdout
        != (certs / "registry.pem").read_bytes()
    ):
        # Stopped, or started by a checkout with another sandbox CA: started again with ours (the images stay).
        run(["docker", "rm", "-f", REGISTRY_CONTAINER], stdout=subprocess.DEVNULL)
        state = None
    if state is None:
        log(f"starting the sandbox registry ({REGISTRY}, also on {REGISTRY_LOCAL} for pushes)")
        run(
            [
                "docker",
                "run",
                "-d",
                "--name",
                REGISTRY_CONTAINER,
                "--restart",
                "unless-stopped",
                "-p",
                f"{REGISTRY_LOCAL}:5000",
                "-v",
                "platform-registry-data:/var/lib/docker-registry",
                "-v",
                f"{certs}:/certs:ro",
                REGISTRY_IMAGE,
            ],
            stdout=subprocess.DEVNULL,
        )
    for _ in range(30):
        if in_registry(None):
            return
        time.sleep(1)
    sys.exit(f"the sandbox registry did not answer on {REGISTRY_LOCAL}; see `docker logs {REGISTRY_CONTAINER}`")


def in_registry(ref):
    """Whether the registry holds `ref` (None: whether it answers at all)."""
    import ssl
    import urllib.error
    import urllib.request

    path = "/v2/"
    if ref:
        repository, tag = ref.removeprefix(f"{REGISTRY}/").rsplit(":", 1)
        path = f"/v2/{repository}/manifests/{tag}"
    request = urllib.request.Request(
        f"https://{REGISTRY_LOCAL}{path}",
        method="HEAD",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
        },
    )
    try:
        with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(CA)), timeout=5):
            return True
    except (urllib.error.URLError, OSError):
        return False


def registry_address():
    return run(
        ["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", REGISTRY_CONTAINER],
        capture_output=True,
        text=True,
    ).stdout.strip()


def trust_registry(name):
    """The host finds the registry by name and trusts its certificate, as a server trusts Docker Hub's."""
    run(
        [
            "docker",
            "exec",
            "-i",
            name,
            "sh",
            "-c",
            # /etc/hosts is a bind mount: rewritten in place, not replaced.
            f"hosts=$(grep -v ' {REGISTRY.split(':')[0]}$' /etc/hosts); "
            f"printf '%s\\n{registry_address()} {REGISTRY.split(':')[0]}\\n' \"$hosts\" > /etc/hosts && "
            f"install -d /etc/docker/certs.d/{REGISTRY} && cat > /etc/docker/certs.d/{REGISTRY}/ca.crt && "
            f"chmod 444 /etc/docker/certs.d/{REGISTRY}/ca.crt",
        ],
        input=CA.read_bytes(),
    )
