"""The store: schema, runs and step attempts, transactions, counters, latency accounting."""

from __future__ import annotations

import contextlib
import sqlite3
import statistics
from pathlib import Path

import pytest

from engines.clock import VirtualClock
from engines.store import (
    LATEST_VERSION,
    MIGRATIONS,
    LatencyModel,
    SqliteConfig,
    SqliteStore,
    StepInstance,
    StepTimes,
    Store,
    StoreConflictError,
    StoreIntegrityError,
    StoreSchemaError,
    WorkflowInstance,
)
from engines.testing import run_virtual


def _store(**kw: object) -> SqliteStore:
    return SqliteStore(SqliteConfig(latency=LatencyModel.zero(), **kw))  # type: ignore[arg-type]


def _run(key: str = "t1/r1", **kw: object) -> WorkflowInstance:
    fields: dict[str, object] = {"workflow_id": "wf", "run_id": "r1", "status": "CREATED", "created_at": 10.0}
    fields.update(kw)
    return WorkflowInstance(run_key=key, **fields)  # type: ignore[arg-type]


class TestSchema:
    def test_fresh_database_is_at_latest_version(self, tmp_path: Path) -> None:
        """Opening an empty file applies every migration and records each in schema_version."""
        db = tmp_path / "s.db"
        SqliteStore(SqliteConfig(path=str(db))).close()
        with contextlib.closing(sqlite3.connect(db)) as conn:
            rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]
        assert rows[-1][0] == LATEST_VERSION

    def test_reopen_applies_nothing_and_keeps_data(self, tmp_path: Path) -> None:
        """Reopening a file keeps its rows and does not re-run migrations."""
        db = str(tmp_path / "s.db")
        store = SqliteStore(SqliteConfig(path=db, latency=LatencyModel.zero()))
        store.create_run(_run())
        store.close()
        again = SqliteStore(SqliteConfig(path=db))
        assert again.get_run("t1/r1") == _run()
        again.close()

    def test_newer_schema_is_refused(self, tmp_path: Path) -> None:
        """A database from a newer version is refused with a StoreSchemaError saying to upgrade."""
        db = tmp_path / "s.db"
        SqliteStore(SqliteConfig(path=str(db))).close()
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute("INSERT INTO schema_version VALUES (99, 'future', 'now')")
        with pytest.raises(StoreSchemaError, match="newer than this code"):
            SqliteStore(SqliteConfig(path=str(db)))

    def test_store_satisfies_protocol(self) -> None:
        """SqliteStore implements the narrow Store protocol."""
        assert isinstance(_store(), Store)


