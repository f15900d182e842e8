"""The docker layer: Docker Engine and compose v2, with the daemon settings the stack relies on.

Ubuntu (and Debian 12, whose own docker-compose is the old v1) get Docker's apt
repository; Debian 13 gets its own docker.io and docker-compose (v2).
"""

import os
from io import StringIO
from typing import Literal

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.deb import DebArch
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, files, server, systemd

from . import converge
from .base import check_os
from .converge import ensure_packages
from .model import ConfigError, PositiveInt, Section, setting


class Settings(Section):
    docker_source: Literal["auto", "docker", "distro"] = setting(
        "auto",
        doc="Where Docker comes from: auto = Docker's apt repository on Ubuntu and Debian 12, the distribution's "
        "docker.io + compose v2 on Debian 13; docker or distro force one.",
        problem="unknown value",
        fix="set docker_source to one of: auto, docker, distro",
    )
    docker_log_max_size: str = setting(
        "10m",
        doc="Size at which a container's log is rotated.",
        problem="not a size",
        fix='write it like "10m" (k, m or g)',
        pattern=r"^[1-9][0-9]*[kmg]$",
    )
    docker_log_max_file: PositiveInt = setting(
        3,
        doc="Rotated log files kept per container.",
        problem="not a count",
        fix="set a whole number of files, at least 1",
    )


DAEMON_JSON = "/etc/docker/daemon.json"
UNITS = {"docker": (True, True)}
# CIS Docker Benchmark 1.1: auditd watches the daemon, its binaries, units and files. Both
# /usr/bin and /usr/sbin: Docker's packages and the distributions' put them apart; a watch
# on a path that does not exist costs nothing.
AUDIT_RULES_FILE = "/etc/audit/rules.d/60-platform-docker.rules"
AUDITED = (
    *(
        f"{d}/{b}"
        for b in (
            "dockerd",
            "containerd",
            "containerd-shim",
            "containerd-shim-runc-v1",
            "containerd-shim-runc-v2",
            "runc",
        )
        for d in ("/usr/bin", "/usr/sbin")
    ),
    "/run/containerd",
    "/var/lib/docker",
    "/etc/docker",
    DAEMON_JSON,
    "/etc/default/docker",
    "/etc/containerd/config.toml",
    "/etc/sysconfig/docker",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    *(f"/usr/lib/systemd/system/{unit}" for unit in ("docker.service", "docker.socket", "containerd.service")),
)
# The kernel's audit belongs to the machine: in a container (the sandbox) auditd is not
# started, its rules not loaded; the rules file is still written and audited.
AUDITD_DROPIN = "/etc/systemd/system/auditd.service.d/60-platform.conf"
# The watches under /run exist only once containerd and Docker run, after auditd loaded
# its rules at boot: Docker's start loads them again (not in a container).
DOCKER_AUDIT_DROPIN = "/etc/systemd/system/docker.service.d/60-platform-audit.conf"
DOCKER_AUDIT_DROPIN_TEXT = (
    "# Managed by the platform deploy: audit watches on Docker's runtime paths.\n[Service]\n"
    "ExecStartPost=-/bin/sh -c 'systemd-detect-virt -q -c || augenrules --load'\n"
)
AUDITD_DROPIN_TEXT = (
    "# Managed by the platform deploy: a container's host owns the kernel's audit.\n[Unit]\n"
    "ConditionVirtualization=!container\n"
)
KEYRING = "/etc/apt/keyrings/docker.asc"
SOURCE_FILE = "/etc/apt/sources.list.d/docker.sources"

DOCKER_REPO_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin")
# Docker's documented list of packages that conflict with its own.
CONFLICTING = ("docker.io", "docker-doc", "docker-compose", "docker-compose-v2", "podman-docker", "containerd", "runc")
DISTRO_PACKAGES = {
    ("Debian", 13): ("docker.io", "docker-cli", "docker-compose"),
    ("Ubuntu", 24): ("docker.io", "docker-compose-v2"),
    ("Ubuntu", 22): ("docker.io", "docker-compose-v2"),
}


def plan(os_name, major, codename, arch, docker_source):
    """Where Docker comes from on this OS, and which packages go in and out."""
    source = docker_source
    if source == "auto":
        source = "distro" if (os_name, major) == ("Debian", 13) else "docker"
    if source == "docker":
        url = f"https://download.docker.com/linux/{os_name.lower()}"
        return {
            "source": "docker",
            "repo": {"url": url, "key_url": f"{url}/gpg", "suite": codename, "arch": arch},
            "install": DOCKER_REPO_PACKAGES,
            "remove": CONFLICTING,
        }
    if (os_name, major) not in DISTRO_PACKAGES:
        raise ConfigError(
            f"docker_source = 'distro': {os_name} {major} has no compose v2 package; nothing was changed.\n"
            "  Fix: set docker_source = 'docker' (or 'auto') to use Docker's apt repository."
        )
    return {"source": "distro", "repo": None, "install": DISTRO_PACKAGES[(os_name, major)], "remove": ()}


def daemon_settings(cfg):
    return {
        "log-driver": "json-file",
        "log-opts": {"max-size": cfg.docker.docker_log_max_size, "max-file": str(cfg.docker.docker_log_max_file)},
        # Containers keep running while dockerd restarts (upgrades, daemon.json changes).
        "live-restore": True,
        # Published ports go through iptables DNAT only, no docker-proxy processes.
        "userland-proxy": False,
        # CIS Docker Benchmark 2.x: no setuid escalation in any container, and no traffic
        # between containers on the default bridge (the stack uses its own networks).
        "no-new-privileges": True,
        "icc": False,
    }


