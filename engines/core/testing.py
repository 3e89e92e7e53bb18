"""Small builders for traces and a one-call oracle replay, for tests of the core and of engines.

``chain("a", "b")`` builds steps a -> b; ``rec("a", 1, "user_error", 5)`` a recorded attempt;
``make_trace(steps, attempts)`` a one-run trace triggered at ``T0``; ``oracle(trace)`` replays it on
:class:`CoreOracle` and returns the first run's record. Engine tests compare their records with
``oracle(trace)``: the outcome of every run is what the core says it must be.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from corpora.model import (
    FailureMode,
    JsonValue,
    Outcome,
    Param,
    RecordedAttempt,
    RetryPolicy,
    Run,
    RunStrategy,
    Step,
    StepType,
    Trace,
    Transition,
    WorkflowDefinition,
)
from engines.api import AttemptRecord, ExecutionRecord, ReplayOptions, RunExecution
from engines.core.oracle import CoreOracle

__all__ = ["T0", "attempts_of", "chain", "make_trace", "oracle", "oracle_record", "rec", "step"]

T0 = 1_700_000_000.0
"""Trigger time of the first run in traces built here (2023-11-14T22:13:20Z)."""


def step(
    sid: str,
    *to: str | tuple[str, str],
    type: StepType = StepType.NOOP,
    retry: RetryPolicy | None = None,
    timeout: int | float | str | None = None,
    failure_mode: FailureMode | None = None,
    **kwargs: object,
) -> Step:
    """A step with transitions to ``to`` (a step id, or ``(id, condition)``)."""
    transitions = tuple(Transition(t) if isinstance(t, str) else Transition(t[0], t[1]) for t in to)
    return Step(
        id=sid, type=type, transitions=transitions, retry_policy=retry, timeout=timeout,
        failure_mode=failure_mode, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def chain(*ids: str) -> tuple[Step, ...]:
    """Steps ``ids[0] -> ids[1] -> ...``."""
    return tuple(step(sid, *ids[i + 1 : i + 2]) for i, sid in enumerate(ids))


def rec(
    path: str,
    attempt: int,
    outcome: str | Outcome,
    duration: float,
    outputs: Mapping[str, JsonValue] | None = None,
) -> RecordedAttempt:
    return RecordedAttempt(path, attempt, Outcome(outcome), float(duration), dict(outputs or {}))


def make_trace(
    steps: Sequence[Step],
    attempts: Iterable[RecordedAttempt] = (),
    *,
    runs: Sequence[Run] | None = None,
    params: Mapping[str, JsonValue | Param] | None = None,
    subworkflows: Mapping[str, WorkflowDefinition] | None = None,
    strategy: RunStrategy | None = None,
    timeout: int | float | str | None = None,
    step_concurrency: int | None = None,
    trace_id: str = "trace-1",
) -> Trace:
    """A trace of workflow ``wf`` with ``steps``; one run ``r1`` at ``T0`` with ``attempts`` unless
    ``runs`` are given."""
    definition = WorkflowDefinition(
        id="wf", steps=tuple(steps), params={k: v if isinstance(v, Param) else Param(value=v) for k, v in (params or {}).items()},
        run_strategy=strategy or RunStrategy(), timeout=timeout, step_concurrency=step_concurrency,
    )  # fmt: skip
    if runs is None:
        runs = (Run("r1", T0, attempts=tuple(attempts)),)
    return Trace(
        trace_id=trace_id, definition=definition, runs=tuple(runs), subworkflows=dict(subworkflows or {})
    )


def oracle_record(trace: Trace, options: ReplayOptions | None = None) -> ExecutionRecord:
    return CoreOracle().replay(trace, options or ReplayOptions())


def oracle(trace: Trace) -> RunExecution:
    """Replay ``trace`` on the oracle and return its first run."""
    return oracle_record(trace).runs[0]


def attempts_of(run: RunExecution, path: str) -> list[AttemptRecord]:
    """The attempts of ``path`` in order."""
    return [a for a in run.attempts if a.path == path]
