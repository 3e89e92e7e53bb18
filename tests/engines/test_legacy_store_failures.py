"""Store failures under the legacy engine: typed errors, and nothing half-written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engines.core.testing import chain, make_trace, rec
from engines.legacy import LegacyConfig
from engines.legacy.capture import capture_traces
from engines.legacy.deployment import Deployment, workflow_entry
from engines.legacy.live import live_trace, run_live
from engines.runtimes import RuntimeRegistry
from engines.store import (
    FaultHook,
    LatencyModel,
    SqliteConfig,
    SqliteStore,
    StoreCorruptError,
    StoreFullError,
    StoreLockedError,
)
from engines.testing import VirtualTimeEnvironment
from tests.engines.test_legacy_live import QUICK, shell_sleep_chain

TRACE = make_trace(
    chain("a", "b", "c"),
    [rec("a", 1, "succeeded", 5), rec("b", 1, "succeeded", 5), rec("c", 1, "succeeded", 5)],
)


def dump(path: Path) -> str:
    """The committed content of the database, as SQL, read through a separate connection."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


class FullAtCommit(FaultHook):
    """Fails the ``n``-th commit with SQLite's disk-full error, snapshotting what was committed before."""

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.n, self.seen = path, n, 0
        self.before_failure: str | None = None

    def before(self, kind: str, operation: str) -> None:
        if kind != "commit":
            return
        self.seen += 1
        if self.seen == self.n:
            self.before_failure = dump(self.path)
            raise sqlite3.OperationalError("database or disk is full")


def replay_on_file(path: Path, hook: FaultHook) -> None:
    store = SqliteStore(SqliteConfig(path=str(path), latency=LatencyModel.zero()), faults=hook)
    try:
        with VirtualTimeEnvironment(start=TRACE.runs[0].trigger_time) as env:
            deployment = Deployment(
                store=store, clock=env.clock, config=LegacyConfig(), registry=RuntimeRegistry.replay(TRACE),
                workflows={TRACE.trace_id: workflow_entry(TRACE)},
            )  # fmt: skip
            env.run(deployment.serve(deadline=TRACE.runs[0].trigger_time + 3600))
    finally:
        store.close()


class TestDiskFull:
    @pytest.mark.parametrize("n", [3, 8, 15])
    def test_full_disk_mid_cycle_is_typed_and_rolled_back(self, tmp_path: Path, n: int) -> None:
        """A disk-full commit stops the engine with StoreFullError; the file holds exactly what was
        committed before (the failing cycle left no partial rows)."""
        path = tmp_path / "legacy.db"
        hook = FullAtCommit(path, n)
        with pytest.raises(StoreFullError, match="full"):
            replay_on_file(path, hook)
        assert hook.before_failure is not None
        assert dump(path) == hook.before_failure


class TestLockedDatabase:
    def test_locked_store_is_a_retryable_typed_error(self, tmp_path: Path) -> None:
        """Another process holding the write lock gives StoreLockedError (retryable), nothing written."""
        path = tmp_path / "legacy.db"
        SqliteStore(SqliteConfig(path=str(path), latency=LatencyModel.zero())).close()
        before = dump(path)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreLockedError) as info:
                run_live([live_trace(shell_sleep_chain("locked", 2))], store_path=path, config=QUICK,
                         timeout=10, busy_timeout=0.1)  # fmt: skip
            assert info.value.retryable
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert dump(path) == before


class TestCorruptFile:
    def test_corrupt_file_is_refused_untouched(self, tmp_path: Path) -> None:
        """A file that is not SQLite gives StoreCorruptError for live mode and capture; it is not modified."""
        path = tmp_path / "legacy.db"
        garbage = b"this is not a database" * 200
        path.write_bytes(garbage)
        with pytest.raises(StoreCorruptError, match="not a"):
            run_live([live_trace(shell_sleep_chain("corrupt", 2))], store_path=path, config=QUICK, timeout=10)
        with pytest.raises(StoreCorruptError):
            list(capture_traces(path))
        assert path.read_bytes() == garbage


class TestTransientLock:
    def test_workers_ride_out_a_short_lock(self, tmp_path: Path) -> None:
        """A write lock held briefly by another process is retried at the next poll; the run still succeeds."""
        import asyncio

        from engines.legacy.live import run_live_async

        path = tmp_path / "legacy.db"

        async def hold_lock_briefly() -> None:
            await asyncio.sleep(0.3)
            holder = sqlite3.connect(path, isolation_level=None, timeout=5)
            holder.execute("BEGIN EXCLUSIVE")
            await asyncio.sleep(0.4)
            holder.execute("ROLLBACK")
            holder.close()

        async def main():  # type: ignore[no-untyped-def]
            trace = live_trace(shell_sleep_chain("lock-blip", 6, sleep=0.1))
            run = asyncio.create_task(
                run_live_async([trace], store_path=path, config=QUICK, timeout=30, busy_timeout=0.02)
            )
            await hold_lock_briefly()
            return await run

        result = asyncio.run(main())
        assert result.finished
        assert result.runs[0].status == "SUCCEEDED"
        assert result.counters["store_locked_retries"] >= 1
