"""The stack on the host before a run, read in one command: the stack layer's fact."""

import shlex

from pyinfra.api import FactBase

# Files bind-mounted into a container (under stack_root): compose does not see their
# content change, so the deploy restarts the service when one changes.
MOUNTED_CONFIG = {
    "redis": ("config/redis.conf",),
    "traefik": ("edge/traefik/traefik_config.yml", "edge/traefik/dynamic_config.yml"),
    "pangolin": ("edge/pangolin/config.yml",),
}


class StackState(FactBase):
    """Secret file names, Chatwoot's last prepared image, each compose service's state, the
    images the host has, and the PostgreSQL major version of the data (its PG_VERSION)."""

    def command(self, root, project):
        # One docker inspect for every container with mounted configuration: a service is
        # stale when one of its files is newer than the container's start.
        cases = "".join(
            f"/{project}-{service}-1) for f in {' '.join(paths)}; do "
            f'[ "$(date -r {root}/$f +%s%N 2>/dev/null || echo 0)" -gt "$t" ] && echo \'stale {service}\'; done;; '
            for service, paths in MOUNTED_CONFIG.items()
        )
        containers = " ".join(f"{project}-{service}-1" for service in MOUNTED_CONFIG)
        stale = (
            f"docker inspect -f '{{{{.Name}}}} {{{{.State.StartedAt}}}}' {containers} 2>/dev/null | "
            f'while read -r name started; do t=$(date -d "$started" +%s%N); case "$name" in {cases}esac; done; '
        )
        root, volume = shlex.quote(root), shlex.quote(f"{project}_postgres-data")
        return (
            stale +
            # Secret files anyone but root could read (or that root does not own).
            f"find {root}/secrets {root}/edge/pangolin/config.yml -maxdepth 1 -type f "
            "\\( ! -user root -o ! -group root -o -perm /077 \\) "
            "2>/dev/null | sed 's/^/loose /'; "
            f"data=$(docker volume inspect -f '{{{{.Mountpoint}}}}' {volume} 2>/dev/null); "
            'echo "pg-version $(cat "$data/PG_VERSION" 2>/dev/null)"; '
            # A hot standby's data (scale-out): a replica whose data is not one is seeded again.
            '[ -n "$data" ] && [ -f "$data/standby.signal" ] && echo standby; '
            "docker image ls --format 'image {{.Repository}}:{{.Tag}}' 2>/dev/null; "
            f"ls -1 {root}/secrets 2>/dev/null | sed 's/^/secret /'; "
            f'echo "prepared $(cat {root}/state/chatwoot-prepared 2>/dev/null)"; '
            f'echo "pg-upgrade $(cat {root}/state/pg-major-upgrade 2>/dev/null)"; '
            f"[ -s {root}/edge/pangolin/config.yml ] && echo pangolin-config; "
            # docker ps, not compose ps: the same answer without compose's start-up cost.
            f"docker ps -a --filter label=com.docker.compose.project={shlex.quote(project)} "
            "--format 'service {{.Label \"com.docker.compose.service\"}} {{.Image}} {{.State}} {{.Status}}' "
            "2>/dev/null || true"
        )

    @staticmethod
    def default():
        return {
            "secrets": set(),
            "prepared": "",
            "pg_upgrade": "",
            "services": {},
            "images": {},
            "pangolin_config": False,
            "pg_version": None,
            "host_images": set(),
            "loose": [],
            "stale": set(),
            "standby": False,
        }

    def process(self, output):
        state = self.default()
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "secret":
                state["secrets"].add(rest.strip())
            elif kind in ("prepared", "pg-upgrade"):
                state[kind.replace("-", "_")] = rest.strip()
            elif kind == "loose":
                state["loose"].append(rest.strip())
            elif kind == "stale":
                state["stale"].add(rest.strip())
            elif kind == "standby":
                state["standby"] = True
            elif kind == "pangolin-config":
                state["pangolin_config"] = True
            elif kind == "pg-version":
                state["pg_version"] = int(rest) if rest.strip().isdigit() else None
            elif kind == "image":
                state["host_images"].add(rest.strip())
            elif kind == "service":
                name, image, status, detail = (rest.split(" ", 3) + ["", "", ""])[:4]
                health = next((h for h in ("unhealthy", "healthy", "starting") if f"{h})" in detail), "")
                # A service of several containers (queue workers) is as ready as its least ready one.
                if state["services"].get(name, ("running", "healthy")) in (("running", "healthy"), ("running", "")):
                    state["services"][name] = (status, health)
                state["images"][name] = image
        return state
