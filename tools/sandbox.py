"""The sandbox: a real Debian 13 systemd host in a container, reached over SSH on 127.0.0.1.

    python tools/sandbox.py up        # Docker engine, host image, host container, SSH key
    python tools/sandbox.py destroy   # remove the host container and its state

The host image is built once with debootstrap and cached in the local Docker engine.
The host runs its own systemd, sshd and (once deployed) its own Docker, UFW and
iptables, so the deploy meets what it meets on a server.
"""

import argparse
import datetime
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".sandbox"
KEY = STATE / "id_ed25519"
# Bump the suffixes when a recipe changes.
IMAGE = "platform-sandbox-host:trixie-1"
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
# For air-gapped servers: the upgrade tests deliver these by `offline_images` (a `docker
# save` archive the deploy uploads and loads), not by the registry.
OFFLINE_ARCHIVE = STATE / "offline-images.tar"
# Other releases, for the tests of upgrades: key of group data `images` -> references.
UPGRADES = {
    "chatwoot": f"{REGISTRY}/chatwoot-stand-in:v4.16.0-r9",
    "chatwoot_broken": f"{REGISTRY}/chatwoot-stand-in:v4.16.1-broken-r9",  # its migration fails
    "postgres": f"{REGISTRY}/postgres-pg15-pgvector:r2",  # same packages, another tag
    "redis": f"{REGISTRY}/redis-7:r2",
    "postgres_major": f"{REGISTRY}/postgres-pg17-pgvector:r1",  # the next major version
    # The real apps' previous releases, upgraded from by the tests (their migrations run).
    "n8n_previous": f"{REGISTRY}/n8n:2.39.10-real1",
    "directus_previous": f"{REGISTRY}/directus:12.3.1-real1",
}
OFFLINE = (UPGRADES["postgres"], UPGRADES["redis"])
# Built from the registries (npm, PyPI) the way the vendors build theirs; the rest of the
# apps and the edge are labelled stand-ins (sandbox/images/app-stand-in).
REAL_APPS = ("n8n", "directus", "traefik")
HOST_INCLUDE = "systemd,systemd-sysv,openssh-server,python3,iproute2,ca-certificates,sudo,dbus,procps"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The default user of a cloud image: key log-in, password-less sudo.
SUDO_USER = "admin"


def log(msg):
    print(f"[sandbox] {msg}", flush=True)


def run(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def privileged(cmd):
    return cmd if os.geteuid() == 0 else ["sudo", *cmd]


def docker_ok():
    return shutil.which("docker") and run(["docker", "info"], check=False, capture_output=True).returncode == 0


def ensure_docker():
    """A Docker engine answering on this machine; install and start one if none does."""
    if docker_ok():
        return
    if not shutil.which("dockerd"):
        log("no Docker engine: installing docker.io from the distribution")
        run(privileged(["apt-get", "update", "-qq"]))
        run(privileged(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "docker.io"]))
    if docker_ok():
        return
    if shutil.which("systemctl") and run(privileged(["systemctl", "start", "docker"]), check=False, capture_output=True).returncode == 0 and docker_ok():
        return
    STATE.mkdir(exist_ok=True)
    log(f"starting dockerd in the background (log: {STATE / 'dockerd.log'})")
    with open(STATE / "dockerd.log", "ab") as out:
        subprocess.Popen(privileged(["dockerd"]), stdout=out, stderr=out, start_new_session=True)
    for _ in range(60):
        if docker_ok():
            return
        time.sleep(1)
    sys.exit(f"dockerd did not answer within 60 s; see {STATE / 'dockerd.log'}")


def ensure_key():
    if KEY.exists():
        return
    STATE.mkdir(exist_ok=True)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    KEY.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    KEY.chmod(0o600)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    Path(f"{KEY}.pub").write_text(public.decode() + " platform-sandbox\n")


def image_exists(ref):
    return run(["docker", "image", "inspect", ref], check=False, capture_output=True).returncode == 0


