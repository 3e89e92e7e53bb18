"""Store failures: typed errors, and nothing half-written."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from engines.store import (
    FailNthRoundTrip,
    LatencyModel,
    SqliteConfig,
    SqliteStore,
    StepInstance,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    WorkflowInstance,
)

_RUN = WorkflowInstance("r1", "wf", "r1", "CREATED")


class TestDiskFull:
    def test_disk_full_mid_transaction_leaves_nothing(self) -> None:
        """Disk full on the second write of a transaction raises StoreFullError and the first write is gone."""
        fault = FailNthRoundTrip(n=2, kind="write")
        store = SqliteStore(SqliteConfig(latency=LatencyModel.zero()), faults=fault)

        def write_run_and_steps() -> None:
            with store.transaction():
                store.create_run(_RUN)
                store.save_steps([StepInstance("r1", "a", 1, "CREATED")])

        with pytest.raises(StoreFullError, match="rolled back") as info:
            write_run_and_steps()
        assert not info.value.retryable
        assert fault.fired == 1
        assert store.load_run("r1") is None

    def test_disk_full_on_commit_leaves_nothing(self) -> None:
        """A failure at COMMIT rolls the whole transaction back."""
        fault = FailNthRoundTrip(n=1, kind="commit")
        store = SqliteStore(SqliteConfig(latency=LatencyModel.zero()), faults=fault)
        with pytest.raises(StoreFullError):
            store.create_run(_RUN)
        assert store.get_run("r1") is None
        store.create_run(_RUN)
        assert store.get_run("r1") == _RUN

    def test_fault_limited_to_operation(self) -> None:
        """A fault narrowed to save_steps leaves other writes alone."""
        fault = FailNthRoundTrip(n=1, operations=frozenset({"save_steps"}))
        store = SqliteStore(SqliteConfig(latency=LatencyModel.zero()), faults=fault)
        store.create_run(_RUN)
        with pytest.raises(StoreFullError):
            store.save_steps([StepInstance("r1", "a", 1, "CREATED")])
        loaded = store.load_run("r1")
        assert loaded is not None
        assert loaded.steps == ()


class TestLocked:
    def test_locked_database_is_retryable(self, tmp_path: Path) -> None:
        """A write while another connection holds the lock raises a retryable StoreLockedError."""
        db = str(tmp_path / "s.db")
        store = SqliteStore(SqliteConfig(path=db, busy_timeout=0.0, latency=LatencyModel.zero()))
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreLockedError, match="retry") as info:
                store.create_run(_RUN)
            assert info.value.retryable
            other.execute("ROLLBACK")
        store.create_run(_RUN)
        assert store.get_run("r1") == _RUN
        store.close()

    def test_reads_do_not_wait_for_a_writer(self, tmp_path: Path) -> None:
        """In WAL mode a read-only call succeeds while another connection holds the write lock."""
        db = str(tmp_path / "s.db")
        store = SqliteStore(SqliteConfig(path=db, busy_timeout=0.0, latency=LatencyModel.zero()))
        store.create_run(_RUN)
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            assert store.get_run("r1") == _RUN
            assert store.load_run("r1") is not None
            other.execute("ROLLBACK")
        store.close()


class TestCorrupt:
    def test_garbage_file_is_corrupt_error_naming_path(self, tmp_path: Path) -> None:
        """Opening a non-SQLite file raises StoreCorruptError naming the path and what to do; the file is untouched."""
        db = tmp_path / "legacy.db"
        garbage = b"this is not a database\n" * 200
        db.write_bytes(garbage)
        with pytest.raises(StoreCorruptError) as info:
            SqliteStore(SqliteConfig(path=str(db)))
        assert str(db) in str(info.value)
        assert "it was not modified" in str(info.value)
        assert "Pass a new file name" in str(info.value)
        assert db.read_bytes() == garbage

    def test_unopenable_path_is_store_error(self, tmp_path: Path) -> None:
        """A path in a missing directory raises a StoreError naming it."""
        missing = tmp_path / "no" / "such" / "dir" / "s.db"
        with pytest.raises(StoreError, match=str(missing.parent.name)):
            SqliteStore(SqliteConfig(path=str(missing)))

    def test_bad_synchronous_setting(self) -> None:
        """An unknown synchronous mode is rejected before opening anything."""
        with pytest.raises(StoreError, match="synchronous"):
            SqliteConfig(synchronous="SOMETIMES")
