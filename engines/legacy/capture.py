"""Capture: export finished runs from a legacy store as shadow-trace/1 traces.

This is how production traces are made: the legacy engine ran the workflows; its store holds the
definitions (live mode writes them, see :mod:`engines.legacy.live`), every run with its trigger time
and run params, and every step attempt with what its job did (outcome, outputs and the job's own
duration, written by the cycle that noticed the job's end). Each workflow becomes one trace whose
runs are the finished runs in trigger order; each attempt whose runtime ran becomes a
:class:`~corpora.model.RecordedAttempt`. Attempts that never reached a runtime (UNSATISFIED,
stopped before starting) are not recorded: a replay decides them itself. What the legacy engine
observed (final statuses, times) goes into ``Run.observed``, so a replay can be checked against it.

Reading is read-only: the store is opened, read, closed; nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from corpora.codec import decode
from corpora.model import ObservedRun, ObservedStep, Outcome, RecordedAttempt, Run, Trace, TraceMetadata
from engines.api import EngineError
from engines.legacy.live import DEFINITIONS
from engines.legacy.rows import RowCodec
from engines.store import LatencyModel, SqliteConfig, SqliteStore
from engines.store.schema import check_store_file

__all__ = ["CaptureError", "capture_traces"]


class CaptureError(EngineError):
    """The store cannot be captured (no definitions, not a legacy store)."""


def capture_traces(store_path: str | Path, *, include_unfinished: bool = False) -> Iterator[Trace]:
    """Yield one trace per workflow in the legacy store at ``store_path`` (finished runs only, unless
    ``include_unfinished``). Raises :class:`engines.store.StoreError` for an unreadable file and
    :class:`CaptureError` when the store holds runs but no definitions."""
    path = Path(store_path)
    if not path.exists():
        raise CaptureError(f"no legacy store at {path}; pass the SQLite file a live legacy session wrote")
    if not path.is_file():
        raise CaptureError(f"{path} is not a file; pass the SQLite file a live legacy session wrote")
    # Checked from the header before the file is opened for anything else (StoreCorruptError, StoreSchemaError).
    check_store_file(str(path), database=str(path))
    # Read-only: capture never writes to the store (no WAL switch, no migration, no marks).
    store = SqliteStore(SqliteConfig(path=str(path), latency=LatencyModel.zero(), read_only=True))
    try:
        rows = store.runs()
        definitions = {r.workflow_id: r for r in rows if r.parent_key == DEFINITIONS}
        roots = [r for r in rows if r.parent_key is None]
        if roots and not definitions:
            raise CaptureError(
                f"{path} holds {len(roots)} runs but no workflow definitions; it was not written by "
                "engines.legacy.live (which stores them), so its runs cannot be exported"
            )
        codec = RowCodec()
        for workflow_id in sorted(definitions):
            base: Trace = decode(Trace, json.loads(definitions[workflow_id].state))
            runs = []
            for root in roots:  # ordered by run key = trigger order
                if root.workflow_id != workflow_id:
                    continue
                loaded_run = store.load_run(root.run_key)
                loaded = codec.load(store, root.run_key)
                if loaded is None or loaded_run is None:
                    continue
                state = loaded.state
                if not state.status.is_terminal and not include_unfinished:
                    continue
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
                    observed[step_path] = ObservedStep(
                        last.status.value, len(atts), atts[0].started_at, last.ended_at
                    )
                runs.append(
                    Run(
                        run_id=state.run_id,
                        trigger_time=state.triggered_at,
                        params=dict(loaded.book.get("run_params", {})),
                        initiator=str(loaded.book.get("initiator", "manual")),
                        attempts=tuple(attempts),
                        observed=ObservedRun(state.status.value, state.started_at, state.ended_at, observed),
                    )
                )
            if runs:
                meta = replace(base.metadata, source="legacy-capture")
                yield replace(
                    base,
                    runs=tuple(runs),
                    metadata=meta if isinstance(meta, TraceMetadata) else base.metadata,
                )
    finally:
        store.close()
