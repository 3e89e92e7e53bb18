"""The rows of the store, as immutable records. Times are clock seconds passed in by the caller:
the store never reads a clock, so replay stays in virtual time.

``state`` columns are opaque JSON text owned by the caller (engines/core's serialized run or step
state): the store neither parses nor validates them, which keeps the hot path to one string copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from engines.core.statuses import TERMINAL_STEP_STATUSES, StepStatus

__all__ = [
    "DECIDER_PATH",
    "STEP_TIME_FIELDS",
    "GroupLease",
    "LeaseRenewal",
    "LoadedRun",
    "OutboxMessage",
    "QueueTask",
    "StepAction",
    "StepInstance",
    "StepTimes",
    "WorkflowInstance",
]

DECIDER_PATH = ""
"""The queue ``path`` of a workflow's decider task (the per-workflow pass), as opposed to a step."""


@dataclass(frozen=True, slots=True)
class WorkflowInstance:
    """One run of a workflow (a root run or a child run of a foreach/subworkflow step).

    ``version`` counts committed writes; ``save_run`` takes the version it read and fails with
    StoreConflictError if another writer moved it (optimistic concurrency)."""

    run_key: str
    workflow_id: str
    run_id: str
    status: str
    state: str = "{}"
    parent_key: str | None = None
    group_id: int | None = None
    version: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


# Which timeline field a status stamps (Maestro's StepRuntimeState timeline); terminal statuses stamp
# ``end_time``. Statuses not listed (NOT_CREATED) stamp nothing.
_STATUS_FIELD: Mapping[str, str] = {
    StepStatus.CREATED: "create_time",
    StepStatus.INITIALIZED: "initialize_time",
    StepStatus.PAUSED: "pause_time",
    StepStatus.WAITING_FOR_SIGNALS: "wait_signal_time",
    StepStatus.EVALUATING_PARAMS: "evaluate_param_time",
    StepStatus.WAITING_FOR_PERMITS: "wait_permit_time",
    StepStatus.STARTING: "start_time",
    StepStatus.RUNNING: "execute_time",
    StepStatus.FINISHING: "finish_time",
    **dict.fromkeys(TERMINAL_STEP_STATUSES, "end_time"),
}


@dataclass(frozen=True, slots=True)
class StepTimes:
    """When a step attempt first reached each phase (Maestro's per-status timeline), clock seconds.

    Stored as plain columns, not JSON: the legacy engine reloads every step at every poll, and
    decoding a JSON map per step was 60 % of a poll's cost."""

    create_time: float | None = None
    initialize_time: float | None = None
    pause_time: float | None = None
    wait_signal_time: float | None = None
    evaluate_param_time: float | None = None
    wait_permit_time: float | None = None
    start_time: float | None = None
    execute_time: float | None = None
    finish_time: float | None = None
    end_time: float | None = None

    def stamped(self, status: str, at: float) -> StepTimes:
        """These times with ``status``'s field set to ``at`` if it was not set yet (first entry wins)."""
        name = _STATUS_FIELD.get(status)
        if name is None or getattr(self, name) is not None:
            return self
        return replace(self, **{name: at})


STEP_TIME_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StepTimes))


@dataclass(frozen=True, slots=True)
class StepInstance:
    """One attempt of one step of a run: its status, opaque state and per-phase timeline."""

    run_key: str
    path: str
    attempt: int
    status: str
    state: str = "{}"
    times: StepTimes = field(default_factory=StepTimes)
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class LoadedRun:
    """A run and all its step attempts (ordered by path, attempt): what a legacy poll reloads."""

    run: WorkflowInstance
    steps: tuple[StepInstance, ...]


@dataclass(frozen=True, slots=True)
class StepAction:
    """A pending manual action (STOP, KILL, SKIP, PAUSE, RESUME, ...) on one step of a run."""

    action_id: int
    run_key: str
    path: str
    action: str
    created_at: float


@dataclass(frozen=True, slots=True)
class QueueTask:
    """A legacy queue entry: poll ``path`` of ``run_key`` (``DECIDER_PATH`` for the decider).

    Visible from ``visible_at``; a claim by ``owner`` lasts until ``claimed_until``, after which any
    worker may claim it again (at-least-once delivery). ``poll_count`` counts claims."""

    task_id: int
    run_key: str
    path: str
    visible_at: float
    owner: str | None = None
    claimed_until: float | None = None
    poll_count: int = 0


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message written in the same transaction as the state change it announces."""

    message_id: int
    target: str
    message: str
    created_at: float
    deliver_by: float
    delivered: bool = False


@dataclass(frozen=True, slots=True)
class GroupLease:
    """Who owns a group of runs: ``owner`` node at ``generation`` until ``expires_at``."""

    group_id: int
    owner: str
    generation: int
    heartbeat_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class LeaseRenewal:
    """What one batched renewal (:meth:`Store.renew_leases`) did: the leases it extended, and the
    groups it could not renew because the lease expired or moved to another owner or generation.

    ``lost`` maps each such group to its current generation (None when it has no lease row), so the
    node knows exactly which groups to stop acting for -- and fenced writes of those are rejected."""

    renewed: tuple[GroupLease, ...]
    lost: Mapping[int, int | None]

    @property
    def ok(self) -> bool:
        return not self.lost
