"""Fault tests of the actor engine in virtual time: each asserts the exact no-fault outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.codec import encode
from corpora.generator import generate_corpus
from corpora.model import StepType, Trace
from corpora.testing import leaf, make_trace
from engines.actor import ActorEngine, FaultSpecError, parse_faults
from engines.actor.config import ActorConfig
from engines.api import ExecutionRecord, ReplayOptions
from engines.core.oracle import CoreOracle
from shadow.cli import main
from tests.engines._actor_support import outcome

TRACES = list(generate_corpus(7, 4))
OPTIONS = ReplayOptions(seed=3)
EXPECTED = {t.trace_id: outcome(CoreOracle().replay(t, OPTIONS)) for t in TRACES}


def _run(trace: Trace, *faults: str, nodes: int = 3) -> tuple[ExecutionRecord, ActorEngine]:
    engine = ActorEngine(nodes=nodes, faults=faults)
    record = engine.replay(trace, OPTIONS)
    return record, engine


class TestCrash:
    @pytest.mark.parametrize("trace", TRACES[:3], ids=lambda t: t.trace_id)
    def test_crash_mid_run_takeover_within_lease_expiry(self, trace: Trace) -> None:
        """3 nodes, node 1 crashes mid-run: every run ends as without the fault, and each of its
        groups is claimed (generation 2) no later than the lease expiry after the crash."""
        record, engine = _run(trace, "crash:1@600")
        assert outcome(record) == EXPECTED[trace.trace_id]
        cluster = engine.last_cluster
        assert cluster is not None
        crash_at = next(at for node, at, why in cluster.halts if why == "crashed")
        taken = [t for t in cluster.takeovers if t.generation == 2]
        lost = {g for g in range(engine.config.groups) if g % 3 == 1}
        assert {t.group_id for t in taken} == lost
        assert all(crash_at < t.at <= crash_at + engine.config.lease_expiry for t in taken)
        assert all(t.node != "node-1" for t in taken)
        assert record.counters["runtime_starts"] == record.counters["attempts"]

    def test_crash_of_every_node_but_one(self) -> None:
        """Two of three nodes crash at different times; the survivor finishes every run correctly."""
        trace = TRACES[1]
        record, engine = _run(trace, "crash:0@300", "crash:2@2000")
        assert outcome(record) == EXPECTED[trace.trace_id]
        assert engine.last_cluster is not None
        owners = {t.node for t in engine.last_cluster.takeovers if t.generation > 1}
        assert "node-1" in owners

    def test_crash_of_the_only_node_leaves_stuck_runs(self) -> None:
        """With no node left to take over, the run is reported stuck at the time limit, not hung."""
        record, _ = _run(TRACES[0], "crash:0@100", nodes=1)
        assert [(r.status, r.stuck) for r in record.runs] == [("IN_PROGRESS", True)]


class TestPause:
    @pytest.mark.parametrize("trace", TRACES[:2], ids=lambda t: t.trace_id)
    def test_paused_node_loses_lease_and_late_write_is_fenced(self, trace: Trace) -> None:
        """Node 1 pauses past its lease: others claim its groups; its first write after waking is
        rejected by fencing, it stops, and every run still ends with the no-fault outcome."""
        record, engine = _run(trace, "pause:1@600+120")
        assert outcome(record) == EXPECTED[trace.trace_id]
        assert record.counters["fenced_writes"] >= 1
        cluster = engine.last_cluster
        assert cluster is not None
        halted = [(at, why) for node, at, why in cluster.halts if node == "node-1"]
        assert halted
        assert "lost the lease" in halted[0][1]
        assert "fenced out" in halted[0][1]
        takeovers = [t for t in cluster.takeovers if t.generation == 2]
        assert takeovers
        assert all(t.at < halted[0][0] for t in takeovers)

    def test_short_pause_keeps_the_lease(self) -> None:
        """A pause shorter than the lease expiry loses nothing: no takeover, no fenced write."""
        trace = TRACES[0]
        record, engine = _run(trace, "pause:1@600+20")
        assert outcome(record) == EXPECTED[trace.trace_id]
        assert record.counters.get("fenced_writes", 0) == 0
        assert engine.last_cluster is not None
        assert not [t for t in engine.last_cluster.takeovers if t.generation > 1]


class TestMessages:
    @pytest.mark.parametrize("kind", ["StartTask", "StartFlow", "RunEnded"])
    def test_dropped_durable_message_is_redelivered_by_the_sweeper(self, kind: str) -> None:
        """A durable message lost in memory stays unacknowledged; the sweeper re-delivers it."""
        trace = TRACES[1]
        record, _ = _run(trace, f"drop:{kind}#1", nodes=1)
        assert outcome(record) == EXPECTED[trace.trace_id]
        assert record.counters["redelivered"] >= 1
        assert record.counters["faults_fired"] == 1

    @pytest.mark.parametrize("kind", ["TaskUpdate", "RuntimeDone"])
    def test_dropped_completion_is_repaired(self, kind: str) -> None:
        """A lost runtime completion is recovered by the next RUNNING ping or reconciliation."""
        trace = TRACES[2]
        record, _ = _run(trace, f"drop:{kind}#2", nodes=1)
        assert outcome(record) == EXPECTED[trace.trace_id]
        assert record.counters["faults_fired"] == 1

    def test_lost_completion_of_a_step_with_a_short_timeout_is_noticed_by_the_3s_poll(self) -> None:
        """A 1 s step with a 10 s timeout whose RuntimeDone is lost: Maestro's RUNNING poll (every 3 s) sees
        the job finished, long before the timeout; a ping scheduled only at the timeout (the lazy schedule,
        exact only when completions cannot be lost) would time the step out. Found by the fault campaign on
        Maestro's sample-dag-test-10."""
        trace = make_trace(
            [leaf("a", "b", type=StepType.SHELL), leaf("b", type=StepType.SHELL, timeout=10)], duration=1.0
        )
        record, _ = _run(trace, "drop:RuntimeDone#2", nodes=1)
        assert record.counters["faults_fired"] == 1
        assert outcome(record) == outcome(CoreOracle().replay(trace, OPTIONS))
        run = record.runs[0]
        b = next(a for a in run.attempts if a.path == "b")
        assert b.status == "SUCCEEDED"
        assert run.ended_at is not None
        assert b.started_at is not None
        assert run.ended_at - b.started_at <= 1.0 + 3.0 + 0.5  # noticed at the first 3 s poll

    @pytest.mark.parametrize("kind", ["StartTask", "StartFlow", "TaskUpdate", "RuntimeDone", "RunEnded"])
    def test_duplicated_message_runs_no_attempt_twice(self, kind: str) -> None:
        """A message delivered twice starts no runtime twice and changes no outcome."""
        trace = TRACES[1]
        record, _ = _run(trace, f"dup:{kind}#2", f"dup:{kind}#3", nodes=2)
        assert outcome(record) == EXPECTED[trace.trace_id]
        assert record.counters["faults_fired"] == 2
        assert record.counters["runtime_starts"] == record.counters["attempts"]
        assert record.counters.get("runtime_attaches", 0) == 0


