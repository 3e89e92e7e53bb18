"""The legacy engine on every orchestration shape: foreach, subworkflows, failure modes, run strategies."""

from __future__ import annotations

import pytest

from corpora import testing as ct
from corpora.model import FailureMode, Run, RunStrategy, RunStrategyRule
from engines.api import ReplayOptions
from engines.core.testing import T0, chain, make_trace, oracle_record, rec, step
from engines.legacy import LegacyConfig, LegacyEngine
from shadow.compare import normalize_record


def same_as_oracle(trace, config: LegacyConfig | None = None, seed: int = 1) -> None:  # type: ignore[no-untyped-def]
    record = LegacyEngine(config).replay(trace, ReplayOptions(seed=seed))
    assert not any(r.stuck for r in record.runs)
    assert normalize_record(record) == normalize_record(oracle_record(trace))
    return record  # type: ignore[return-value]


def overlapping_runs(rule: RunStrategyRule, n: int = 3, concurrency: int | None = None):  # type: ignore[no-untyped-def]
    attempts = (rec("a", 1, "succeeded", 600), rec("b", 1, "succeeded", 5))
    runs = [Run(f"r{i}", T0 + 10 * i, attempts=attempts) for i in range(n)]
    return make_trace(chain("a", "b"), runs=runs, strategy=RunStrategy(rule, concurrency))


class TestContainers:
    @pytest.mark.parametrize("concurrency", [None, 1, 2])
    def test_foreach_iterations_are_child_runs(self, concurrency: int | None) -> None:
        """A foreach of 4 iterations (any concurrency) runs every iteration as in the core."""
        trace = ct.foreach_trace(4, concurrency=concurrency, duration=20.0)
        record = same_as_oracle(trace)
        paths = {a.path for a in record.runs[0].attempts}  # type: ignore[attr-defined]
        assert {f"fan[{i}]/inner" for i in range(4)} <= paths

    def test_subworkflow_child_run(self) -> None:
        """A subworkflow's child run executes its steps under the call's prefix, as in the core."""
        record = same_as_oracle(ct.subworkflow_trace(3, duration=15.0))
        assert {"call/c1", "call/c2", "call/c3"} <= {a.path for a in record.runs[0].attempts}  # type: ignore[attr-defined]

    def test_failing_iteration_fails_the_foreach(self) -> None:
        """A fatally failing iteration fails the foreach and the run, exactly as the core says."""
        same_as_oracle(ct.foreach_trace(3, outcomes={"fan[1]/inner": ("fatal_error",)}, duration=20.0))


class TestFailureModes:
    @pytest.mark.parametrize("mode", list(FailureMode))
    def test_failure_mode_outcome(self, mode: FailureMode) -> None:
        """A branch failing fatally under each failure mode ends the run as the core says."""
        steps = [step("a", "b", "c"), step("b", "d", failure_mode=mode), step("c", "d"), step("d")]
        attempts = [rec("a", 1, "succeeded", 5), rec("b", 1, "fatal_error", 10), rec("c", 1, "succeeded", 900),
                    rec("d", 1, "succeeded", 5)]  # fmt: skip
        same_as_oracle(make_trace(steps, attempts))

    def test_step_timeout_is_detected_at_a_poll(self) -> None:
        """A step running past its timeout ends TIMED_OUT like in the core (detected at a RUNNING poll)."""
        trace = make_trace(
            [step("a", "b", timeout=60), step("b")],
            [rec("a", 1, "succeeded", 600), rec("b", 1, "succeeded", 1)],
        )
        record = same_as_oracle(trace)
        a = next(x for x in record.runs[0].attempts if x.path == "a")  # type: ignore[attr-defined]
        assert a.status == "TIMED_OUT"


class TestRunStrategies:
    @pytest.mark.parametrize(
        ("rule", "concurrency"),
        [
            (RunStrategyRule.SEQUENTIAL, None),
            (RunStrategyRule.PARALLEL, 2),
            (RunStrategyRule.STRICT_SEQUENTIAL, None),
            (RunStrategyRule.FIRST_ONLY, None),
            (RunStrategyRule.LAST_ONLY, None),
        ],
    )
    def test_overlapping_runs(self, rule: RunStrategyRule, concurrency: int | None) -> None:
        """Three runs triggered 10 s apart end as the core's run strategy says."""
        same_as_oracle(overlapping_runs(rule, 3, concurrency))

    def test_two_workers_parallel_runs(self) -> None:
        """Two workers on PARALLEL runs give the core's outcome too."""
        same_as_oracle(overlapping_runs(RunStrategyRule.PARALLEL, 4, 3), LegacyConfig(workers=2))

    def test_strict_sequential_blocks_after_a_failure(self) -> None:
        """Under STRICT_SEQUENTIAL a FAILED run blocks the queue: later runs stay CREATED, not stuck."""
        failing = (rec("a", 1, "fatal_error", 30),)
        ok = (rec("a", 1, "succeeded", 30), rec("b", 1, "succeeded", 5))
        runs = [
            Run("r0", T0, attempts=failing),
            Run("r1", T0 + 10, attempts=ok),
            Run("r2", T0 + 20, attempts=ok),
        ]
        trace = make_trace(
            chain("a", "b"), runs=runs, strategy=RunStrategy(RunStrategyRule.STRICT_SEQUENTIAL)
        )
        record = same_as_oracle(trace)
        assert [r.status for r in record.runs] == ["FAILED", "CREATED", "CREATED"]  # type: ignore[attr-defined]


class TestWorkflowTimeout:
    def test_workflow_timeout_mid_step(self) -> None:
        """A workflow timeout firing while a step runs times the run out, as in the core."""
        trace = make_trace(
            chain("a", "b"), [rec("a", 1, "succeeded", 900), rec("b", 1, "succeeded", 5)], timeout=300
        )
        record = same_as_oracle(trace)
        assert record.runs[0].status == "TIMED_OUT"  # type: ignore[attr-defined]

    def test_only_queued_runs_end_quietly(self) -> None:
        """A trace whose last trigger starts nothing (FIRST_ONLY) still ends at once, not at the time limit."""
        trace = overlapping_runs(RunStrategyRule.FIRST_ONLY, 2)
        record = LegacyEngine().replay(trace, ReplayOptions(seed=3))
        assert [r.status for r in record.runs] == ["SUCCEEDED", "STOPPED"]
        assert record.counters["loop_jumps"] < 5000
