"""The trace model: what a captured production workflow looks like (format ``shadow-trace/1``).

A :class:`Trace` holds one workflow definition (with the definitions of the subworkflows it calls),
one or more runs of it, and for every step attempt what production recorded: the outcome, how long it
took and what it output. Optionally it also holds what production *observed* (final statuses and
timestamps), so a replay on the legacy engine can be checked against production itself.

Every record is an immutable, fully typed dataclass. Mappings inside records are plain dicts for
cheap JSON round trips; treat them as read-only (nothing in this project mutates them).

Step paths name foreach iterations and subworkflow children: ``fan[3]/inner`` is step ``inner`` of
iteration 3 (0-based ``loop_index``) of foreach step ``fan``; ``child/step`` is step ``step`` of the
run started by subworkflow step ``child``. Paths nest: ``outer[1]/call/leaf``.

Times are seconds (floats). Trigger times are epoch seconds; durations are non-negative seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

__all__ = [
    "FORMAT",
    "Backoff",
    "BackoffType",
    "FailureMode",
    "Foreach",
    "JsonValue",
    "ObservedRun",
    "ObservedStep",
    "Outcome",
    "Param",
    "RecordedAttempt",
    "Redaction",
    "RetryPolicy",
    "Run",
    "RunStrategy",
    "RunStrategyRule",
    "Step",
    "StepType",
    "Subworkflow",
    "Trace",
    "TraceMetadata",
    "Transition",
    "WorkflowDefinition",
]

FORMAT = "shadow-trace/1"

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"


class StepType(StrEnum):
    """What a step does. Leaf types replay a recorded attempt; FOREACH and SUBWORKFLOW start child runs."""

    NOOP = "NOOP"
    SLEEP = "SLEEP"
    SHELL = "SHELL"
    KUBERNETES = "KUBERNETES"
    NOTEBOOK = "NOTEBOOK"
    HTTP = "HTTP"
    TITUS = "TITUS"
    SIGNAL = "SIGNAL"
    FOREACH = "FOREACH"
    SUBWORKFLOW = "SUBWORKFLOW"

    @property
    def is_leaf(self) -> bool:
        return self not in (StepType.FOREACH, StepType.SUBWORKFLOW)


class Outcome(StrEnum):
    """What one step attempt did in production, as the runtime reported it."""

    SUCCEEDED = "succeeded"
    USER_ERROR = "user_error"
    PLATFORM_ERROR = "platform_error"
    FATAL_ERROR = "fatal_error"
    TIMEOUT = "timeout"


class FailureMode(StrEnum):
    FAIL_IMMEDIATELY = "FAIL_IMMEDIATELY"
    FAIL_AFTER_RUNNING = "FAIL_AFTER_RUNNING"
    IGNORE_FAILURE = "IGNORE_FAILURE"


class RunStrategyRule(StrEnum):
    SEQUENTIAL = "SEQUENTIAL"
    PARALLEL = "PARALLEL"
    STRICT_SEQUENTIAL = "STRICT_SEQUENTIAL"
    FIRST_ONLY = "FIRST_ONLY"
    LAST_ONLY = "LAST_ONLY"


class BackoffType(StrEnum):
    EXPONENTIAL_BACKOFF = "EXPONENTIAL_BACKOFF"
    FIXED_BACKOFF = "FIXED_BACKOFF"


@dataclass(frozen=True, slots=True)
class Param:
    """A parameter definition: a literal ``value`` (strings interpolate ``$x`` / ``${x}``; ``$$`` is a
    literal ``$``) or an ``expression`` in the safe expression language. Exactly one is set."""

    value: JsonValue = None
    expression: str | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry backoff. Unset fields take Maestro's defaults for the same ``type``.

    Numeric fields may be strings: ``"$param"`` (resolved against workflow params when the first
    attempt is created) or, for the ``*_in_secs`` fields, durations like ``"5 min"``."""

    type: BackoffType = BackoffType.EXPONENTIAL_BACKOFF
    error_retry_backoff_in_secs: int | str | None = None
    error_retry_exponent: int | str | None = None
    error_retry_limit_in_secs: int | str | None = None
    platform_retry_backoff_in_secs: int | str | None = None
    platform_retry_exponent: int | str | None = None
    platform_retry_limit_in_secs: int | str | None = None
    timeout_retry_backoff_in_secs: int | str | None = None
    timeout_retry_exponent: int | str | None = None
    timeout_retry_limit_in_secs: int | str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry limits per error class (unset: error 2, platform 10, timeout 0) and the backoff."""

    error_retry_limit: int | str | None = None
    platform_retry_limit: int | str | None = None
    timeout_retry_limit: int | str | None = None
    backoff: Backoff | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """An outgoing edge ``step -> to``, taken when ``condition`` (an expression) is true; None means always."""

    to: str
    condition: str | None = None


@dataclass(frozen=True, slots=True)
class Foreach:
    """Run ``steps`` once per combination of ``loop_params`` (each an array-valued param; the first
    varies fastest), at most ``concurrency`` iterations at a time."""

    loop_params: Mapping[str, Param]
    steps: tuple[Step, ...]
    concurrency: int | None = None
    strict_ordering: bool = False


@dataclass(frozen=True, slots=True)
class Subworkflow:
    """Start ``workflow_id`` (a definition in ``Trace.subworkflows``) as a child run."""

    workflow_id: str
    sync: bool = True
    explicit_params: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    type: StepType = StepType.NOOP
    params: Mapping[str, Param] = field(default_factory=dict)
    transitions: tuple[Transition, ...] = ()
    retry_policy: RetryPolicy | None = None
    timeout: int | float | str | None = None
    failure_mode: FailureMode | None = None
    foreach: Foreach | None = None
    subworkflow: Subworkflow | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunStrategy:
    rule: RunStrategyRule = RunStrategyRule.SEQUENTIAL
    workflow_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    id: str
    steps: tuple[Step, ...]
    params: Mapping[str, Param] = field(default_factory=dict)
    run_strategy: RunStrategy = field(default_factory=RunStrategy)
    timeout: int | float | str | None = None
    step_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class RecordedAttempt:
    """What production recorded for one attempt (1-based) of the step at ``path``."""

    path: str
    attempt: int
    outcome: Outcome
    duration: float
    outputs: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ObservedStep:
    status: str
    attempts: int
    start_time: float | None = None
    end_time: float | None = None


@dataclass(frozen=True, slots=True)
class ObservedRun:
    """What production observed of a run: its final status, times and per-step final statuses."""

    status: str
    start_time: float | None = None
    end_time: float | None = None
    steps: Mapping[str, ObservedStep] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    trigger_time: float
    params: Mapping[str, JsonValue] = field(default_factory=dict)
    initiator: str = "manual"
    attempts: tuple[RecordedAttempt, ...] = ()
    observed: ObservedRun | None = None


@dataclass(frozen=True, slots=True)
class Redaction:
    """One redaction rule that changed values of this trace (:mod:`corpora.redact`): its ``rule`` name,
    its ``action`` (``hash``, ``mask`` or ``drop``), how many ``values`` it changed, and for ``hash`` the
    ``key_id`` (a fingerprint of the HMAC key, never the key): traces hashed with the same key compare."""

    rule: str
    action: str
    values: int = 0
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class TraceMetadata:
    owner: str = "unknown"
    tags: tuple[str, ...] = ()
    workflow_type: str = "generic"
    source: str = "unknown"
    captured_at: str | None = None
    redactions: tuple[Redaction, ...] = ()


@dataclass(frozen=True, slots=True)
class Trace:
    trace_id: str
    definition: WorkflowDefinition
    runs: tuple[Run, ...]
    metadata: TraceMetadata = field(default_factory=TraceMetadata)
    subworkflows: Mapping[str, WorkflowDefinition] = field(default_factory=dict)
    format: str = FORMAT

    @property
    def workflow_id(self) -> str:
        return self.definition.id