class TestRuns:
    def test_create_and_load_round_trip(self) -> None:
        """A run and its step attempts load back equal, steps ordered by path then attempt."""
        store = _store()
        store.create_run(_run(state='{"k":1}', group_id=3, parent_key="t1/p"))
        steps = [
            StepInstance(
                "t1/r1",
                "b",
                1,
                "RUNNING",
                times=StepTimes().stamped("CREATED", 10.0).stamped("RUNNING", 12.0),
            ),
            StepInstance("t1/r1", "a", 2, "SUCCEEDED", state='{"x":[1]}'),
            StepInstance("t1/r1", "a", 1, "USER_FAILED"),
        ]
        store.save_steps(steps)
        loaded = store.load_run("t1/r1")
        assert loaded is not None
        assert loaded.run == _run(state='{"k":1}', group_id=3, parent_key="t1/p")
        assert [(s.path, s.attempt) for s in loaded.steps] == [("a", 1), ("a", 2), ("b", 1)]
        assert loaded.steps[2].times == StepTimes(create_time=10.0, execute_time=12.0)

    def test_missing_run_loads_none(self) -> None:
        """Loading an unknown run key returns None."""
        assert _store().load_run("nope") is None

    def test_duplicate_create_is_integrity_error(self) -> None:
        """Creating the same run key twice raises StoreIntegrityError."""
        store = _store()
        store.create_run(_run())
        with pytest.raises(StoreIntegrityError, match="constraint"):
            store.create_run(_run())

    def test_save_run_bumps_version(self) -> None:
        """save_run from the read version succeeds and returns version + 1."""
        store = _store()
        store.create_run(_run())
        saved = store.save_run(_run(status="IN_PROGRESS", updated_at=11.0))
        assert saved.version == 1
        got = store.get_run("t1/r1")
        assert got is not None
        assert (got.status, got.version, got.updated_at) == ("IN_PROGRESS", 1, 11.0)

    def test_stale_version_conflicts(self) -> None:
        """A save based on an outdated version raises a retryable StoreConflictError."""
        store = _store()
        store.create_run(_run())
        store.save_run(_run(status="IN_PROGRESS"))
        with pytest.raises(StoreConflictError, match="reload the run") as info:
            store.save_run(_run(status="FAILED"))
        assert info.value.retryable

    def test_save_unknown_run_is_integrity_error(self) -> None:
        """Saving a run that was never created says to create it first."""
        with pytest.raises(StoreIntegrityError, match="create_run it first"):
            _store().save_run(_run())

    def test_upsert_overwrites_attempt(self) -> None:
        """Saving the same (run, path, attempt) again overwrites status, state and times."""
        store = _store()
        store.create_run(_run())
        store.save_steps([StepInstance("t1/r1", "a", 1, "CREATED")])
        store.save_steps([StepInstance("t1/r1", "a", 1, "SUCCEEDED", times=StepTimes(end_time=5.0))])
        loaded = store.load_run("t1/r1")
        assert loaded is not None
        assert [(s.status, s.times) for s in loaded.steps] == [("SUCCEEDED", StepTimes(end_time=5.0))]

    def test_reload_sees_every_change(self) -> None:
        """Loading, changing one attempt and loading again returns the new row and the unchanged others."""
        store = _store()
        store.create_run(_run())
        store.save_steps([StepInstance("t1/r1", "a", 1, "CREATED"), StepInstance("t1/r1", "b", 1, "CREATED")])
        first = store.load_run("t1/r1")
        store.save_steps([StepInstance("t1/r1", "b", 1, "RUNNING", times=StepTimes(execute_time=2.0))])
        second = store.load_run("t1/r1")
        assert first is not None
        assert second is not None
        assert second.steps[0] == first.steps[0]
        assert (second.steps[1].status, second.steps[1].times.execute_time) == ("RUNNING", 2.0)

    def test_runs_filters_by_group_and_status(self) -> None:
        """runs() filters by group and status set; child_runs by parent."""
        store = _store()
        store.create_run(_run("a", group_id=1, status="IN_PROGRESS"))
        store.create_run(_run("b", group_id=1, status="SUCCEEDED", parent_key="a"))
        store.create_run(_run("c", group_id=2, status="IN_PROGRESS"))
        assert [r.run_key for r in store.runs(group_id=1)] == ["a", "b"]
        assert [r.run_key for r in store.runs(statuses=["IN_PROGRESS"])] == ["a", "c"]
        assert [r.run_key for r in store.runs(group_id=1, statuses={"IN_PROGRESS"})] == ["a"]
        assert store.runs(statuses=[]) == []
        assert [r.run_key for r in store.child_runs("a")] == ["b"]


class TestStepTimes:
    def test_statuses_stamp_maestro_timeline_fields(self) -> None:
        """STARTING stamps start_time, RUNNING execute_time, any terminal status end_time."""
        times = StepTimes().stamped("CREATED", 1.0).stamped("STARTING", 2.0).stamped("RUNNING", 3.0)
        assert times.stamped("USER_FAILED", 4.0) == StepTimes(
            create_time=1.0, start_time=2.0, execute_time=3.0, end_time=4.0
        )
        assert times.stamped("SKIPPED", 9.0).end_time == 9.0

    def test_first_entry_wins(self) -> None:
        """Re-entering a status (a retry back to RUNNING) keeps the first timestamp."""
        times = StepTimes().stamped("RUNNING", 3.0).stamped("RUNNING", 8.0)
        assert times.execute_time == 3.0
        assert StepTimes().stamped("NOT_CREATED", 1.0) == StepTimes()


