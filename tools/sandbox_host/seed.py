"""The suite's image seed: a sandbox host's Docker images, kept when the host goes and given to the
next hosts, so that they do not pull and unpack them again.

Unpacking is what a pull costs here: n8n's image alone (270 000 files) takes about 95 s of CPU of
the host's dockerd, a whole stack four minutes, against seconds for hard links. The seed holds the
image layers of dockerd's overlay2 store as hard links (layers never change once unpacked;
containers write to layers of their own) and copies of its image metadata, in a Docker volume on the
same file system as the hosts' volumes. A host started with it finds the images in its Docker's
store as if it had pulled them before; what it lacks it pulls from the sandbox registry as usual.

Given to a host, the seed keeps only the tags whose image is still the one the registry serves
(the image IDs of this machine's builds, which the registry got by push); never the Chatwoot
stand-in's tags, so every fresh host still pulls that image by name from the registry over TLS
(its manifest: the layers and config are in the seed already), nor those the upgrade tests load
from an archive (offline_images).
"""

import fcntl
import json
import subprocess
import time
from contextlib import contextmanager

from .common import REGISTRY, STATE, log, privileged, run
from .images import OFFLINE

SEED_VOLUME = "platform-docker-seed"
# Repositories every host gets the way the deploy delivers them: pulled (the registry path stays
# exercised), or loaded from the upgrade tests' archive.
NOT_SEEDED = {f"{REGISTRY}/chatwoot-stand-in"}

SAVE = r"""set -eu
src="$1/image/overlay2" dst="$2"
[ -f "$src/repositories.json" ] || exit 3
find "$dst" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
mkdir -p "$dst/image/overlay2/layerdb" "$dst/overlay2/l"
cp -a "$src/repositories.json" "$src/distribution" "$src/imagedb" "$dst/image/overlay2/"
cp -a "$src/layerdb/sha256" "$dst/image/overlay2/layerdb/"
for layer in "$src"/layerdb/sha256/*; do
  id=$(cat "$layer/cache-id") from="$1/overlay2/$(cat "$layer/cache-id")"
  mkdir "$dst/overlay2/$id" "$dst/overlay2/$id/work"
  cp -a "$from/link" "$dst/overlay2/$id/"
  for f in lower committed; do [ ! -e "$from/$f" ] || cp -a "$from/$f" "$dst/overlay2/$id/"; done
  cp -al "$from/diff" "$dst/overlay2/$id/"
  ln -s "../$id/diff" "$dst/overlay2/l/$(cat "$from/link")"
done
"""


def mountpoint(volume):
    return run(
        ["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", volume], capture_output=True, text=True
    ).stdout.strip()


def host_volume(name):
    """The Docker volume holding host `name`'s /var/lib/docker."""
    out = run(
        [
            "docker",
            "inspect",
            "-f",
            '{{range .Mounts}}{{if eq .Destination "/var/lib/docker"}}{{.Name}}{{end}}{{end}}',
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


@contextmanager
def seed_lock():
    """One at a time: a seed replaced while a host is given it would give that host half a store."""
    STATE.mkdir(exist_ok=True)
    with open(STATE / "seed.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def save(name):
    """Host `name`'s images become the seed (the previous seed is replaced)."""
    volume = host_volume(name)
    if not volume:
        return
    with seed_lock():
        _save(name, volume)


def _save(name, volume):
    run(["docker", "volume", "create", SEED_VOLUME], stdout=subprocess.DEVNULL)
    out = run(privileged(["sh", "-c", SAVE, "sh", mountpoint(volume), mountpoint(SEED_VOLUME)]), check=False)
    if out.returncode == 0:
        log(f"the images of host {name} kept as the seed of the next hosts (volume {SEED_VOLUME})")
    elif out.returncode == 3:
        log(f"host {name} has no images yet: no seed kept")
    else:
        run(["docker", "volume", "rm", "-f", SEED_VOLUME], stdout=subprocess.DEVNULL, check=False)
        log(f"keeping the images of host {name} as the seed failed (exit {out.returncode}): no seed")


def seeded_volume(name):
    """A new volume for host `name`'s /var/lib/docker holding the seed's current images; None without a seed."""
    with seed_lock():
        return _seeded_volume(name)


def _seeded_volume(name):
    if run(["docker", "volume", "inspect", SEED_VOLUME], capture_output=True, check=False).returncode:
        return None
    seed = mountpoint(SEED_VOLUME)
    tags = json.loads(run(privileged(["cat", f"{seed}/image/overlay2/repositories.json"]), capture_output=True).stdout)
    kept = current(tags["Repositories"])
    if not kept:
        return None
    volume = f"{name}-docker-{time.time_ns()}"
    run(["docker", "volume", "create", volume], stdout=subprocess.DEVNULL)
    target = mountpoint(volume)
    try:
        run(privileged(["cp", "-al", f"{seed}/image", f"{seed}/overlay2", f"{target}/"]))
        # Its own copy of the tags (the hard link is replaced, the seed's file stays as it is).
        run(privileged(["rm", f"{target}/image/overlay2/repositories.json"]))
        run(
            privileged(["tee", f"{target}/image/overlay2/repositories.json"]),
            input=json.dumps({"Repositories": kept}).encode(),
            stdout=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as e:
        run(["docker", "volume", "rm", "-f", volume], stdout=subprocess.DEVNULL, check=False)
        log(f"giving host {name} the seed failed ({e}): it pulls its images")
        return None
    log(f"host {name} starts with {sum(len(refs) for refs in kept.values())} image references of the seed")
    return volume


def current(repositories):
    """The seed's tags whose image is this machine's build of the same reference (what the registry
    serves), and the digests of those images; without the ones every host gets as the deploy delivers them."""
    built = dict(
        line.split()
        for line in run(
            ["docker", "image", "ls", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
            capture_output=True,
            text=True,
        ).stdout.splitlines()
    )
    valid = {
        ref
        for refs in repositories.values()
        for ref, image_id in refs.items()
        if "@" not in ref and ref not in OFFLINE and built.get(ref) == image_id
    }
    fresh_ids = {image_id for refs in repositories.values() for ref, image_id in refs.items() if ref in valid}
    kept = {}
    for repo, refs in repositories.items():
        same = {
            ref: image_id for ref, image_id in refs.items() if ref in valid or ("@" in ref and image_id in fresh_ids)
        }
        if same and repo not in NOT_SEEDED:
            kept[repo] = same
    return kept
