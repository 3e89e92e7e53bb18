"""Per-record invariants (issue 20, part 5): each rule holds on the real engines' records and fires, with the
expected and the observed value, on a record that breaks it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from corpora.generator import generate_trace
from corpora.model import Backoff, BackoffType, RetryPolicy, Trace
from corpora.testing import foreach_trace
from engines.actor import ActorEngine
from engines.api import AttemptRecord, ExecutionRecord, ReplayOptions
from engines.core.testing import make_trace, oracle_record, rec, step
from engines.legacy import LegacyEngine
from shadow.compare.invariants import InvariantViolation, check_invariants, invariant_divergences
from shadow.compare.model import DivergenceKind
from shadow.trial import TraceJob, TrialConfig, run_trace_with

FIXED = RetryPolicy(
    error_retry_limit=2, backoff=Backoff(BackoffType.FIXED_BACKOFF, error_retry_backoff_in_secs=120)
)


def _retry_trace() -> Trace:
    return make_trace(
        [step("a", "b", retry=FIXED, timeout=900), step("b")],
        [rec("a", 1, "user_error", 30), rec("a", 2, "succeeded", 880), rec("b", 1, "succeeded", 5)],
    )


def _edit(record: ExecutionRecord, path: str, attempt: int, **changes: object) -> ExecutionRecord:
    """``record`` with the given fields of one attempt of its first run changed."""
    run = record.runs[0]
    atts = tuple(
        replace(a, **changes) if (a.path, a.attempt) == (path, attempt) else a  # type: ignore[arg-type]
        for a in run.attempts
    )
    return replace(record, runs=(replace(run, attempts=atts), *record.runs[1:]))


def _attempt(record: ExecutionRecord, path: str, attempt: int) -> AttemptRecord:
    return next(a for a in record.runs[0].attempts if (a.path, a.attempt) == (path, attempt))


def _rules(violations: list[InvariantViolation]) -> list[tuple[str, str, str]]:
    return [(v.path, v.rule, v.detail) for v in violations]


class TestRealEnginesKeepThem:
    @pytest.mark.parametrize("engine", ["oracle", "legacy", "actor"])
    @pytest.mark.parametrize(
        "trace",
        [_retry_trace(), foreach_trace(6, concurrency=2, duration=300.0)],
        ids=["retry-near-timeout", "foreach-limit-2"],
    )
    def test_no_violation(self, engine: str, trace: Trace) -> None:
        """The oracle and both engines satisfy every rule (a retry waits its backoff, a success 20 s before
        its timeout does not outlive it, a foreach never exceeds its limit)."""
        if engine == "oracle":
            record = oracle_record(trace)
        else:
            record = (LegacyEngine() if engine == "legacy" else ActorEngine()).replay(
                trace, ReplayOptions(seed=1)
            )
        assert check_invariants(trace, record) == []

    @pytest.mark.parametrize("index", [12, 21, 24, 26, 28])
    def test_generated_traces(self, index: int) -> None:
        """Generated traces (seed 1) with retries, step timeouts, foreach limits under a workflow
        step_concurrency, nested foreach, async subworkflows, failures inside a foreach and a subworkflow
        break no rule on either engine."""
        trace = generate_trace(1, index)
        for engine in (LegacyEngine(), ActorEngine()):
            assert check_invariants(trace, engine.replay(trace, ReplayOptions(seed=1))) == []


class TestBrokenRecords:
    def test_retry_started_early(self) -> None:
        """A retry started 60 s after a failure whose fixed backoff is 120 s."""
        trace = _retry_trace()
        record = oracle_record(trace)
        ended = _attempt(record, "a", 1).ended_at
        assert ended is not None
        bad = _edit(record, "a", 2, started_at=ended + 60.0, ended_at=ended + 60.0 + 880.0)
        (v,) = check_invariants(trace, bad)
        assert (v.path, v.rule, v.detail, v.expected, v.observed) == (
            "a",
            "retry_started_early",
            "attempts[2]",
            120,
            60.0,
        )

    def test_retry_started_late(self) -> None:
        """A retry started an hour after its 120 s backoff: more than the engine's own overhead explains."""
        trace = _retry_trace()
        record = oracle_record(trace)
        ended = _attempt(record, "a", 1).ended_at
        assert ended is not None
        assert _rules(
            check_invariants(trace, _edit(record, "a", 2, started_at=ended + 3600.0, ended_at=ended + 4000.0))
        ) == [("a", "retry_started_late", "attempts[2]")]

    def test_attempt_beyond_policy(self) -> None:
        """A third user-error retry under a limit of 2, and an attempt after a success."""
        trace = make_trace([step("a", retry=FIXED)], [rec("a", k, "user_error", 10) for k in (1, 2, 3)])
        record = oracle_record(trace)
        last = _attempt(record, "a", 3)
        assert last.status == "FATALLY_FAILED"
        run = record.runs[0]
        fourth = replace(last, attempt=4, status="USER_FAILED")
        third = replace(last, status="USER_FAILED")
        beyond = replace(record, runs=(replace(run, attempts=(*run.attempts[:-1], third, fourth)),))
        found = [
            (v.rule, v.detail, v.expected, v.observed)
            for v in check_invariants(trace, beyond)
            if v.rule == "attempt_beyond_policy"
        ]
        assert found == [("attempt_beyond_policy", "attempts[4].error_retry_limit", 2, 3)]
        ok = make_trace([step("b")], [rec("b", 1, "succeeded", 5)])
        one = oracle_record(ok)
        again = replace(one.runs[0].attempts[0], attempt=2)
        twice = replace(one, runs=(replace(one.runs[0], attempts=(*one.runs[0].attempts, again)),))
        assert _rules(check_invariants(ok, twice)) == [("b", "attempt_beyond_policy", "attempts[2]")]

    def test_outlived_timeout(self) -> None:
        """A success reported 901 s after the start of a step with a 900 s timeout."""
        trace = _retry_trace()
        record = oracle_record(trace)
        started = _attempt(record, "a", 2).started_at
        assert started is not None
        (v,) = check_invariants(trace, _edit(record, "a", 2, ended_at=started + 901.0))
        assert (v.rule, v.expected, v.observed) == ("outlived_timeout", 900, 901.0)

    def test_foreach_concurrency(self) -> None:
        """Three iterations of a foreach limited to 2 running at once."""
        trace = foreach_trace(4, concurrency=2, duration=300.0)
        record = oracle_record(trace)
        first = _attempt(record, "fan[0]/inner", 1)
        bad = _edit(record, "fan[2]/inner", 1, started_at=first.started_at, ended_at=first.ended_at)
        (v,) = check_invariants(trace, bad)
        assert (v.path, v.rule, v.expected, v.observed) == ("fan", "foreach_concurrency", 2, 3)

    def test_workflow_step_concurrency_is_the_limit(self) -> None:
        """Without a concurrency of its own, a foreach is limited by the workflow's step_concurrency."""
        trace = foreach_trace(4, duration=300.0)
        limited = replace(trace, definition=replace(trace.definition, step_concurrency=3))
        record = oracle_record(trace)  # all 4 at once: fine for the default 20, not for 3
        assert check_invariants(trace, record) == []
        assert _rules(check_invariants(limited, record)) == [("fan", "foreach_concurrency", "iterations")]


