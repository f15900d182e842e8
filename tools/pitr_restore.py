"""Point-in-time restore from the operator's machine: the primary's bin/pitr-restore.py run over SSH
(pyinfra exec, as the deploy reaches the host), then the audit (tests/audit); the exit status is the
restore's if it failed or refused, else the audit's.

    python tools/pitr_restore.py --inventory inventory/production.py latest
    python tools/pitr_restore.py --inventory inventory/production.py "2026-12-07 14:03:00+00"

(make pitr-restore AT=... runs it on the sandbox host.)
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from pyinfra.api import State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory

from platform_deploy import stack, topology

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def primary(inventory):
    """(name, stack root) of the inventory's primary host: the restore runs there only."""
    with ctx_state.use(State()):
        hosts = make_inventory(inventory, cwd=str(ROOT))
    listed = [(h.name, list(h.groups), h.data.dict()) for h in hosts]
    for name, _, data in listed:
        if topology.topology(name, listed)[0].role == topology.Role.PRIMARY:
            settings = stack.Settings.model_validate(data, context={"ram_mb": 0})
            return name, settings.stack_root
    raise SystemExit(f"{inventory}: no primary host")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inventory", default="inventory/sandbox.py")
    parser.add_argument("target", help='"latest", or a moment with its time zone ("2026-12-07 14:03:00+00")')
    args = parser.parse_args()
    name, root = primary(args.inventory)
    restore = [
        str(BIN / "pyinfra"),
        "-y",
        args.inventory,
        "--limit",
        name,
        "exec",
        "--",
        f"{root}/bin/pitr-restore.py {shlex.quote(args.target)}",
    ]
    rc = subprocess.run(restore, cwd=ROOT).returncode
    if rc:
        print(f"the restore did not complete (exit {rc}); the audit was not run", file=sys.stderr)
        return rc
    print("restored; the audit:", flush=True)
    audit = [sys.executable, "-m", "pytest", "tests/audit", "-q", "-p", "no:cacheprovider"]
    return subprocess.run([*audit, "--inventory", args.inventory], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