def debootstrap_image(suite, tag, include, setup=(), cmd="/bin/bash"):
    """A Debian root built with debootstrap, customised in a chroot, imported as `tag`."""
    if not shutil.which("debootstrap"):
        log("installing debootstrap")
        run(privileged(["apt-get", "update", "-qq"]))
        run(privileged(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "debootstrap"]))
    STATE.mkdir(exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix=f"rootfs-{suite}-", dir=STATE))
    try:
        log(f"building {tag} with debootstrap (about a minute, once)")
        run(privileged(["debootstrap", "--variant=minbase", f"--include={include}", suite, str(rootfs), MIRROR]), stdout=subprocess.DEVNULL)
        for command in setup:
            run(privileged(["chroot", str(rootfs), "sh", "-c", command]))
        tar = subprocess.Popen(privileged(["tar", "-C", str(rootfs), "-c", "."]), stdout=subprocess.PIPE)
        run(["docker", "import", "--change", f'CMD ["{cmd}"]', "-", tag], stdin=tar.stdout, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            sys.exit(f"tar of the {suite} root failed")
    finally:
        run(privileged(["rm", "-rf", str(rootfs)]))


def build_host_image():
    debootstrap_image("trixie", IMAGE, HOST_INCLUDE, setup=(
        f"useradd --create-home --shell /bin/bash --groups sudo {SUDO_USER}",
        f"echo '{SUDO_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-{SUDO_USER} && chmod 440 /etc/sudoers.d/90-{SUDO_USER}",
        # No kernel modules to load in a container; keep systemd from reporting "degraded".
        "systemctl mask systemd-modules-load.service",
    ), cmd="/lib/systemd/systemd")


def sandbox_images():
    """image reference -> (recipe directory, build args), from group_data/sandbox.py."""
    images = GROUP_DATA["images"]

    def recipe(key, ref):
        tag = ref.rsplit(":", 1)[1]
        if key == "postgres_major":  # Debian 13 carries PostgreSQL 17: built on the host's image
            return "postgres", {"REVISION": tag, "PG_MAJOR": "17", "BASE": IMAGE}
        if key in ("postgres", "redis"):
            return key, {"REVISION": tag}
        if key.split("_")[0] in REAL_APPS:  # the real app from the registries: tag <version>-<revision>
            version, revision = tag.rsplit("-", 1)
            return key.split("_")[0], {"VERSION": version, "REVISION": revision, "EXTRA_CA_CERT": egress_ca()}
        return "app-stand-in", {"APP": key.split("_")[0], "VERSION": tag}

    return {ref: recipe(key, ref) for key, ref in [*images.items(), *UPGRADES.items()]
            if key.split("_")[0] in ("postgres", "redis", "chatwoot", "n8n", "directus", "pangolin", "traefik")}


def egress_ca():
    """Certificates this machine adds to its trust store (a TLS-intercepting proxy in front of
    PyPI and npm, on machines that have one): trusted by the image builds only."""
    return "".join(p.read_text() for p in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")))


def ensure_service_images():
    """The images the sandbox's stack runs, built here and pushed to the registry (the
    offline ones saved in an archive instead)."""
    if not image_exists(BASE_IMAGE):
        debootstrap_image("bookworm", BASE_IMAGE, "ca-certificates")
    if not image_exists(IMAGE):
        build_host_image()
    ensure_registry()
    missing = {ref: spec for ref, spec in sandbox_images().items() if not image_exists(ref)}
    if missing:
        # In parallel: the npm installs of n8n and Directus wait on the network as much as on the CPU.
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda item: build(item[0], *item[1]), missing.items()))
        OFFLINE_ARCHIVE.unlink(missing_ok=True)
    for ref in sandbox_images():
        if ref not in OFFLINE and not in_registry(ref):
            log(f"pushing {ref} to the sandbox registry")
            local = ref.replace(REGISTRY, REGISTRY_LOCAL, 1)
            run(["docker", "tag", ref, local])
            run(["docker", "push", "-q", local], stdout=subprocess.DEVNULL)
            # Another checkout pushing the same image may have removed the tag already.
            run(["docker", "rmi", local], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if not OFFLINE_ARCHIVE.exists():
        log(f"saving {', '.join(OFFLINE)} to {OFFLINE_ARCHIVE}")
        OFFLINE_ARCHIVE.parent.mkdir(exist_ok=True)
        run(["docker", "save", "-o", str(OFFLINE_ARCHIVE), *OFFLINE])


def build(ref, recipe, args):
    log(f"building {ref}")
    start = time.monotonic()
    build_args = [f"--build-arg={k}={v}" for k, v in {"BASE": BASE_IMAGE, "MIRROR": MIRROR, **args}.items()]
    out = run(["docker", "build", "-q", "-t", ref, *build_args, str(ROOT / "sandbox" / "images" / recipe)],
              check=False, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"building {ref} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    log(f"built {ref} in {time.monotonic() - start:.0f} s")


def ensure_ca():
    """The sandbox's own certificate authority (its key stays in SHARED), copied to .sandbox/ca.pem."""
    STATE.mkdir(exist_ok=True)
    if not CA.exists():
        make_ca()
    if not (STATE / "ca.pem").exists() or (STATE / "ca.pem").read_bytes() != CA.read_bytes():
        shutil.copyfile(CA, STATE / "ca.pem")


def make_ca():
    SHARED.mkdir(parents=True, exist_ok=True, mode=0o700)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "platform sandbox CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256()))
    CA_KEY.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    CA_KEY.chmod(0o600)
    CA.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def issue_cert(directory, stem, names, ips=()):
    """A server certificate from the sandbox CA: directory/stem.pem and .key."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ensure_ca()
    ca_key = serialization.load_pem_private_key(CA_KEY.read_bytes(), None)
    ca = x509.load_pem_x509_certificate(CA.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False).sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + CA.read_bytes())


def ensure_registry():
    certs = SHARED / "registry-certs"
    if not (certs / "registry.pem").exists():
        issue_cert(certs, "registry", [REGISTRY.split(":")[0], "localhost"], ips=["127.0.0.1"])
    if not image_exists(REGISTRY_IMAGE):
        log(f"building {REGISTRY_IMAGE} (Debian's docker-registry)")
        run(["docker", "build", "-q", "-t", REGISTRY_IMAGE, f"--build-arg=BASE={BASE_IMAGE}", str(ROOT / "sandbox" / "images" / "registry")],
            stdout=subprocess.DEVNULL)
    state = container_state(REGISTRY_CONTAINER)
    if state is not None and (not state or run(["docker", "exec", REGISTRY_CONTAINER, "cat", "/certs/registry.pem"],
                                               check=False, capture_output=True).stdout != (certs / "registry.pem").read_bytes()):
        # Stopped, or started by a checkout with another sandbox CA: started again with ours (the images stay).
        run(["docker", "rm", "-f", REGISTRY_CONTAINER], stdout=subprocess.DEVNULL)
        state = None
    if state is None:
        log(f"starting the sandbox registry ({REGISTRY}, also on {REGISTRY_LOCAL} for pushes)")
        run(["docker", "run", "-d", "--name", REGISTRY_CONTAINER, "--restart", "unless-stopped", "-p", f"{REGISTRY_LOCAL}:5000",
             "-v", "platform-registry-data:/var/lib/docker-registry", "-v", f"{certs}:/certs:ro", REGISTRY_IMAGE], stdout=subprocess.DEVNULL)
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
    request = urllib.request.Request(f"https://{REGISTRY_LOCAL}{path}", method="HEAD", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
    try:
        with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(CA)), timeout=5):
            return True
    except (urllib.error.URLError, OSError):
        return False


def ensure_network():
    if run(["docker", "network", "inspect", NETWORK], check=False, capture_output=True).returncode:
        run(["docker", "network", "create", "--subnet", GROUP_DATA["_SANDBOX_SUBNET"], NETWORK], stdout=subprocess.DEVNULL)


def ensure_acme(name, port):
    """The host's Pebble, validating its challenges against the host for real; its root
    certificate (new at each Pebble start) in .sandbox/<name>.acme-root.pem."""
    host_ip, acme_ip, _ = GROUP_DATA["_sandbox_addresses"](port)
    acme, certs = f"{name}-acme", STATE / f"{name}-acme-certs"
    if not image_exists(ACME_IMAGE):
        log(f"building {ACME_IMAGE} (Debian's pebble)")
        run(["docker", "build", "-q", "-t", ACME_IMAGE, f"--build-arg=BASE={IMAGE}", str(ROOT / "sandbox" / "images" / "acme")],
            stdout=subprocess.DEVNULL)
    if container_state(acme) is None:
        issue_cert(certs, "acme", ["acme.sandbox.test"], ips=[acme_ip])
        run(["docker", "run", "-d", "--name", acme, "--network", NETWORK, "--ip", acme_ip, "-e", f"HOST_IP={host_ip}",
             "-e", "PEBBLE_VA_NOSLEEP=1", "-v", f"{certs}:/certs:ro", ACME_IMAGE], stdout=subprocess.DEVNULL)
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
        run(["docker", "exec", name, "sh", "-c", "f=/opt/msgplatform/edge/letsencrypt/acme.json; [ -s $f ] || exit 0; : > $f && "
             "docker restart $(docker ps -q --filter label=com.docker.compose.service=traefik)"],
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stored.write_bytes(root)
    if name == "sandbox-1":  # make sandbox's host: the README's curl uses this one
        (STATE / "acme-root.pem").write_bytes(root)


VENDOR_SECRETS = ("PLATFORM_META_APP_SECRET", "PLATFORM_WHATSAPP_ACCESS_TOKEN", "PLATFORM_CLAUDE_API_KEY",
                  "PLATFORM_FACEBOOK_PAGE_TOKEN", "PLATFORM_INSTAGRAM_ACCESS_TOKEN", "PLATFORM_SMTP_PASSWORD")


def vendor_secrets():
    """The simulated vendors' credentials, each made once (names added later are appended to the
    file, the others kept): what an operator would get from Meta, Anthropic and a mail provider."""
    import secrets

    path = STATE / "vendors.env"
    STATE.mkdir(exist_ok=True)
    path.touch(mode=0o600)
    known = dict(line.split("=", 1) for line in path.read_text().split())
    missing = [name for name in VENDOR_SECRETS if name not in known]
    if missing:
        with open(path, "a") as f:
            f.write("".join(f"{name}=sim-{secrets.token_hex(16)}\n" for name in missing))
        path.chmod(0o600)
    return dict(line.split("=", 1) for line in path.read_text().split())


def ensure_vendors(name, port):
    """The vendors' simulator beside the host (sandbox/simulators/vendors.py), at its fixed address,
    its SMTP sink's aiosmtpd from PyPI in .sandbox/sim-lib. A container started with other
    arguments (another checkout, new secrets, an older recipe) is started again with these."""
    import hashlib

    vendors, address = f"{name}-vendors", GROUP_DATA["_sandbox_addresses"](port)[2]
    lib, requirement = STATE / "sim-lib", "aiosmtpd==1.4.6"
    if not (lib / f"{requirement.replace('==', '-')}.dist-info").exists():
        log(f"installing {requirement} for the vendors' simulator into {lib}")
        pip = ROOT / ".venv" / "bin" / "pip"
        run([*([str(pip)] if pip.exists() else [sys.executable, "-m", "pip"]), "install", "-q", "--target", str(lib), requirement],
            stdout=subprocess.DEVNULL)
    secret = vendor_secrets()
    env = {"SIM_WHATSAPP_TOKEN": secret["PLATFORM_WHATSAPP_ACCESS_TOKEN"], "SIM_FACEBOOK_PAGE_TOKEN": secret["PLATFORM_FACEBOOK_PAGE_TOKEN"],
           "SIM_INSTAGRAM_TOKEN": secret["PLATFORM_INSTAGRAM_ACCESS_TOKEN"], "SIM_INSTAGRAM_BUSINESS_ACCOUNT": GROUP_DATA["instagram_user_id"],
           "SIM_SMTP_USER": "platform",
           "SIM_SMTP_PASSWORD": secret["PLATFORM_SMTP_PASSWORD"], "PYTHONPATH": "/sim-lib"}
    args = ["--network", NETWORK, "--ip", address, *[arg for k, v in env.items() for arg in ("-e", f"{k}={v}")],
            "-v", f"{ROOT / 'sandbox' / 'simulators'}:/sim:ro", "-v", f"{lib}:/sim-lib:ro", "--entrypoint", "python3", IMAGE, "/sim/vendors.py"]
    digest = hashlib.sha256("\0".join(args).encode()).hexdigest()[:16]
    label = run(["docker", "inspect", "-f", '{{index .Config.Labels "platform.vendors-args"}}', vendors],
                check=False, capture_output=True, text=True).stdout.strip()
    if container_state(vendors) is not None and label != digest:
        log(f"starting {vendors} again: its arguments changed")
        run(["docker", "rm", "-f", vendors], stdout=subprocess.DEVNULL)
    if container_state(vendors) is None:
        run(["docker", "run", "-d", "--name", vendors, "--label", f"platform.vendors-args={digest}", *args], stdout=subprocess.DEVNULL)
    elif not container_state(vendors):
        run(["docker", "start", vendors], stdout=subprocess.DEVNULL)


def registry_address():
    return run(["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", REGISTRY_CONTAINER], capture_output=True, text=True).stdout.strip()


def trust_registry(name):
    """The host finds the registry by name and trusts its certificate, as a server trusts Docker Hub's."""
    run(["docker", "exec", "-i", name, "sh", "-c",
         # /etc/hosts is a bind mount: rewritten in place, not replaced.
         f"hosts=$(grep -v ' {REGISTRY.split(':')[0]}$' /etc/hosts); printf '%s\\n{registry_address()} {REGISTRY.split(':')[0]}\\n' \"$hosts\" > /etc/hosts && "
         f"install -d /etc/docker/certs.d/{REGISTRY} && cat > /etc/docker/certs.d/{REGISTRY}/ca.crt && chmod 444 /etc/docker/certs.d/{REGISTRY}/ca.crt"], input=CA.read_bytes())


def container_state(name):
    out = run(["docker", "inspect", "-f", "{{.State.Running}}", name], check=False, capture_output=True, text=True)
    return None if out.returncode else out.stdout.strip() == "true"


def run_flags():
    """systemd in a container without --privileged (it fails on this kind of machine)."""
    return [
        "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--security-opt", "systempaths=unconfined",
        "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--stop-signal", "SIGRTMIN+3",  # systemd's signal for a clean shutdown
        # The host's own Docker keeps its layers on a volume: overlay on overlay fails.
        "-v", "/var/lib/docker",
    ]


def wait_for_ssh(name, port, timeout=90):
    """Until the host's sshd lets the sandbox key in. Docker's port forward accepts TCP before
    sshd runs, so the banner is read first; paramiko's own retry noise is kept quiet."""
    import logging
    import socket

    import paramiko

    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    deadline, last = time.time() + timeout, "no answer"
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                if not probe.recv(64).startswith(b"SSH-"):
                    raise OSError("no SSH banner yet")
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            client.connect("127.0.0.1", port=port, username="root", key_filename=str(KEY), timeout=5, allow_agent=False, look_for_keys=False)
            client.exec_command("true")
            client.close()
            return
        except (OSError, paramiko.SSHException) as e:
            last = str(e) or type(e).__name__
            time.sleep(1)
    sys.exit(f"SSH on 127.0.0.1:{port} did not answer within {timeout} s (last: {last}); see `docker logs {name}`")


# make sandbox-cluster: inventory/sandbox_cluster.py's hosts, and one that is no peer.
CLUSTER = {"sandbox-primary": 2241, "sandbox-replica": 2242, "sandbox-worker": 2243, "sandbox-outsider": 2244}


def up(name, port, companions=True):
    """The host; `companions`: its ACME server and vendors' simulator (the cluster's peers have none)."""
    ensure_docker()
    ensure_key()
    ensure_service_images()
    ensure_network()
    state = container_state(name)
    if state is None:
        log(f"starting host {name} (SSH on 127.0.0.1:{port})")
        (STATE / f"{name}.known_hosts").unlink(missing_ok=True)
        run(["docker", "run", "-d", "--name", name, "--hostname", name, *run_flags(), "-p", f"127.0.0.1:{port}:22",
             "--add-host", f"{REGISTRY.split(':')[0]}:{registry_address()}", IMAGE, "/lib/systemd/systemd"], stdout=subprocess.DEVNULL)
        # Its address on the sandbox network, where its Pebble validates it.
        run(["docker", "network", "connect", "--ip", GROUP_DATA["_sandbox_addresses"](port)[0], NETWORK, name])
    elif not state:
        log(f"starting the stopped host {name}")
        run(["docker", "start", name], stdout=subprocess.DEVNULL)
    public = Path(f"{KEY}.pub").read_text()
    for user, home in (("root", "/root"), (SUDO_USER, f"/home/{SUDO_USER}")):
        run(["docker", "exec", "-i", name, "sh", "-c",
             f"install -d -m 700 -o {user} -g {user} {home}/.ssh && cat > {home}/.ssh/authorized_keys && "
             f"chown {user}:{user} {home}/.ssh/authorized_keys && chmod 600 {home}/.ssh/authorized_keys"], input=public.encode())
    trust_registry(name)
    if companions:
        ensure_acme(name, port)
        ensure_vendors(name, port)
    wait_for_ssh(name, port)
    log(f"host {name} is up: ssh -i {KEY} -p {port} root@127.0.0.1")


def destroy(name):
    if docker_ok() and container_state(name) is not None:
        log(f"removing host {name} and its volumes")
        run(["docker", "rm", "-f", "-v", name], stdout=subprocess.DEVNULL)
    for companion in (f"{name}-acme", f"{name}-vendors"):
        if docker_ok() and container_state(companion) is not None:
            run(["docker", "rm", "-f", "-v", companion], stdout=subprocess.DEVNULL)
    (STATE / f"{name}.known_hosts").unlink(missing_ok=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "destroy", "docker", "images", "cluster-up", "cluster-destroy"))
    parser.add_argument("--name", default=os.environ.get("SANDBOX_NAME", "sandbox-1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_SSH_PORT", "2222")))
    args = parser.parse_args()
    if args.action == "up":
        up(args.name, args.port)
    elif args.action == "destroy":
        destroy(args.name)
    elif args.action == "cluster-up":
        for name, port in CLUSTER.items():
            up(name, port, companions=name == "sandbox-primary")
    elif args.action == "cluster-destroy":
        for name in CLUSTER:
            destroy(name)
    elif args.action == "images":
        ensure_docker()
        ensure_service_images()
    else:
        ensure_docker()


if __name__ == "__main__":
    main()
