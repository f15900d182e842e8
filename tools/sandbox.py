"""The sandbox: a real Debian 13 systemd host in a container, reached over SSH on 127.0.0.1.

    python tools/sandbox.py up        # Docker engine, images, host container, SSH key
    python tools/sandbox.py destroy [--in-background]   # remove the host container and its state
    python tools/sandbox.py images [--upgrades]   # the images the sandbox runs [and those the upgrade tests use]
    python tools/sandbox.py seed-save   # the host's images kept for the next hosts started with --seeded (seed.py)

The host image is built once with debootstrap and cached in the local Docker engine.
The host runs its own systemd, sshd and (once deployed) its own Docker, UFW and
iptables, so the deploy meets what it meets on a server.
"""

import argparse
import os

from tools.sandbox_host import seed
from tools.sandbox_host.hosts import CLUSTER, destroy, ensure_docker, up
from tools.sandbox_host.images import ensure_service_images, ensure_upgrade_images


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "action", choices=("up", "destroy", "docker", "images", "cluster-up", "cluster-destroy", "seed-save")
    )
    parser.add_argument("--name", default=os.environ.get("SANDBOX_NAME", "sandbox-1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_SSH_PORT", "2222")))
    parser.add_argument("--upgrades", action="store_true", help="images: also those the upgrade tests use")
    parser.add_argument("--seeded", action="store_true", help="up, cluster-up: new hosts start with the seed's images")
    parser.add_argument(
        "--in-background", action="store_true", help="destroy: free the names at once, delete the files after"
    )
    args = parser.parse_args()
    if args.action == "up":
        up(args.name, args.port, seeded=args.seeded)
    elif args.action == "destroy":
        destroy(args.name, args.in_background)
    elif args.action == "cluster-up":
        for name, port in CLUSTER.items():
            up(name, port, companions=name == "sandbox-primary", seeded=args.seeded and name != "sandbox-outsider")
    elif args.action == "cluster-destroy":
        for name in CLUSTER:
            destroy(name, args.in_background)
    elif args.action == "seed-save":
        seed.save(args.name)
    elif args.action == "images":
        ensure_docker()
        ensure_service_images()
        if args.upgrades:
            ensure_upgrade_images()
    else:
        ensure_docker()


if __name__ == "__main__":
    main()
