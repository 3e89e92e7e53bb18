"""The SQLite connection under :class:`~engines.store.sqlite.SqliteStore`: opening, pragmas,
transactions, round-trip accounting, simulated latency, fault injection and error translation.

Every statement goes through ``_read`` / ``_write`` / ``_write_many`` so it is counted once, charged
one latency draw, offered to the fault hook, and any ``sqlite3`` error leaves as a typed StoreError.
``sqlite3``'s statement cache plays the role of prepared statements: the SQL strings are constants.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from engines.store._ops import SqlBackend
from engines.store.errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIntegrityError,
    StoreLockedError,
    StoreSchemaError,
)
from engines.store.faults import FaultHook
from engines.store.latency import LatencyModel
from engines.store.schema import LATEST_VERSION, _read_version, apply_migrations, check_store_file

__all__ = ["SqliteConfig"]

MEMORY = ":memory:"


@dataclass(frozen=True, slots=True)
class SqliteConfig:
    """How to open the database.

    ``path`` ``":memory:"`` (replay) or a file (live; WAL journal). ``synchronous`` is ``FULL``
    (durable at every commit, ~5 k commits/s here) or ``NORMAL`` (durable at checkpoints, ~50 k/s).
    ``busy_timeout`` is how long a write waits for another connection's lock before StoreLockedError.
    ``latency`` and ``seed`` drive the simulated round-trip latency (use ``LatencyModel.zero()`` live)."""

    path: str = MEMORY
    synchronous: str = "NORMAL"
    busy_timeout: float = 5.0
    latency: LatencyModel = field(default_factory=LatencyModel)
    seed: int = 0
    statement_cache: int = 256
    # Open an existing store without ever writing to it (capture): no WAL switch, no migration, no marks.
    read_only: bool = False

    def __post_init__(self) -> None:
        if self.synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise StoreError(
                f"synchronous={self.synchronous!r} is not one of OFF, NORMAL, FULL, EXTRA", database=self.path
            )


def translate(error: sqlite3.Error, database: str) -> StoreError:
    """The typed error for a raw sqlite3 error, with what to do about it."""
    text = str(error)
    lowered = text.lower()
    if isinstance(error, sqlite3.IntegrityError):
        return StoreIntegrityError(f"constraint violated: {text}", database=database)
    if "locked" in lowered or "busy" in lowered:
        return StoreLockedError(
            f"{text}: another connection holds the write lock; retry, or raise busy_timeout",
            database=database,
        )
    if "full" in lowered:
        return StoreFullError(
            f"{text}: the transaction was rolled back; free disk space (or raise the size limit) and retry",
            database=database,
        )
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return StoreCorruptError(
            f"{text}: {database} is not a usable SQLite database; it was not modified. Move it aside and "
            "let the store create a fresh one, or restore it from a backup",
            database=database,
        )
    return StoreError(f"{type(error).__name__}: {text}", database=database)


class SqliteBase(SqlBackend):
    """Connection, transactions and accounting. Single-threaded: one store per loop thread."""

    def __init__(self, config: SqliteConfig | None = None, *, faults: FaultHook | None = None) -> None:
        config = config if config is not None else SqliteConfig()
        self._config = config
        self._init_accounting(config.path, config.latency.sampler(config.seed), faults)
        if config.path != MEMORY:
            # Before anything is written: a file that is not a store of ours is left exactly as it was.
            check_store_file(config.path, database=self._database)
        try:
            self._conn = sqlite3.connect(
                config.path,
                isolation_level=None,
                timeout=config.busy_timeout,
                cached_statements=config.statement_cache,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise translate(exc, self._database) from exc
        try:
            if config.read_only:
                # query_only rather than a mode=ro connection: a WAL store is read through its -wal/-shm as
                # usual, and no statement of this connection can change the database.
                self._conn.execute("PRAGMA query_only=1")
                self._check_readable_schema()
                return
            if config.path != MEMORY:
                self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
            self._conn.execute(f"PRAGMA synchronous={config.synchronous.upper()}")
            apply_migrations(self._conn, database=self._database)
        except sqlite3.Error as exc:
            self._conn.close()
            raise translate(exc, self._database) from exc
        except StoreError:
            self._conn.close()
            raise

    def _check_readable_schema(self) -> None:
        """Read-only: the store must already hold this code's schema (nothing may be migrated)."""
        try:
            have = _read_version(self._conn) if self._has_version_table() else 0
        except sqlite3.Error as exc:
            self._conn.close()
            raise translate(exc, self._database) from exc
        if have != LATEST_VERSION:
            self._conn.close()
            raise StoreSchemaError(
                f"store schema version found {have}, expected {LATEST_VERSION}: "
                + (
                    "an empty or foreign file, not a store a live session wrote"
                    if have == 0
                    else "open it once with a writable store of this version to migrate it"
                    if have < LATEST_VERSION
                    else "upgrade workflow-shadow"
                ),
                database=self._database,
            )

    def _has_version_table(self) -> bool:
        return bool(
            self._conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()[0]
        )

    # ---- statements -------------------------------------------------------------------------

    def _read(self, operation: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            self._round_trip("read", operation)
            self._reads += 1
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, self._database) from exc

    def _write(self, operation: str, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            self._round_trip("write", operation)
            self._writes += 1
            return self._conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise translate(exc, self._database) from exc

    def _write_returning(self, operation: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            self._round_trip("write", operation)
            self._writes += 1
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, self._database) from exc

    def _write_many(self, operation: str, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One batched statement: one round trip, as a pipelined batch would be on a server."""
        try:
            self._round_trip("write", operation)
            self._writes += 1
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise translate(exc, self._database) from exc

    # ---- transactions -----------------------------------------------------------------------

    _driver_errors = (sqlite3.Error,)

    def _begin_sql(self, write: bool) -> str:
        """``write=True`` takes the write lock at BEGIN (``BEGIN IMMEDIATE``): a transaction that reads and
        then writes cannot fail halfway on a lock upgrade. Read-only operations use ``write=False`` (a
        deferred BEGIN), so in WAL mode they never wait for writers on other connections."""
        return "BEGIN IMMEDIATE" if write and not self._config.read_only else "BEGIN"

    def _store_error(self, exc: Exception) -> StoreError:
        return translate(cast(sqlite3.Error, exc), self._database)

    def _control(self, sql: str) -> None:
        self._conn.execute(sql)

    def _rollback(self) -> None:
        self._rollbacks += 1
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
