"""make docker-bench: the CIS Docker Benchmark's reference script (docker/docker-bench-security)
run on the sandbox host (make sandbox first), as a measurement: it prints the number of WARN,
PASS, INFO and NOTE checks, then one line per WARN, and exits 0 even with WARNs.

    python tools/docker_bench.py [--source DIR] [--host-container NAME]

The script's source is --source DIR, else $DOCKER_BENCH_SRC, else a clone of the pinned
release into .sandbox/docker-bench-security (needs internet). None of it is in this repository.
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPO = "https://github.com/docker/docker-bench-security"
TAG = "v1.6.1"  # newest release; its checks follow CIS Docker Benchmark 1.6.0
CLONE = ROOT / ".sandbox" / "docker-bench-security"
REMOTE_DIR = "/root/docker-bench-security"
# Sections 1 host, 2 daemon, 3 daemon files, 4 images, 5 containers, 6 operations: what
# applies to a single Docker host. Left out: 7 swarm (the platform runs no swarm), 8
# enterprise (Docker EE / UCP / DTR) and the community checks (not part of the benchmark).
GROUPS = (
    "host_configuration",
    "docker_daemon_configuration",
    "docker_daemon_files",
    "container_images",
    "container_runtime",
    "docker_security_operations",
)
RESULTS = ("WARN", "PASS", "INFO", "NOTE")


def source(arg):
    path = arg or os.environ.get("DOCKER_BENCH_SRC")
    if path:
        path = Path(path)
        if not (path / "docker-bench-security.sh").is_file():
            sys.exit(f"{path}: no docker-bench-security.sh; pass a docker-bench-security checkout")
        return path
    describe = subprocess.run(
        ["git", "-C", str(CLONE), "describe", "--tags", "--exact-match"], capture_output=True, text=True
    )
    if describe.stdout.strip() != TAG:
        subprocess.run(["rm", "-rf", str(CLONE)], check=True)
        print(f"[docker-bench] cloning {REPO} {TAG} into {CLONE}", flush=True)
        if subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", TAG, REPO, str(CLONE)]).returncode:
            sys.exit(f"could not clone {REPO}; without internet pass --source DIR or DOCKER_BENCH_SRC=DIR")
    return CLONE


def as_root(info):
    # tar -x as root keeps the owners' uids, which are this machine's, not the host's.
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def bench(src, container):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name in ("docker-bench-security.sh", "functions", "tests"):
            tar.add(src / name, arcname=name, filter=as_root)
    copy = subprocess.run(
        [
            "docker",
            "exec",
            "-i",
            container,
            "sh",
            "-c",
            f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR} && tar -x -C {REMOTE_DIR}",
        ],
        input=archive.getvalue(),
        capture_output=True,
    )
    if copy.returncode:
        sys.exit(
            f"could not copy docker-bench-security into {container} (make sandbox first?): "
            f"{copy.stderr.decode().strip()}"
        )
    # The script sources ./functions and ./tests, so it runs from its own directory.
    run = subprocess.run(
        [
            "docker",
            "exec",
            "-w",
            REMOTE_DIR,
            container,
            "bash",
            "docker-bench-security.sh",
            "-b",
            "-l",
            f"{REMOTE_DIR}/log/bench.log",
            "-c",
            ",".join(GROUPS),
        ],
        capture_output=True,
        text=True,
    )
    log = subprocess.run(
        ["docker", "exec", container, "cat", f"{REMOTE_DIR}/log/bench.log.json"], capture_output=True, text=True
    )
    if run.returncode or log.returncode:
        sys.exit(
            f"docker-bench-security failed on {container} (exit {run.returncode}):\n"
            f"{run.stdout}{run.stderr}{log.stderr}"
        )
    # The script writes its JSON with printf: strict=False lets control characters in details through.
    return json.loads(log.stdout, strict=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="a docker-bench-security checkout (default: $DOCKER_BENCH_SRC, else clone)")
    parser.add_argument(
        "--host-container",
        default=os.environ.get("SANDBOX_NAME", "sandbox-1"),
        help="the sandbox host's container (default: $SANDBOX_NAME, else sandbox-1)",
    )
    args = parser.parse_args()
    report = bench(source(args.source), args.host_container)
    checks = [check for section in report["tests"] for check in section["results"]]
    counts = Counter(check["result"] for check in checks)
    print(
        f"docker-bench-security {report['dockerbenchsecurity']} on {args.host_container}: "
        + ", ".join(f"{counts[r]} {r}" for r in RESULTS)
        + f" (score {report['score']})"
    )
    for check in checks:
        if check["result"] == "WARN":
            details = f"  [{check['details']}]" if check.get("details") else ""
            print(f"WARN {check['id']:<7} {check['desc']}{details}")


if __name__ == "__main__":
    main()
