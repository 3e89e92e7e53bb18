"""The legacy engine's fast path gives exactly the tick-by-tick records (``ReplayOptions(exact=True)``).

Every test replays a trace twice, fast (the default) and exact, and compares the whole
``record.to_dict()``: statuses, attempts, params, outputs, every timestamp and every counter. A
disagreement is a bug in the fast path (``engines/legacy/fastpath.py``), never a case to skip.

The default suite uses small traces that are cheap even tick by tick; the ``slow`` tests replay the
built-in corpus (seeds 1 and 7, 40 traces each, uncapped) and every importable trace of
``../shared/corpora`` in both modes, one test per trace.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from corpora import testing as ct
from corpora.generator import generate_corpus, generate_trace
from corpora.model import (
    Backoff,
    BackoffType,
    FailureMode,
    RetryPolicy,
    Run,
    RunStrategy,
    RunStrategyRule,
    StepType,
    Trace,
)
from engines.api import ReplayOptions
from engines.core.testing import T0, chain, make_trace, rec, step
from engines.legacy import LegacyConfig, LegacyEngine
from tests.corpora._import_helpers import SHARED

SLOW_CORPUS_SKIP = {
    # index 37 of seed 1 has 1,718 steps: tick by tick it is about an hour of CPU (docs/LEGACY.md)
    (1, 37): "1,718 steps: the exact (tick-by-tick) replay costs about an hour of CPU",
    (7, 37): "1,677 steps: the exact (tick-by-tick) replay costs about an hour of CPU",
}


def both(
    trace: Trace, *, seed: int = 1, config: LegacyConfig | None = None, **options: Any
) -> dict[str, Any]:
    """Replay ``trace`` fast and exact; assert identical records; return the fast record's dict."""
    fast_engine = LegacyEngine(config)
    fast = fast_engine.replay(trace, ReplayOptions(seed=seed, **options)).to_dict()
    exact = LegacyEngine(config).replay(trace, ReplayOptions(seed=seed, exact=True, **options)).to_dict()
    assert_same(fast, exact)
    fast["_stats"] = fast_engine.last_stats
    return fast


def assert_same(fast: dict[str, Any], exact: dict[str, Any]) -> None:
    counters = {k: (fast["counters"].get(k), exact["counters"].get(k))
                for k in set(fast["counters"]) | set(exact["counters"])
                if fast["counters"].get(k) != exact["counters"].get(k)}  # fmt: skip
    assert counters == {}, f"counters differ (fast, exact): {counters}"
    for fr, er in zip(fast["runs"], exact["runs"], strict=True):
        assert fr == er, f"run {fr.get('run_id')} differs"
    assert fast == exact


def _runs(attempts: tuple[Any, ...], n: int, spacing: float) -> list[Run]:
    return [Run(f"r{i}", T0 + spacing * i, attempts=attempts) for i in range(n)]


LONG = (rec("a", 1, "succeeded", 900), rec("b", 1, "succeeded", 1200), rec("c", 1, "succeeded", 30))
FIXED = Backoff(BackoffType.FIXED_BACKOFF, error_retry_backoff_in_secs=120, platform_retry_backoff_in_secs=60)


def _shapes() -> dict[str, Trace]:
    retry = RetryPolicy(error_retry_limit=2, platform_retry_limit=2, backoff=FIXED)
    return {
        "chain-long-steps": make_trace(chain("a", "b", "c"), LONG),
        "retries-with-backoff": make_trace(
            [step("a", "b", retry=retry), step("b")],
            [
                rec("a", 1, "user_error", 300),
                rec("a", 2, "platform_error", 200),
                rec("a", 3, "succeeded", 400),
                rec("b", 1, "succeeded", 50),
            ],
        ),
        "exponential-backoff": make_trace(
            [step("a", retry=RetryPolicy(error_retry_limit=3))],
            [rec("a", 1, "user_error", 100), rec("a", 2, "user_error", 100), rec("a", 3, "succeeded", 100)],
        ),
        "step-timeout": make_trace(
            [step("a", "b", timeout=600), step("b")],
            [rec("a", 1, "succeeded", 3600), rec("b", 1, "succeeded", 5)],
        ),
        "step-timeout-retried": make_trace(
            [step("a", timeout=300, retry=RetryPolicy(timeout_retry_limit=1))],
            [rec("a", 1, "succeeded", 3600), rec("a", 2, "succeeded", 100)],
        ),
        "workflow-timeout": make_trace(
            chain("a", "b"), [rec("a", 1, "succeeded", 3600), rec("b", 1, "succeeded", 5)], timeout=1800
        ),
        "fanout-parallel": ct.fanout_trace(5, duration=700.0),
        "foreach-concurrency-2": ct.foreach_trace(6, concurrency=2, duration=600.0),
        "foreach-unbounded": ct.foreach_trace(4, duration=450.0),
        "foreach-failing-iteration": ct.foreach_trace(
            3, outcomes={"fan[1]/inner": ("fatal_error",)}, duration=300.0
        ),
        "subworkflow": ct.subworkflow_trace(3, duration=500.0),
        "ignore-failure": make_trace(
            [
                step("a", "b", "c"),
                step("b", "d", failure_mode=FailureMode.IGNORE_FAILURE),
                step("c", "d"),
                step("d"),
            ],
            [
                rec("a", 1, "succeeded", 5),
                rec("b", 1, "fatal_error", 400),
                rec("c", 1, "succeeded", 900),
                rec("d", 1, "succeeded", 5),
            ],
        ),
        "typed-steps": make_trace(
            [step("a", "b", type=StepType.KUBERNETES), step("b", type=StepType.NOTEBOOK)],
            [rec("a", 1, "succeeded", 1500), rec("b", 1, "succeeded", 800)],
        ),
    }


