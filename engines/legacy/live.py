"""Live mode: the legacy engine on the real clock, with live runtimes, on a SQLite file.

The same workers, decider and store as in replay; only the clock (:class:`engines.clock.LiveClock`),
the runtimes (NOOP, SLEEP, SHELL for real) and the store (a WAL file, no simulated latency: the
database takes real time) differ. This is how real per-step overhead is measured
(``benchmarks/bench_legacy_live.py``) and how traces are captured (:mod:`engines.legacy.capture`).

The workflow definitions are written to the store beside the runs (one definition row per workflow,
``parent_key`` :data:`DEFINITIONS`), so a capture of the file needs nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from corpora.codec import encode
from corpora.model import JsonValue, Run, Trace, WorkflowDefinition
from engines.api import RunExecution
from engines.clock import LiveClock
from engines.legacy.config import LegacyConfig
from engines.legacy.deployment import Deployment, workflow_entry
from engines.runtimes import RuntimeRegistry
from engines.store import (
    LatencyModel,
    SqliteConfig,
    SqliteStore,
    Store,
    StoreIntegrityError,
    WorkflowInstance,
)
from engines.store.url import open_store, parse_store_url

__all__ = ["DEFINITIONS", "LiveResult", "live_trace", "run_live", "run_live_async"]

DEFINITIONS = "::definitions"
"""``parent_key`` of the rows holding workflow definitions (never a run key)."""


@dataclass(frozen=True, slots=True)
class LiveResult:
    """What a live session did: each run's canonical record, whether every run finished before the
    timeout, and the engine's counters."""

    runs: tuple[RunExecution, ...]
    finished: bool
    counters: Mapping[str, float]

    def start_overheads(self) -> list[float]:
        """Per attempt that started: ready -> started (entered STARTING), real seconds."""
        return [
            a.started_at - a.ready_at
            for r in self.runs
            for a in r.attempts
            if a.started_at is not None and a.ready_at is not None
        ]


def live_trace(
    definition: WorkflowDefinition,
    *,
    trace_id: str | None = None,
    runs: int = 1,
    run_params: Mapping[str, JsonValue] | None = None,
    subworkflows: Mapping[str, WorkflowDefinition] | None = None,
    trigger_time: float | None = None,
) -> Trace:
    """A trace to run live: ``definition`` and ``runs`` runs triggered at ``trigger_time`` (now by
    default). It records no attempts: live runtimes do the work."""
    at = time.time() if trigger_time is None else trigger_time
    return Trace(
        trace_id=trace_id or definition.id,
        definition=definition,
        runs=tuple(
            Run(run_id=f"run-{i}", trigger_time=at, params=dict(run_params or {})) for i in range(1, runs + 1)
        ),
        subworkflows=dict(subworkflows or {}),
    )


def _publish(store: Store, trace: Trace, now: float) -> None:
    """Write the trace's definitions (no runs) as a definition row, unless already there."""
    doc = encode(replace(trace, runs=()))
    row = WorkflowInstance(
        run_key=f"{trace.trace_id}{DEFINITIONS}", workflow_id=trace.trace_id, run_id="", status="DEFINITION",
        state=json.dumps(doc), parent_key=DEFINITIONS, created_at=now, updated_at=now,
    )  # fmt: skip
    with contextlib.suppress(StoreIntegrityError):  # published by an earlier session on this file
        store.create_run(row)


async def run_live_async(
    traces: Sequence[Trace],
    *,
    store_path: str | Path,
    config: LegacyConfig | None = None,
    registry: RuntimeRegistry | None = None,
    timeout: float | None = None,
    synchronous: str = "NORMAL",
    busy_timeout: float = 5.0,
    seed: int = 0,
) -> LiveResult:
    """Run every run of ``traces`` live until all finished or ``timeout`` real seconds passed.

    ``store_path`` is a SQLite file (a path or ``sqlite:///path``) or a PostgreSQL store
    (``postgresql://...``, engines/store/url.py): the same deployment over either. Store failures surface as
    typed :class:`engines.store.StoreError` (locked, full, corrupt); the failing transaction is rolled back,
    so the store holds only whole cycles."""
    clock = LiveClock()
    parsed = parse_store_url(str(store_path))
    store: Store
    if parsed.kind == "postgresql":
        store = open_store(parsed.target)
    else:
        store = SqliteStore(
            SqliteConfig(
                path=parsed.target,
                latency=LatencyModel.zero(),
                synchronous=synchronous,
                busy_timeout=busy_timeout,
            )
        )
    try:
        for trace in traces:
            _publish(store, trace, clock.now())
        deployment = Deployment(
            store=store, clock=clock, config=config or LegacyConfig(), registry=registry or RuntimeRegistry.live(),
            workflows={t.trace_id: workflow_entry(t) for t in traces}, seed=seed,
        )  # fmt: skip
        finished = await deployment.serve(deadline=None if timeout is None else clock.now() + timeout)
        runs = deployment.final_runs()
        counters = {k: float(v) for k, v in deployment.counters.items()}
        counters.update({f"store_{k}": float(v) for k, v in store.counters.items()})
    finally:
        store.close()
    return LiveResult(runs, finished, counters)


def run_live(traces: Sequence[Trace], **kwargs: object) -> LiveResult:
    """:func:`run_live_async` on a fresh event loop (from synchronous code)."""
    return asyncio.run(run_live_async(traces, **kwargs))  # type: ignore[arg-type]
