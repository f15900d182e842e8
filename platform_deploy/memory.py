"""The RAM table (seed, "Vertical Scaling") and the arithmetic that follows from it.

Limits are in MB. Chatwoot's share is split between its web and sidekiq containers.
n8n's share is its main process (its first start's migrations need it: n8n 2.39 was
killed at 768 MB); each queue worker is budgeted beside the table, one limit per worker
(`counts`), like the edge. bench/inbound.py measures it: a worker takes 320-370 MiB of
RSS at rest with its JS task runner. At 768 MB (6 executions at once) a 200-message burst
peaked at 605 MiB; at 608 MB (4 at once) and at 384 MB (3 at once) the kernel killed it
during the burst (its heaps are sized as fractions of its limit, its other memory is not).
The edge (Pangolin + Traefik) is not in the seed's table; it is budgeted here
explicitly so the total the operator sees is the real one.
"""

from typing import Literal, get_args

from .topology import Role

Profile = Literal["recommended", "minimum"]
PROFILES: tuple[Profile, ...] = get_args(Profile)
ServiceName = Literal[
    "postgres", "redis", "n8n", "n8n-worker", "directus", "chatwoot-web", "chatwoot-sidekiq", "pangolin", "traefik"
]

# service -> (recommended, minimum)
RAM_TABLE_MB = {
    "postgres": (2048, 512),
    "redis": (512, 128),
    "n8n": (1024, 512),
    "n8n-worker": (768, 384),
    "directus": (512, 256),
    "chatwoot-web": (1280, 640),
    "chatwoot-sidekiq": (768, 384),
    "pangolin": (256, 256),
    "traefik": (64, 64),  # measured (real Traefik 3.5): 15 MiB RSS, 37 MiB at most through a 200-message burst
}

# Left to the kernel, sshd, dockerd and the page cache outside the containers.
HOST_RESERVE_MB = 512


def profile_limits(profile):
    column = PROFILES.index(profile)
    return {service: pair[column] for service, pair in RAM_TABLE_MB.items()}


def host_needs_mb(limits, counts=None):
    """RAM a host must report to carry these container limits (`counts`: containers of a
    service when more than one, e.g. {"n8n-worker": 2})."""
    return sum(mb * (counts or {}).get(service, 1) for service, mb in limits.items()) + HOST_RESERVE_MB


def auto_profile(ram_mb, needs=None):
    """The largest profile that fits, or None when even the minimum does not. `needs`:
    profile -> MB the host must have for it (default: the whole table)."""
    needs = needs or (lambda profile: host_needs_mb(profile_limits(profile)))
    return next((profile for profile in PROFILES if needs(profile) <= ram_mb), None)


def format_budget(limits, ram_mb, counts=None):
    counts = counts or {}
    lines = [
        f"  {service + (f' x{counts[service]}' if counts.get(service, 1) != 1 else ''):<18}{mb:>6} MB"
        for service, mb in limits.items()
    ]
    lines.append(f"  {'host reserve':<18}{HOST_RESERVE_MB:>6} MB")
    lines.append(f"  {'total':<18}{host_needs_mb(limits, counts):>6} MB of {ram_mb} MB on the host")
    return "\n".join(lines)


def sizing(cfg):
    """Settings inside each container, derived from its memory limit (MB)."""
    limits = cfg.memory_limits_mb
    web, sidekiq = limits.get("chatwoot-web", 0), limits.get("chatwoot-sidekiq", 0)
    chatwoot = {
        # A Puma worker of Chatwoot takes about 400-500 MB; one worker is Puma's single mode.
        "web_concurrency": max(1, (web - 256) // 512),
        "rails_max_threads": 5,
        "sidekiq_concurrency": max(2, min(25, sidekiq // 75)),
    }
    pools = {
        "chatwoot": chatwoot["web_concurrency"] * chatwoot["rails_max_threads"] + chatwoot["sidekiq_concurrency"] + 5,
        # A replica counts as its primary does: a hot standby refuses fewer max_connections.
        "n8n": 5
        * (1 + (cfg.topology.primary.n8n_workers if cfg.topology.role == Role.REPLICA else cfg.n8n.n8n_workers)),
        "directus": 10,
    }
    pg = limits.get("postgres", 0)
    # + superuser, backups, psql; + the worker hosts' n8n processes (pooled alike).
    max_connections = (
        sum(pools[app] for app in cfg.stack.apps) + 15 + sum(5 * (1 + p.n8n_workers) for p in cfg.topology.workers)
    )
    shared_buffers = pg // 4
    return {
        "postgres": {
            "max_connections": max_connections,
            "shared_buffers": f"{shared_buffers}MB",
            # A planner hint: the page cache counts against the container's limit.
            "effective_cache_size": f"{pg // 2}MB",
            "work_mem": f"{max(4, (pg - shared_buffers) // (max_connections * 3))}MB",
            "maintenance_work_mem": f"{max(32, pg // 16)}MB",
        },
        "redis_maxmemory_mb": limits.get("redis", 0) * 3 // 4,
        # A worker shares its container with n8n's JS task runner (the Code nodes), a second
        # Node process: half the limit for the one, a fifth for the other. The main process
        # keeps three quarters (its migrations need it; its runner idles in queue mode).
        "node_heap_mb": {
            s: limits[s] * (2 if s == "n8n-worker" else 3) // 4
            for s in ("n8n", "n8n-worker", "directus")
            if s in limits
        },
        "runner_heap_mb": {s: limits[s] // 5 for s in ("n8n", "n8n-worker") if s in limits},
        # Executions a worker runs at once (n8n's default is 10): one per 128 MB of its limit
        # (measured: n8n's default of 10 took a worker to 635 MiB).
        "worker_concurrency": max(2, min(10, limits.get("n8n-worker", 0) // 128)),
        "chatwoot": chatwoot,
        "pools": pools,
    }
