"""The images the sandbox runs, built here from the registries (npm, PyPI, Debian) and
pushed to the sandbox registry; and, on demand, the other releases the upgrade tests use."""

import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .common import (
    BASE_IMAGE,
    GROUP_DATA,
    IMAGE,
    MIRROR,
    REGISTRY,
    REGISTRY_LOCAL,
    ROOT,
    STATE,
    SUDO_USER,
    VENDORS_IMAGE,
    image_exists,
    log,
    privileged,
    run,
)
from .registry import ensure_registry, in_registry

# For air-gapped servers: the upgrade tests deliver these by `offline_images` (a `docker
# save` archive the deploy uploads and loads), not by the registry.
OFFLINE_ARCHIVE = STATE / "offline-images.tar"
# Other releases, for the tests of upgrades: key of group data `images` -> references.
UPGRADES = {
    "chatwoot": f"{REGISTRY}/chatwoot-stand-in:v4.16.0-r16",
    "chatwoot_broken": f"{REGISTRY}/chatwoot-stand-in:v4.16.1-broken-r16",  # its migration fails
    "postgres": f"{REGISTRY}/postgres-pg15-pgvector:r2",  # same packages, another tag
    "redis": f"{REGISTRY}/redis-7:r2",
    "postgres_major": f"{REGISTRY}/postgres-pg17-pgvector:r1",  # the next major version
    # The real apps' previous releases, upgraded from by the tests (their migrations run).
    "n8n_previous": f"{REGISTRY}/n8n:2.39.10-real1",
    "directus_previous": f"{REGISTRY}/directus:12.3.1-real1",
}
OFFLINE = (UPGRADES["postgres"], UPGRADES["redis"])
# Built from the registries (npm, PyPI) the way the vendors build theirs; the rest of the
# apps and the edge are labelled stand-ins (sandbox/images/app-stand-in).
REAL_APPS = ("n8n", "directus", "traefik")
HOST_INCLUDE = "systemd,systemd-sysv,openssh-server,python3,iproute2,ca-certificates,sudo,dbus,procps"


