"""The RAM table (seed, "Vertical Scaling") and the arithmetic that follows from it.

Limits are in MB. Chatwoot's share is split between its web and sidekiq containers.
The edge (Pangolin + Traefik) is not in the seed's table; it is budgeted here
explicitly so the total the operator sees is the real one.
"""

PROFILES = ("recommended", "minimum")

# service -> (recommended, minimum)
RAM_TABLE_MB = {
    "postgres": (2048, 512),
    "redis": (512, 128),
    "n8n": (1024, 512),
    "directus": (512, 256),
    "chatwoot-web": (1280, 640),
    "chatwoot-sidekiq": (768, 384),
    "pangolin": (512, 256),
    "traefik": (256, 128),
}

# Left to the kernel, sshd, dockerd and the page cache outside the containers.
HOST_RESERVE_MB = 512


def profile_limits(profile):
    column = PROFILES.index(profile)
    return {service: pair[column] for service, pair in RAM_TABLE_MB.items()}


def host_needs_mb(limits):
    """RAM a host must report to carry these container limits."""
    return sum(limits.values()) + HOST_RESERVE_MB


def auto_profile(ram_mb):
    """The largest profile that fits, or None when even the minimum does not."""
    for profile in PROFILES:
        if ram_mb >= host_needs_mb(profile_limits(profile)):
            return profile
    return None


def format_budget(limits, ram_mb):
    lines = [f"  {service:<18}{mb:>6} MB" for service, mb in limits.items()]
    lines.append(f"  {'host reserve':<18}{HOST_RESERVE_MB:>6} MB")
    lines.append(f"  {'total':<18}{host_needs_mb(limits):>6} MB of {ram_mb} MB on the host")
    return "\n".join(lines)
