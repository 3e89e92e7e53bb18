"""The legacy polling engine in replay: schedule, outcomes equal to the core's, determinism, counters."""

from __future__ import annotations

import statistics

import pytest

from corpora.generator import generate_corpus, generate_trace
from corpora.model import RetryPolicy, Run, StepType
from engines.api import Engine, EngineError, ReplayOptions
from engines.core.statuses import StepStatus
from engines.core.testing import T0, chain, make_trace, oracle_record, rec, step
from engines.legacy import LegacyConfig, LegacyEngine
from engines.legacy.worker import callback_delay
from shadow.compare import normalize_record


def _chain_trace(n: int = 3):
    ids = [f"s{i}" for i in range(n)]
    return make_trace(chain(*ids), [rec(s, 1, "succeeded", 5) for s in ids])


def _starts(record):
    return [a.started_at - a.ready_at for r in record.runs for a in r.attempts if a.started_at is not None]


class TestSchedule:
    def test_is_an_engine(self) -> None:
        """LegacyEngine satisfies the Engine protocol under the name 'legacy'."""
        engine = LegacyEngine()
        assert isinstance(engine, Engine)
        assert engine.name == "legacy"

    def test_chained_step_takes_four_to_five_seconds_to_start(self) -> None:
        """With Maestro's legacy defaults every step of a chain waits ~4-5 s from ready to started."""
        record = LegacyEngine().replay(_chain_trace(5), ReplayOptions(seed=3))
        starts = _starts(record)
        assert len(starts) == 5
        assert all(4.0 <= s <= 5.0 for s in starts), starts

    def test_completion_is_noticed_at_a_running_poll(self) -> None:
        """A step's end is seen at its next 3 s RUNNING poll, never before the runtime finished."""
        record = LegacyEngine().replay(_chain_trace(2), ReplayOptions(seed=1))
        for a in record.runs[0].attempts:
            assert a.started_at is not None
            assert a.ended_at is not None
            assert 5.0 <= a.ended_at - a.started_at <= 5.0 + 3.5

    def test_faster_callbacks_start_steps_sooner(self) -> None:
        """The schedule is configuration: short callbacks make the start overhead small."""
        fast = LegacyConfig(poll_interval=0.01, default_callback=0.01, status_callbacks={})
        record = LegacyEngine(fast).replay(_chain_trace(3), ReplayOptions(seed=1))
        assert max(_starts(record)) < 0.5

    def test_callback_policy_follows_maestro(self) -> None:
        """Callbacks: 0 for a fresh CREATED step, 1 s default, 3 s while RUNNING, none when terminal."""
        cfg = LegacyConfig()
        assert callback_delay(cfg, StepStatus.CREATED, StepType.NOOP, 1, 0.1, False) == 0.0
        assert callback_delay(cfg, StepStatus.INITIALIZED, StepType.NOOP, 2, 0.2, False) == 1.0
        assert callback_delay(cfg, StepStatus.WAITING_FOR_PERMITS, StepType.NOOP, 3, 1.2, False) == 3.0
        assert callback_delay(cfg, StepStatus.RUNNING, StepType.NOOP, 4, 4.2, True) == 0.0
        assert callback_delay(cfg, StepStatus.RUNNING, StepType.NOOP, 5, 4.3, False) == 3.0
        assert callback_delay(cfg, StepStatus.RUNNING, StepType.FOREACH, 2, 0.2, False) == 0.0
        assert callback_delay(cfg, StepStatus.SUCCEEDED, StepType.NOOP, 6, 9.0, False) is None

    def test_bad_config_is_a_typed_error(self) -> None:
        """An impossible configuration is refused with the fields to fix."""
        with pytest.raises(EngineError, match="workers=0"):
            LegacyConfig(workers=0)

    def test_bad_fault_spec_is_a_typed_error(self) -> None:
        """An unknown fault spec names the accepted form."""
        with pytest.raises(EngineError, match="stall-worker"):
            LegacyEngine(faults=("explode",))


class TestOutcomes:
    def test_retries_after_backoff_match_the_core(self) -> None:
        """A step failing twice with user errors is retried after its backoff and ends like the oracle."""
        policy = RetryPolicy(error_retry_limit=2)
        trace = make_trace(
            [step("a", "b", retry=policy), step("b")],
            [rec("a", 1, "user_error", 3), rec("a", 2, "user_error", 3), rec("a", 3, "succeeded", 3),
             rec("b", 1, "succeeded", 1)],
        )  # fmt: skip
        record = LegacyEngine().replay(trace, ReplayOptions(seed=2))
        assert normalize_record(record) == normalize_record(oracle_record(trace))
        a = [x for x in record.runs[0].attempts if x.path == "a"]
        assert [x.status for x in a] == ["USER_FAILED", "USER_FAILED", "SUCCEEDED"]
        assert a[1].ready_at is not None
        assert a[0].ended_at is not None
        assert a[1].ready_at - a[0].ended_at >= 60

    def test_unrecorded_attempt_is_internally_failed(self) -> None:
        """An attempt the trace never recorded ends INTERNALLY_FAILED and unrecorded, as in the core."""
        trace = make_trace(chain("a", "b"), [rec("a", 1, "succeeded", 1)])
        record = LegacyEngine().replay(trace, ReplayOptions(seed=0))
        b = [x for x in record.runs[0].attempts if x.path == "b"]
        assert b[0].status == "INTERNALLY_FAILED"
        assert b[0].unrecorded
        assert normalize_record(record) == normalize_record(oracle_record(trace))

    def test_several_workers_reach_the_same_outcome(self) -> None:
        """Four workers sharing the queue give the same outcome as one (and as the core)."""
        trace = _light_corpus(11, 1, 1500.0)[0]
        one = LegacyEngine().replay(trace, ReplayOptions(seed=5))
        four = LegacyEngine(LegacyConfig(workers=4)).replay(trace, ReplayOptions(seed=5))
        assert normalize_record(one) == normalize_record(four) == normalize_record(oracle_record(trace))

    def test_run_not_done_by_the_time_limit_is_stuck(self) -> None:
        """A run still RUNNING when the time limit passes is reported stuck, not waited for."""
        trace = make_trace(chain("a"), [rec("a", 1, "succeeded", 3600)])
        record = LegacyEngine().replay(trace, ReplayOptions(seed=0, time_limit=60))
        assert record.runs[0].stuck
        assert record.runs[0].status == "IN_PROGRESS"

    def test_queued_runs_follow_the_run_strategy(self) -> None:
        """Two overlapping runs under SEQUENTIAL run one after the other, as in the core."""
        attempts = (rec("a", 1, "succeeded", 100),)
        trace = make_trace(
            chain("a"), runs=[Run("r1", T0, attempts=attempts), Run("r2", T0 + 10, attempts=attempts)]
        )
        record = LegacyEngine().replay(trace, ReplayOptions(seed=0))
        r1, r2 = record.runs
        assert r1.status == r2.status == "SUCCEEDED"
        assert r2.started_at is not None
        assert r1.ended_at is not None
        assert r2.started_at >= r1.ended_at
        assert normalize_record(record) == normalize_record(oracle_record(trace))


