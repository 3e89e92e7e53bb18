"""Maestro's step and workflow statuses, with the flags the state machine derives from them.

The flags are ``cached_property``: computed once per member, then a plain attribute read (they are
read ~30 times per step attempt on the core's hot path)."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property

__all__ = [
    "COMPLETE_STEP_STATUSES",
    "RESTARTABLE_STEP_STATUSES",
    "RETRYABLE_STEP_STATUSES",
    "TERMINAL_STEP_STATUSES",
    "TERMINAL_WORKFLOW_STATUSES",
    "StepStatus",
    "WorkflowStatus",
]


class StepStatus(StrEnum):
    NOT_CREATED = "NOT_CREATED"
    CREATED = "CREATED"
    INITIALIZED = "INITIALIZED"
    PAUSED = "PAUSED"
    WAITING_FOR_SIGNALS = "WAITING_FOR_SIGNALS"
    EVALUATING_PARAMS = "EVALUATING_PARAMS"
    WAITING_FOR_PERMITS = "WAITING_FOR_PERMITS"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    FINISHING = "FINISHING"
    DISABLED = "DISABLED"
    UNSATISFIED = "UNSATISFIED"
    SKIPPED = "SKIPPED"
    SUCCEEDED = "SUCCEEDED"
    COMPLETED_WITH_ERROR = "COMPLETED_WITH_ERROR"
    USER_FAILED = "USER_FAILED"
    PLATFORM_FAILED = "PLATFORM_FAILED"
    TIMEOUT_FAILED = "TIMEOUT_FAILED"
    FATALLY_FAILED = "FATALLY_FAILED"
    INTERNALLY_FAILED = "INTERNALLY_FAILED"
    STOPPED = "STOPPED"
    TIMED_OUT = "TIMED_OUT"

    @cached_property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STEP_STATUSES

    @cached_property
    def is_complete(self) -> bool:
        """Terminal and successful for the DAG: downstream steps may proceed."""
        return self in COMPLETE_STEP_STATUSES

    @cached_property
    def is_retryable(self) -> bool:
        """A failed attempt the engine will retry automatically (after a backoff)."""
        return self in RETRYABLE_STEP_STATUSES

    @cached_property
    def is_restartable(self) -> bool:
        """Terminal, not complete, not retryable: only a manual restart runs it again."""
        return self in RESTARTABLE_STEP_STATUSES


COMPLETE_STEP_STATUSES = frozenset(
    {
        StepStatus.DISABLED,
        StepStatus.UNSATISFIED,
        StepStatus.SKIPPED,
        StepStatus.SUCCEEDED,
        StepStatus.COMPLETED_WITH_ERROR,
    }
)
RETRYABLE_STEP_STATUSES = frozenset(
    {StepStatus.USER_FAILED, StepStatus.PLATFORM_FAILED, StepStatus.TIMEOUT_FAILED}
)
RESTARTABLE_STEP_STATUSES = frozenset(
    {StepStatus.FATALLY_FAILED, StepStatus.INTERNALLY_FAILED, StepStatus.STOPPED, StepStatus.TIMED_OUT}
)
TERMINAL_STEP_STATUSES = COMPLETE_STEP_STATUSES | RETRYABLE_STEP_STATUSES | RESTARTABLE_STEP_STATUSES


class WorkflowStatus(StrEnum):
    CREATED = "CREATED"
    IN_PROGRESS = "IN_PROGRESS"
    PAUSED = "PAUSED"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    SUCCEEDED = "SUCCEEDED"

    @cached_property
    def is_terminal(self) -> bool:
        return self in TERMINAL_WORKFLOW_STATUSES


TERMINAL_WORKFLOW_STATUSES = frozenset(
    {WorkflowStatus.TIMED_OUT, WorkflowStatus.STOPPED, WorkflowStatus.FAILED, WorkflowStatus.SUCCEEDED}
)
