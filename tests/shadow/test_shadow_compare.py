"""Comparison: normalization, flattening to kinds and signatures, first divergence point, causality."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpora.model import (
    Foreach,
    Outcome,
    Param,
    RecordedAttempt,
    Run,
    Step,
    StepType,
    Trace,
    TraceMetadata,
    Transition,
    WorkflowDefinition,
)
from engines.api import ReplayOptions
from shadow.compare import CausalOrder, DivergenceKind, compare_records, normalize_record, path_pattern
from shadow.testing import FakeEngine, PlantedFaultEngine, build_trace

DIAMOND = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}


@pytest.fixture
def trace() -> Trace:
    return build_trace("t1", DIAMOND, {"b": ["user_error", "succeeded"]}, params={"c": {"date": 20260101}})


def _compare(trace: Trace, fault: str, path: str, param: str = "") -> list:
    base = FakeEngine().replay(trace, ReplayOptions(seed=0))
    other = PlantedFaultEngine(FakeEngine(), fault=fault, path=path, param=param).replay(
        trace, ReplayOptions(seed=1)
    )
    return compare_records(trace, base, other)


class TestPlantedFaults:
    def test_one_retry_fewer(self, trace: Trace) -> None:
        """A lost retry of b is an attempt_count + step_status divergence at b, the first point, and a failed run."""
        found = _compare(trace, "one_retry_fewer", "b")
        signatures = {d.signature for d in found}
        assert "etl|SHELL|b|attempt_count" in signatures
        assert "etl|SHELL|b|step_status" in signatures
        assert "etl|||final_status" in signatures
        assert {d.path for d in found if d.is_first} == {"b"}

    def test_dropped_param(self, trace: Trace) -> None:
        """A param not handed to c is exactly one params divergence naming the param."""
        found = _compare(trace, "drop_param", "c", "date")
        assert [(d.path, d.kind, d.detail, d.baseline_value, d.other_value) for d in found] == [
            ("c", DivergenceKind.PARAMS, "attempts[1].params.date", 20260101, None)
        ]
        assert found[0].is_first

    def test_lost_wakeup(self, trace: Trace) -> None:
        """A lost wake-up at b makes the run stuck with b as the first missing step in causal order."""
        found = _compare(trace, "lost_wakeup", "b")
        kinds = {(d.path, d.kind) for d in found}
        assert ("", DivergenceKind.STUCK_RUN) in kinds
        assert ("b", DivergenceKind.MISSING_STEP) in kinds
        assert [d.path for d in found if d.is_first] == ["b"]
        assert "etl|SHELL|b|missing_step" in {d.signature for d in found}

    def test_causality_violation(self, trace: Trace) -> None:
        """A step started before its predecessor ended is a causality_violation at that step."""
        found = _compare(trace, "reorder", "d")
        assert [(d.path, d.kind, d.detail) for d in found] == [
            ("d", DivergenceKind.CAUSALITY_VIOLATION, "after b")
        ]


class TestNoDivergence:
    def test_aa_replica_equal(self, trace: Trace) -> None:
        """Two seeds of the same engine differ in timing only, which is never a divergence."""
        engine = FakeEngine()
        a, b = engine.replay(trace, ReplayOptions(seed=0)), engine.replay(trace, ReplayOptions(seed=9))
        assert a != b
        assert compare_records(trace, a, b) == []

    def test_parallel_branches_as_set(self, trace: Trace) -> None:
        """Attempts listed in another order (b and c swapped) normalize identically."""
        record = FakeEngine().replay(trace, ReplayOptions())
        run = record.runs[0]
        swapped = replace(record, runs=(replace(run, attempts=tuple(reversed(run.attempts))),))
        assert normalize_record(record) == normalize_record(swapped)
        assert compare_records(trace, record, swapped) == []

    def test_legal_reordering(self, trace: Trace) -> None:
        """c starting long before b (independent branches) is legal: no divergence."""
        record = FakeEngine().replay(trace, ReplayOptions())
        run = record.runs[0]
        moved = tuple(
            replace(a, started_at=(a.started_at or 0) - 0.5) if a.path == "c" else a for a in run.attempts
        )
        assert compare_records(trace, record, replace(record, runs=(replace(run, attempts=moved),))) == []


class TestShapes:
    def test_extra_unrecorded_attempt(self, trace: Trace) -> None:
        """An extra attempt the trace never recorded is attempt_count plus unrecorded_attempt."""
        record = FakeEngine().replay(trace, ReplayOptions())
        run = record.runs[0]
        last_c = [a for a in run.attempts if a.path == "c"][-1]
        extra = replace(last_c, attempt=2, unrecorded=True, status="INTERNALLY_FAILED", outcome=None)
        other = replace(record, runs=(replace(run, attempts=(*run.attempts, extra)),))
        kinds = {d.kind for d in compare_records(trace, record, other)}
        assert kinds == {DivergenceKind.ATTEMPT_COUNT, DivergenceKind.UNRECORDED_ATTEMPT}

    def test_double_delivery(self, trace: Trace) -> None:
        """The same attempt reported twice for a step (at-least-once delivery) is an attempt_count divergence."""
        record = FakeEngine().replay(trace, ReplayOptions())
        run = record.runs[0]
        doubled = replace(run, attempts=(*run.attempts, next(a for a in run.attempts if a.path == "d")))
        found = compare_records(trace, record, replace(record, runs=(doubled,)))
        assert [(d.path, d.kind, d.baseline_value, d.other_value) for d in found] == [
            ("d", DivergenceKind.ATTEMPT_COUNT, 1, 2)
        ]

    def test_extra_step_and_missing_run(self, trace: Trace) -> None:
        """A step only the other engine ran is extra_step; a run it never reported is a final_status difference."""
        record = FakeEngine().replay(trace, ReplayOptions())
        run = record.runs[0]
        ghost = replace(run.attempts[0], path="ghost", step_id="ghost")
        other = replace(record, runs=(replace(run, attempts=(*run.attempts, ghost)),))
        assert [(d.path, d.kind) for d in compare_records(trace, record, other)] == [
            ("ghost", DivergenceKind.EXTRA_STEP)
        ]
        found = compare_records(trace, record, replace(record, runs=()))
        assert [(d.path, d.kind, d.other_value) for d in found] == [("", DivergenceKind.FINAL_STATUS, None)]

    def test_path_pattern(self) -> None:
        """Foreach indices generalize so iterations share one signature."""
        assert path_pattern("outer[12]/call/leaf[3]/x") == "outer[*]/call/leaf[*]/x"

    def test_causal_order_nested(self) -> None:
        """Foreach children sort after earlier steps and by iteration; unknown paths come last."""
        inner = (Step(id="x", transitions=(Transition("y"),)), Step(id="y"))
        fan = Step(
            id="fan",
            type=StepType.FOREACH,
            foreach=Foreach(loop_params={"i": Param(value=[1, 2])}, steps=inner),
        )
        trace = Trace(
            trace_id="n",
            definition=WorkflowDefinition(
                id="w", steps=(Step(id="a", transitions=(Transition("fan"),)), fan)
            ),
            runs=(
                Run(
                    run_id="r", trigger_time=0.0, attempts=(RecordedAttempt("a", 1, Outcome.SUCCEEDED, 1.0),)
                ),
            ),
            metadata=TraceMetadata(),
        )
        order = CausalOrder(trace)
        paths = ["zzz", "fan[1]/x", "fan[0]/y", "a", "fan[0]/x"]
        assert sorted(paths, key=order.key) == ["a", "fan[0]/x", "fan[0]/y", "fan[1]/x", "zzz"]
        assert order.predecessors("fan[0]/y") == ("fan[0]/x",)


class TestPrunedDiff:
    """deepdiff walks only the runs, steps and attempts that differ; the report must be the one it
    gives on the whole normal forms."""

    MUTATIONS = ("drop_attempt", "status", "param", "ghost_step", "drop_run", "run_status", "dup_attempt")

    @staticmethod
    def _mutate(record: Any, ops: list[tuple[str, int]]) -> Any:
        runs = list(record.runs)
        for op, n in ops:
            if not runs:
                break
            i = n % len(runs)
            run = runs[i]
            attempts = list(run.attempts)
            j = n % len(attempts) if attempts else 0
            if op == "drop_run":
                runs.pop(i)
                continue
            if op == "run_status":
                runs[i] = replace(run, status="FAILED" if run.status != "FAILED" else "SUCCEEDED")
                continue
            if not attempts:
                continue
            if op == "drop_attempt":
                attempts.pop(j)
            elif op == "status":
                attempts[j] = replace(attempts[j], status="FATALLY_FAILED")
            elif op == "param":
                attempts[j] = replace(attempts[j], params={**attempts[j].params, "x": n})
            elif op == "ghost_step":
                attempts.append(replace(attempts[j], path=f"ghost{n}", step_id=f"ghost{n}"))
            elif op == "dup_attempt":
                attempts.append(attempts[j])
            runs[i] = replace(run, attempts=tuple(attempts))
        return replace(record, runs=tuple(runs))

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 40)), min_size=1, max_size=6))
    def test_same_report_as_whole_diff(self, ops: list[tuple[str, int]]) -> None:
        trace = build_trace("t9", DIAMOND, {"b": ["user_error", "succeeded"]}, params={"c": {"d": 1}}, runs=3)
        base = FakeEngine().replay(trace, ReplayOptions(seed=0))
        other = self._mutate(FakeEngine().replay(trace, ReplayOptions(seed=1)), ops)
        pruned = compare_records(trace, base, other)
        assert pruned == compare_records(trace, base, other, prune=False)
