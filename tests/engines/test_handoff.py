"""In-flight hand-off (engines/actor/adopt.py): a trace replayed on the legacy engine up to a cut, the legacy
deployment stopped there, the actor engine adopting the runs from its store and finishing them.

Every scenario places the cut in one in-flight situation (checked through the hand-off's own account of what
it found) and compares the handed-off record with the legacy-only record of the same trace and seed:
statuses, attempts (none lost, none run twice), params, outputs. An attempt RUNNING at the cut keeps the
legacy engine's start time: it was adopted, not restarted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from corpora.model import (
    Backoff,
    BackoffType,
    FailureMode,
    Foreach,
    Param,
    RetryPolicy,
    Run,
    RunStrategy,
    RunStrategyRule,
    Step,
    StepType,
    Subworkflow,
    Trace,
    Transition,
    WorkflowDefinition,
)
from engines.actor import ActorEngine
from engines.actor.adopt import adopt_cut, stop_legacy_at
from engines.api import CutPoint, ExecutionRecord, Handoff, HandsOff, ReplayOptions
from engines.core.testing import T0, make_trace, rec, step
from engines.legacy import LegacyEngine

OPTIONS = ReplayOptions(seed=0)


def outcome(record: ExecutionRecord) -> list[Any]:
    """What must not change at a hand-off: per run its status, and per attempt its status, outcome,
    params, outputs (timestamps are the engines' own)."""
    out = []
    for run in record.runs:
        atts = sorted(
            (a.path, a.attempt, a.status, a.outcome, a.unrecorded, dict(a.params), dict(a.outputs))
            for a in run.attempts
        )  # fmt: skip
        out.append((run.run_id, run.status, run.stuck, atts))
    return out


def started(record: ExecutionRecord) -> dict[tuple[str, str, int], float | None]:
    return {(r.run_id, a.path, a.attempt): a.started_at for r in record.runs for a in r.attempts}


def handoff(trace: Trace, at: float) -> tuple[Handoff, ExecutionRecord]:
    legacy = LegacyEngine().replay(trace, OPTIONS)
    result = ActorEngine().handoff(trace, OPTIONS, at)
    assert outcome(result.record) == outcome(legacy)
    assert result.duplicate_starts == 0
    return result, legacy


def first_start(record: ExecutionRecord, path: str, attempt: int = 1) -> float:
    for run in record.runs:
        for a in run.attempts:
            if a.path == path and a.attempt == attempt and a.started_at is not None:
                return a.started_at - T0
    raise AssertionError(f"{path}#{attempt} never started")


def assert_adopted_not_restarted(result: Handoff, legacy: ExecutionRecord) -> None:
    """Every attempt that had started before the cut keeps the legacy engine's start time."""
    cut = T0 + result.cut_at
    before = {k: v for k, v in started(legacy).items() if v is not None and v < cut}
    after = started(result.record)
    assert before, "the cut is before any attempt started: the scenario tests nothing"
    for key, at in before.items():
        assert after[key] == at, key


def test_actor_engine_offers_the_handoff_capability() -> None:
    assert isinstance(ActorEngine(), HandsOff)
    assert "legacy" in ActorEngine.handoff_sources
    assert not isinstance(LegacyEngine(), HandsOff)


def test_cut_in_a_retry_backoff() -> None:
    backoff = Backoff(type=BackoffType.FIXED_BACKOFF, error_retry_backoff_in_secs=600)
    trace = make_trace(
        [step("a", "b", retry=RetryPolicy(error_retry_limit=3, backoff=backoff)), step("b")],
        [rec("a", 1, "user_error", 30), rec("a", 2, "user_error", 30), rec("a", 3, "succeeded", 30),
         rec("b", 1, "succeeded", 10, {"rows": 7})],
    )  # fmt: skip
    legacy = LegacyEngine().replay(trace, OPTIONS)
    at = first_start(legacy, "a", 2) - 100  # in the backoff between attempts 1 and 2
    result, legacy = handoff(trace, at)
    assert result.retries_pending == 1
    assert result.runs_live == 1
    assert_adopted_not_restarted(result, legacy)
    # the retry fires when its backoff expires, on the actor
    a2 = next(a for a in result.record.runs[0].attempts if a.path == "a" and a.attempt == 2)
    assert a2.ready_at is not None
    assert a2.ready_at >= T0 + at


@pytest.mark.parametrize("succeeds", [True, False])
def test_cut_in_a_running_step_with_a_timeout(succeeds: bool) -> None:
    # b runs 3,000 s (within its 4,000 s timeout) or 30,000 s (timed out by the engine)
    trace = make_trace(
        [step("a", "b"), step("b", "c", timeout=4_000), step("c")],
        [rec("a", 1, "succeeded", 5), rec("b", 1, "succeeded", 3_000 if succeeds else 30_000),
         rec("c", 1, "succeeded", 5)],
    )  # fmt: skip
    legacy = LegacyEngine().replay(trace, OPTIONS)
    at = first_start(legacy, "b") + 1_000
    result, legacy = handoff(trace, at)
    assert result.attempts_running == 1
    assert result.attempts_lost == 0
    assert_adopted_not_restarted(result, legacy)
    b = next(a for a in result.record.runs[0].attempts if a.path == "b")
    assert b.status == ("SUCCEEDED" if succeeds else "TIMED_OUT")
    if succeeds:  # the job the legacy engine launched finished when it was due: 3,000 s after its start
        assert b.ended_at is not None
        assert b.started_at is not None
        assert 3_000 <= b.ended_at - b.started_at < 3_000 + 60


def foreach_trace(iterations: int, concurrency: int) -> Trace:
    fan = Step(
        id="fan", type=StepType.FOREACH, transitions=(Transition("done"),),
        foreach=Foreach(loop_params={"i": Param(expression=f"range(0, {iterations})")},
                        steps=(step("inner"),), concurrency=concurrency),
    )  # fmt: skip
    recorded = [rec("prepare", 1, "succeeded", 5), rec("done", 1, "succeeded", 5)]
    recorded += [rec(f"fan[{i}]/inner", 1, "succeeded", 100 + 10 * i, {"i": i}) for i in range(iterations)]
    return make_trace([step("prepare", "fan"), fan, step("done")], recorded)


def test_cut_in_a_foreach_with_a_concurrency_limit_mid_wave() -> None:
    trace = foreach_trace(7, 2)
    legacy = LegacyEngine().replay(trace, OPTIONS)
    at = first_start(legacy, "fan[3]/inner") + 20  # iterations 0-1 done, 2-3 running, 4-6 not launched
    result, legacy = handoff(trace, at)
    assert result.attempts_running >= 1
    # mid-wave: some iterations had not been launched at the cut (the actor launches them, two at a time)
    assert [i for i in range(7) if first_start(legacy, f"fan[{i}]/inner") > at]
    assert_adopted_not_restarted(result, legacy)
    inner = [a for a in result.record.runs[0].attempts if a.path.endswith("/inner")]
    assert {f"fan[{i}]/inner" for i in range(7)} == {a.path for a in inner}
    for a in inner:  # the concurrency limit holds across the hand-off: never more than 2 running at once
        assert a.started_at is not None
        running = [
            b
            for b in inner
            if b.started_at is not None
            and b.ended_at is not None
            and b.started_at <= a.started_at < b.ended_at
        ]
        assert len(running) <= 2


def test_cut_with_a_subworkflow_child_running() -> None:
    child = WorkflowDefinition(id="child", steps=(step("c1", "c2"), step("c2")))
    call = Step(id="call", type=StepType.SUBWORKFLOW, transitions=(Transition("after"),),
                subworkflow=Subworkflow("child"))  # fmt: skip
    trace = make_trace(
        [step("before", "call"), call, step("after")],
        [rec("before", 1, "succeeded", 5), rec("call/c1", 1, "succeeded", 500, {"x": 1}),
         rec("call/c2", 1, "succeeded", 50), rec("after", 1, "succeeded", 5)],
        subworkflows={"child": child},
    )  # fmt: skip
    legacy = LegacyEngine().replay(trace, OPTIONS)
    result, legacy = handoff(trace, first_start(legacy, "call/c1") + 100)
    assert result.attempts_running == 1
    assert_adopted_not_restarted(result, legacy)


def test_cut_in_a_strict_sequential_queue_with_runs_waiting() -> None:
    attempts = (rec("a", 1, "succeeded", 600), rec("b", 1, "succeeded", 900))
    runs = tuple(Run(f"r{i}", T0 + 60 * (i - 1), attempts=attempts) for i in range(1, 5))
    trace = make_trace([step("a", "b"), step("b")], runs=runs,
                       strategy=RunStrategy(RunStrategyRule.STRICT_SEQUENTIAL))  # fmt: skip
    result, legacy = handoff(trace, 1_000)  # r1 running b; r2-r4 triggered and queued
    assert result.runs_live == 1
    assert result.runs_queued == 3
    assert_adopted_not_restarted(result, legacy)
    ends = sorted((r.started_at or 0.0, r.run_id) for r in result.record.runs)
    assert [run_id for _, run_id in ends] == ["r1", "r2", "r3", "r4"]  # still one at a time, in order


def test_cut_with_runs_still_to_trigger() -> None:
    attempts = (rec("a", 1, "succeeded", 100),)
    runs = (Run("r1", T0, attempts=attempts), Run("r2", T0 + 5_000, attempts=attempts))
    trace = make_trace([step("a")], runs=runs)
    result, _ = handoff(trace, 1_000)
    assert result.runs_ended == 1
    assert result.runs_untriggered == 1


def test_cut_in_a_fail_immediately_in_progress() -> None:
    # a fails (FAIL_IMMEDIATELY) while b and c still run: the run must fail and stop b and c on the actor
    trace = make_trace(
        [step("start", "a", "b", "c"), step("a", failure_mode=FailureMode.FAIL_IMMEDIATELY,
                                            retry=RetryPolicy(error_retry_limit=0)),
         step("b"), step("c")],
        [rec("start", 1, "succeeded", 5), rec("a", 1, "user_error", 200), rec("b", 1, "succeeded", 5_000),
         rec("c", 1, "succeeded", 6_000)],
    )  # fmt: skip
    legacy = LegacyEngine().replay(trace, OPTIONS)
    assert legacy.runs[0].status == "FAILED"
    result, legacy = handoff(trace, first_start(legacy, "a") + 100)  # a, b, c all running
    assert result.attempts_running == 3
    assert_adopted_not_restarted(result, legacy)
    assert result.record.runs[0].status == "FAILED"


def test_a_running_attempt_whose_runtime_was_lost_is_started_once_by_the_actor() -> None:
    trace = make_trace(
        [step("a", "b"), step("b")], [rec("a", 1, "succeeded", 500), rec("b", 1, "succeeded", 5)]
    )
    legacy = LegacyEngine().replay(trace, OPTIONS)
    start = T0
    cut = stop_legacy_at(trace, OPTIONS, start + first_start(legacy, "a") + 100)
    assert [(j[1], j[4]) for j in cut.jobs] == [("a", False)]
    # the world lost the job (the legacy worker was stopped between committing the start and launching it)
    lost = replace(cut, jobs=(), launched=frozenset())
    engine = ActorEngine()
    result = adopt_cut(engine, trace, OPTIONS, lost)
    assert result.attempts_lost == 1
    assert result.attempts_running == 0
    assert outcome(result.record) == outcome(legacy)
    a = next(x for x in result.record.runs[0].attempts if x.path == "a")
    assert a.ended_at is not None
    assert a.ended_at >= T0 + result.cut_at + 500
    assert result.record.counters["runtime_starts"] == 2.0  # a (again, its only run) and b


def test_a_cut_after_the_end_adopts_finished_runs_only() -> None:
    trace = make_trace([step("a")], [rec("a", 1, "succeeded", 10)])
    result, _ = handoff(trace, 100_000)
    assert result.runs_ended == 1
    assert result.runs_live == 0


@pytest.mark.parametrize(
    ("spec", "kind", "value"),
    [("90", "seconds", 90.0), ("90s", "seconds", 90.0), ("50%", "fraction", 0.5), ("step:call/c1", "step", "call/c1"),
     ("random", "random", 0.0)],
)  # fmt: skip
def test_cut_point_specs(spec: str, kind: str, value: object) -> None:
    cut = CutPoint.parse(spec)
    assert (cut.kind, cut.value) == (kind, value)
    assert CutPoint.parse(cut.spec) == cut


@pytest.mark.parametrize("spec", ["", "x", "-5", "150%", "step:", "inf"])
def test_bad_cut_point_specs_say_what_is_accepted(spec: str) -> None:
    with pytest.raises(ValueError, match="step:PATH"):
        CutPoint.parse(spec)


def test_cut_points_resolve_against_the_legacy_record() -> None:
    trace = make_trace(
        [step("a", "b"), step("b")], [rec("a", 1, "succeeded", 100), rec("b", 1, "succeeded", 100)]
    )
    legacy = LegacyEngine().replay(trace, OPTIONS)
    makespan = max(r.ended_at or 0.0 for r in legacy.runs) - T0
    assert CutPoint.parse("50%").resolve(legacy, T0) == pytest.approx(makespan / 2)
    at_b = CutPoint.parse("step:b").resolve(legacy, T0)
    assert at_b is not None
    assert at_b == pytest.approx(first_start(legacy, "b"), abs=0.01)
    assert CutPoint.parse("step:nope").resolve(legacy, T0) is None
    one = CutPoint.parse("random").resolve(legacy, T0, seed=3)
    assert one == CutPoint.parse("random").resolve(legacy, T0, seed=3)
    assert one is not None
    assert 0.05 * makespan <= one <= 0.95 * makespan


def test_live_legacy_deployment_stopped_mid_run_is_adopted_by_a_live_actor_node(tmp_path: Any) -> None:
    """Live mode: a legacy deployment on a SQLite file, real clock, stopped while b runs; an actor node adopts
    the run from the file and finishes it. b is re-attached (ends at its legacy start + 3 s), not restarted."""
    import asyncio
    import time

    from engines.actor.adopt import adopt_live
    from engines.legacy.config import LegacyConfig
    from engines.legacy.live import run_live
    from engines.runtimes import RuntimeRegistry

    now = time.time()
    trace = make_trace(
        [step("a", "b"), step("b", "c"), step("c")],
        runs=(Run("r1", now, attempts=(rec("a", 1, "succeeded", 0.2), rec("b", 1, "succeeded", 3.0, {"n": 3}),
                                       rec("c", 1, "succeeded", 0.2))),),
    )  # fmt: skip
    quick = LegacyConfig(
        poll_interval=0.01, default_callback=0.02, status_callbacks={}, first_polling_window=1.0
    )
    legacy_db, actor_db = str(tmp_path / "legacy.db"), str(tmp_path / "actor.db")
    stopped = run_live([trace], store_path=legacy_db, config=quick, registry=RuntimeRegistry.replay(trace),
                       timeout=1.5)  # fmt: skip
    assert not stopped.finished
    b_at_cut = next(a for a in stopped.runs[0].attempts if a.path == "b")
    assert b_at_cut.status == "RUNNING"
    adopted_at = time.time()
    records, facts = asyncio.run(adopt_live(legacy_db, actor_db, [trace], timeout=30))
    assert facts["runs_live"] == 1
    assert facts["attempts_running"] == 1
    run = records[0].runs[0]
    assert run.status == "SUCCEEDED"
    assert [(a.path, a.attempt, a.status, dict(a.outputs)) for a in run.attempts] == [
        ("a", 1, "SUCCEEDED", {}),
        ("b", 1, "SUCCEEDED", {"n": 3}),
        ("c", 1, "SUCCEEDED", {}),
    ]
    b = next(a for a in run.attempts if a.path == "b")
    assert b.started_at == b_at_cut.started_at
    assert b.ended_at is not None
    assert b.started_at is not None
    # re-attached, not run again: a restart could not end before the adoption + its 3 s
    assert b.ended_at < adopted_at + 3.0