def host_plan(cfg):
    os_name, major, codename = check_os(converge.fact(LinuxDistribution))
    docker_plan = plan(os_name, major, codename, None, cfg.docker.docker_source)
    if docker_plan["repo"]:
        docker_plan["repo"]["arch"] = host.get_fact(DebArch)
    return docker_plan


class DaemonStale(FactBase):
    """Whether the running dockerd started before daemon.json last changed (it runs other settings)."""

    def command(self):
        started = (
            '$(date -d "$(systemctl show -p ActiveEnterTimestamp --value docker 2>/dev/null)" +%s 2>/dev/null '
            "|| echo 0)"
        )
        return f'[ -f {DAEMON_JSON} ] && [ "$(stat -c %Y {DAEMON_JSON})" -gt "{started}" ] && echo stale; true'

    def process(self, output):
        return any(line.strip() == "stale" for line in output)


def audit_rules():
    # -i: go on past a rule the kernel refuses (a path whose directory does not exist).
    return "# Managed by the platform deploy (docker layer).\n-i\n" + "".join(
        f"-w {path} -k docker\n" for path in AUDITED
    )


class AuditRules(FactBase):
    """The loaded audit rules (auditctl -l) and which AUDITED paths exist; {} in a container."""

    def command(self):
        exists = "; ".join(f"[ -e {path} ] && echo 'exists {path}'" for path in AUDITED)
        return f"systemd-detect-virt -q -c && exit 0; auditctl -l 2>/dev/null | sed 's/^/rule /'; {exists}; true"

    @staticmethod
    def default():
        return {}

    def process(self, output):
        return {
            "rules": [line[5:] for line in output if line.startswith("rule ")],
            "exists": [line[7:] for line in output if line.startswith("exists ")],
        }


def missing_audit_rules(state):
    """Existing AUDITED paths without a loaded watch."""
    return [
        path for path in state.get("exists", []) if not any(rule.startswith(f"-w {path} ") for rule in state["rules"])
    ]


def auditd_units(in_container):
    return {"auditd": (None if in_container else True, True)}


def _audit(installed, in_container, docker_new):
    dropins = [
        converge.put(
            name="auditd left to the machine in a container",
            src=StringIO(AUDITD_DROPIN_TEXT),
            dest=AUDITD_DROPIN,
            mode="644",
        ),
        converge.put(
            name="Docker's start loads the audit rules",
            src=StringIO(DOCKER_AUDIT_DROPIN_TEXT),
            dest=DOCKER_AUDIT_DROPIN,
            mode="644",
        ),
    ]
    systemd.daemon_reload(
        name="systemd reloaded for the audit drop-ins", _if=lambda: any(op.did_change() for op in dropins)
    )
    ensure_packages("auditd", ["auditd"], installed)
    rules = converge.put(name="Audit rules for Docker", src=StringIO(audit_rules()), dest=AUDIT_RULES_FILE, mode="640")
    missing = missing_audit_rules(converge.fact(AuditRules))
    server.shell(
        name="Audit rules compiled" + ("" if in_container else " and loaded"),
        commands=["augenrules" if in_container else "augenrules --load"],
        # Again once Docker's files exist (a watch on a directory not there yet is not
        # loaded), and when a loaded rule went missing.
        _if=lambda: rules.did_change() or docker_new or bool(missing),
    )


def managed_dirs():
    """The directories this layer writes files into (converge.scan reads each once a run)."""
    return sorted(
        {
            os.path.dirname(path)
            for path in (DAEMON_JSON, KEYRING, SOURCE_FILE, AUDIT_RULES_FILE, AUDITD_DROPIN, DOCKER_AUDIT_DROPIN)
        }
    )


def apply(cfg, docker_plan, installed, in_container=False):
    daemon = converge.template(
        name="Docker daemon settings",
        src="templates/daemon.json.j2",
        dest=DAEMON_JSON,
        mode="644",
        settings=daemon_settings(cfg),
    )

    repo = docker_plan["repo"]
    if repo:
        apt.packages(
            name="Packages that conflict with Docker's removed", packages=list(docker_plan["remove"]), present=False
        )
        converge.directory(name="apt keyrings directory", path="/etc/apt/keyrings", mode="755")
        files.download(name="Docker's apt signing key", src=repo["key_url"], dest=KEYRING, mode="644")
        source = converge.template(
            name="Docker's apt repository (deb822)",
            src="templates/docker.sources.j2",
            dest=SOURCE_FILE,
            mode="644",
            repo=repo,
            keyring=KEYRING,
        )
        apt.update(name="Package index with Docker's repository", _if=source.did_change)
    else:
        converge.absent(name="Docker's apt repository absent", path=SOURCE_FILE)

    ensure_packages("Docker Engine and compose v2", docker_plan["install"], installed)
    _audit(installed, in_container, docker_new=any(p not in installed for p in docker_plan["install"]))
    stale = converge.fact(DaemonStale)
    return systemd.service(
        name="Docker restarted for new daemon settings",
        service="docker",
        restarted=True,
        _if=lambda: daemon.did_change() or stale,
    )


def reads(cfg):
    """The facts this layer reads, for converge.read_ahead."""
    return [(LinuxDistribution, {}), (AuditRules, {}), (DaemonStale, {})]
