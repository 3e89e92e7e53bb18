"""The rows of the store, as immutable records. Times are clock seconds passed in by the caller:
the store never reads a clock, so replay stays in virtual time.

``state`` columns are opaque JSON text owned by the caller (engines/core's serialized run or step
state): the store neither parses nor validates them, which keeps the hot path to one string copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DECIDER_PATH",
    "GroupLease",
    "LoadedRun",
    "OutboxMessage",
    "QueueTask",
    "StepAction",
    "StepInstance",
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


@dataclass(frozen=True, slots=True)
class StepInstance:
    """One attempt of one step of a run. ``status_times`` maps each status reached to when."""

    run_key: str
    path: str
    attempt: int
    status: str
    state: str = "{}"
    status_times: Mapping[str, float] = field(default_factory=dict)
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
