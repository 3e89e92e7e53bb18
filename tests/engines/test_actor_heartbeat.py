"""Actor node heartbeats: one batched lease renewal per node and interval, fenced per group."""

from __future__ import annotations

from corpora.generator import generate_corpus
from engines.actor import ActorEngine
from engines.actor.config import ActorConfig
from engines.api import ExecutionRecord, ReplayOptions
from engines.core.oracle import CoreOracle
from tests.engines._actor_support import outcome

TRACE = next(iter(generate_corpus(7, 1)))
OPTIONS = ReplayOptions(seed=3)


def _replay(*faults: str, nodes: int = 1, groups: int = 8) -> tuple[ExecutionRecord, ActorEngine]:
    engine = ActorEngine(nodes=nodes, faults=faults, config=ActorConfig(groups=groups))
    return engine.replay(TRACE, OPTIONS), engine


class TestBatchedHeartbeat:
    def test_heartbeat_costs_one_statement_and_commit_per_node(self) -> None:
        """Every heartbeat is one renewal statement plus its commit (plus at most one acknowledgement batch)."""
        record, _ = _replay(groups=8)
        beats = record.counters["heartbeats"]
        assert beats > 10
        assert 2 * beats <= record.counters["heartbeat_round_trips"] <= 3 * beats

    def test_heartbeat_cost_does_not_grow_with_groups(self) -> None:
        """With 64 groups instead of 4 a node makes the same heartbeats at the same round trips each."""
        few, _ = _replay(groups=4)
        many, _ = _replay(groups=64)
        assert outcome(few) == outcome(many)
        per_beat = [r.counters["heartbeat_round_trips"] / r.counters["heartbeats"] for r in (few, many)]
        assert abs(per_beat[0] - per_beat[1]) < 0.5
        assert per_beat[1] < 3.0

    def test_cluster_heartbeats_scale_with_nodes_not_groups(self) -> None:
        """Three nodes sharing 8 groups each renew their own leases with one statement per beat."""
        record, engine = _replay(nodes=3)
        assert outcome(record) == outcome(CoreOracle().replay(TRACE, OPTIONS))
        assert engine.last_cluster is not None
        for node in engine.last_cluster.nodes:
            assert node.counters["heartbeat_round_trips"] <= 3 * node.counters["heartbeats"]


class TestLostLeaseAtHeartbeat:
    def test_paused_node_learns_at_renewal_which_groups_it_lost(self) -> None:
        """A node paused past its lease finds at its next renewal the groups taken over, and stops naming one."""
        record, engine = _replay("pause:1@600+120", nodes=3)
        assert outcome(record) == outcome(CoreOracle().replay(TRACE, OPTIONS))
        cluster = engine.last_cluster
        assert cluster is not None
        paused = cluster.nodes[1]
        taken = {t.group_id for t in cluster.takeovers if t.generation == 2}
        assert taken == {g for g in range(8) if g % 3 == 1}
        assert not paused.alive
        assert paused.halted_reason is not None
        assert f"lost the lease of group {min(taken)}" in paused.halted_reason
        assert "generation 2, the writer holds generation 1" in paused.halted_reason
        assert paused.counters["fenced_writes"] == 1
        assert paused.counters["leases_lost"] == len(taken)
