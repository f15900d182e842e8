"""make lynis: Lynis (Debian's package) run on the sandbox host (make sandbox first), as a
measurement: it prints the hardening index, then one line per warning and suggestion, and exits 0
whatever the index.

    python tools/lynis.py [--host-container NAME]

The host is --host-container, else $SANDBOX_NAME, else sandbox-1 (make sandbox's host). Lynis is
installed there with apt at the first measurement: it is a measuring tool, not part of the
platform deploy (a server runs nothing from it).
"""

import argparse
import os
import subprocess
import sys

REPORT = "/var/log/lynis-report.dat"
INSTALL = (
    "command -v lynis >/dev/null || "
    "{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lynis; }"
)


def in_host(container, script):
    return subprocess.run(["docker", "exec", container, "sh", "-c", script], capture_output=True, text=True)


def report(text):
    """Lynis's report file: the hardening index, its version, and the warnings and suggestions as (id, text, detail)."""
    values, found = {}, {"warning": [], "suggestion": []}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("warning[]", "suggestion[]"):
            test, message, detail = (value.split("|") + ["", "", ""])[:3]
            found[key[:-2]].append((test, message, "" if detail in ("-", "") else detail))
        elif key in ("hardening_index", "lynis_version", "lynis_tests_done"):
            values[key] = value
    return values, found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-container", default=os.environ.get("SANDBOX_NAME", "sandbox-1"))
    args = parser.parse_args()
    host = args.host_container
    install = in_host(host, INSTALL)
    if install.returncode:
        sys.exit(f"could not install lynis on {host} (make sandbox first?): {install.stdout}{install.stderr}")
    # --cronjob: no colours, no pauses; the report file is rewritten by every run.
    run = in_host(host, "lynis audit system --cronjob --quiet >/dev/null 2>&1; cat " + REPORT)
    values, found = report(run.stdout)
    if "hardening_index" not in values:
        sys.exit(f"lynis wrote no report on {host}:\n{run.stdout[-2000:]}{run.stderr}")
    print(
        f"Lynis {values.get('lynis_version', '?')} on {host}: hardening index {values['hardening_index']}, "
        f"{len(found['warning'])} warnings, {len(found['suggestion'])} suggestions "
        f"({values.get('lynis_tests_done', '?')} tests)"
    )
    for kind in ("warning", "suggestion"):
        for test, message, detail in found[kind]:
            print(f"{kind.upper():<10} {test:<10} {message}" + (f"  [{detail}]" if detail else ""))


if __name__ == "__main__":
    main()
