"""Write the results database: Arrow batches in one DuckDB transaction each, then session aggregates.

Crash safety is by construction: a trace's rows (traces, runs, steps, records, divergences) are only
ever inserted together with the rest of their batch in ONE transaction, and a rerun skips trace ids
already in ``traces``. A SIGKILL therefore loses at most the batch in flight, which the rerun redoes,
and never leaves a half-written trace. Aggregates (signatures, latency, waivers, per-trace
``unexplained``) are recomputed over the whole database at the end of every session, so they are
correct after a resume too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from results.connection import LOCK_WAIT, connect
from results.errors import ResultsError, open_failure_hint
from results.rows import check_columns
from results.schema import ADDED_COLUMNS, DDL, FORMAT_NAME, IDENTITY_TABLES, SCHEMA_VERSION, TABLES, dumps

__all__ = ["LOCK_WAIT", "ResultsStore", "arrow_type", "check_ours", "connect", "dumps"]

_ARROW_TYPES: Mapping[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "VARCHAR[]": pa.list_(pa.string()),
}


def arrow_type(duckdb_type: str) -> pa.DataType:
    """The Arrow type a results column of this DuckDB type is written as."""
    return _ARROW_TYPES.get(duckdb_type, pa.string())


WRITER_MEMORY_LIMIT: str | None = None
"""DuckDB's buffer pool for the writer connection: None keeps DuckDB's default (80 % of RAM).