class TestDeterminism:
    def test_same_seed_same_record(self) -> None:
        """The same trace and seed give identical records (timestamps and counters included), twice."""
        trace = _light_corpus(3, 1, 1500.0)[0]
        first = LegacyEngine().replay(trace, ReplayOptions(seed=9))
        second = LegacyEngine().replay(trace, ReplayOptions(seed=9))
        assert first == second

    def test_other_seed_other_timing_same_outcome(self) -> None:
        """Another seed perturbs latency and poll phase (timestamps move) but not the outcome (A/A)."""
        trace = _chain_trace(4)
        a = LegacyEngine().replay(trace, ReplayOptions(seed=1))
        b = LegacyEngine().replay(trace, ReplayOptions(seed=2))
        assert normalize_record(a) == normalize_record(b)
        assert _starts(a) != _starts(b)

    def test_counters_report_the_polling_work(self) -> None:
        """Counters show store round trips, polls, cycles and a reload (row decode) at every cycle."""
        record = LegacyEngine().replay(_chain_trace(3), ReplayOptions(seed=1))
        c = record.counters
        assert c["store_round_trips"] > c["polls"] >= c["cycles"] > 0
        assert c["row_decodes"] + c["row_cache_hits"] >= c["cycles"]
        assert c["jobs_launched"] == 3
        assert c.get("duplicate_deliveries", 0) == 0


def _estimated_polls(trace) -> float:
    """Roughly how many cycles the legacy engine needs: one RUNNING poll per 3 s of step time, plus
    the start-up cycles of each attempt. Polling cost is the legacy engine's nature."""
    return sum(a.duration / 3.0 + 5.0 for r in trace.runs for a in r.attempts)


def _light_corpus(seed: int, count: int, budget: float):
    """The first ``count`` built-in traces whose replay needs at most ``budget`` polls."""
    out = []
    for trace in generate_corpus(seed, 400):
        if _estimated_polls(trace) <= budget:
            out.append(trace)
        if len(out) == count:
            break
    return out


@pytest.fixture(scope="module")
def corpus_records():
    traces = _light_corpus(2026, 12, 1500.0)
    return [(t, LegacyEngine().replay(t, ReplayOptions(seed=1))) for t in traces]


class TestBuiltinCorpus:
    def test_every_trace_reaches_a_terminal_state(self, corpus_records) -> None:
        """Every run of 12 light built-in traces ends (terminal, or never started by its strategy)."""
        assert len(corpus_records) == 12
        for trace, record in corpus_records:
            for run in record.runs:
                assert not run.stuck, (trace.trace_id, run.run_id)
                assert run.status in {"SUCCEEDED", "FAILED", "STOPPED", "TIMED_OUT", "CREATED"}, (
                    trace.trace_id,
                    run,
                )

    def test_every_run_matches_the_core_oracle(self, corpus_records) -> None:
        """Statuses, attempts, params handed in and outputs equal CoreOracle's on every trace."""
        for trace, record in corpus_records:
            assert normalize_record(record) == normalize_record(oracle_record(trace)), trace.trace_id

    def test_step_start_overhead_is_legacy_like(self, corpus_records) -> None:
        """Across the corpus the median ready->started overhead is in Maestro's legacy range (~4-5 s)."""
        starts = [s for _, record in corpus_records for s in _starts(record)]
        assert 4.0 <= statistics.median(starts) <= 5.0


@pytest.mark.slow
class TestBuiltinCorpusWhole:
    @pytest.mark.timeout(1800)
    @pytest.mark.parametrize("index", range(40))
    def test_forty_traces_match_the_core(self, index: int) -> None:
        """Each of the first 40 built-in traces (every shape, steps of hours) replays to the oracle's outcome."""
        trace = generate_trace(2026, index)
        # The fast mode (default) follows events, not cycles: the 2,344-attempt trace (index 37, ~300 k
        # cycles, an hour tick by tick) is affordable; its exact-mode equality is tests/engines/test_legacy_fast.py's.
        record = LegacyEngine().replay(trace, ReplayOptions(seed=4))
        assert not any(r.stuck for r in record.runs), trace.trace_id
        assert normalize_record(record) == normalize_record(oracle_record(trace)), trace.trace_id
