"""Schema migrations: atomic version check + migrate, safe when several processes open a fresh file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import cast

import pytest

from engines.store import LATEST_VERSION, MIGRATIONS, Migration, SqliteConfig, SqliteStore, StoreSchemaError
from engines.store.latency import LatencyModel
from engines.store.schema import apply_migrations

_OPENER = textwrap.dedent(
    """
    import sys, time
    from engines.store import SqliteConfig, SqliteStore, WorkflowInstance
    from engines.store.latency import LatencyModel
    path, start_at, name = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    while time.time() < start_at:
        pass  # spin so every process reaches the open at the same instant
    store = SqliteStore(SqliteConfig(path=path, latency=LatencyModel.zero(), busy_timeout=30.0))
    store.create_run(WorkflowInstance(name, "wf", name, "CREATED"))
    store.close()
    print("opened", name)
    """
)


def _versions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [int(r[0]) for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        conn.close()


class TestConcurrentOpen:
    @pytest.mark.parametrize("processes", [8])
    def test_processes_opening_a_fresh_file_at_once_all_succeed(self, tmp_path: Path, processes: int) -> None:
        """Several processes opening one fresh file together all open it; every migration is applied exactly once."""
        db = tmp_path / "fresh.db"
        start_at = time.time() + 1.5  # after every interpreter has imported the store
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPENER, str(db), str(start_at), f"run-{i}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(processes)
        ]
        results = [p.communicate(timeout=120) for p in procs]
        failures = [
            (p.returncode, err) for p, (_, err) in zip(procs, results, strict=True) if p.returncode != 0
        ]
        assert failures == []
        assert _versions(db) == [m.version for m in MIGRATIONS]
        store = SqliteStore(SqliteConfig(path=str(db), latency=LatencyModel.zero()))
        assert sorted(r.run_key for r in store.runs()) == [f"run-{i}" for i in range(processes)]
        store.close()

    def test_open_of_up_to_date_file_needs_no_write_lock(self, tmp_path: Path) -> None:
        """Opening a migrated file while another connection holds the write lock succeeds (no lock wait)."""
        db = tmp_path / "ready.db"
        SqliteStore(SqliteConfig(path=str(db), latency=LatencyModel.zero())).close()
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            store = SqliteStore(SqliteConfig(path=str(db), latency=LatencyModel.zero(), busy_timeout=0.05))
            assert store.get_run("nothing") is None
            store.close()
        finally:
            holder.execute("ROLLBACK")
            holder.close()


class _RacedConnection:
    """A connection through which a rival opener migrates the same file right before our first BEGIN:
    the interleaving that broke a version check made outside the migration transaction."""

    def __init__(self, conn: sqlite3.Connection, rival: Path) -> None:
        self._conn = conn
        self._rival = rival
        self.raced = False

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        if sql.startswith("BEGIN") and not self.raced:
            self.raced = True
            rival = sqlite3.connect(self._rival, isolation_level=None)
            apply_migrations(rival, database=str(self._rival))
            rival.close()
        return self._conn.execute(sql, params)


class TestApplyMigrations:
    def test_rival_migrating_between_check_and_begin_is_harmless(self, tmp_path: Path) -> None:
        """If another process migrates right before our transaction starts, we find the schema in place and apply nothing."""
        db = tmp_path / "raced.db"
        conn = sqlite3.connect(db, isolation_level=None)
        raced = _RacedConnection(conn, db)
        assert apply_migrations(cast(sqlite3.Connection, raced), database=str(db)) == []
        assert raced.raced
        assert _versions(db) == [m.version for m in MIGRATIONS]
        conn.close()

    def test_fresh_database_gets_every_migration_once(self) -> None:
        """A fresh database gets all migrations; applying again applies nothing."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        assert apply_migrations(conn, database=":memory:") == [m.version for m in MIGRATIONS]
        assert apply_migrations(conn, database=":memory:") == []

    def test_newer_database_is_refused(self) -> None:
        """A database whose version is newer than the code raises StoreSchemaError naming both versions."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        apply_migrations(conn, database="x.db")
        conn.execute(
            "INSERT INTO schema_version VALUES (?, 'future', CURRENT_TIMESTAMP)", (LATEST_VERSION + 1,)
        )
        with pytest.raises(StoreSchemaError, match=f"schema version {LATEST_VERSION + 1} is newer"):
            apply_migrations(conn, database="x.db")

    def test_failing_migration_leaves_nothing_half_applied(self) -> None:
        """A migration that fails rolls back every statement of the open, version rows included."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        broken = (
            *MIGRATIONS,
            Migration(LATEST_VERSION + 1, "broken", ("CREATE TABLE extra (x INTEGER)", "NOT SQL")),
        )
        with pytest.raises(sqlite3.OperationalError):
            apply_migrations(conn, database=":memory:", migrations=broken)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "extra" not in tables
        assert "workflow_instances" not in tables
        assert not conn.in_transaction
