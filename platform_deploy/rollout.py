"""What the stack, data and app steps of one run share: the host's state before the run,
and the operations whose change means the services must come up again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .converge import Unchanged
from .services import compose_services

if TYPE_CHECKING:
    from .config import Config


class Changes(Protocol):
    """An operation's outcome (pyinfra's OperationMeta, or converge.Unchanged)."""

    def did_change(self) -> bool: ...


UNCHANGED: Changes = Unchanged()


def explain_failure(cfg: Config, command: str) -> str:
    """`command`, and when it fails, the images that last ran healthy and how to go back to them."""
    root = cfg.stack.stack_root
    images = f"{root}/state/images"
    return (
        f"{command} || {{ status=$?; echo 'DEPLOY FAILED. The images that last ran healthy ({images}):' >&2; "
        f"cat {images} >&2 2>/dev/null || echo '  (none recorded yet: the stack never came up)' >&2; "
        "echo 'To go back: set those in group data (images) and rerun the deploy. A backup taken before any "
        f"upgrade of data is the newest in {cfg.backup.backup_dir}; {root}/bin/restore.sh restores it.' >&2; "
        "exit $status; }"
    )


@dataclass
class Rollout:
    cfg: Config
    state: dict[str, Any]  # stack_state.StackState, read once before the run
    data_major: int | None  # the PostgreSQL major version of the data on the host
    docker_restarted: Changes
    inputs: list[Changes] = field(default_factory=list)  # files and images the services read
    mounted: dict[str, list[Changes]] = field(default_factory=dict)  # service -> operations writing its mounted config
    secrets: Changes = UNCHANGED
    compose: Changes = UNCHANGED
    drifted: list[str] = field(default_factory=list)  # services whose runtime settings drifted from compose.yaml
    hba: Changes = UNCHANGED

    @property
    def dc(self) -> str:
        return f"docker compose -f {self.cfg.stack.stack_root}/compose.yaml -p {self.cfg.stack.stack_name}"

    @property
    def major_upgrade(self) -> bool:
        return bool(self.data_major) and self.data_major != self.cfg.data.postgres_major

    @property
    def resume_backup(self) -> str | None:
        """A major upgrade that stopped after setting the old data aside names its backup; this run finishes it."""
        return self.state["pg_upgrade"]

    @property
    def marker(self) -> str:
        return f"{self.cfg.stack.stack_root}/state/pg-major-upgrade"

    def needs_up(self) -> bool:
        not_ready = [
            s
            for s in compose_services(self.cfg)
            if self.state["services"].get(s) not in (("running", "healthy"), ("running", ""))
        ]
        return (
            bool(not_ready)
            or self.major_upgrade
            or bool(self.resume_backup)
            or self.docker_restarted.did_change()
            or any(op.did_change() for op in self.inputs)
        )

    def explain_failure(self, command: str) -> str:
        return explain_failure(self.cfg, command)
