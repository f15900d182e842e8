"""The inventory's roles: which host is the primary, its replicas and worker hosts, and
their addresses on the private network (the scale-out layer, cluster.py, acts on them).

Groups of the inventory give each host its role: `replicas` (a PostgreSQL hot standby and
a Redis replica), `workers` (n8n queue workers), and the primary (the group `primary`, or
else the one host in neither group), which runs everything as a one-host inventory does.
"""

import enum
import re
from dataclasses import dataclass

from pyinfra import host, inventory

from .model import NOT_SHOWN, ConfigError, is_ip_address, problem_line

N8N_WORKERS_DEFAULT = 1  # apps/n8n.py's default, for a peer whose data leaves it unset


class Role(enum.StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"
    WORKER = "worker"


@dataclass(frozen=True)
class Peer:
    name: str
    address: str
    n8n_workers: int = 0

    @property
    def slot(self) -> str:
        """The replica's physical replication slot on the primary."""
        return "replica_" + re.sub(r"[^a-z0-9_]", "_", self.name.lower())


@dataclass(frozen=True)
class Topology:
    role: Role = Role.PRIMARY
    primary: Peer | None = None
    replicas: tuple[Peer, ...] = ()
    workers: tuple[Peer, ...] = ()
    me: Peer | None = None  # this host, in a cluster

    @property
    def clustered(self) -> bool:
        return bool(self.replicas or self.workers)

    @property
    def peers(self) -> tuple[Peer, ...]:
        return (*self.replicas, *self.workers)


ONE_HOST = Topology()  # a one-host inventory's topology: config.load's default


def _role_of(groups) -> Role:
    return Role.REPLICA if "replicas" in groups else Role.WORKER if "workers" in groups else Role.PRIMARY


def topology(name, hosts):
    """(this host's name, [(name, groups, data) of every inventory host]) -> (Topology, problems)."""
    groups = next(g for n, g, _ in hosts if n == name)
    problems = [
        problem_line(
            n, NOT_SHOWN, "in more than one of primary, replicas and workers", "put the host in one group only"
        )
        for n, g, _ in hosts
        if sum(group in g for group in ("primary", "replicas", "workers")) > 1
    ]
    replicas = [h for h in hosts if _role_of(h[1]) == Role.REPLICA]
    workers = [h for h in hosts if _role_of(h[1]) == Role.WORKER]
    if not (replicas or workers):
        return Topology(), problems
    primaries = [h for h in hosts if "primary" in h[1]] or [h for h in hosts if _role_of(h[1]) == Role.PRIMARY]
    problems += [
        problem_line(
            n,
            NOT_SHOWN,
            "in none of primary, replicas and workers, while the inventory has a primary group",
            "put the host in one of the three groups, or in an inventory of its own",
        )
        for n, g, _ in hosts
        if _role_of(g) == Role.PRIMARY and "primary" not in g and len(primaries) == 1 and primaries[0][0] != n
    ]
    if len(primaries) != 1:
        problems.append(
            problem_line(
                "inventory",
                NOT_SHOWN,
                f"{len(primaries)} primary hosts "
                f"({', '.join(h[0] for h in primaries) or 'none'}) beside replicas or workers",
                "list exactly one host in a group named primary",
            )
        )
        return Topology(role=_role_of(groups)), problems
    for member, _, data in [*primaries, *replicas, *workers]:
        if not is_ip_address(data.get("private_address"), version=4):
            problems.append(
                problem_line(
                    f"{member}: private_address",
                    NOT_SHOWN,
                    "missing or not an IPv4 address, and the inventory has peers",
                    'set private_address = "10.0.0.2" (the host\'s address on the private network) in its host data',
                )
            )
    if problems:
        return Topology(role=_role_of(groups)), problems

    def peer(h):
        workers = h[2].get("n8n_workers")
        return Peer(h[0], h[2]["private_address"], N8N_WORKERS_DEFAULT if workers is None else int(workers))

    me = next(peer(h) for h in hosts if h[0] == name)
    return Topology(
        _role_of(groups), peer(primaries[0]), tuple(map(peer, replicas)), tuple(map(peer, workers)), me
    ), problems


def inventory_topology() -> Topology:
    """The running deploy's host's Topology, from pyinfra's inventory."""
    hosts = [(h.name, list(h.groups), h.data.dict()) for h in inventory]
    found, problems = topology(host.name, hosts)
    if problems:
        raise ConfigError("invalid inventory for scale-out; nothing was changed on any host:\n" + "\n".join(problems))
    return found
