"""The actor engine's fast mode (default) gives exactly the record of its exact mode (tick by tick).

Fast mode accounts for node upkeep that changes nothing (heartbeats, reconciliations that find
nothing) instead of simulating it; the whole ``record.to_dict()`` -- statuses, attempts, params,
outputs, every timestamp and every counter -- must be identical. A disagreement is a bug in the fast
path, never a case to skip. Fault plans and several nodes fall back to exact mode.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from corpora.generator import generate_corpus
from corpora.model import (
    Backoff,
    BackoffType,
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
from corpora.testing import foreach_trace, subworkflow_trace
from engines.actor import ActorEngine
from engines.api import ExecutionRecord, ReplayOptions
from engines.core.testing import T0, chain, make_trace, rec, step
from tests.corpora._import_helpers import SHARED, import_all


def _both(trace: Trace, seed: int = 3, **engine: Any) -> tuple[ExecutionRecord, ExecutionRecord, ActorEngine]:
    """Replay ``trace`` in fast and exact mode; assert the records are identical; return them."""
    fast_engine = ActorEngine(**engine)
    fast = fast_engine.replay(trace, ReplayOptions(seed=seed))
    exact = ActorEngine(**engine).replay(trace, ReplayOptions(seed=seed, exact=True))
    fd, xd = fast.to_dict(), exact.to_dict()
    if fd != xd:
        counters = {k: (fd["counters"].get(k), xd["counters"].get(k))
                    for k in sorted(set(fd["counters"]) | set(xd["counters"]))
                    if fd["counters"].get(k) != xd["counters"].get(k)}  # fmt: skip
        raise AssertionError(
            f"{trace.trace_id}: fast != exact; runs equal: {fd['runs'] == xd['runs']}; counters (fast, exact): {counters}"
        )
    return fast, exact, fast_engine


def _runs(n: int, spacing: float, attempts: tuple[Any, ...]) -> tuple[Run, ...]:
    return tuple(Run(f"r{i + 1}", T0 + i * spacing, attempts=attempts) for i in range(n))


def _async_trace() -> Trace:
    """``before -> call (async child c1 -> c2 -> c3, c1 long) -> after``: the child outlives the run."""
    child = WorkflowDefinition(
        id="child",
        steps=(step("c1", "c2"), step("c2", "c3", retry=RetryPolicy(error_retry_limit=3)), step("c3")),
    )
    call = Step(id="call", type=StepType.SUBWORKFLOW, transitions=(Transition("after"),),
                subworkflow=Subworkflow("child", sync=False))  # fmt: skip
    attempts = (
        rec("before", 1, "succeeded", 5), rec("after", 1, "succeeded", 5),
        rec("call/c1", 1, "succeeded", 5_000), rec("call/c2", 1, "user_error", 10),
        rec("call/c2", 2, "user_error", 10), rec("call/c2", 3, "succeeded", 10), rec("call/c3", 1, "succeeded", 20),
    )  # fmt: skip
    return make_trace([step("before", "call"), call, step("after")], attempts, subworkflows={"child": child})


def _strategy_trace(rule: RunStrategyRule, *, fail_first: bool = False, runs: int = 3) -> Trace:
    first = (rec("a", 1, "user_error" if fail_first else "succeeded", 600), rec("b", 1, "succeeded", 900))
    later = (rec("a", 1, "succeeded", 600), rec("b", 1, "succeeded", 900))
    run_list = (Run("r1", T0, attempts=first), *_runs(runs, 400.0, later)[1:])
    retry = RetryPolicy(error_retry_limit=0)
    return make_trace([step("a", "b", retry=retry), step("b")], runs=run_list, strategy=RunStrategy(rule))


FIXED_1800 = Backoff(type=BackoffType.FIXED_BACKOFF, error_retry_backoff_in_secs=1_800)

SMALL: dict[str, Trace] = {
    "long_step_no_timeout": make_trace(
        chain("a", "b"), [rec("a", 1, "succeeded", 5), rec("b", 1, "succeeded", 9_000)]
    ),
    "long_step_with_timeout": make_trace(
        [step("a", "b"), step("b", timeout=4_000)],
        [rec("a", 1, "succeeded", 5), rec("b", 1, "succeeded", 30_000)],
    ),
    "retries_with_backoff": make_trace(
        [step("a", retry=RetryPolicy(error_retry_limit=3, backoff=FIXED_1800))],
        [rec("a", 1, "user_error", 100), rec("a", 2, "user_error", 100), rec("a", 3, "succeeded", 100)],
    ),
    "exponential_backoff": make_trace(
        [step("a", retry=RetryPolicy(error_retry_limit=4, backoff=Backoff(error_retry_backoff_in_secs=300)))],
        [rec("a", n, "user_error", 50) for n in range(1, 5)] + [rec("a", 5, "succeeded", 50)],
    ),
    "workflow_timeout": make_trace(
        chain("a", "b"), [rec("a", 1, "succeeded", 100), rec("b", 1, "succeeded", 50_000)], timeout=7_200
    ),
    "foreach": foreach_trace(6, concurrency=2, duration=1_200.0),
    "subworkflow": subworkflow_trace(3, duration=2_000.0),
    "async_child_outlives_run": _async_trace(),
    "strict_sequential_blocked": _strategy_trace(RunStrategyRule.STRICT_SEQUENTIAL, fail_first=True),
    "sequential_spread_triggers": make_trace(
        chain("a", "b"),
        runs=_runs(3, 20_000.0, (rec("a", 1, "succeeded", 700), rec("b", 1, "succeeded", 300))),
    ),
    "first_only": _strategy_trace(RunStrategyRule.FIRST_ONLY),
    "last_only": _strategy_trace(RunStrategyRule.LAST_ONLY),
    "parallel": _strategy_trace(RunStrategyRule.PARALLEL, runs=4),
}


class TestSmallTraces:
    @pytest.mark.parametrize("name", sorted(SMALL))
    @pytest.mark.parametrize("seed", [0, 3])
    def test_fast_equals_exact(self, name: str, seed: int) -> None:
        """Fast mode (default, one node, no fault) gives exactly the exact mode's record."""
        fast, _, engine = _both(SMALL[name], seed=seed)
        assert engine.last_stats["mode"] == "fast"
        c = fast.counters
        assert c["hot_round_trips"] + c["upkeep_round_trips"] == c["store_round_trips"]
        assert c["background_round_trips"] == c["upkeep_round_trips"]
        assert c["virtual_seconds"] > 0

    def test_long_step_is_accounted_not_ticked(self) -> None:
        """Over a 9,000 s step the heartbeats are accounted (none simulated) and most reconciliations too."""
        fast, _, engine = _both(SMALL["long_step_no_timeout"])
        assert fast.counters["heartbeats"] >= 800
        assert engine.last_stats["accounted_heartbeats"] == fast.counters["heartbeats"]
        assert engine.last_stats["accounted_reconciles"] > 0

    def test_blocked_queue_ends_at_once(self) -> None:
        """Runs queued behind a failed STRICT_SEQUENTIAL run stay CREATED (not stuck) and the replay ends
        when the failed run's end has been handled, in both modes -- not at the 30-day time limit."""
        fast, _, engine = _both(SMALL["strict_sequential_blocked"])
        assert [(r.status, r.stuck) for r in fast.runs] == [
            ("FAILED", False),
            ("CREATED", False),
            ("CREATED", False),
        ]
        assert fast.counters["virtual_seconds"] < 3_600
        assert engine.last_stats["ended_idle_at"] is not None