def _strategies() -> dict[str, Trace]:
    attempts = (rec("a", 1, "succeeded", 600), rec("b", 1, "succeeded", 5))
    out: dict[str, Trace] = {}
    for rule, concurrency in [
        (RunStrategyRule.SEQUENTIAL, None),
        (RunStrategyRule.PARALLEL, 2),
        (RunStrategyRule.STRICT_SEQUENTIAL, None),
        (RunStrategyRule.FIRST_ONLY, None),
        (RunStrategyRule.LAST_ONLY, None),
    ]:
        for spacing in (10.0, 400.0):
            out[f"{rule.value}-{int(spacing)}s"] = make_trace(
                chain("a", "b"), runs=_runs(attempts, 3, spacing), strategy=RunStrategy(rule, concurrency)
            )
    failing = (rec("a", 1, "fatal_error", 300),)
    ok = (rec("a", 1, "succeeded", 300), rec("b", 1, "succeeded", 5))
    out["STRICT_SEQUENTIAL-blocked"] = make_trace(
        chain("a", "b"),
        runs=[
            Run("r0", T0, attempts=failing),
            Run("r1", T0 + 10, attempts=ok),
            Run("r2", T0 + 5000, attempts=ok),
        ],
        strategy=RunStrategy(RunStrategyRule.STRICT_SEQUENTIAL),
    )
    return out


SHAPES = _shapes()
STRATEGIES = _strategies()


class TestShapes:
    @pytest.mark.parametrize("name", sorted(SHAPES))
    def test_shape(self, name: str) -> None:
        """Each orchestration shape gives identical records fast and exact (seed 1)."""
        rec_ = both(SHAPES[name])
        assert rec_["_stats"]["fast"] == 1.0

    @pytest.mark.parametrize("seed", [2, 3, 11])
    def test_other_seeds(self, seed: int) -> None:
        """Other seeds move every timestamp; the two modes still agree."""
        both(SHAPES["retries-with-backoff"], seed=seed)
        both(SHAPES["foreach-concurrency-2"], seed=seed)

    @pytest.mark.parametrize("name", sorted(STRATEGIES))
    def test_run_strategy(self, name: str) -> None:
        """Every run strategy, runs overlapping or not, gives identical records fast and exact."""
        both(STRATEGIES[name])

    def test_the_fast_path_skips_most_polls(self) -> None:
        """On long-running steps nearly every poll is fast-forwarded (the point of the fast path)."""
        rec_ = both(SHAPES["chain-long-steps"])
        stats = rec_["_stats"]
        polls = rec_["counters"]["polls"]
        assert stats["fast_forwarded_polls"] + stats["fast_forwarded_empty_polls"] > 0.8 * polls

    def test_round_trip_split(self) -> None:
        """hot + upkeep round trips add up to the store's round trips; virtual_seconds is the replayed span."""
        rec_ = both(SHAPES["chain-long-steps"])
        c = rec_["counters"]
        assert c["hot_round_trips"] + c["upkeep_round_trips"] == c["store_round_trips"]
        assert c["upkeep_round_trips"] > 0
        assert 2130 < c["virtual_seconds"] < 2300  # 900 + 1200 + 30 s of jobs plus the engine's overhead