class TestStoreFailure:
    @pytest.mark.parametrize("n", [5, 40, 41])
    def test_failed_store_write_is_retried(self, n: int) -> None:
        """A store write that fails (disk full) rolls back; the writer retries and the outcome holds."""
        trace = TRACES[0]
        record, _ = _run(trace, f"store-fail:write#{n}", nodes=1)
        assert outcome(record) == EXPECTED[trace.trace_id]
        assert record.counters["store_errors"] == 1


class TestSpecs:
    def test_parse_every_kind(self) -> None:
        """Each documented spec form parses into its fault."""
        plan = parse_faults(["crash:2@10", "pause:0@5.5+60", "drop:StartTask#3", "dup:TaskUpdate#1",
                             "store-fail:commit#7"], nodes=3, seed=0)  # fmt: skip
        assert [(f.kind, f.node, f.at, f.duration) for f in plan.node_faults] == [
            ("crash", 2, 10.0, 0.0), ("pause", 0, 5.5, 60.0)]  # fmt: skip
        assert plan.message_faults == {("StartTask", 3): "drop", ("TaskUpdate", 1): "dup"}
        assert plan.store_hook is not None
        assert (plan.store_hook.n, plan.store_hook.kind) == (7, "commit")

    def test_star_node_is_seeded(self) -> None:
        """``*`` picks a node from the seed: the same seed, the same node."""
        picks = {parse_faults(["crash:*@1"], nodes=5, seed=9).node_faults[0].node for _ in range(3)}
        assert len(picks) == 1

    @pytest.mark.parametrize(
        "spec", ["crash:1", "crash:3@10", "pause:0@10", "drop:Nope#1", "dup:StartTask#0", "melt"]
    )
    def test_bad_specs_name_the_syntax(self, spec: str) -> None:
        """A bad spec raises FaultSpecError quoting the spec and the syntax."""
        with pytest.raises(FaultSpecError, match="crash:NODE@T"):
            parse_faults([spec], nodes=3, seed=0)

    def test_config_rejects_heartbeat_past_expiry(self) -> None:
        """A heartbeat slower than the lease expiry is refused with the fields named."""
        with pytest.raises(Exception, match="heartbeat"):
            ActorConfig(heartbeat=60, lease_expiry=56)


class TestFromOptionsAndCli:
    def test_faults_from_replay_options(self) -> None:
        """Faults given in ReplayOptions act like the factory's: a crash is survived with the same outcome."""
        trace = TRACES[0]
        engine = ActorEngine(nodes=3)
        record = engine.replay(trace, ReplayOptions(seed=3, faults=("crash:2@600",)))
        assert outcome(record) == EXPECTED[trace.trace_id]
        assert record.counters["crashes"] == 1

    def test_shadow_replay_with_nodes_and_faults(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``shadow replay --engine actor --nodes 3 --fault ...`` prints the no-fault outcome as JSON."""
        trace = TRACES[0]
        path = tmp_path / "t.jsonl"
        path.write_text(json.dumps(encode(trace)) + "\n", encoding="utf-8")
        argv = ["replay", str(path), "--engine", "actor", "--nodes", "3", "--seed", "3", "--json",
                "--fault", "crash:1@600", "--fault", "dup:StartTask#2"]  # fmt: skip
        assert main(argv) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["engine"] == "actor"
        assert [r["status"] for r in printed["runs"]] == [
            r.status for r in CoreOracle().replay(trace, OPTIONS).runs
        ]
        assert printed["counters"]["faults_fired"] == 2  # the crash and the repeated StartTask
