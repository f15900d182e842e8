"""The application bootstrap's read-only check of Chatwoot, as the deploy and the audit read it: the bootstrap
script's --check, begun in the background early in a run (ChatwootCheckStarted) and read when the apps layer
decides (ChatwootState)."""

import json
import os
import shlex
import time

from pyinfra.api import FactBase

MARKER = "state/apps-bootstrapped"
RUN = f"{os.getpid()}-{int(time.time())}"  # this deploy run: names the background check's output


class ChatwootState(FactBase):
    """What the bootstrap would change in Chatwoot (its people, teams, members, labels, bot, webhooks), by the
    bootstrap script's read-only --check: a list of differences; None before the first bootstrap. With `run`, the
    check ChatwootCheckStarted began for this run is waited for (it took half a rerun's reads, asked in turn)."""

    def command(self, root, run=None):
        script, out = f"{root}/bin/apps-bootstrap.py", f"{root}/state/chatwoot-check.{run}"
        # An older script has no --check and would set everything up: only a script that has one is asked.
        check = (
            f"if [ -f {root}/{MARKER} ] && grep -q -- --check {script} 2>/dev/null; "
            f"then python3 {script} {root} --check 2>&1 | tail -n 1; "
            "else echo '{\"drift\": null}'; fi"
        )
        if run is None:
            return check
        # The background check's output, once it has ended; asked here if it never started or died without one.
        return (
            f'if [ -f {out}.pid ]; then while [ ! -f {out} ] && kill -0 "$(cat {out}.pid)" 2>/dev/null; '
            f"do sleep 0.05; done; rm -f {out}.pid; fi; "
            f"if [ -f {out} ]; then tail -n 1 {out}; rm -f {out}; else {check}; fi"
        )

    def process(self, output):
        try:
            return json.loads(output[-1])["drift"]
        except (IndexError, ValueError, KeyError, TypeError):
            return [f"the check of Chatwoot failed: {' '.join(output)[-300:]}"]


class ChatwootCheckStarted(FactBase):
    """Starts ChatwootState's check in the background, so that it runs while the other layers read the host."""

    def command(self, root, run):
        script, out = f"{root}/bin/apps-bootstrap.py", f"{root}/state/chatwoot-check.{run}"
        # Its own session (setsid): nothing ends it when this command's shell, or sudo, exits.
        background = shlex.quote(f"python3 {script} {root} --check > {out}.tmp 2>&1; mv {out}.tmp {out}")
        return (
            f"find {root}/state -name 'chatwoot-check.*' -mmin +60 -delete 2>/dev/null; "
            f"if [ -f {root}/{MARKER} ] && grep -q -- --check {script} 2>/dev/null; then "
            f"setsid sh -c {background} </dev/null >/dev/null 2>&1 & echo $! > {out}.pid; fi; echo started"
        )

    def process(self, output):
        return output


def chatwoot_drift(cfg, state):
    """{"chatwoot": what differs} or {}."""
    return {"chatwoot": "; ".join(state)} if state and "chatwoot" in cfg.stack.apps else {}
