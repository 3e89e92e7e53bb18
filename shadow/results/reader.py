"""Read the results database: the headline ``shadow summary`` prints, and tables as Arrow.

Readers open the file read-only, so a report or gate can run while nothing writes, and an
unreadable or foreign file is a :class:`~shadow.results.store.ResultsError` that says what to do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from results.connection import connect
from results.errors import ResultsError, open_failure_hint
from results.identity import Identity, resolve, scope
from results.schema import TABLES

__all__ = [
    "EngineLatency",
    "Headline",
    "RunProgress",
    "judged_identity",
    "open_results",
    "read_headline",
    "read_table",
    "run_progress",
]

STALE_AFTER = dt.timedelta(minutes=10)
"""A ``running`` session without a flush for this long is taken for killed, not still going."""


@dataclass(frozen=True, slots=True)
class RunProgress:
    """The latest session of the identity read, when it has not finished."""

    session_id: str
    traces_so_far: int
    last_flush: dt.datetime | None
    going: bool  # False: 'running' but silent for STALE_AFTER (killed), or interrupted / failed
    status: str

    def describe(self) -> str:
        if self.going:
            ago = (
                ""
                if self.last_flush is None
                else f", last batch stored {(dt.datetime.now(dt.UTC) - self.last_flush).total_seconds():.0f} s ago"
            )
            return f"run still going ({self.traces_so_far} traces so far{ago})"
        if self.status == "running":
            return (
                f"the last run never finished (no batch stored for over {STALE_AFTER.seconds // 60} minutes: "
                f"killed?); {self.traces_so_far} traces stored"
            )
        return f"the last run is {self.status}; {self.traces_so_far} traces stored"


def run_progress(con: duckdb.DuckDBPyConnection, *, now: dt.datetime | None = None) -> RunProgress | None:
    """None when the latest session (of the identity ``con`` is scoped to) finished, else where it stands."""
    try:
        row = con.execute(
            "SELECT session_id, status, heartbeat_at, started_at FROM provenance "
            "ORDER BY started_at DESC LIMIT 1"
        ).fetchall()
    except duckdb.Error:
        try:  # a file written before heartbeats
            row = con.execute(
                "SELECT session_id, status, NULL, started_at FROM provenance ORDER BY started_at DESC LIMIT 1"
            ).fetchall()
        except duckdb.Error:
            return None
    if not row or row[0][1] in (None, "finished"):
        return None
    session_id, status, heartbeat, started = row[0]
    last = heartbeat or started
    last = last.replace(tzinfo=dt.UTC) if last is not None else None
    now = now or dt.datetime.now(dt.UTC)
    going = status == "running" and last is not None and now - last < STALE_AFTER
    count = con.execute("SELECT count(*) FROM traces").fetchall()[0][0]
    return RunProgress(
        str(session_id),
        int(count),
        heartbeat.replace(tzinfo=dt.UTC) if heartbeat else None,
        going,
        str(status),
    )


def open_results(
    path: str | Path, identity: str | None = None, *, scoped: bool = True
) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a results database written by ``shadow run``.

    With ``scoped`` (the default) it shows one identity's rows only: ``identity`` (an id or a unique
    prefix) or the latest (see :mod:`results.identity`); :func:`judged_identity` says which."""
    if not Path(path).is_file():
        raise ResultsError(f"{path}: no such results database; run 'shadow run CORPUS --db {path}' first")
    try:
        con = connect(path, read_only=True)
        names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    except duckdb.Error as exc:
        raise ResultsError(
            f"{path}: not a readable DuckDB database ({exc}); {open_failure_hint(exc)}"
        ) from exc
    missing = {"meta", "traces", "divergences"} - names
    if missing:
        con.close()
        raise ResultsError(
            f"{path}: not a shadow results database (missing tables {', '.join(sorted(missing))})"
        )
    if scoped:
        try:
            chosen = resolve(con, identity, str(path))
            if chosen is not None:
                scope(con, chosen)
        except BaseException:
            con.close()
            raise
    return con