def debootstrap_image(suite, tag, include, setup=(), cmd="/bin/bash"):
    """A Debian root built with debootstrap, customised in a chroot, imported as `tag`."""
    if not shutil.which("debootstrap"):
        log("installing debootstrap")
        run(privileged(["apt-get", "update", "-qq"]))
        run(privileged(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "debootstrap"]))
    STATE.mkdir(exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix=f"rootfs-{suite}-", dir=STATE))
    try:
        log(f"building {tag} with debootstrap (about a minute, once)")
        run(
            privileged(["debootstrap", "--variant=minbase", f"--include={include}", suite, str(rootfs), MIRROR]),
            stdout=subprocess.DEVNULL,
        )
        for command in setup:
            run(privileged(["chroot", str(rootfs), "sh", "-c", command]))
        tar = subprocess.Popen(privileged(["tar", "-C", str(rootfs), "-c", "."]), stdout=subprocess.PIPE)
        run(["docker", "import", "--change", f'CMD ["{cmd}"]', "-", tag], stdin=tar.stdout, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            sys.exit(f"tar of the {suite} root failed")
    finally:
        run(privileged(["rm", "-rf", str(rootfs)]))


def build_host_image():
    debootstrap_image(
        "trixie",
        IMAGE,
        HOST_INCLUDE,
        setup=(
            f"useradd --create-home --shell /bin/bash --groups sudo {SUDO_USER}",
            f"echo '{SUDO_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-{SUDO_USER} && "
            f"chmod 440 /etc/sudoers.d/90-{SUDO_USER}",
            # No kernel modules to load in a container; keep systemd from reporting "degraded".
            "systemctl mask systemd-modules-load.service",
        ),
        cmd="/lib/systemd/systemd",
    )


def recipes(images):
    """image reference -> (recipe directory, build args), for `images` (group data key -> reference)."""

    def recipe(key, ref):
        tag = ref.rsplit(":", 1)[1]
        if key == "postgres_major":  # Debian 13 carries PostgreSQL 17: built on the host's image
            return "postgres", {"REVISION": tag, "PG_MAJOR": "17", "BASE": IMAGE}
        if key in ("postgres", "redis"):
            return key, {"REVISION": tag}
        if key.split("_")[0] in REAL_APPS:  # the real app from the registries: tag <version>-<revision>
            version, revision = tag.rsplit("-", 1)
            return key.split("_")[0], {"VERSION": version, "REVISION": revision, "EXTRA_CA_CERT": egress_ca()}
        return "app-stand-in", {"APP": key.split("_")[0], "VERSION": tag}

    return {
        ref: recipe(key, ref)
        for key, ref in images.items()
        if key.split("_")[0] in ("postgres", "redis", "chatwoot", "n8n", "directus", "pangolin", "traefik")
    }


def egress_ca():
    """Certificates this machine adds to its trust store (a TLS-intercepting proxy in front of
    PyPI and npm, on machines that have one): trusted by the image builds only."""
    return "".join(p.read_text() for p in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")))


def ensure_service_images():
    """The images the sandbox's stack runs (group_data/sandbox.py), built here and pushed to the
    registry, and the sandbox host's own: all that `make sandbox` needs. The host's root is
    bootstrapped beside the builds, which need only the base image."""
    _ensure_base_and_registry()
    with ThreadPoolExecutor(max_workers=1) as pool:
        host = pool.submit(_ensure_host_image)
        _ensure_built(recipes(GROUP_DATA["images"]), push=True)
        host.result()


def ensure_upgrade_images():
    """The other releases the upgrade tests use, built when they are needed; the offline ones
    saved in an archive the deploy uploads, never pushed."""
    _ensure_base_and_registry()
    _ensure_host_image()  # PostgreSQL 17 is built on it
    specs = recipes(UPGRADES)
    built = _ensure_built({ref: spec for ref, spec in specs.items() if ref not in OFFLINE}, push=True)
    built |= _ensure_built({ref: spec for ref, spec in specs.items() if ref in OFFLINE}, push=False)
    if built or not OFFLINE_ARCHIVE.exists():
        log(f"saving {', '.join(OFFLINE)} to {OFFLINE_ARCHIVE}")
        OFFLINE_ARCHIVE.parent.mkdir(exist_ok=True)
        run(["docker", "save", "-o", str(OFFLINE_ARCHIVE), *OFFLINE])


def _ensure_base_and_registry():
    if not image_exists(BASE_IMAGE):
        debootstrap_image("bookworm", BASE_IMAGE, "ca-certificates")
    ensure_registry()


def _ensure_host_image():
    if not image_exists(IMAGE):
        build_host_image()
    ensure_vendors_image()


def ensure_vendors_image():
    """The vendors' simulator's image: the host's root, with moto for its S3 part."""
    _ensure_built({VENDORS_IMAGE: ("vendors", {"BASE": IMAGE})}, push=False)


def _ensure_built(specs, push):
    """Builds what is missing (in parallel: the npm installs wait on the network as much as on
    the CPU), each pushed to the registry as soon as it is built (if it is not there already);
    returns the references built."""
    missing = {ref: spec for ref, spec in specs.items() if not image_exists(ref)}

    def ensure(ref):
        if ref in missing:
            build(ref, *missing[ref])
        if push and not in_registry(ref):
            log(f"pushing {ref} to the sandbox registry")
            local = ref.replace(REGISTRY, REGISTRY_LOCAL, 1)
            run(["docker", "tag", ref, local])
            run(["docker", "push", "-q", local], stdout=subprocess.DEVNULL)
            # Another checkout pushing the same image may have removed the tag already.
            run(["docker", "rmi", local], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    # The longest builds first: the three workers then finish closer together.
    order = sorted(specs, key=lambda ref: ref not in missing or missing[ref][0] not in REAL_APPS)
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(ensure, order))
    return set(missing)


def build(ref, recipe, args):
    log(f"building {ref}")
    start = time.monotonic()
    build_args = [f"--build-arg={k}={v}" for k, v in {"BASE": BASE_IMAGE, "MIRROR": MIRROR, **args}.items()]
    out = run(
        ["docker", "build", "-q", "-t", ref, *build_args, str(ROOT / "sandbox" / "images" / recipe)],
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        sys.exit(f"building {ref} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    log(f"built {ref} in {time.monotonic() - start:.0f} s")
