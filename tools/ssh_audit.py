"""make ssh-audit: ssh-audit (PyPI, in requirements.txt) against the sandbox host's sshd (make sandbox
first), as a measurement: it prints the number of [fail], [warn] and [info] notes, then one line per
[fail] and [warn], and exits 0 even with failures.

    python tools/ssh_audit.py [--port PORT]

The port is --port, else $SANDBOX_SSH_PORT, else 2222 (make sandbox's host). ssh-audit's connection
rate test (DHEat) is skipped: its burst of connections trips UFW's SSH rate limit and sshd's
per-source penalties, which would lock this machine out of the host for a while (docs/operations.md).
"""

import argparse
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

SSH_AUDIT = Path(sys.executable).parent / "ssh-audit"
# "(kex) curve25519-sha256  -- [warn] does not provide ..." and its continuation lines "`- [info] ...".
NOTE = re.compile(r"^\((\w+)\) (\S+)(?: \([^)]*\))?\s+-- \[(\w+)\] (.*)$|^\s+`- \[(\w+)\] (.*)$")
LEVELS = ("fail", "warn", "info")


def notes(output):
    """(section, algorithm, level, text) for each note of ssh-audit's plain output."""
    found, current = [], ("", "")
    for line in output.splitlines():
        match = NOTE.match(line)
        if not match:
            continue
        if match.group(1):
            current = (match.group(1), match.group(2))
            found.append((*current, match.group(3), match.group(4)))
        else:
            found.append((*current, match.group(5), match.group(6)))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_SSH_PORT", "2222")))
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    run = subprocess.run(
        [str(SSH_AUDIT), "--skip-rate-test", "--no-colors", "-p", str(args.port), args.address],
        capture_output=True,
        text=True,
    )
    found = notes(run.stdout)
    banner = next((line for line in run.stdout.splitlines() if line.startswith("(gen) banner:")), "")
    if not banner:
        sys.exit(
            f"ssh-audit could not audit {args.address}:{args.port} (make sandbox first?):\n{run.stdout}{run.stderr}"
        )
    counts = Counter(level for _, _, level, _ in found)
    print(
        f"ssh-audit on {args.address}:{args.port} ({banner.split(': ', 1)[1]}): "
        + ", ".join(f"{counts[level]} [{level}]" for level in LEVELS)
    )
    for section, algorithm, level, text in found:
        if level in ("fail", "warn"):
            print(f"[{level}] ({section}) {algorithm}: {text}")
    for line in run.stdout.splitlines():
        if line.startswith("(rec)"):
            print(line)


if __name__ == "__main__":
    main()
