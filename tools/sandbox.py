"""The sandbox: a real Debian 13 systemd host in a container, reached over SSH on 127.0.0.1.

    python tools/sandbox.py up        # Docker engine, host image, host container, SSH key
    python tools/sandbox.py destroy   # remove the host container and its state

The host image is built once with debootstrap and cached in the local Docker engine.
The host runs its own systemd, sshd and (once deployed) its own Docker, UFW and
iptables, so the deploy meets what it meets on a server.
"""

import argparse
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".sandbox"
KEY = STATE / "id_ed25519"
# Bump the suffixes when a recipe changes.
IMAGE = "platform-sandbox-host:trixie-1"
BASE_IMAGE = "platform-sandbox-base:bookworm-1"
ARCHIVE = STATE / "images.tar"
# Other releases, for the tests of upgrades: key of group data `images` -> references.
UPGRADES = {
    "chatwoot": "sandbox.local/chatwoot-stand-in:v4.6.1-r3",
    "chatwoot_broken": "sandbox.local/chatwoot-stand-in:v4.7.0-broken-r3",  # its migration fails
    "postgres": "sandbox.local/postgres-pg15-pgvector:r2",  # same packages, another tag
    "redis": "sandbox.local/redis-7:r2",
    "postgres_major": "sandbox.local/postgres-pg17-pgvector:r1",  # the next major version
}
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
    images = runpy.run_path(str(ROOT / "group_data" / "sandbox.py"))["images"]
    def recipe(key, ref):
        tag = ref.rsplit(":", 1)[1]
        if key == "postgres_major":  # Debian 13 carries PostgreSQL 17: built on the host's image
            return "postgres", {"REVISION": tag, "PG_MAJOR": "17", "BASE": IMAGE}
        if key in ("postgres", "redis"):
            return key, {"REVISION": tag}
        return "app-stand-in", {"APP": key.split("_")[0], "VERSION": tag}

    return {ref: recipe(key, ref) for key, ref in [*images.items(), *UPGRADES.items()]
            if key.split("_")[0] in ("postgres", "redis", "chatwoot", "n8n", "directus", "pangolin", "traefik")}


def ensure_service_images():
    """The images the sandbox's stack runs, built here and saved in one archive that the
    deploy uploads and loads on the host (offline_images), since no registry is reachable."""
    if not image_exists(BASE_IMAGE):
        debootstrap_image("bookworm", BASE_IMAGE, "ca-certificates")
    if not image_exists(IMAGE):
        build_host_image()
    built = False
    for ref, (recipe, args) in sandbox_images().items():
        if not image_exists(ref):
            log(f"building {ref}")
            build_args = [f"--build-arg={k}={v}" for k, v in {"BASE": BASE_IMAGE, "MIRROR": MIRROR, **args}.items()]
            run(["docker", "build", "-q", "-t", ref, *build_args, str(ROOT / "sandbox" / "images" / recipe)], stdout=subprocess.DEVNULL)
            built = True
    if built or not ARCHIVE.exists():
        log(f"saving the images to {ARCHIVE}")
        # Not PostgreSQL 17 (a gigabyte of its own): its one test loads it onto the host itself.
        run(["docker", "save", "-o", str(ARCHIVE), *(ref for ref in sandbox_images() if ref != UPGRADES["postgres_major"])])


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


def up(name, port):
    ensure_docker()
    ensure_key()
    ensure_service_images()
    state = container_state(name)
    if state is None:
        log(f"starting host {name} (SSH on 127.0.0.1:{port})")
        (STATE / f"{name}.known_hosts").unlink(missing_ok=True)
        run(["docker", "run", "-d", "--name", name, "--hostname", name, *run_flags(), "-p", f"127.0.0.1:{port}:22",
             IMAGE, "/lib/systemd/systemd"], stdout=subprocess.DEVNULL)
    elif not state:
        log(f"starting the stopped host {name}")
        run(["docker", "start", name], stdout=subprocess.DEVNULL)
    public = Path(f"{KEY}.pub").read_text()
    for user, home in (("root", "/root"), (SUDO_USER, f"/home/{SUDO_USER}")):
        run(["docker", "exec", "-i", name, "sh", "-c",
             f"install -d -m 700 -o {user} -g {user} {home}/.ssh && cat > {home}/.ssh/authorized_keys && "
             f"chown {user}:{user} {home}/.ssh/authorized_keys && chmod 600 {home}/.ssh/authorized_keys"], input=public.encode())
    wait_for_ssh(name, port)
    log(f"host {name} is up: ssh -i {KEY} -p {port} root@127.0.0.1")


def destroy(name):
    if docker_ok() and container_state(name) is not None:
        log(f"removing host {name} and its volumes")
        run(["docker", "rm", "-f", "-v", name], stdout=subprocess.DEVNULL)
    (STATE / f"{name}.known_hosts").unlink(missing_ok=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "destroy", "docker", "images"))
    parser.add_argument("--name", default=os.environ.get("SANDBOX_NAME", "sandbox-1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_SSH_PORT", "2222")))
    args = parser.parse_args()
    if args.action == "up":
        up(args.name, args.port)
    elif args.action == "destroy":
        destroy(args.name)
    elif args.action == "images":
        ensure_docker()
        ensure_service_images()
    else:
        ensure_docker()


if __name__ == "__main__":
    main()
