"""The actor engine against the core oracle (and the legacy engine when present) on the built-in corpus."""

from __future__ import annotations

import importlib.util
import statistics

import pytest

from corpora.generator import generate_corpus
from corpora.model import Trace
from engines.actor import ActorConfig, ActorEngine
from engines.api import Engine, ExecutionRecord, ReplayOptions
from engines.core.oracle import CoreOracle
from engines.core.testing import chain, make_trace, rec, step
from tests.engines._actor_support import COARSE, outcome

FAST_TRACES = 40


def _overheads(record: ExecutionRecord) -> list[float]:
    out = []
    for run in record.runs:
        for a in run.attempts:
            if a.started_at is not None and a.ready_at is not None:
                out.append(a.started_at - a.ready_at)
    return out


class TestProtocol:
    def test_is_an_engine_named_actor(self) -> None:
        """ActorEngine satisfies the Engine protocol under the name the CLI resolves."""
        engine = ActorEngine()
        assert isinstance(engine, Engine)
        assert engine.name == "actor"

    def test_nodes_override_config(self) -> None:
        """The factory's nodes= wins over the config's node count."""
        assert ActorEngine(nodes=3, config=ActorConfig(nodes=1)).config.nodes == 3


class TestSimpleDags:
    def test_chain_matches_oracle_and_costs_milliseconds(self) -> None:
        """A three-step chain ends SUCCEEDED like the oracle, each step starting within a second of ready."""
        trace = make_trace(chain("a", "b", "c"), [rec("a", 1, "succeeded", 5), rec("b", 1, "succeeded", 7),
                                                  rec("c", 1, "succeeded", 1)])  # fmt: skip
        oracle = CoreOracle().replay(trace, ReplayOptions())
        actor = ActorEngine().replay(trace, ReplayOptions())
        assert outcome(actor) == outcome(oracle)
        assert actor.runs[0].status == "SUCCEEDED"
        overheads = _overheads(actor)
        assert len(overheads) == 3
        assert all(0 < o < 1.0 for o in overheads)

    def test_retry_then_success(self) -> None:
        """A user error is retried after its backoff and the second attempt's success ends the run."""
        trace = make_trace([step("a")], [rec("a", 1, "user_error", 3), rec("a", 2, "succeeded", 2)])
        actor = ActorEngine().replay(trace, ReplayOptions())
        assert outcome(actor) == outcome(CoreOracle().replay(trace, ReplayOptions()))
        assert [a.status for a in actor.runs[0].attempts] == ["USER_FAILED", "SUCCEEDED"]

    def test_unrecorded_attempt_is_internally_failed(self) -> None:
        """An attempt the trace never recorded becomes INTERNALLY_FAILED with unrecorded=True."""
        trace = make_trace(chain("a", "b"), [rec("a", 1, "succeeded", 1)])
        actor = ActorEngine().replay(trace, ReplayOptions())
        b = [a for a in actor.runs[0].attempts if a.path == "b"]
        assert b[0].status == "INTERNALLY_FAILED"
        assert b[0].unrecorded
        assert outcome(actor) == outcome(CoreOracle().replay(trace, ReplayOptions()))

    def test_mailboxes_do_not_spawn_a_task_per_message(self) -> None:
        """Messages are drained by callbacks; an actor starts a Task only to commit (one per batch)."""
        trace = list(generate_corpus(3, 2))[1]
        counters = ActorEngine(config=COARSE).replay(trace, ReplayOptions()).counters
        assert counters["actor_flushes"] < counters["messages"] / 4
        assert counters["commits"] < counters["executes"]

    def test_run_past_the_time_limit_is_stuck(self) -> None:
        """A run still going at the time limit is reported stuck with its last status, as the oracle does."""
        trace = make_trace(chain("a", "b"), [rec("a", 1, "succeeded", 5), rec("b", 1, "succeeded", 10_000)])
        options = ReplayOptions(time_limit=600.0)
        actor = ActorEngine().replay(trace, options)
        assert actor.runs[0].stuck
        assert actor.runs[0].status == "IN_PROGRESS"
        assert outcome(actor) == outcome(CoreOracle().replay(trace, options))

    def test_same_seed_same_record(self) -> None:
        """Two replays with one seed give identical records, timestamps included."""
        trace = next(iter(generate_corpus(3, 1)))
        a = ActorEngine(config=COARSE).replay(trace, ReplayOptions(seed=5))
        b = ActorEngine(config=COARSE).replay(trace, ReplayOptions(seed=5))
        assert a.runs == b.runs


def _legacy() -> Engine | None:
    """The legacy engine, when its package is there (it is built in parallel)."""
    if importlib.util.find_spec("engines.legacy.engine") is None:
        return None
    from engines.legacy import LegacyEngine

    engine: Engine = LegacyEngine()
    return engine


class TestCorpus:
    @pytest.mark.parametrize("trace", list(generate_corpus(11, FAST_TRACES)), ids=lambda t: t.trace_id)
    def test_outcome_equals_oracle(self, trace: Trace) -> None:
        """On each corpus trace the actor's statuses, attempts, params and outputs equal the oracle's."""
        options = ReplayOptions(seed=1)
        actor = ActorEngine(config=COARSE).replay(trace, options)
        oracle = CoreOracle().replay(trace, options)
        assert outcome(actor) == outcome(oracle)
        assert actor.counters["runtime_starts"] == actor.counters["attempts"]

    @pytest.mark.slow
    def test_outcome_equals_oracle_at_default_timers(self) -> None:
        """With the default timers (heartbeats, sweeps, reconciliation) and 3 nodes sharing the groups,
        8 more corpus traces match the oracle."""
        for trace in generate_corpus(12, 8):
            options = ReplayOptions(seed=2)
            actor = ActorEngine(nodes=3).replay(trace, options)
            assert outcome(actor) == outcome(CoreOracle().replay(trace, options)), trace.trace_id

    @pytest.mark.slow
    def test_outcome_equals_legacy_and_starts_far_sooner(self) -> None:
        """On small corpus traces the actor's outcome equals the legacy engine's, and its median per-step
        start overhead is under 5 % of the legacy's."""
        legacy = _legacy()
        if legacy is None:
            pytest.skip("engines.legacy is not there yet")
        small = [t for t in generate_corpus(13, 40) if sum(len(r.attempts) for r in t.runs) <= 40][:4]
        actor_over: list[float] = []
        legacy_over: list[float] = []
        for trace in small:
            options = ReplayOptions(seed=2)
            actor = ActorEngine().replay(trace, options)
            old = legacy.replay(trace, options)
            assert outcome(actor) == outcome(old), trace.trace_id
            actor_over += _overheads(actor)
            legacy_over += _overheads(old)
        assert statistics.median(actor_over) < 0.05 * statistics.median(legacy_over)
