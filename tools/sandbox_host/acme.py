"""The sandbox's Let's Encrypt: one Pebble per host on the sandbox network, validating for real."""

import subprocess
import sys
import time

from .common import ACME_IMAGE, CA, GROUP_DATA, IMAGE, NETWORK, ROOT, STATE, container_state, image_exists, log, run
from .pki import issue_cert


def ensure_network():
    if run(["docker", "network", "inspect", NETWORK], check=False, capture_output=True).returncode:
        run(
            ["docker", "network", "create", "--subnet", GROUP_DATA["_SANDBOX_SUBNET"], NETWORK],
            stdout=subprocess.DEVNULL,
        )


def ensure_acme(name, port):
    """The host's Pebble, validating its challenges against the host for real; its root
    certificate (new at each Pebble start) in .sandbox/<name>.acme-root.pem."""
    host_ip, acme_ip, _ = GROUP_DATA["_sandbox_addresses"](port)
    acme, certs = f"{name}-acme", STATE / f"{name}-acme-certs"
    if not image_exists(ACME_IMAGE):
        log(f"building {ACME_IMAGE} (Debian's pebble)")
        run(
            [
                "docker",
                "build",
                "-q",
                "-t",
                ACME_IMAGE,
                f"--build-arg=BASE={IMAGE}",
                str(ROOT / "sandbox" / "images" / "acme"),
            ],
            stdout=subprocess.DEVNULL,
        )
    if container_state(acme) is None:
        issue_cert(certs, "acme", ["acme.sandbox.test"], ips=[acme_ip])
        run(
            [
                "docker",
                "run",
                "-d",
                "--name",
                acme,
                "--network",
                NETWORK,
                "--ip",
                acme_ip,
                "-e",
                f"HOST_IP={host_ip}",
                "-e",
                "PEBBLE_VA_NOSLEEP=1",
                "-v",
                f"{certs}:/certs:ro",
                ACME_IMAGE,
            ],
            stdout=subprocess.DEVNULL,
        )
    elif not container_state(acme):
        run(["docker", "start", acme], stdout=subprocess.DEVNULL)
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(CA))
    for _ in range(30):
        try:
            with urllib.request.urlopen(f"https://{acme_ip}:15000/roots/0", context=context, timeout=5) as answer:
                root = answer.read()
            break
        except OSError:
            time.sleep(1)
    else:
        sys.exit(f"Pebble did not answer on {acme_ip}:15000; see `docker logs {acme}`")
    stored = STATE / f"{name}.acme-root.pem"
    if stored.exists() and stored.read_bytes() != root:
        # A restarted Pebble has a new root: the host's certificates from the old one are
        # dropped, and its Traefik asks the new Pebble (as after a CA change in production).
        log(f"{acme} has a new root: {name}'s Traefik gets new certificates")
        run(
            [
                "docker",
                "exec",
                name,
                "sh",
                "-c",
                "f=/opt/msgplatform/edge/letsencrypt/acme.json; [ -s $f ] || exit 0; : > $f && "
                "docker restart $(docker ps -q --filter label=com.docker.compose.service=traefik)",
            ],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    stored.write_bytes(root)
    if name == "sandbox-1":  # make sandbox's host: the README's curl uses this one
        (STATE / "acme-root.pem").write_bytes(root)