class TestDeadlineAndConfig:
    def test_stuck_at_the_time_limit(self) -> None:
        """A run still running at the time limit is cut at the same instant, counters included."""
        trace = make_trace(chain("a", "b"), [rec("a", 1, "succeeded", 50_000), rec("b", 1, "succeeded", 5)])
        rec_ = both(trace, time_limit=7200.0)
        assert rec_["runs"][0]["stuck"] is True

    def test_queued_behind_a_failure_ends_at_once(self) -> None:
        """STRICT_SEQUENTIAL runs queued behind a failed run end the replay at once (not at the time limit)."""
        rec_ = both(STRATEGIES["STRICT_SEQUENTIAL-blocked"])
        assert [r["status"] for r in rec_["runs"]] == ["FAILED", "CREATED", "CREATED"]

    def test_two_workers_fall_back_to_exact(self) -> None:
        """With two workers the fast path is off (the records are the exact ones by construction)."""
        rec_ = both(SHAPES["fanout-parallel"], config=LegacyConfig(workers=2))
        assert rec_["_stats"]["fast"] == 0.0

    def test_stall_fault_falls_back_to_exact(self) -> None:
        """A stall fault turns the fast path off."""
        trace = SHAPES["chain-long-steps"]
        fast = LegacyEngine(faults=("stall-worker:0:3:90",))
        a = fast.replay(trace, ReplayOptions(seed=1)).to_dict()
        b = (
            LegacyEngine(faults=("stall-worker:0:3:90",))
            .replay(trace, ReplayOptions(seed=1, exact=True))
            .to_dict()
        )
        assert_same(a, b)
        assert fast.last_stats["fast"] == 0.0

    def test_jittered_polls(self) -> None:
        """Poll jitter draws from the worker's generator: both modes draw the same values."""
        both(SHAPES["fanout-parallel"], config=LegacyConfig(poll_jitter=0.5))


# Generated traces cheap enough tick by tick for the default suite (measured: exact < ~1 s CPU each).
CHEAP_GENERATED = [(7, 2), (1, 18), (1, 0), (1, 1), (7, 0), (7, 5)]


@pytest.mark.parametrize(
    ("seed", "index"), CHEAP_GENERATED, ids=[f"gen-{s}-{i:05d}" for s, i in CHEAP_GENERATED]
)
def test_generated_trace(seed: int, index: int) -> None:
    """Built-in corpus traces give identical records fast and exact."""
    both(generate_trace(seed, index))


# ---- slow: whole corpora ----------------------------------------------------------------------


@functools.cache
def _corpus(seed: int) -> tuple[Trace, ...]:
    return tuple(generate_corpus(seed, 40))


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("seed", [1, 7])
@pytest.mark.parametrize("index", range(40))
def test_builtin_corpus_trace(seed: int, index: int) -> None:
    """Every trace of the built-in corpus (seeds 1 and 7, 40 each, uncapped) gives identical records."""
    if (seed, index) in SLOW_CORPUS_SKIP:
        pytest.skip(SLOW_CORPUS_SKIP[(seed, index)])
    both(_corpus(seed)[index])


ALIBABA_CHUNKS = 34
"""The 1,679 Alibaba jobs are one CSV: replayed in chunks (chunk k: every 34th job from k), each failure named."""


def _shared_params() -> list[tuple[str, str]]:
    """(source, path or alibaba chunk) per test, listed without importing anything (collection stays cheap)."""
    if not SHARED.is_dir():
        return []
    out: list[tuple[str, str]] = []
    out += [("maestro", str(p)) for p in sorted((SHARED / "maestro").glob("*.json"))]
    out += [("argo", str(p)) for p in sorted((SHARED / "argo").glob("*.yaml"))]
    out += [("wfformat", str(p)) for p in sorted((SHARED / "wfinstances").rglob("*.json"))]
    if (SHARED / "nextflow").is_dir():
        out.append(("nextflow", str(SHARED / "nextflow")))
    if (SHARED / "alibaba").is_dir():
        out += [("alibaba", f"chunk-{k}") for k in range(ALIBABA_CHUNKS)]
    return out


@functools.cache
def _alibaba() -> tuple[Trace, ...]:
    from corpora.importers import ImportOptions
    from tests.corpora._import_helpers import import_all

    items = import_all("alibaba", SHARED / "alibaba", options=ImportOptions())
    return tuple(item.trace for item in items if item.trace is not None)


def _shared_traces(source: str, where: str) -> list[Trace]:
    from pathlib import Path

    from corpora.importers import ImportOptions
    from tests.corpora._import_helpers import import_all

    if source == "alibaba":
        return list(_alibaba()[int(where.removeprefix("chunk-")) :: ALIBABA_CHUNKS])
    items = import_all(source, Path(where), options=ImportOptions())
    return [item.trace for item in items if item.trace is not None]


SHARED_PARAMS = _shared_params()


@pytest.mark.slow
@pytest.mark.corpora
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real corpora not found at {SHARED} (../shared/corpora)")
@pytest.mark.parametrize(
    ("source", "where"), SHARED_PARAMS or [("none", "none")],
    ids=[f"{s}:{w.rsplit('/', 1)[-1]}" for s, w in SHARED_PARAMS] or ["none"],
)  # fmt: skip
def test_shared_corpus_trace(source: str, where: str) -> None:
    """Every importable trace of ../shared/corpora gives identical records fast and exact."""
    traces = _shared_traces(source, where)
    failures = []
    for trace in traces:
        try:
            both(trace)
        except AssertionError as exc:
            failures.append(f"{trace.trace_id}: {str(exc).splitlines()[0][:300]}")
    assert not failures, f"{len(failures)} of {len(traces)} traces differ: " + "; ".join(failures)
