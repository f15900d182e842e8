"""The containers' least privilege (compose.yaml renders it) and their runtime settings:
what `docker update` and `docker network connect` change under compose's feet, read back
and compared with compose.yaml, so the deploy recreates what drifted and the audit sees it."""

import json
import shlex

from pyinfra.api import FactBase
from pyinfra.operations import server

# CPU weight of each service when the host's CPUs are contended (Docker's default is 1024
# for all): the data services and the edge first, the apps next, background work last.
CPU_SHARES = {
    "postgres": 1024,
    "redis": 1024,
    "traefik": 1024,
    "gerbil": 1024,
    "pangolin": 512,
    "chatwoot-web": 768,
    "n8n": 768,
    "directus": 512,
    "chatwoot-sidekiq": 512,
    "n8n-worker": 512,
}
# Every container drops all capabilities (cap_drop: [ALL]) and gets back only these.
# PostgreSQL's entrypoint starts as root only to hand its data to its own user (chown,
# then gosu): it keeps what that takes, and its server runs unprivileged. Redis runs as
# `redis` from the start (compose.yaml), n8n and Directus as `node`: they need none.
# Traefik binds 80 and 443. The Chatwoot and
# Pangolin images, which cannot run here, keep what an image running as root needs to
# manage its own files (docs/hardening.md).
ROOT_FILE_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
CAPABILITIES = {
    "postgres": ROOT_FILE_CAPS,
    "redis": [],
    "n8n": [],
    "n8n-worker": [],
    "directus": [],
    "traefik": ["NET_BIND_SERVICE"],
    "chatwoot-web": ROOT_FILE_CAPS,
    "chatwoot-sidekiq": ROOT_FILE_CAPS,
    "pangolin": ROOT_FILE_CAPS,
    "gerbil": ["NET_ADMIN", "SYS_MODULE", "NET_BIND_SERVICE"],
}
# Services whose main process runs as root (the rest run as their image's own user).
RUN_AS_ROOT = ("traefik", "chatwoot-web", "chatwoot-sidekiq", "pangolin", "gerbil")
# Services whose root filesystem is read-only, and the paths they write besides their
# volumes: tmpfs, in memory (counted in the container's memory limit).
READ_ONLY_WRITABLE = {
    "postgres": ["/var/run/postgresql", "/tmp"],
    "redis": ["/tmp"],
    "traefik": ["/tmp", "/plugins-storage"],
    "n8n": ["/tmp", "/home/node/.cache"],
    "n8n-worker": ["/tmp", "/home/node/.cache", "/home/node/.n8n"],
    "directus": ["/tmp", "/home/node/.pm2"],
}


def _mb(size):
    return int(str(size).rstrip("m")) * 2**20


def capability_names(names):
    # Docker and compose versions differ in whether they keep the CAP_ prefix.
    return sorted(name.upper().removeprefix("CAP_") for name in names or [])


def runtime_of(container):
    """The settings of a container (`docker inspect`) that `docker update` and `docker
    network connect` change at runtime, unseen by compose (its config hash stays the same)."""
    hc = container["HostConfig"]
    return {
        "memory": hc["Memory"],
        "memory+swap": hc["MemorySwap"],
        "pids_limit": hc["PidsLimit"],
        "restart": hc["RestartPolicy"]["Name"],
        "cpu_shares": hc["CpuShares"],
        "networks": sorted(container["NetworkSettings"]["Networks"]),
        # Fixed at creation: differs only in a container created by hand from another file.
        "cap_drop": capability_names(hc["CapDrop"]),
        "cap_add": capability_names(hc["CapAdd"]),
        "read_only": hc["ReadonlyRootfs"],
        "no_new_privileges": "no-new-privileges:true" in (hc["SecurityOpt"] or []),
        "log_max_size": (hc["LogConfig"]["Config"] or {}).get("max-size"),
    }


def wanted_runtime(cfg, service):
    """The same settings, as compose.yaml asks them of `service` (a compose_document entry)."""
    networks = [] if "network_mode" in service else sorted(f"{cfg.stack.stack_name}_{n}" for n in service["networks"])
    return {
        "memory": _mb(service["mem_limit"]),
        "memory+swap": _mb(service["memswap_limit"]),
        "pids_limit": service["pids_limit"],
        "restart": service["restart"],
        "cpu_shares": service["cpu_shares"],
        "networks": networks,
        "cap_drop": capability_names(service.get("cap_drop")),
        "cap_add": capability_names(service.get("cap_add")),
        "read_only": service.get("read_only", False),
        "no_new_privileges": "no-new-privileges:true" in service["security_opt"],
        "log_max_size": service["logging"]["options"]["max-size"],
    }


# What a kernel without swap accounting or CPU shares makes Docker drop: not drift.
UNSUPPORTED = {"memory+swap": -1, "cpu_shares": 0}


def runtime_drift(cfg, services, containers):
    """{container name: (service, {setting: (live, wanted)})} for containers whose runtime
    settings differ from compose.yaml (`services`: its parsed services)."""
    drift = {}
    for name, container in containers.items():
        service = container["Config"]["Labels"].get("com.docker.compose.service")
        if service in services:
            live, wanted = runtime_of(container), wanted_runtime(cfg, services[service])
            differs = {
                key: (live[key], value)
                for key, value in wanted.items()
                if live[key] != value and live[key] != UNSUPPORTED.get(key, object())
            }
            if differs:
                drift[name] = (service, differs)
    return drift


class Containers(FactBase):
    """`docker inspect` of the project's containers: {name: inspected}."""

    def command(self, project):
        # Not the one-off containers of `compose run` (the bootstrap's n8n CLI, a run of the poster by hand).
        return (
            f"ids=$(docker ps -aq --filter label=com.docker.compose.project={shlex.quote(project)} "
            "--filter label=com.docker.compose.oneoff=False 2>/dev/null); "
            "[ -n \"$ids\" ] && docker inspect $ids || echo '[]'"
        )

    @staticmethod
    def default():
        return {}

    def process(self, output):
        return {c["Name"].lstrip("/"): c for c in json.loads("\n".join(output) or "[]")}


def recreate(rollout, services):
    """Containers recreated whose runtime settings drifted, from the compose.yaml this run
    wrote, before the `up` that follows: that `up` then leaves them be (one recreation)."""
    if services:
        server.shell(
            name=f"Containers recreated, runtime settings drifted: {', '.join(services)}",
            commands=[f"{rollout.dc} up -d --no-deps --force-recreate {' '.join(services)}"],
        )
