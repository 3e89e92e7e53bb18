"""The actor engine in live mode: real clock, a SQLite file in WAL mode, several nodes.

Two shapes:

* :func:`run_live` -- every node in this process on the real clock (the live benchmark): trigger
  the traces' runs now, wait until every run is terminal, return canonical records.
* separate OS processes on one file (``python -m engines.actor.node_main``): each process holds one
  node; :func:`trigger_live` inserts the runs from a driver; :func:`wait_live` watches the store;
  :func:`live_records` reads the outcome. A process can be killed with SIGKILL: its leases expire,
  another process claims its groups and resumes the runs from the file.

Step attempts are "jobs" that sleep their recorded duration from the attempt's start (see
:class:`engines.actor.world.TraceWorld`); nothing here reads the clock but through :class:`LiveClock`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

from corpora.model import Trace
from engines.actor.cluster import Cluster, WorkflowEntry
from engines.actor.config import ActorConfig
from engines.actor.engine import records_from_store
from engines.actor.faults import FaultPlan
from engines.actor.group import LIVE_STATUSES
from engines.actor.world import TraceWorld
from engines.api import ExecutionRecord, RunExecution
from engines.clock import LiveClock
from engines.core.definition import compile_trace
from engines.runtimes import ReplayRuntime
from engines.store.latency import LatencyModel
from engines.store.protocol import Store
from engines.store.sqlite import SqliteConfig, SqliteStore
from engines.store.url import open_store, parse_store_url

__all__ = [
    "LIVE_CONFIG",
    "live_records",
    "open_live_store",
    "run_live",
    "serve_node",
    "trigger_live",
    "wait_live",
]

LIVE_CONFIG = ActorConfig(
    heartbeat=1.0, lease_expiry=4.0, reconcile=2.0, reconcile_jitter=0.2, sweep_interval=0.1,
    delivery_deadline=2.0, latency=LatencyModel.zero(),
)  # fmt: skip
"""Timers scaled for seconds-long live tests: a killed node's groups are claimed within 4 s."""


def open_live_store(path: str, *, busy_timeout: float = 10.0) -> Store:
    """The shared store, no simulated latency (it takes real time): a SQLite file in WAL mode (a path or
    ``sqlite:///path``) or a PostgreSQL server (``postgresql://...``, engines/store/url.py).

    Processes starting together on a fresh file need no retry: the store checks the schema version and
    migrates inside one ``BEGIN IMMEDIATE`` transaction, so the others wait for the first opener's
    lock (up to ``busy_timeout``) and then find the schema in place."""
    parsed = parse_store_url(str(path))
    if parsed.kind == "postgresql":
        return open_store(parsed.target)
    return SqliteStore(
        SqliteConfig(path=parsed.target, latency=LatencyModel.zero(), busy_timeout=busy_timeout)
    )


def _catalog(traces: Sequence[Trace]) -> dict[str, WorkflowEntry]:
    return {t.trace_id: WorkflowEntry(compile_trace(t), tuple(t.runs)) for t in traces}


def _cluster(
    store: Store, traces: Sequence[Trace], config: ActorConfig, *, exclusive: bool, expected: int
) -> Cluster:
    clock = LiveClock()
    runtime = ReplayRuntime(traces[0]) if len(traces) == 1 else _merged_runtime(traces)
    cluster = Cluster(
        store=store, clock=clock, loop=asyncio.get_running_loop(),
        world=TraceWorld(runtime, clock, from_started=True), config=config, catalog=_catalog(traces),
        faults=FaultPlan(), seed=0, expected_runs=expected,
    )  # fmt: skip
    cluster.exclusive = exclusive
    return cluster


def _merged_runtime(traces: Sequence[Trace]) -> ReplayRuntime:
    """One replay runtime over several traces (run ids must be distinct across them)."""
    first = traces[0]
    runs = tuple(r for t in traces for r in t.runs)
    return ReplayRuntime(replace(first, runs=runs))