class TestTransactions:
    def test_error_in_transaction_writes_nothing(self) -> None:
        """An exception inside transaction() rolls back every write made in it."""
        store = _store()

        def half_a_transition() -> None:
            with store.transaction():
                store.create_run(_run())
                store.save_steps([StepInstance("t1/r1", "a", 1, "CREATED")])
                raise RuntimeError("engine bug")

        with pytest.raises(RuntimeError, match="engine bug"):
            half_a_transition()
        assert store.load_run("t1/r1") is None
        assert store.counters["rollbacks"] == 1

    def test_one_commit_per_transaction(self) -> None:
        """Calls inside one transaction() cost one commit in total."""
        store = _store()
        before = store.counters["commits"]
        with store.transaction():
            store.create_run(_run())
            store.save_steps([StepInstance("t1/r1", "a", 1, "CREATED")])
            store.load_run("t1/r1")
        assert store.counters["commits"] - before == 1


class TestCountersAndLatency:
    def test_round_trips_are_counted(self) -> None:
        """load_run = 2 reads + 1 commit; a batched save_steps = 1 write + 1 commit."""
        store = _store()
        store.create_run(_run())
        c0 = dict(store.counters)
        store.load_run("t1/r1")
        c1 = dict(store.counters)
        store.save_steps([StepInstance("t1/r1", f"s{i}", 1, "CREATED") for i in range(50)])
        c2 = dict(store.counters)
        assert (
            c1["reads"] - c0["reads"],
            c1["commits"] - c0["commits"],
            c1["round_trips"] - c0["round_trips"],
        ) == (2, 1, 3)
        assert (c2["writes"] - c1["writes"], c2["round_trips"] - c1["round_trips"]) == (1, 2)

    def test_constant_latency_accumulates_and_settles(self) -> None:
        """With 5 ms per round trip, load_run accumulates 15 ms, and settle sleeps exactly that."""
        store = SqliteStore(SqliteConfig(latency=LatencyModel.constant(0.005)))
        store.take_latency()
        store.create_run(_run())
        store.take_latency()

        async def main() -> tuple[float, float]:
            clock = VirtualClock.current()
            store.load_run("t1/r1")
            slept = await store.settle(clock)
            return slept, clock.now()

        slept, now = run_virtual(main(), start=100.0)
        assert slept == pytest.approx(0.015)
        assert now == pytest.approx(100.015)
        assert store.pending_latency() == 0.0

    def test_default_latency_is_heavy_tailed_median_2ms(self) -> None:
        """The default model's draws have median ~2 ms, a longer upper tail, and respect the cap."""
        sampler = LatencyModel().sampler(seed=1)
        draws = sorted(sampler.draw() for _ in range(20_000))
        median = statistics.median(draws)
        assert 0.0019 < median < 0.0021
        assert draws[int(0.99 * len(draws))] > 3 * median
        assert max(draws) <= 0.05

    def test_latency_is_seeded(self) -> None:
        """Two stores with the same seed draw the same latencies; another seed differs."""

        def total(seed: int) -> float:
            store = SqliteStore(SqliteConfig(seed=seed))
            store.create_run(_run())
            for _ in range(20):
                store.load_run("t1/r1")
            return store.counters["latency_seconds"]

        assert total(4) == total(4)
        assert total(4) != total(5)

    def test_bad_latency_model_is_rejected(self) -> None:
        """A negative median is a ValueError naming the fields."""
        with pytest.raises(ValueError, match="median"):
            LatencyModel(median=-1.0)
