"""The sandbox hosts: real Debian 13 systemd hosts in containers, reached over SSH on 127.0.0.1."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import seed
from .acme import ensure_acme, ensure_network
from .common import (
    GROUP_DATA,
    IMAGE,
    KEY,
    NETWORK,
    REGISTRY,
    STATE,
    SUDO_USER,
    container_state,
    docker_ok,
    log,
    privileged,
    run,
)
from .images import ensure_service_images
from .registry import registry_address, trust_registry
from .vendors import ensure_vendors


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
    if (
        shutil.which("systemctl")
        and run(privileged(["systemctl", "start", "docker"]), check=False, capture_output=True).returncode == 0
        and docker_ok()
    ):
        return
    clear_stale_pid_files()
    STATE.mkdir(exist_ok=True)
    log(f"starting dockerd in the background (log: {STATE / 'dockerd.log'})")
    with open(STATE / "dockerd.log", "ab") as out:
        daemon = subprocess.Popen(privileged(["dockerd"]), stdout=out, stderr=out, start_new_session=True)
    for _ in range(DOCKERD_WAIT):
        if docker_ok():
            return
        if daemon.poll() is not None:
            break
        time.sleep(1)
    tail = (STATE / "dockerd.log").read_text(errors="replace").splitlines()[-15:]
    why = f"exited with {daemon.returncode}" if daemon.poll() is not None else f"did not answer within {DOCKERD_WAIT} s"
    sys.exit(f"dockerd {why}; the end of its log:\n" + "\n".join(tail))


DOCKERD_WAIT = 300
# A machine image taken while Docker ran keeps its pid files; dockerd refuses to start when the pid
# they name is alive, and its containerd supervisor would signal that unrelated process.
PID_FILES = {Path("/var/run/docker.pid"): "dockerd", Path("/var/run/docker/containerd/containerd.pid"): "containerd"}


def clear_stale_pid_files():
    for pid_file, program in PID_FILES.items():
        try:
            pid = pid_file.read_text().strip()
        except OSError:
            continue
        try:
            running = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            running = ""
        if running != program:
            log(f"removing the stale {pid_file} (pid {pid} is not {program})")
            run(privileged(["rm", "-f", str(pid_file)]))


def ensure_key():
    if KEY.exists():
        return
    STATE.mkdir(exist_ok=True)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    KEY.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    KEY.chmod(0o600)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    Path(f"{KEY}.pub").write_text(public.decode() + " platform-sandbox\n")


def run_flags(docker_volume=None):
    """systemd in a container without --privileged (it fails on this kind of machine)."""
    return [
        "--cap-add",
        "ALL",
        "--cap-drop",
        "SYS_RESOURCE",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--security-opt",
        "systempaths=unconfined",
        "--cgroupns=host",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/run/lock",
        "--stop-signal",
        "SIGRTMIN+3",  # systemd's signal for a clean shutdown
        # The host's own Docker keeps its layers on a volume: overlay on overlay fails.
        "-v",
        f"{docker_volume}:/var/lib/docker" if docker_volume else "/var/lib/docker",
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
            client.connect(
                "127.0.0.1",
                port=port,
                username="root",
                key_filename=str(KEY),
                timeout=5,
                allow_agent=False,
                look_for_keys=False,
            )
            client.exec_command("true")
            client.close()
            return
        except (OSError, paramiko.SSHException) as e:
            last = str(e) or type(e).__name__
            time.sleep(1)
    sys.exit(f"SSH on 127.0.0.1:{port} did not answer within {timeout} s (last: {last}); see `docker logs {name}`")


# make sandbox-cluster: inventory/sandbox_cluster.py's hosts, and one that is no peer.
CLUSTER = {"sandbox-primary": 2241, "sandbox-replica": 2242, "sandbox-worker": 2243, "sandbox-outsider": 2244}


def up(name, port, companions=True, seeded=False):
    """The host; `companions`: its ACME server and vendors' simulator (the cluster's peers have none);
    `seeded`: a new host starts with the images of the suite's seed in its Docker (seed.py)."""
    ensure_docker()
    ensure_key()
    ensure_service_images()
    ensure_network()
    state = container_state(name)
    if state is None:
        log(f"starting host {name} (SSH on 127.0.0.1:{port})")
        (STATE / f"{name}.known_hosts").unlink(missing_ok=True)
        docker_volume = seed.seeded_volume(name) if seeded else None
        started = run(
            [
                "docker",
                "run",
                "-d",
                "--name",
                name,
                "--hostname",
                name,
                *run_flags(docker_volume),
                "-p",
                f"127.0.0.1:{port}:22",
                "--add-host",
                f"{REGISTRY.split(':')[0]}:{registry_address()}",
                IMAGE,
                "/lib/systemd/systemd",
            ],
            stdout=subprocess.DEVNULL,
            check=False,
        )
        if started.returncode:
            if docker_volume:  # named: nothing else would remove it
                run(["docker", "volume", "rm", "-f", docker_volume], stdout=subprocess.DEVNULL, check=False)
            sys.exit(f"host {name} did not start (docker run exited with {started.returncode})")
        # Its address on the sandbox network, where its Pebble validates it.
        run(["docker", "network", "connect", "--ip", GROUP_DATA["_sandbox_addresses"](port)[0], NETWORK, name])
    elif not state:
        log(f"starting the stopped host {name}")
        run(["docker", "start", name], stdout=subprocess.DEVNULL)
    public = Path(f"{KEY}.pub").read_text()
    for user, home in (("root", "/root"), (SUDO_USER, f"/home/{SUDO_USER}")):
        run(
            [
                "docker",
                "exec",
                "-i",
                name,
                "sh",
                "-c",
                f"install -d -m 700 -o {user} -g {user} {home}/.ssh && cat > {home}/.ssh/authorized_keys && "
                f"chown {user}:{user} {home}/.ssh/authorized_keys && chmod 600 {home}/.ssh/authorized_keys",
            ],
            input=public.encode(),
        )
    trust_registry(name)
    if companions:
        ensure_acme(name, port)
        ensure_vendors(name, port)
    wait_for_ssh(name, port)
    log(f"host {name} is up: ssh -i {KEY} -p {port} root@127.0.0.1")


def destroy(name, in_background=False):
    """The host and its companions removed with their volumes. In the background: each container is killed and
    renamed at once (its name and port are free again), and the deletion of its files, a minute or more for a host's
    Docker images, goes on in a process of its own."""
    for container in (name, f"{name}-acme", f"{name}-vendors"):
        if not docker_ok() or container_state(container) is None:
            continue
        # A seeded host's Docker volume is a named one, which `rm -v` leaves.
        volume = seed.host_volume(container) if container == name else ""
        named = volume if volume.startswith(f"{name}-docker-") else ""
        if container == name:
            log(f"removing host {name} and its volumes" + (" (in the background)" if in_background else ""))
        if not in_background:
            run(["sh", "-c", removal(container, named)])
            continue
        run(["docker", "kill", container], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        removed = f"{container}-removed-{time.time_ns()}"
        run(["docker", "rename", container, removed])
        subprocess.Popen(
            ["sh", "-c", removal(removed, named)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    (STATE / f"{name}.known_hosts").unlink(missing_ok=True)


def removal(container, volume):
    return f"docker rm -f -v {container} >/dev/null" + (
        f" && docker volume rm -f {volume} >/dev/null" if volume else ""
    )
