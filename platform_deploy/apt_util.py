"""Package installs that stay silent on a rerun."""

from pyinfra import host
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt


def ensure_packages(name, packages):
    """Install what is missing; refresh the package index only when something will be installed.

    apt.update with a cache_time alone would still report a change once the cache ages,
    so a rerun on a converged host would not be clean.
    """
    installed = host.get_fact(DebPackages)
    missing = [p for p in packages if p not in installed]
    if missing:
        apt.update(name=f"{name}: refresh the package index", cache_time=3600)
    apt.packages(name=name, packages=list(packages), no_recommends=True)
