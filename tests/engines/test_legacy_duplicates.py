"""At-least-once delivery in the legacy engine: a worker that stalls past its claim."""

from __future__ import annotations

from engines.api import ReplayOptions
from engines.core.testing import chain, make_trace, oracle_record, rec
from engines.legacy import LegacyConfig, LegacyEngine
from shadow.compare import normalize_record

TRACE = make_trace(
    chain("a", "b", "c"),
    [rec("a", 1, "succeeded", 30), rec("b", 1, "succeeded", 20), rec("c", 1, "succeeded", 5)],
)
TWO_WORKERS = LegacyConfig(workers=2, claim_timeout=10.0)


class TestDuplicateDelivery:
    def test_stall_before_load_delivers_twice_same_outcome(self) -> None:
        """A worker stalling 30 s (claim 10 s) loses its task to the other; both run it; outcome unchanged."""
        engine = LegacyEngine(TWO_WORKERS, faults=("stall-worker:0:3:30",))
        record = engine.replay(TRACE, ReplayOptions(seed=1))
        assert record.counters["stalls"] == 1
        assert record.counters["duplicate_deliveries"] >= 1
        assert normalize_record(record) == normalize_record(oracle_record(TRACE))

    def test_stall_before_write_loses_the_race_and_rolls_back(self) -> None:
        """A stale cycle written after another worker moved the run is refused (conflict) and redone."""
        engine = LegacyEngine(TWO_WORKERS, faults=("stall-worker:0:6:12:before_write",))
        record = engine.replay(TRACE, ReplayOptions(seed=1))
        assert record.counters["stalls"] == 1
        assert record.counters["conflicts"] == 1
        assert record.counters["duplicate_launches"] == 0
        assert normalize_record(record) == normalize_record(oracle_record(TRACE))

    def test_duplicate_delivery_is_deterministic(self) -> None:
        """The same stall and seed reproduce the same record, timestamps included."""
        engine = LegacyEngine(TWO_WORKERS, faults=("stall-worker:1:2:25",))
        assert engine.replay(TRACE, ReplayOptions(seed=4)) == engine.replay(TRACE, ReplayOptions(seed=4))

    def test_faults_from_replay_options(self) -> None:
        """The stall fault may come through ReplayOptions.faults (shadow replay --fault)."""
        record = LegacyEngine(TWO_WORKERS).replay(
            TRACE, ReplayOptions(seed=1, faults=("stall-worker:0:3:30",))
        )
        assert record.counters["stalls"] == 1
        assert normalize_record(record) == normalize_record(oracle_record(TRACE))

    def test_any_stall_point_keeps_the_outcome(self) -> None:
        """Stalling either worker at any of its first six claims, at either phase, never changes the outcome."""
        expected = normalize_record(oracle_record(TRACE))
        for worker in (0, 1):
            for claim in range(1, 7):
                for phase in ("before_load", "before_write"):
                    spec = f"stall-worker:{worker}:{claim}:12:{phase}"
                    record = LegacyEngine(TWO_WORKERS, faults=(spec,)).replay(TRACE, ReplayOptions(seed=1))
                    assert normalize_record(record) == expected, spec
                    assert record.counters["duplicate_launches"] == 0, spec