async def run_live(
    traces: Sequence[Trace], *, store_path: str, nodes: int = 1, config: ActorConfig = LIVE_CONFIG,
    timeout: float = 60.0,
) -> tuple[list[ExecutionRecord], dict[str, float]]:  # fmt: skip
    """Run every trace's runs now on ``nodes`` in-process nodes; return records and node counters."""
    store = open_live_store(store_path)
    cluster = _cluster(store, traces, replace(config, nodes=nodes), exclusive=True,
                       expected=sum(len(t.runs) for t in traces))  # fmt: skip
    try:
        for i in range(nodes):
            cluster.add_node(f"node-{i}")
        cluster.start()
        for t in traces:
            for index in range(1, len(t.runs) + 1):
                cluster.trigger(t.trace_id, index)
        await cluster.wait(cluster.clock.now() + timeout)
        cluster.stop()
        records = [
            ExecutionRecord(
                t.trace_id, "actor", "1", 0, records_from_store(cluster.catalog[t.trace_id].ct, store)
            )
            for t in traces
        ]
        counters: dict[str, float] = {}
        for node in cluster.nodes:
            for k, v in node.counters.items():
                counters[k] = counters.get(k, 0.0) + v
        return records, counters
    finally:
        cluster.stop()
        store.close()


async def serve_node(
    store_path: str, traces: Sequence[Trace], *, node_index: int, nodes: int, config: ActorConfig = LIVE_CONFIG,
    stop: asyncio.Event | None = None,
) -> dict[str, float]:  # fmt: skip
    """Run one node of a multi-process cluster until ``stop`` is set (forever if None)."""
    store = open_live_store(store_path)
    # Only a failure ends a serving node early: no run count is ever reached.
    cluster = _cluster(store, traces, config, exclusive=False, expected=sys.maxsize)
    stop = stop or asyncio.Event()
    try:
        node = cluster.add_node(f"node-{node_index}")
        node.index = node_index
        cluster.start(total_nodes=nodes)
        done = asyncio.ensure_future(stop.wait())
        failed = asyncio.ensure_future(cluster.monitor.done.wait())
        await asyncio.wait([done, failed], return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        failed.cancel()
        if cluster.errors:
            raise cluster.errors[0]
        return dict(node.counters)
    finally:
        cluster.stop()
        store.close()


def trigger_live(store_path: str, traces: Sequence[Trace], *, config: ActorConfig = LIVE_CONFIG) -> None:
    """Insert every run of ``traces`` now, through the run-strategy desk (the trigger API)."""

    async def main() -> None:
        store = open_live_store(store_path)
        cluster = _cluster(store, traces, config, exclusive=False, expected=0)
        try:
            for t in traces:
                for index in range(1, len(t.runs) + 1):
                    cluster.trigger(t.trace_id, index)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        finally:
            store.close()

    asyncio.run(main())


def wait_live(store_path: str, traces: Sequence[Trace], *, timeout: float, poll: float = 0.1) -> bool:
    """Block until every run of ``traces`` is terminal in the store (True) or ``timeout`` passes."""
    ids = {t.trace_id for t in traces}
    expected = sum(len(t.runs) for t in traces)
    deadline = time.monotonic() + timeout
    store = open_live_store(store_path)
    try:
        while time.monotonic() < deadline:
            every = [r for r in store.runs() if r.workflow_id in ids]
            rows = [r for r in every if r.parent_key is None]
            # detached-work markers (async children outliving their run) must have ended too
            if len(rows) == expected and all(r.status not in LIVE_STATUSES for r in every):
                return True
            time.sleep(poll)
        return False
    finally:
        store.close()


def live_records(store_path: str, traces: Sequence[Trace]) -> list[tuple[RunExecution, ...]]:
    store = open_live_store(store_path)
    try:
        return [records_from_store(compile_trace(t), store) for t in traces]
    finally:
        store.close()
