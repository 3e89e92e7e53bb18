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
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from shadow.results.schema import DDL, SCHEMA_VERSION, TABLES

__all__ = ["ResultsError", "ResultsStore", "open_failure_hint", "overwrite_problem"]

_ARROW_TYPES: Mapping[str, pa.DataType] = {
    "VARCHAR": pa.string(), "JSON": pa.string(), "INTEGER": pa.int32(), "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"),
    "VARCHAR[]": pa.list_(pa.string()),
}


WRITER_MEMORY_LIMIT = "128MB"
"""DuckDB's buffer pool for the writer connection. DuckDB's default (80 % of RAM) keeps every block
written in memory, so a long ``shadow run``'s RSS grew with the rows stored (840 MB at 100k steps);
capped, written blocks are evicted to the file and RSS follows the largest trace instead
(``benchmarks/bench_scale.py``). Inserts are appends of Arrow batches: they do not need more."""


INSERT_CHUNK = 4096
"""Rows per Arrow table handed to DuckDB in one INSERT (several per transaction)."""


class ResultsError(Exception):
    """The results database cannot be opened, is not ours, or has an incompatible schema."""


def overwrite_problem(output: str | Path, flag: str) -> str | None:
    """Why writing an artifact to ``output`` would destroy a results database, or None when it is safe.

    ``shadow report r.duckdb -o r.duckdb`` or ``--json r.duckdb`` would replace hours of replay with a
    page of HTML or JSON; a DuckDB file carries ``DUCK`` at byte 8, so any such file is refused."""
    if str(output) == "-":
        return None
    try:
        with open(output, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return None  # missing (will be created) or unreadable (the write reports it)
    if head[8:12] != b"DUCK":
        return None
    return (f"{flag} {output} is a DuckDB database (results of 'shadow run'?); refusing to overwrite it. "
            "Choose another output file.")


def open_failure_hint(exc: BaseException) -> str:
    """What to do about a DuckDB file that would not open: a lock held by another process needs waiting,
    not a new file name (the message names the holder's PID)."""
    text = str(exc).lower()
    if "lock" in text or "different configuration" in text:  # another process / a writer in this one
        return ("another process holds the database (see the PID above): wait for it to finish or stop it, "
                "then rerun; a 'shadow run' resumes where it stopped")
    if "no such file or directory" in text:
        return "its folder does not exist: create the folder or pass another path"
    return "pass a database written by 'shadow run' ('shadow run' also takes a new file name)"


class ResultsStore:
    """The writer side of one results database file (one process writes at a time)."""

    def __init__(self, path: str | Path, *, memory_limit: str = WRITER_MEMORY_LIMIT) -> None:
        self.path = str(path)
        try:
            self.con = duckdb.connect(self.path, config={"memory_limit": memory_limit})
        except duckdb.Error as exc:
            raise ResultsError(f"{self.path}: cannot open as a DuckDB database ({exc}); "
                               + open_failure_hint(exc)) from exc
        self.con.execute(DDL)
        self.con.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                         [str(SCHEMA_VERSION)])
        version = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is None or int(version[0]) > SCHEMA_VERSION:
            raise ResultsError(f"{self.path}: schema version {version} is newer than this tool's "
                               f"{SCHEMA_VERSION}; upgrade workflow-shadow")
        self._schemas = {name: self._arrow_schema(name) for name in TABLES}

    def _arrow_schema(self, table: str) -> pa.Schema:
        cols = self.con.execute(f"DESCRIBE {table}").fetchall()
        return pa.schema([(name, _ARROW_TYPES.get(str(kind), pa.string())) for name, kind, *_ in cols])

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sessions ---------------------------------------------------------------------------------
    def start_session(self, provenance: Mapping[str, Any]) -> str:
        session_id = str(uuid.uuid4())
        row = {**provenance, "session_id": session_id, "started_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
               "status": "running", "traces_done": 0}
        self.insert({"provenance": [row]})
        return session_id

    def finish_session(self, session_id: str, status: str, traces_done: int) -> None:
        self.con.execute(
            "UPDATE provenance SET finished_at = ?, status = ?, traces_done = ? WHERE session_id = ?",
            [dt.datetime.now(dt.UTC).replace(tzinfo=None), status, traces_done, session_id])

    def existing_trace_ids(self) -> set[str]:
        return {row[0] for row in self.con.execute("SELECT trace_id FROM traces").fetchall()}

    # -- batches ----------------------------------------------------------------------------------
    def insert(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Insert rows for several tables as Arrow tables, all in one transaction (all or nothing).

        Tables are converted one at a time, in chunks of ``INSERT_CHUNK`` rows, so a flush never holds
        a second copy of the whole batch (the records' JSON is most of it) beside the rows."""
        if not any(tables.values()):
            return
        self.con.begin()
        try:
            for name, rows in tables.items():
                for start in range(0, len(rows), INSERT_CHUNK):
                    table = self.to_arrow(name, rows[start:start + INSERT_CHUNK])
                    self.con.register("_batch", table)
                    self.con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _batch")
                    self.con.unregister("_batch")
                    del table
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise

    def to_arrow(self, table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
        schema = self._schemas[table]
        columns = {f.name: [row.get(f.name) for row in rows] for f in schema}
        return pa.Table.from_pydict(columns, schema=schema)

    # -- whole-database aggregates ----------------------------------------------------------------
    def replace(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace a derived table's content in one transaction."""
        arrow = self.to_arrow(table, list(rows))
        self.con.begin()
        try:
            self.con.execute(f"DELETE FROM {table}")
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


def dumps(value: Any) -> str:
    """Canonical JSON text for JSON columns."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
