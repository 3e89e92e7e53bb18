"""Capture: export finished runs from a legacy store as shadow-trace/1 traces.

This is how production traces are made: the legacy engine ran the workflows; its store holds the
definitions (live mode writes them, see :mod:`engines.legacy.live`), every run with its trigger time
and run params, and every step attempt with what its job did (outcome, outputs and the job's own
duration, written by the cycle that noticed the job's end). Each workflow becomes one trace whose
runs are the finished runs in trigger order; each attempt whose runtime ran becomes a
:class:`~corpora.model.RecordedAttempt`. Attempts that never reached a runtime (UNSATISFIED,
stopped before starting) are not recorded: a replay decides them itself. What the legacy engine
observed (final statuses, times) goes into ``Run.observed``, so a replay can be checked against it.

Reading is read-only: the store is opened, read, closed; nothing is written. Stores are named by URL
(:mod:`engines.store.url`): a SQLite file (``sqlite:///path`` or a plain path) or ``postgresql://...``.

:class:`LegacyFeed` follows a store that is still being written (``shadow capture --follow``): each
poll returns the root runs that reached a terminal status since the cursor, one trace per run, each
with the cursor to persist once that trace is written (see the class for the cursor's guarantee).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from corpora.codec import decode
from corpora.model import (
    JsonValue,
    ObservedRun,
    ObservedStep,
    Outcome,
    RecordedAttempt,
    Run,
    Trace,
    TraceMetadata,
)
from engines.api import EngineError
from engines.core.statuses import TERMINAL_WORKFLOW_STATUSES
from engines.legacy.live import DEFINITIONS
from engines.legacy.rows import RowCodec
from engines.store import Store, WorkflowInstance
from engines.store.url import open_store, parse_store_url

__all__ = ["CURSOR_FORMAT", "DEFAULT_SETTLE_SECONDS", "CaptureError", "LegacyFeed", "capture_traces"]

CURSOR_FORMAT = "legacy-capture-cursor/1"
DEFAULT_SETTLE_SECONDS = 60.0


class CaptureError(EngineError):
    """The store cannot be captured (no definitions, not a legacy store)."""


def _open_for_capture(store_url: str | Path) -> Store:
    url = str(store_url)
    parsed = parse_store_url(url)
    if parsed.kind == "sqlite":
        path = Path(parsed.target)
        if not path.exists():
            raise CaptureError(f"no legacy store at {path}; pass the SQLite file a live legacy session wrote")
        if not path.is_file():
            raise CaptureError(f"{path} is not a file; pass the SQLite file a live legacy session wrote")
    # Read-only: capture never writes to the store (no WAL switch, no migration, no marks); a foreign file
    # is refused from its header before it is opened for anything else (StoreCorruptError, StoreSchemaError).
    return open_store(url, read_only=True)


def _definitions(store: Store) -> dict[str, Trace]:
    return {
        r.workflow_id: decode(Trace, json.loads(r.state))
        for r in store.runs(statuses=["DEFINITION"])
        if r.parent_key == DEFINITIONS
    }


def _capture_run(
    store: Store, codec: RowCodec, root: WorkflowInstance, include_unfinished: bool
) -> Run | None:
    """The run at ``root`` as a trace run, or None (gone, or unfinished and not asked for)."""
    loaded_run = store.load_run(root.run_key)
    loaded = codec.load(store, root.run_key)
    if loaded is None or loaded_run is None:
        return None
    state = loaded.state
    if not state.status.is_terminal and not include_unfinished:
        return None
    attempts = []
    observed: dict[str, ObservedStep] = {}
    for step in loaded_run.steps:
        job = codec.job_of(step)
        att = next(a for a in state.attempts[step.path] if a.attempt == step.attempt)
        if job is not None and att.outcome is not None:
            attempts.append(
                RecordedAttempt(
                    path=step.path,
                    attempt=step.attempt,
                    outcome=Outcome(att.outcome),
                    duration=round(max(0.0, float(job["job_duration"])), 6),
                    outputs=dict(att.outputs),
                )
            )
    for step_path, atts in state.attempts.items():
        last = atts[-1]
        observed[step_path] = ObservedStep(last.status.value, len(atts), atts[0].started_at, last.ended_at)
    return Run(
        run_id=state.run_id,
        trigger_time=state.triggered_at,
        params=dict(loaded.book.get("run_params", {})),
        initiator=str(loaded.book.get("initiator", "manual")),
        attempts=tuple(attempts),
        observed=ObservedRun(state.status.value, state.started_at, state.ended_at, observed),
    )


def _as_capture(
    base: Trace, runs: tuple[Run, ...], trace_id: str | None = None, captured_at: float | None = None
) -> Trace:
    """``base`` with ``runs``; ``captured_at`` (epoch seconds) becomes ``metadata.captured_at`` (ISO-8601 UTC)."""
    meta = replace(base.metadata, source="legacy-capture")
    if captured_at is not None and isinstance(meta, TraceMetadata):
        stamp = dt.datetime.fromtimestamp(captured_at, dt.UTC).isoformat().replace("+00:00", "Z")
        meta = replace(meta, captured_at=stamp)
    return replace(
        base,
        trace_id=trace_id or base.trace_id,
        runs=runs,
        metadata=meta if isinstance(meta, TraceMetadata) else base.metadata,
    )


def capture_traces(store_path: str | Path, *, include_unfinished: bool = False) -> Iterator[Trace]:
    """Yield one trace per workflow in the legacy store at ``store_path`` (a path or store URL; finished
    runs only, unless ``include_unfinished``). Raises :class:`engines.store.StoreError` for an unreadable
    store and :class:`CaptureError` when the store holds runs but no definitions."""
    store = _open_for_capture(store_path)
    try:
        rows = store.runs()
        definitions = {r.workflow_id for r in rows if r.parent_key == DEFINITIONS}
        roots = [r for r in rows if r.parent_key is None]
        if roots and not definitions:
            raise CaptureError(
                f"{store_path} holds {len(roots)} runs but no workflow definitions; it was not written by "
                "engines.legacy.live (which stores them), so its runs cannot be exported"
            )
        bases = _definitions(store)
        codec = RowCodec()
        for workflow_id in sorted(bases):
            runs = []
            for root in roots:  # ordered by run key = trigger order
                if root.workflow_id != workflow_id:
                    continue
                run = _capture_run(store, codec, root, include_unfinished)
                if run is not None:
                    runs.append(run)
            if runs:
                yield _as_capture(bases[workflow_id], tuple(runs))
    finally:
        store.close()


class LegacyFeed:
    """Follow a legacy store: root runs that reached a terminal status, oldest first, one trace each
    (trace id ``<workflow>@<run id>``), each paired with the cursor that marks it captured.

    The cursor is ``{"format", "watermark", "recent": {run_key: updated_at}, "settle"}``: the latest
    ``updated_at`` captured, and the keys captured within ``settle`` seconds below it. A poll reads the
    terminal runs updated at or after ``watermark - settle`` and skips the recent keys, so a run whose
    terminal write commits up to ``settle`` seconds after a later-stamped one is still captured, and none
    is captured twice. What it relies on (true of the legacy engine): a run's row is not written again
    once terminal, and a writer commits within ``settle`` seconds of stamping ``updated_at``.

    ``since`` (epoch seconds) applies to a fresh cursor only: runs that ended before it are skipped."""

    def __init__(
        self, store: str, *, since: float | None = None, settle: float = DEFAULT_SETTLE_SECONDS
    ) -> None:
        self.url = store
        self.since = since
        self.settle = settle
        self._store = _open_for_capture(store)
        self._codec = RowCodec()
        self._bases: dict[str, Trace] = {}

    def close(self) -> None:
        self._store.close()

    def _cursor(self, cursor: Mapping[str, JsonValue] | None) -> tuple[float, dict[str, float], float]:
        if not cursor:
            return (float("-inf") if self.since is None else self.since, {}, self.settle)
        if cursor.get("format") != CURSOR_FORMAT:
            raise CaptureError(
                f"capture cursor of format {cursor.get('format')!r}, expected {CURSOR_FORMAT!r}"
            )
        watermark: Any = cursor.get("watermark")
        recent: Any = cursor.get("recent", {})
        settle: Any = cursor.get("settle", self.settle)
        if not isinstance(recent, dict) or not isinstance(settle, int | float):
            raise CaptureError("capture cursor is damaged (recent / settle)")
        low = float("-inf") if watermark is None else float(watermark)
        return low, {str(k): float(v) for k, v in recent.items()}, float(settle)

    def poll(self, cursor: Mapping[str, JsonValue] | None) -> Iterator[tuple[Trace, dict[str, JsonValue]]]:
        """The runs finished since ``cursor`` (None: from the start or ``since``), oldest first."""
        watermark, recent, settle = self._cursor(cursor)
        floor = watermark - settle if cursor else watermark
        with self._store.transaction(write=False):
            rows = self._store.runs(statuses=sorted(s.value for s in TERMINAL_WORKFLOW_STATUSES))
        fresh = sorted(
            (r for r in rows if r.parent_key is None and r.updated_at >= floor and r.run_key not in recent),
            key=lambda r: (r.updated_at, r.run_key),
        )
        for root in fresh:
            if root.workflow_id not in self._bases:
                self._bases = _definitions(self._store)
            base = self._bases.get(root.workflow_id)
            if base is None:
                raise CaptureError(
                    f"{self.url}: run {root.run_key} has no workflow definition {root.workflow_id!r}"
                )
            run = _capture_run(self._store, self._codec, root, include_unfinished=False)
            if run is None:
                continue
            watermark = max(watermark, root.updated_at)
            recent[root.run_key] = root.updated_at
            recent = {k: v for k, v in recent.items() if v >= watermark - settle}
            new: dict[str, JsonValue] = {
                "format": CURSOR_FORMAT, "watermark": watermark, "settle": settle,
                "recent": dict(sorted(recent.items())),
            }  # fmt: skip
            # captured_at: when the run's terminal state was written (the store's own time, so a capture
            # restarted after a cut-back writes the same bytes again); --since windows read it.
            yield (
                _as_capture(
                    base, (run,), trace_id=f"{root.workflow_id}@{run.run_id}", captured_at=root.updated_at
                ),
                new,
            )
