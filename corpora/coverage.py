"""What a corpus exercises: the features and situations its traces can make an engine go through.

A clean shadow run says nothing about what its corpus never contained: if no trace fails inside a foreach
body, a candidate bug in failure handling there cannot show. :func:`trace_features` reads one trace (its
definitions and what production recorded) and names the situations it contains; :class:`CoverageAccumulator`
counts traces per feature over a corpus, and lists the features no trace exercised first
(``shadow corpus stats --coverage``).

This is what the *input* contains, read statically. Whether an engine actually went through a situation on
replay (a failure whose retries the engine ran, a timeout that fired) is a property of the records: not here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from corpora.model import BackoffType, FailureMode, Outcome, RunStrategyRule, Step, Trace

__all__ = ["FEATURES", "CoverageAccumulator", "CoverageRow", "trace_features"]

FEATURES: dict[str, str] = {
    # failures by where they happen (a recorded attempt that did not succeed)
    "failure_top_level": "a step of the workflow itself fails for good (its last attempt fails)",
    "failure_in_foreach": "a step inside a foreach iteration fails for good",
    "failure_in_subworkflow": "a step inside a subworkflow fails for good",
    # retries by the error class of the attempt retried
    "retry_after_user_error": "an attempt is retried after a user error",
    "retry_after_platform_error": "an attempt is retried after a platform error",
    "retry_after_timeout": "an attempt is retried after a timeout",
    "fatal_error": "an attempt fails with a fatal (non-retryable) error",
    "backoff_fixed": "a retry policy with fixed backoff",
    "backoff_exponential": "a retry policy with exponential backoff",
    # timeouts
    "step_timeout_recorded": "a step attempt timed out in production",
    "step_timeout_set": "a step has a timeout",
    "workflow_timeout_set": "a workflow has a timeout",
    # failure modes, with a failure to apply them to
    "fail_immediately_with_failure": "FAIL_IMMEDIATELY with a failing step",
    "fail_after_running_with_failure": "FAIL_AFTER_RUNNING (the default) with a failing step",
    "ignore_failure_with_failure": "IGNORE_FAILURE with a failing step",
    # control flow
    "condition": "a transition with a condition",
    "join": "a step with more than one predecessor",
    "foreach": "a foreach step",
    "foreach_concurrency": "a foreach with a concurrency limit below its iterations",
    "nested_foreach": "a foreach inside a foreach body",
    "subworkflow_sync": "a subworkflow the parent waits for",
    "subworkflow_async": "a subworkflow started without waiting (sync: false)",
    "step_concurrency": "a workflow step_concurrency limit",
    # run strategies with more than one run (the strategy decides between them)
    **{
        f"strategy_{rule.value.lower()}_multiple_runs": f"{rule.value} with more than one run"
        for rule in RunStrategyRule
    },
    "workflow_concurrency": "a run strategy with workflow_concurrency",
    "expression_params": "params computed by expressions",
    "run_params": "runs triggered with params",
}


def _walk(steps: Iterable[Step], in_foreach: bool = False) -> Iterator[tuple[Step, bool]]:
    for step in steps:
        yield step, in_foreach
        if step.foreach is not None:
            yield from _walk(step.foreach.steps, True)


def trace_features(trace: Trace) -> set[str]:
    """The :data:`FEATURES` one trace exercises."""
    found: set[str] = set()
    definitions = [trace.definition, *trace.subworkflows.values()]
    for wf in definitions:
        if wf.timeout is not None:
            found.add("workflow_timeout_set")
        if wf.step_concurrency is not None:
            found.add("step_concurrency")
        if wf.run_strategy.workflow_concurrency is not None:
            found.add("workflow_concurrency")
        if any(p.expression for p in wf.params.values()):
            found.add("expression_params")
        predecessors: Counter[str] = Counter()
        for step, in_foreach in _walk(wf.steps):
            for t in step.transitions:
                predecessors[t.to] += 1
                if t.condition:
                    found.add("condition")
            if step.timeout is not None:
                found.add("step_timeout_set")
            if any(p.expression for p in step.params.values()):
                found.add("expression_params")
            backoff = step.retry_policy.backoff if step.retry_policy else None
            if backoff is not None:
                found.add(
                    "backoff_fixed" if backoff.type is BackoffType.FIXED_BACKOFF else "backoff_exponential"
                )
            if step.foreach is not None:
                found.add("foreach")
                if in_foreach:
                    found.add("nested_foreach")
            if step.subworkflow is not None:
                found.add("subworkflow_sync" if step.subworkflow.sync else "subworkflow_async")
        if any(n > 1 for n in predecessors.values()):
            found.add("join")
    for run in trace.runs:
        if run.params:
            found.add("run_params")
        by_path: dict[str, list[Outcome]] = {}
        for a in sorted(run.attempts, key=lambda a: (a.path, a.attempt)):
            by_path.setdefault(a.path, []).append(a.outcome)
        for path, outcomes in by_path.items():
            if outcomes[-1] is not Outcome.SUCCEEDED:  # the step fails for good (as far as recorded)
                found.add(_where(path))
                found.add(f"{_failure_mode(trace, path).value.lower()}_with_failure")
            if Outcome.TIMEOUT in outcomes:
                found.add("step_timeout_recorded")
            if Outcome.FATAL_ERROR in outcomes:
                found.add("fatal_error")
            for before in outcomes[:-1]:  # every attempt but the last was retried
                if before is not Outcome.SUCCEEDED:
                    found.add(
                        {
                            Outcome.USER_ERROR: "retry_after_user_error",
                            Outcome.PLATFORM_ERROR: "retry_after_platform_error",
                            Outcome.TIMEOUT: "retry_after_timeout",
                        }.get(before, "fatal_error")
                    )
    foreach_limits = [
        (s.foreach.concurrency, s.id)
        for wf in definitions
        for s, _ in _walk(wf.steps)
        if s.foreach is not None and s.foreach.concurrency is not None
    ]
    for limit, step_id in foreach_limits:
        widest = max(
            (
                len({a.path.split("/", 1)[0] for a in run.attempts if a.path.startswith(f"{step_id}[")})
                for run in trace.runs
            ),
            default=0,
        )
        if widest > limit:
            found.add("foreach_concurrency")
    if len(trace.runs) > 1:
        found.add(f"strategy_{trace.definition.run_strategy.rule.value.lower()}_multiple_runs")
    return found


def _failure_mode(trace: Trace, path: str) -> FailureMode:
    """The failure mode of the step at ``path`` (``fan[2]/call/inner``: through foreach bodies and
    subworkflow definitions); FAIL_AFTER_RUNNING, Maestro's default, when unset or not found."""
    steps: Iterable[Step] = trace.definition.steps
    step: Step | None = None
    for segment in path.split("/"):
        step = next((s for s in steps if s.id == segment.split("[", 1)[0]), None)
        if step is None:
            return FailureMode.FAIL_AFTER_RUNNING
        if step.foreach is not None:
            steps = step.foreach.steps
        elif step.subworkflow is not None and step.subworkflow.workflow_id in trace.subworkflows:
            steps = trace.subworkflows[step.subworkflow.workflow_id].steps
    mode = step.failure_mode if step is not None else None
    return mode if mode is not None else FailureMode.FAIL_AFTER_RUNNING


def _where(path: str) -> str:
    """``failure_in_foreach`` when the attempt is inside a foreach iteration (``fan[2]/inner``), else
    ``failure_in_subworkflow`` when it is inside a child workflow (``call/c1``), else top level."""
    if "[" in path:
        return "failure_in_foreach"
    if "/" in path:
        return "failure_in_subworkflow"
    return "failure_top_level"


@dataclass(frozen=True, slots=True)
class CoverageRow:
    feature: str
    description: str
    traces: int


class CoverageAccumulator:
    """Traces per feature over a corpus; :meth:`rows` lists the features never exercised first."""

    def __init__(self) -> None:
        self.traces = 0
        self.counts: Counter[str] = Counter()

    def add(self, trace: Trace) -> None:
        self.traces += 1
        self.counts.update(trace_features(trace))

    def rows(self) -> list[CoverageRow]:
        return sorted(
            (CoverageRow(name, text, self.counts[name]) for name, text in FEATURES.items()),
            key=lambda r: (r.traces, r.feature),
        )

    def missing(self) -> list[str]:
        return [r.feature for r in self.rows() if r.traces == 0]
