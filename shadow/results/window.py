"""``--since T`` for ``shadow gate`` and ``shadow report``: judge the traces production captured at or after T.

The window is by **capture time** (``traces.captured_at``, the trace's ``metadata.captured_at``: when
production finished the run), not by replay time: a verdict on "traffic since the deploy at T" must not
change because the shadow run fell behind or was restarted. A trace without ``captured_at`` is outside
every window.

The judged identity's rows of the traces in the window (every table a trial writes: traces, runs, steps,
records, divergences, fidelity, fault_trials) and its sessions are copied into a scratch results database, whose aggregates are then
recomputed over the window alone (noise classification against the window's own A/A replays, waivers,
``traces.unexplained``, latency), with the registry and noise thresholds of the identity's latest session.
Gate and report then read that copy exactly as they read a whole database: a window is judged as if it
were all there is. Quarantined input lines are not copied (they are lines, not captured traces).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow as pa

from results.errors import ResultsError
from shadow.batches import TRIAL_TABLES
from shadow.noise import NoiseConfig, Registry, RegistryEntry
from shadow.results.aggregate import refresh_aggregates
from shadow.results.reader import judged_identity, open_results
from shadow.results.store import ResultsStore

__all__ = ["WINDOW_TABLES", "Window", "parse_since", "window_copy"]

WINDOW_TABLES = TRIAL_TABLES
"""The per-trace tables a window copies: those a trial writes (``shadow.batches.TRIAL_TABLES``)."""

_BATCH_ROWS = 20_000


def parse_since(text: str) -> dt.datetime:
    """``--since``: ISO-8601 (UTC when it names no zone) or epoch seconds; an aware UTC datetime."""
    try:
        return dt.datetime.fromtimestamp(float(text), dt.UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither an ISO-8601 time like 2026-12-03T12:00:00Z nor epoch seconds"
        ) from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Window:
    """What a window copy holds: its path, the traces in it and in the whole identity."""

    def __init__(self, path: Path, since: dt.datetime, traces: int, of: int) -> None:
        self.path = path
        self.since = since
        self.traces = traces
        self.of = of

    def describe(self) -> str:
        return (
            f"traces captured since {self.since.isoformat().replace('+00:00', 'Z')}: {self.traces} of the "
            f"identity's {self.of}"
        )


def window_copy(database: str | Path, identity: str | None, since: dt.datetime, folder: str | Path) -> Window:
    """Copy the judged identity's traces captured at or after ``since`` into ``folder``/window.duckdb and
    recompute its aggregates; :class:`ResultsError` when the database cannot have a window."""
    judged = judged_identity(database, identity)
    if judged is None:
        raise ResultsError(
            f"{database}: --since needs a database whose sessions record their identity "
            "(written by a workflow-shadow with identities); rerun 'shadow run' into a new --db"
        )
    path = Path(folder) / "window.duckdb"
    since_naive = since.astimezone(dt.UTC).replace(tzinfo=None)
    src = open_results(database, judged.id)
    try:
        columns = {
            r[0]
            for r in src.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'traces'"
            ).fetchall()
        }
        if "captured_at" not in columns:
            raise ResultsError(
                f"{database}: its traces table has no captured_at (written before schema 3); "
                "--since judges by capture time: rerun 'shadow run' with this version"
            )
        present = {r[0] for r in src.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        ((inside, total),) = src.execute(
            "SELECT count(*) FILTER (WHERE captured_at >= ?), count(*) FROM traces", [since_naive]
        ).fetchall()
        store = ResultsStore(path)
        try:
            in_window = "trace_id IN (SELECT trace_id FROM traces WHERE captured_at >= ?)"
            for table in (t for t in WINDOW_TABLES if t in present):
                _copy(src, store, table, f"SELECT * FROM {table} WHERE {in_window}", [since_naive])
            _copy(src, store, "provenance", "SELECT * FROM provenance", [])
            store.identity = judged.id
            registry, noise = _classification(src)
            refresh_aggregates(store, registry, noise)
        finally:
            store.close()
    except duckdb.Error as exc:
        raise ResultsError(f"{database}: cannot copy the window since {since.isoformat()} ({exc})") from exc
    finally:
        src.close()
    return Window(path, since, int(inside), int(total))


def _copy(
    src: duckdb.DuckDBPyConnection, store: ResultsStore, table: str, sql: str, params: list[object]
) -> None:
    reader = src.sql(sql, params=params or None).to_arrow_reader(_BATCH_ROWS)
    for batch in reader:
        store.insert({}, {table: [pa.Table.from_batches([batch])]})


def _classification(src: duckdb.DuckDBPyConnection) -> tuple[Registry, NoiseConfig]:
    """The registry and noise thresholds of the identity's latest session (what ``shadow run`` last used)."""
    row = src.execute("SELECT config FROM provenance ORDER BY started_at DESC LIMIT 1").fetchone()
    try:
        config = json.loads(row[0]) if row and row[0] else {}
    except json.JSONDecodeError:
        config = {}
    noise = NoiseConfig(**config["noise"]) if isinstance(config.get("noise"), dict) else NoiseConfig()
    entries = tuple(
        RegistryEntry(
            id=str(e["id"]),
            pattern=str(e.get("pattern") or ""),
            owner=str(e.get("owner") or ""),
            reason=str(e.get("reason") or ""),
            expires=dt.date.fromisoformat(str(e["expires"])),
            cause=str(e.get("cause") or ""),
        )
        for e in config.get("registry") or []
        if isinstance(e, dict) and "id" in e and "expires" in e
    )
    return Registry(entries), noise