class TestFallback:
    @pytest.mark.parametrize(
        "fault", ["crash:0@300", "drop:RuntimeDone#1", "dup:StartTask#1", "store-fail:write#3"]
    )
    def test_faults_fall_back_to_exact(self, fault: str) -> None:
        """With a fault planned fast mode runs tick by tick, and still equals exact mode."""
        trace = SMALL["long_step_with_timeout"]
        fast, _, engine = _both(trace, faults=(fault,), nodes=2 if fault.startswith("crash") else 1)
        assert engine.last_stats["mode"] == "exact"
        assert engine.last_stats["fallback"]
        c = fast.counters
        fired = {
            "crash": "crashes",
            "drop": "faults_fired",
            "dup": "faults_fired",
            "store-fail": "store_errors",
        }
        assert c.get(fired[fault.split(":")[0]], 0) >= 1
        assert c["hot_round_trips"] + c["upkeep_round_trips"] == c["store_round_trips"]

    def test_three_nodes_fall_back_to_exact(self) -> None:
        """Several nodes compete for leases: fast mode falls back, the records are equal."""
        _, _, engine = _both(SMALL["foreach"], nodes=3)
        assert engine.last_stats["mode"] == "exact"
        assert "nodes" in engine.last_stats["fallback"]

    def test_exact_option_is_exact(self) -> None:
        engine = ActorEngine()
        engine.replay(SMALL["subworkflow"], ReplayOptions(exact=True))
        assert engine.last_stats["mode"] == "exact"
        assert not engine.last_stats.get("accounted_heartbeats")


@functools.lru_cache(maxsize=2)
def _corpus(seed: int) -> tuple[Trace, ...]:
    return tuple(generate_corpus(seed, 40))


@pytest.mark.slow
class TestBuiltInCorpus:
    @pytest.mark.parametrize("index", range(40))
    @pytest.mark.parametrize("seed", [1, 7])
    def test_fast_equals_exact(self, seed: int, index: int) -> None:
        """Every trace of the built-in corpora (seeds 1 and 7, 40 traces, no --max-steps): fast == exact."""
        _both(_corpus(seed)[index], seed=1)


_SOURCES = [("maestro", "maestro"), ("argo", "argo"), ("nextflow", "nextflow"), ("wfformat", "wfinstances"),
            ("alibaba", "alibaba")]  # fmt: skip


@pytest.mark.slow
@pytest.mark.corpora
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real corpora not found at {SHARED} (../shared/corpora)")
class TestSharedCorpora:
    @pytest.mark.parametrize(("source", "folder"), _SOURCES)
    def test_fast_equals_exact(self, source: str, folder: str) -> None:
        """Every importable trace of ../shared/corpora: fast == exact (the first disagreement fails)."""
        if not (SHARED / folder).is_dir():
            pytest.skip(f"{SHARED / folder} absent")
        traces = [item.trace for item in import_all(source, SHARED / folder) if item.trace is not None]
        assert traces
        for trace in traces:
            _both(trace, seed=1)
