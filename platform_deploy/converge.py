"""Package and service operations that cost one fact each and stay silent on a rerun.

pyinfra's apt.packages and systemd.service each gather their own facts per call
(dpkg -l, two systemctl calls per unit). Reading those facts once for all packages and
units, and emitting pyinfra's own operations only for what differs, keeps a no-op rerun
close to the cost of connecting. apt.update with a cache_time alone would also report a
change once the cache ages, so a rerun on a converged host would not be clean.
"""

from pyinfra import host
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import apt, systemd


def installed_packages():
    return host.get_fact(DebPackages)


def ensure_packages(name, packages, installed):
    """Install what `installed` (a DebPackages fact) lacks; refresh the index only then."""
    missing = [p for p in packages if p not in installed]
    if missing:
        apt.update(name=f"{name}: refresh the package index", cache_time=3600)
        apt.packages(name=name, packages=missing, no_recommends=True)


def _unit(name):
    return name if "." in name else f"{name}.service"


def ensure_units(units):
    """`units`: {name: (running, enabled)}; None leaves that side alone."""
    names = [_unit(u) for u in units]
    running = host.get_fact(SystemdStatus, services=names)
    enabled = host.get_fact(SystemdEnabled, services=names)
    for name, (want_running, want_enabled) in units.items():
        unit = _unit(name)
        if (want_running and not running.get(unit)) or (want_enabled and not enabled.get(unit)):
            systemd.service(name=f"{unit} running and enabled", service=unit, running=want_running, enabled=want_enabled)