class TestInTheTrial:
    def test_candidate_violation_is_a_divergence(self) -> None:
        """A candidate whose record starts a retry early diverges with kind invariant_violation (rule,
        expected and observed values), even though every outcome equals the baseline's."""
        trace = _retry_trace()
        good = oracle_record(trace)
        ended = _attempt(good, "a", 1).ended_at
        assert ended is not None
        bad = _edit(good, "a", 2, started_at=ended + 60.0, ended_at=ended + 60.0 + 880.0)

        class Fixed:
            name, version = "fixed", "1"

            def __init__(self, record: ExecutionRecord) -> None:
                self.record = record

            def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
                return self.record

        config = TrialConfig(engines={}, seeds={"baseline": 0, "candidate": 0, "baseline_aa": 0})
        outcome = run_trace_with(
            TraceJob(trace, "t.jsonl", 1),
            config,
            {"baseline": Fixed(good), "candidate": Fixed(bad), "baseline_aa": Fixed(good)},
        )
        rows = [
            r for r in outcome.tables["divergences"] if r["kind"] == DivergenceKind.INVARIANT_VIOLATION.value
        ]
        assert [
            (r["comparison"], r["path"], r["detail"], r["baseline_value"], r["other_value"]) for r in rows
        ] == [("candidate", "a", "retry_started_early attempts[2]", "120", "60.0")]
        assert rows[0]["cause"] == "invariant_violation|retry_started_early|decreased"
        assert invariant_divergences(trace, good) == []