Not capped on purpose. A cap of 128 MB kept 100k steps under 600 MB, but at ~370,000 step rows a
commit's automatic checkpoint needed more than the cap ("failed to pin block ... 121.9/122.0 MiB
used") and a failed checkpoint invalidates the database (DuckDB treats it as fatal, and may lose
committed rows). Losing results is worse than using memory; ``SHADOW_DUCKDB_MEMORY_LIMIT`` sets a cap
for a user who measured that their runs fit one (benchmarks/NOTES.md, issue 13)."""


INSERT_CHUNK = 4096
"""Rows per Arrow table handed to DuckDB in one INSERT (several per transaction)."""


class ResultsStore:
    """The writer side of one results database file (one process writes at a time)."""

    def __init__(self, path: str | Path, *, memory_limit: str | None = WRITER_MEMORY_LIMIT) -> None:
        self.path = str(path)
        # The identity whose rows this writer adds and whose aggregates it recomputes (start_session sets it).
        self.identity: str | None = None
        check_ours(self.path)  # before anything is written: a file we do not own is left as it was
        limit = memory_limit or os.environ.get("SHADOW_DUCKDB_MEMORY_LIMIT") or None
        self._config = {"memory_limit": limit} if limit else {}
        self._con: duckdb.DuckDBPyConnection | None = None
        self.con = self._open()
        version = self._version()
        if version is not None and version > SCHEMA_VERSION:
            self.con.close()
            raise ResultsError(
                f"{self.path}: schema version {version} is newer than this tool's "
                f"{SCHEMA_VERSION}; upgrade workflow-shadow"
            )
        if version is not None and version < 2:
            _migrate_v1(self.con)
        self.con.execute(DDL)
        add_columns(self.con)
        self.con.execute(
            "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO UPDATE SET value = excluded.value",
            [str(SCHEMA_VERSION)],
        )
        self.con.execute("INSERT INTO meta VALUES ('format', ?) ON CONFLICT DO NOTHING", [FORMAT_NAME])
        self._schemas = {name: self._arrow_schema(name) for name in TABLES}

    WRITER_LOCK_WAIT = 300.0
    """A writer waits longer than a reader: a report being rendered holds the file for its duration, and a
    run must not fail because someone looked at its results."""

    def _open(self) -> duckdb.DuckDBPyConnection:
        try:
            return connect(
                self.path,
                read_only=False,
                config=self._config,
                wait=max(self.WRITER_LOCK_WAIT, float(os.environ.get("SHADOW_LOCK_WAIT", 0) or 0)),
            )
        except duckdb.Error as exc:
            raise ResultsError(
                f"{self.path}: cannot open as a DuckDB database ({exc}); " + open_failure_hint(exc)
            ) from exc

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The writer's connection, (re)opened on use after :meth:`release`."""
        if self._con is None:
            self._con = self._open()
        return self._con

    @con.setter
    def con(self, value: duckdb.DuckDBPyConnection) -> None:
        self._con = value

    def release(self) -> None:
        """Close the connection until the next use: between flushes the file is free, so ``summary``,
        ``report`` and ``gate`` can read what has landed while the run goes on (closing checkpoints the
        batch into the file)."""
        if self._con is not None and self.path != ":memory:":
            self._con.close()
            self._con = None

    def _version(self) -> int | None:
        """The file's schema version, None for a new file."""
        try:
            row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except duckdb.CatalogException:
            return None
        try:
            return int(row[0]) if row else None
        except ValueError:
            return None

    def _arrow_schema(self, table: str) -> pa.Schema:
        cols = self.con.execute(f"DESCRIBE {table}").fetchall()
        return pa.schema([(name, arrow_type(str(kind))) for name, kind, *_ in cols])

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sessions ---------------------------------------------------------------------------------
    def start_session(self, provenance: Mapping[str, Any]) -> str:
        """Record a new session; its rows (and this writer's aggregates) carry ``provenance['identity']``."""
        self.identity = provenance.get("identity")
        session_id = str(uuid.uuid4())
        row = {
            **provenance,
            "session_id": session_id,
            "started_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            "status": "running",
            "traces_done": 0,
        }
        self.insert({"provenance": [row]})
        return session_id

    def heartbeat(
        self, session_id: str, traces_done: int, follow_position: Mapping[str, Any] | None = None
    ) -> None:
        """A running session's progress, after each flush: readers say "still going (N traces so far)"; a
        ``shadow run --follow`` session also records how far it has read its source."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if follow_position is None:
            self.con.execute(
                "UPDATE provenance SET heartbeat_at = ?, traces_done = ? WHERE session_id = ?",
                [now, traces_done, session_id],
            )
        else:
            self.con.execute(
                "UPDATE provenance SET heartbeat_at = ?, traces_done = ?, follow_position = ? "
                "WHERE session_id = ?",
                [now, traces_done, dumps(dict(follow_position)), session_id],
            )

    def follow_position(self) -> dict[str, Any] | None:
        """The newest ``follow_position`` a session of this writer's identity recorded (None: none did)."""
        row = self.con.execute(
            "SELECT follow_position FROM provenance WHERE identity = ? AND follow_position IS NOT NULL "
            "ORDER BY coalesce(heartbeat_at, started_at) DESC, started_at DESC LIMIT 1",
            [self.identity or ""],
        ).fetchone()
        if row is None:
            return None
        value = json.loads(row[0]) if isinstance(row[0], str) else row[0]
        return value if isinstance(value, dict) else None

    def finish_session(self, session_id: str, status: str, traces_done: int) -> None:
        self.con.execute(
            "UPDATE provenance SET finished_at = ?, status = ?, traces_done = ? WHERE session_id = ?",
            [dt.datetime.now(dt.UTC).replace(tzinfo=None), status, traces_done, session_id],
        )

    def existing_trace_ids(self) -> set[str]:
        """Trace ids stored for this writer's identity (a rerun of the same identity skips them)."""
        return {
            row[0]
            for row in self.con.execute(
                "SELECT trace_id FROM traces WHERE identity = ?", [self.identity or ""]
            ).fetchall()
        }

    def latest_identity(self) -> tuple[str, dict[str, Any], str] | None:
        """(identity, its parts, when its last session started) of the most recent session, if any."""
        row = self.con.execute(
            "SELECT identity, identity_parts, CAST(started_at AS VARCHAR) FROM provenance "
            "WHERE identity IS NOT NULL AND identity <> '' ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        try:
            parts = json.loads(row[1]) if row[1] else {}
        except json.JSONDecodeError:
            parts = {}
        return str(row[0]), parts if isinstance(parts, dict) else {}, str(row[2] or "")

    # -- batches ----------------------------------------------------------------------------------
    def insert(
        self,
        tables: Mapping[str, Sequence[Mapping[str, Any]]],
        arrow: Mapping[str, Sequence[pa.Table]] | None = None,
    ) -> None:
        """Insert rows for several tables as Arrow tables, all in one transaction (all or nothing).

        Tables are converted one at a time, in chunks of ``INSERT_CHUNK`` rows, so a flush never holds
        a second copy of the whole batch (the records' JSON is most of it) beside the rows. ``arrow``
        adds tables that are Arrow already (batches from remote workers, ``shadow.batches``) to the same
        transaction; a null ``identity`` in them is this writer's identity."""
        arrow = {name: [t for t in parts if t.num_rows] for name, parts in (arrow or {}).items()}
        if not any(tables.values()) and not any(arrow.values()):
            return
        self.con.begin()
        try:
            for name, rows in tables.items():
                for start in range(0, len(rows), INSERT_CHUNK):
                    table = self.to_arrow(name, rows[start : start + INSERT_CHUNK])
                    self.con.register("_batch", table)
                    self.con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _batch")
                    self.con.unregister("_batch")
                    del table
            for name, parts in arrow.items():
                for part in parts:
                    self.con.register("_batch", self._with_identity(part))
                    self.con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _batch")
                    self.con.unregister("_batch")
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise

    def to_arrow(self, table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
        """Rows as an Arrow table; the ``identity`` column is this writer's identity unless a row says."""
        schema = self._schemas[table]
        check_columns(table, rows, schema.names)
        columns = {f.name: [row.get(f.name) for row in rows] for f in schema}
        if "identity" in columns:  # '' when unknown (a store used without a session)
            columns["identity"] = [row.get("identity") or self.identity or "" for row in rows]
        return pa.Table.from_pydict(columns, schema=schema)

    def _with_identity(self, table: pa.Table) -> pa.Table:
        """``table`` with its null ``identity`` cells set to this writer's identity ('' when unknown)."""
        if "identity" not in table.column_names:
            return table
        column = table.column("identity")
        if column.null_count == 0:
            return table
        mine = self.identity or ""
        filled = pa.array([mine if value is None else value for value in column.to_pylist()], pa.string())
        return table.set_column(table.column_names.index("identity"), "identity", filled)

    # -- whole-database aggregates ----------------------------------------------------------------
    def replace(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace a derived table's content for this writer's identity in one transaction."""
        arrow = self.to_arrow(table, list(rows))
        self.con.begin()
        try:
            if self.identity is None:
                self.con.execute(f"DELETE FROM {table}")
            else:
                self.con.execute(f"DELETE FROM {table} WHERE identity = ?", [self.identity])
            if arrow.num_rows:
                self.con.register("_batch", arrow)
                self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _batch")
                self.con.unregister("_batch")
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
        ).fetchall()
    }


def check_ours(path: str | Path) -> None:
    """Refuse (ResultsError) a file that is not a results database of ours and not empty, before writing.

    Ours: a DuckDB file whose ``meta`` table says ``format = workflow-shadow-results`` (or, written before
    the mark existed, holds ``meta.schema_version`` beside ``provenance`` and ``traces``). Empty: a missing
    file, a zero-byte file (``mktemp``) or a DuckDB database without tables; those are initialized."""
    target = Path(path)
    if str(path) == ":memory:" or not target.exists():
        return
    if target.is_dir():
        raise ResultsError(
            f"{path}: is a folder, not a results database; pass --db a file name (a new one is created)"
        )
    if not target.is_file():
        return  # a device or FIFO: DuckDB says what it thinks of it
    try:
        size = target.stat().st_size
        with target.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror or exc}); check its permissions") from exc
    if size == 0:
        target.unlink()  # an empty placeholder (mktemp): DuckDB cannot open a zero-byte file, nothing is lost
        return
    if head[8:12] != b"DUCK":
        raise ResultsError(
            f"{path}: not a DuckDB database (a {size:,}-byte file of another kind); refusing to "
            "write into it. Pass --db a new file name, or a results database written by 'shadow run'."
        )
    try:
        con = connect(target, read_only=True)
    except duckdb.Error as exc:
        raise ResultsError(
            f"{path}: cannot open as a DuckDB database ({exc}); {open_failure_hint(exc)}"
        ) from exc
    try:
        tables = _tables(con)
        meta: dict[str, str] = {}
        if "meta" in tables:
            meta = {str(r[0]): str(r[1]) for r in con.execute("SELECT * FROM meta").fetchall() if len(r) >= 2}
    except duckdb.Error:
        tables, meta = {"?"}, {}
    finally:
        con.close()
    if not tables:
        return
    if meta.get("format") == FORMAT_NAME:
        return
    if "format" not in meta and "schema_version" in meta and {"provenance", "traces"} <= tables:
        return  # written by workflow-shadow before the format mark (schema 1)
    listed = ", ".join(sorted(tables)[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    raise ResultsError(
        f"{path}: a DuckDB database not written by workflow-shadow (tables: {listed}); refusing to "
        "add tables to it. Pass --db a new file name (it is created) or a results database written "
        "by 'shadow run'."
    )


def legacy_identity(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """One identity (id, parts JSON) for all sessions of a schema-1 file: they recorded no identity, so
    nothing tells whether they replayed the same candidate; the file is one unverified identity."""
    rows = con.execute(
        "SELECT DISTINCT coalesce(baseline_engine, ''), coalesce(candidate_engine, ''), coalesce(config_hash, ''), "
        "coalesce(corpus_hash, ''), coalesce(CAST(seeds AS VARCHAR), '') FROM provenance ORDER BY ALL"
    ).fetchall()
    latest = con.execute(
        "SELECT baseline_engine, candidate_engine FROM provenance ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    digest = hashlib.sha256(dumps([list(r) for r in rows]).encode()).hexdigest()
    parts = {
        "legacy_v1": True,
        "baseline": {"engine": latest[0] if latest else None},
        "candidate": {"engine": latest[1] if latest else None},
        "sessions": len(rows),
    }
    return "v1-" + digest[:61], dumps(parts)


def add_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 2 -> 3: the columns added since (``ADDED_COLUMNS``), on tables that exist."""
    tables = _tables(con)
    for table, column, kind in ADDED_COLUMNS:
        if table in tables:
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")


def _migrate_v1(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 1 -> 2 in one transaction: every row gets the file's one (legacy) identity; the tables keyed
    by trace or signature alone are rebuilt with the identity in their key. Nothing stored is dropped."""
    tables = _tables(con)
    con.begin()
    try:
        if "provenance" in tables:
            for column, kind in (("identity", "VARCHAR"), ("identity_parts", "JSON"), ("exact", "BOOLEAN")):
                con.execute(f"ALTER TABLE provenance ADD COLUMN IF NOT EXISTS {column} {kind}")
            identity, parts = legacy_identity(con)
            con.execute(
                "UPDATE provenance SET identity = ?, identity_parts = ? WHERE identity IS NULL",
                [identity, parts],
            )
        else:
            identity = ""
        for table in IDENTITY_TABLES:
            if table not in tables or table == "provenance":
                continue
            if table in ("traces", "signatures"):
                con.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
                con.execute(TABLES[table])
                con.execute(
                    f"INSERT INTO {table} BY NAME SELECT *, ? AS identity FROM {table}_v1", [identity]
                )
                con.execute(f"DROP TABLE {table}_v1")
            else:
                con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS identity VARCHAR")
                con.execute(f"UPDATE {table} SET identity = ? WHERE identity IS NULL", [identity])
        con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        con.commit()
    except BaseException:
        con.rollback()
        raise