def judged_identity(path: str | Path, identity: str | None = None) -> Identity | None:
    """The identity a reader of ``path`` sees: ``identity`` (id or prefix) or the latest; None when the
    file records none (written before identities)."""
    con = open_results(path, scoped=False)
    try:
        return resolve(con, identity, str(path))
    finally:
        con.close()


def read_table(path: str | Path, table: str, identity: str | None = None) -> pa.Table:
    """One table as Arrow (for pandas: ``.to_pandas()``): the rows of ``identity`` (id or unique prefix), by
    default of the latest session's identity, like every reader."""
    if table not in TABLES:
        raise ResultsError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    con = open_results(path, identity)
    try:
        table_data = con.execute(f"SELECT * FROM {table}").to_arrow_table()
        assert table_data is not None  # a SELECT always has a result set
        return table_data
    finally:
        con.close()


@dataclass(frozen=True, slots=True)
class EngineLatency:
    engine: str
    p50: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class Headline:
    """What ``shadow summary`` prints. ``start_overhead_ratio`` is baseline p50 / candidate p50."""

    traces: int
    traces_with_error: int
    runs: int
    stuck_runs: int
    divergences_raw: int
    divergences_noise: int
    divergences_unexplained: int
    divergences_waived: int
    signatures_unexplained: int
    causes_unexplained: int
    quarantined: int
    start_overhead: tuple[EngineLatency, ...]
    start_overhead_ratio: float | None
    last_session_status: str | None
    identity: str | None = None  # the identity these numbers are about (None: the file records none)
    identity_description: str | None = None
    # "run still going (N traces so far, ...)" while a 'shadow run' of this identity goes on, else None.
    run_in_progress: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def read_headline(path: str | Path, identity: str | None = None) -> Headline:
    """The headline of one identity: ``identity`` (id or unique prefix) or the latest."""
    chosen = judged_identity(path, identity)
    con = open_results(path, chosen.id if chosen else None)
    try:
        lat = con.execute(
            "SELECT engine, p50, p99 FROM latency WHERE metric = 'start_overhead' "
            "ORDER BY CASE engine WHEN 'baseline' THEN 0 WHEN 'candidate' THEN 1 ELSE 2 END"
        ).fetchall()
        by_engine = {e: p50 for e, p50, _ in lat}
        base, cand = by_engine.get("baseline"), by_engine.get("candidate")
        return Headline(
            traces=_one(con, "SELECT count(*) FROM traces"),
            traces_with_error=_one(con, "SELECT count(*) FROM traces WHERE error IS NOT NULL"),
            runs=_one(con, "SELECT count(*) FROM runs WHERE engine = 'baseline'"),
            stuck_runs=_one(con, "SELECT count(*) FROM runs WHERE engine = 'candidate' AND stuck"),
            divergences_raw=_one(con, "SELECT count(*) FROM divergences WHERE comparison = 'candidate'"),
            divergences_noise=_one(con, "SELECT count(*) FROM divergences WHERE comparison = 'aa'"),
            divergences_unexplained=_one(con, "SELECT coalesce(sum(unexplained), 0) FROM traces"),
            divergences_waived=_one(
                con,
                "SELECT count(*) FROM divergences WHERE comparison = 'candidate' AND waived_by IS NOT NULL",
            ),
            signatures_unexplained=_one(con, "SELECT count(*) FROM signatures WHERE status = 'unexplained'"),
            causes_unexplained=_one(con, "SELECT count(*) FROM causes WHERE status = 'unexplained'")
            if _has_table(con, "causes")
            else 0,
            quarantined=_one(con, "SELECT count(*) FROM quarantine"),
            start_overhead=tuple(EngineLatency(e, p50, p99) for e, p50, p99 in lat),
            start_overhead_ratio=(base / cand) if base is not None and cand else None,
            last_session_status=_one(con, "SELECT status FROM provenance ORDER BY started_at DESC LIMIT 1"),
            identity=chosen.id if chosen else None,
            identity_description=chosen.describe() if chosen else None,
            run_in_progress=progress.describe()
            if (progress := run_progress(con)) and progress.going
            else None,
        )
    except duckdb.Error as exc:
        raise ResultsError(f"{path}: cannot read the results ({exc})") from exc
    finally:
        con.close()


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])
