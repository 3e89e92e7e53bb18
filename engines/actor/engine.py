"""``ActorEngine``: the actor engine behind :class:`engines.api.Engine` (name ``"actor"``).

``replay`` runs one trace on ``nodes`` nodes sharing one in-memory SQLite store, in virtual time
(the clock starts at the first trigger), with the trace's recorded attempts as the outside world.
The canonical record is built from the **store** at the end -- what the nodes made durable, not what
one node remembers -- so a run only counts as done if its end was committed.

Faults (``faults=`` of the factory plus ``ReplayOptions.faults``) are the specs of
:mod:`engines.actor.faults`. Counters: ``store_round_trips`` (all), ``hot_round_trips`` (flow
commits: the per-step path), ``background_round_trips`` (leases, sweeps, reconciliation, desk),
``round_trips_per_attempt``, message and repair counts, ``takeover_delay_max`` (seconds from a
node's halt to the claim of its last group).
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from dataclasses import replace

from corpora.model import Trace
from engines.actor.cluster import Cluster, WorkflowEntry
from engines.actor.config import ActorConfig
from engines.actor.faults import FaultPlan, parse_faults
from engines.actor.persist import decode_run
from engines.actor.world import TraceWorld
from engines.api import EngineError, ExecutionRecord, ReplayOptions, RunExecution
from engines.clock import VirtualClock
from engines.core.definition import CompiledTrace, compile_trace
from engines.core.record import run_execution
from engines.runtimes import ReplayRuntime
from engines.store.protocol import Store
from engines.store.sqlite import SqliteConfig, SqliteStore
from engines.testing import VirtualTimeEnvironment

__all__ = ["ActorEngine", "records_from_store"]


class ActorEngine:
    """The actor engine. ``nodes`` overrides ``config.nodes``; ``faults`` are fault specs."""

    name = "actor"
    version = "1"

    def __init__(
        self, nodes: int | None = None, faults: tuple[str, ...] = (), config: ActorConfig | None = None
    ) -> None:
        base = config if config is not None else ActorConfig()
        self.config = replace(base, nodes=nodes) if nodes is not None else base
        self.faults = tuple(faults)
        parse_faults(self.faults, nodes=self.config.nodes, seed=0)  # a bad spec fails at construction
        self.last_cluster: Cluster | None = None

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        ct = compile_trace(trace)
        plan = parse_faults(self.faults + tuple(options.faults), nodes=self.config.nodes, seed=options.seed)
        start = min((r.trigger_time for r in trace.runs), default=0.0)
        with VirtualTimeEnvironment(start=start) as env:
            runs, counters = env.run(self._main(ct, options, plan, env.clock, start))
        return ExecutionRecord(
            trace_id=trace.trace_id, engine=self.name, engine_version=self.version, seed=options.seed,
            runs=runs, counters=counters,
        )  # fmt: skip

    async def _main(
        self, ct: CompiledTrace, options: ReplayOptions, plan: FaultPlan, clock: VirtualClock, start: float
    ) -> tuple[tuple[RunExecution, ...], dict[str, float]]:
        trace = ct.trace
        store = SqliteStore(
            SqliteConfig(latency=self.config.latency, seed=options.seed), faults=plan.store_hook
        )
        world = TraceWorld(ReplayRuntime(trace), clock)
        catalog = {trace.trace_id: WorkflowEntry(ct, tuple(trace.runs))}
        cluster = Cluster(
            store=store, clock=clock, loop=asyncio.get_running_loop(), world=world, config=self.config,
            catalog=catalog, faults=plan, seed=options.seed, expected_runs=len(trace.runs),
        )  # fmt: skip
        self.last_cluster = cluster
        try:
            for i in range(self.config.nodes):
                cluster.add_node(f"node-{i}")
            cluster.start()
            for fault in plan.node_faults:
                node = cluster.nodes[fault.node]
                if fault.kind == "crash":
                    clock.call_at(start + fault.at, node.crash)
                else:
                    clock.call_at(start + fault.at, functools.partial(node.pause, fault.duration))
            cluster.schedule_triggers(trace.trace_id)
            last_trigger = max((r.trigger_time for r in trace.runs), default=start)
            await cluster.wait(last_trigger + options.time_limit)
            cluster.stop()
            runs = records_from_store(ct, store)
            counters = self._counters(cluster, store, world.starts)
        finally:
            cluster.stop()
            store.close()
        return runs, counters

    @staticmethod
    def _counters(cluster: Cluster, store: SqliteStore, runtime_starts: int) -> dict[str, float]:
        total: defaultdict[str, float] = defaultdict(float)
        for node in cluster.nodes:
            for k, v in node.counters.items():
                total[k] += v
        total["background_round_trips"] += cluster.trigger_round_trips
        total["store_round_trips"] = float(store.counters["round_trips"])
        total["store_commits"] = float(store.counters["commits"])
        total["store_latency_seconds"] = float(store.counters["latency_seconds"])
        total["runtime_starts"] = float(runtime_starts)
        if total["attempts"]:
            total["round_trips_per_attempt"] = total["hot_round_trips"] / total["attempts"]
        total["takeovers"] = float(sum(1 for t in cluster.takeovers if t.generation > 1))
        delays = [
            max((t.at for t in cluster.takeovers if t.generation > 1 and t.at >= at), default=at) - at
            for name, at, reason in cluster.halts if reason != "replay finished"
        ]  # fmt: skip
        if delays:
            total["takeover_delay_max"] = max(delays)
        total["faults_fired"] = float(len(cluster.faults.fired))
        return dict(total)


def records_from_store(ct: CompiledTrace, store: Store) -> tuple[RunExecution, ...]:
    """The canonical runs of ``ct``'s trace as the store holds them (a run still live is ``stuck``)."""
    rows = {r.run_key: r for r in store.runs() if r.workflow_id == ct.trace.trace_id and r.parent_key is None}
    out = []
    for key in sorted(rows):
        loaded = store.load_run(key)
        assert loaded is not None
        state = decode_run(loaded.run.state, loaded.steps)[0]
        if state.started_at is not None and not state.status.is_terminal:
            state = replace(state, stuck=True)
        out.append(run_execution(ct, state))
    if len(out) != len(ct.trace.runs):
        raise EngineError(
            f"actor replay of {ct.trace.trace_id!r}: {len(out)} runs in the store for {len(ct.trace.runs)} "
            "triggered; a trigger was lost (store failures past the retry?)"
        )
    return tuple(out)
