"""Per-record invariants: what one engine's record must satisfy on its own, whatever the other engine did.

A comparison of outcomes misses candidate bugs that change no outcome: a retry started before its backoff
expired, more foreach iterations at once than the limit allows, a step that outlived its timeout, an attempt
the policy never allowed. Each rule below reads one :class:`~engines.api.RunExecution` against the trace's
definitions and the attempt's own configuration-parity set (``config.retry_policy``, ``config.timeout_seconds``,
as the engine recorded them) and yields an :class:`InvariantViolation` with the rule, the expected and the
observed value. :func:`invariant_divergences` turns them into divergences of kind
``invariant_violation`` (critical in the gate: ``shadow/gate/verdict.py``).

The rules (each exact under the core's semantics, so a correct engine never breaks one):

``retry_started_early``
    attempt ``k+1`` of a step started less than the policy's backoff after attempt ``k`` ended
    (expected: the backoff in seconds; observed: ``started_at(k+1) - ended_at(k)``). The backoff is
    :func:`engines.core.retry.retry_delay_seconds` of the recorded policy and the retries of the same class
    before it. A retry that a stop or a workflow timeout made due at once never starts, so it is not checked.
``retry_started_late``
    the same delay exceeded the backoff by more than the engine's own measured overhead: the largest
    ready-to-start latency of the record's first attempts, plus one poll cycle (3 s) and 1 s. An engine that
    waits twice the backoff shows here although every outcome is right.
``attempt_beyond_policy``
    an attempt follows one whose status is not retryable (only USER_FAILED, PLATFORM_FAILED, TIMEOUT_FAILED
    are), or a step has more retries of a class than the policy's limit (expected: the limit; observed: the
    retries).
``outlived_timeout``
    an attempt ended from its runtime's result (SUCCEEDED, USER_FAILED, PLATFORM_FAILED, FATALLY_FAILED,
    COMPLETED_WITH_ERROR) at least its step timeout after it started: the core checks the timeout before it
    reads a result, so the timeout should have fired (expected: the timeout; observed: the attempt's span).
``foreach_concurrency``
    more iterations of one foreach had a step running at the same instant than its limit (the smaller of the
    foreach's ``concurrency`` and its workflow's ``step_concurrency``, 20 by default). Iterations are read from
    their attempts' spans, which lie inside the iterations' lives, so the count never over-states.

Not checked here (see docs/RESULTS.md): a step timeout firing *late*, a workflow timeout's instant, and an
attempt executed twice behind one record (the replay runtime would have to count its invocations per
(path, attempt)); no step starting before its predecessors ended is the comparison's causality check.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corpora.model import Step, Trace
from engines.api import AttemptRecord, ExecutionRecord, RunExecution
from engines.core.retry import ParsedRetryPolicy, RetryCounters, retry_delay_seconds
from engines.core.statuses import StepStatus
from shadow.compare.cause import cause_key
from shadow.compare.model import Divergence, DivergenceKind, signature_of

__all__ = ["RULES", "InvariantViolation", "check_invariants", "invariant_divergences"]

RULES = (
    "retry_started_early",
    "retry_started_late",
    "attempt_beyond_policy",
    "outlived_timeout",
    "foreach_concurrency",
)
RETRYABLE = frozenset({"USER_FAILED", "PLATFORM_FAILED", "TIMEOUT_FAILED"})
_FROM_RESULT = frozenset(
    {"SUCCEEDED", "USER_FAILED", "PLATFORM_FAILED", "FATALLY_FAILED", "COMPLETED_WITH_ERROR"}
)
_CLASS = {"USER_FAILED": 0, "PLATFORM_FAILED": 1, "TIMEOUT_FAILED": 2}
_LIMIT_NAMES = ("error_retry_limit", "platform_retry_limit", "timeout_retry_limit")
DEFAULT_STEP_CONCURRENCY = 20
POLL_SECONDS = 3.0  # the RUNNING poll of both engines (docs/CORE.md)
SLACK_SECONDS = 1.0
_EPSILON = 1e-6
_ITERATION = re.compile(r"\[(\d+)\]$")


@dataclass(frozen=True, slots=True)
class InvariantViolation:
    run_id: str
    path: str
    rule: str
    detail: str  # where: ``attempts[2]`` or the foreach path
    expected: float | int
    observed: float | int


def check_invariants(trace: Trace, record: ExecutionRecord) -> list[InvariantViolation]:
    """Every violation of :data:`RULES` in ``record`` (one engine's replay of ``trace``)."""
    out: list[InvariantViolation] = []
    for run in record.runs:
        by_path: dict[str, list[AttemptRecord]] = {}
        for att in run.attempts:
            by_path.setdefault(att.path, []).append(att)
        allowance = _overhead(run) + POLL_SECONDS + SLACK_SECONDS
        for path, atts in by_path.items():
            atts.sort(key=lambda a: a.attempt)
            out.extend(_retries(run.run_id, path, atts, allowance))
            out.extend(_timeouts(run.run_id, path, atts))
        out.extend(_concurrency(trace, run, by_path))
    return out


def _overhead(run: RunExecution) -> float:
    """The engine's own largest ready -> start latency over the run's first attempts."""
    return max(
        (
            a.started_at - a.ready_at
            for a in run.attempts
            if a.attempt == 1 and a.started_at is not None and a.ready_at is not None
        ),
        default=0.0,
    )


def _policy(att: AttemptRecord) -> ParsedRetryPolicy | None:
    raw = att.config.get("retry_policy")
    if not isinstance(raw, Mapping):
        return None
    try:
        return ParsedRetryPolicy.from_json(raw)
    except (KeyError, TypeError, ValueError, AssertionError):
        return None


def _retries(
    run_id: str, path: str, atts: Sequence[AttemptRecord], allowance: float
) -> Iterator[InvariantViolation]:
    counters = [0, 0, 0]
    for prev, nxt in itertools.pairwise(atts):
        where = f"attempts[{nxt.attempt}]"
        policy = _policy(prev)
        if prev.status not in RETRYABLE:
            yield InvariantViolation(run_id, path, "attempt_beyond_policy", where, 0, nxt.attempt)
            continue
        klass = _CLASS[prev.status]
        before = RetryCounters(*counters)
        counters[klass] += 1
        if policy is not None and counters[klass] > policy.limits()[klass]:
            yield InvariantViolation(
                run_id,
                path,
                "attempt_beyond_policy",
                f"{where}.{_LIMIT_NAMES[klass]}",
                policy.limits()[klass],
                counters[klass],
            )
        if policy is None or prev.ended_at is None or nxt.started_at is None:
            continue
        backoff = retry_delay_seconds(policy, before, StepStatus(prev.status))
        delay = nxt.started_at - prev.ended_at
        if delay < backoff - _EPSILON:
            yield InvariantViolation(run_id, path, "retry_started_early", where, backoff, round(delay, 6))
        elif delay > backoff + allowance:
            yield InvariantViolation(run_id, path, "retry_started_late", where, backoff, round(delay, 6))


def _timeouts(run_id: str, path: str, atts: Sequence[AttemptRecord]) -> Iterator[InvariantViolation]:
    for att in atts:
        limit = att.config.get("timeout_seconds")
        if (
            not isinstance(limit, (int, float))
            or isinstance(limit, bool)
            or att.status not in _FROM_RESULT
            or att.started_at is None
            or att.ended_at is None
        ):
            continue
        span = att.ended_at - att.started_at
        if span >= limit + _EPSILON:
            yield InvariantViolation(
                run_id, path, "outlived_timeout", f"attempts[{att.attempt}]", limit, round(span, 6)
            )


def _concurrency(
    trace: Trace, run: RunExecution, by_path: Mapping[str, Sequence[AttemptRecord]]
) -> Iterator[InvariantViolation]:
    # iteration prefix ("fan[3]" or "call/fan[0]") -> (first start, last end) of its attempts
    spans: dict[str, dict[int, tuple[float, float]]] = {}
    for path, atts in by_path.items():
        parts = path.split("/")
        for depth in range(len(parts) - 1):
            match = _ITERATION.search(parts[depth])
            if match is None:
                continue
            foreach = "/".join([*parts[:depth], parts[depth][: match.start()]])
            index = int(match.group(1))
            for att in atts:
                if att.started_at is None:
                    continue
                end = att.ended_at if att.ended_at is not None else float("inf")
                lo, hi = spans.setdefault(foreach, {}).get(index, (att.started_at, end))
                spans[foreach][index] = (min(lo, att.started_at), max(hi, end))
    for foreach, iterations in sorted(spans.items()):
        limit = _foreach_limit(trace, foreach)
        if limit is None or len(iterations) <= limit:
            continue
        widest = _widest(list(iterations.values()))
        if widest > limit:
            yield InvariantViolation(run.run_id, foreach, "foreach_concurrency", "iterations", limit, widest)


def _widest(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an interval ending when another starts does not overlap it)."""
    events = sorted(
        [(lo, 1) for lo, _ in intervals] + [(hi, -1) for _, hi in intervals], key=lambda e: (e[0], e[1])
    )
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def _foreach_limit(trace: Trace, path: str) -> int | None:
    """The iteration limit of the foreach step at ``path``, or None when the path leaves the definition."""
    steps: Sequence[Step] = trace.definition.steps
    workflow_limit = trace.definition.step_concurrency
    segments = path.split("/")
    step: Step | None = None
    for k, segment in enumerate(segments):
        step = next((s for s in steps if s.id == segment.split("[", 1)[0]), None)
        if step is None:
            return None
        if k == len(segments) - 1:
            break
        if step.foreach is not None:  # a foreach body is an inline workflow without a limit of its own
            steps, workflow_limit = step.foreach.steps, None
        elif step.subworkflow is not None and step.subworkflow.workflow_id in trace.subworkflows:
            child = trace.subworkflows[step.subworkflow.workflow_id]
            steps, workflow_limit = child.steps, child.step_concurrency
        else:
            return None
    if step is None or step.foreach is None:
        return None
    own = step.foreach.concurrency
    limit = workflow_limit or DEFAULT_STEP_CONCURRENCY
    return min(own, limit) if own is not None else limit


def invariant_divergences(trace: Trace, record: ExecutionRecord) -> list[Divergence]:
    """The violations of ``record`` as divergences of kind ``invariant_violation``: ``detail`` is
    ``rule attempts[k]`` (or ``rule iterations``), the baseline value the expected one, the other value
    what the record shows."""
    steps = _step_types(record)
    out: list[Divergence] = []
    for v in check_invariants(trace, record):
        detail = f"{v.rule} {v.detail}"
        out.append(
            Divergence(
                run_id=v.run_id,
                path=v.path,
                kind=DivergenceKind.INVARIANT_VIOLATION,
                detail=detail,
                baseline_value=v.expected,
                other_value=v.observed,
                signature=signature_of(
                    trace.metadata.workflow_type,
                    steps.get(v.path, "FOREACH"),
                    v.path,
                    DivergenceKind.INVARIANT_VIOLATION.value,
                ),
                is_first=False,
                cause=cause_key(DivergenceKind.INVARIANT_VIOLATION, detail, v.expected, v.observed),
            )
        )
    return out


def _step_types(record: ExecutionRecord) -> dict[str, str]:
    out: dict[str, Any] = {}
    for run in record.runs:
        for att in run.attempts:
            out.setdefault(att.path, att.step_type)
    return out
