"""``ActorEngine``: the actor engine behind :class:`engines.api.Engine` (name ``"actor"``).

``replay`` runs one trace on ``nodes`` nodes sharing one in-memory SQLite store, in virtual time
(the clock starts at the first trigger), with the trace's recorded attempts as the outside world.
The canonical record is built from the **store** at the end -- what the nodes made durable, not what
one node remembers -- so a run only counts as done if its end was committed.

Faults (``faults=`` of the factory plus ``ReplayOptions.faults``) are the specs of
:mod:`engines.actor.faults`. Counters: ``store_round_trips`` (all) = ``hot_round_trips`` (per
workflow: flow commits -- also alone as ``flow_round_trips`` --, the desk and group loads, triggers)
+ ``upkeep_round_trips`` (per node: heartbeats, sweeps, reconciliation, claims;
``background_round_trips`` is the same number under its old name), ``round_trips_per_attempt``
(hot / attempts), ``virtual_seconds`` (replay end - first trigger), message and repair counts,
``takeover_delay_max`` (seconds from a node's halt to the claim of its last group).

Modes (``ReplayOptions.exact``): exact mode simulates every heartbeat and reconciliation tick; the
default fast mode accounts for the upkeep that changes nothing (:meth:`Node._upkeep`) when one node
replays with no fault planned, and falls back to exact mode otherwise. Both give the same record,
counters included. ``engine.last_stats`` says which mode ran and what was accounted.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import defaultdict
from dataclasses import replace
from typing import Any

from corpora.model import Trace
from engines.actor.cluster import Cluster, WorkflowEntry
from engines.actor.config import ActorConfig
from engines.actor.faults import FAULT_SYNTAX, MESSAGE_KINDS, FaultPlan, parse_faults
from engines.actor.persist import decode_run
from engines.actor.upkeep import ReplayLoop, upkeep_latency
from engines.actor.world import TraceWorld
from engines.api import EngineError, ExecutionRecord, Handoff, ReplayOptions, RunExecution
from engines.clock import VirtualClock, VirtualTimeLoop
from engines.core.definition import CompiledTrace, compile_trace
from engines.core.record import run_execution
from engines.runtimes import ReplayRuntime
from engines.store.protocol import Store
from engines.store.sqlite import SqliteConfig, SqliteStore

__all__ = ["ActorEngine", "records_from_store"]


class ActorEngine:
    """The actor engine. ``nodes`` overrides ``config.nodes``; ``faults`` are fault specs."""

    name = "actor"
    version = "1"
    fault_syntax = FAULT_SYNTAX
    handoff_sources = ("legacy",)

    def __init__(
        self, nodes: int | None = None, faults: tuple[str, ...] = (), config: ActorConfig | None = None
    ) -> None:
        base = config if config is not None else ActorConfig()
        self.config = replace(base, nodes=nodes) if nodes is not None else base
        self.faults = tuple(faults)
        parse_faults(self.faults, nodes=self.config.nodes, seed=0)  # a bad spec fails at construction
        self.last_cluster: Cluster | None = None
        self.last_stats: dict[str, Any] = {}
        """Diagnostics of the last replay (not part of the record): ``mode`` (fast|exact),
        ``fallback`` (why fast mode was not used), what fast mode accounted, CPU seconds."""

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        cpu = time.process_time()
        ct = compile_trace(trace)
        plan = parse_faults(self.faults + tuple(options.faults), nodes=self.config.nodes, seed=options.seed)
        start = min((r.trigger_time for r in trace.runs), default=0.0)
        fallback = self._fallback(options, plan)
        self.last_stats = {"mode": "exact" if fallback else "fast", "fallback": fallback}
        loop = ReplayLoop(start)
        try:
            main = self._main(ct, options, plan, VirtualClock(loop), start, fast=not fallback)
            runs, counters = loop.run_until_complete(main)
        finally:
            _close(loop)
        self.last_stats["cpu_seconds"] = time.process_time() - cpu
        return ExecutionRecord(
            trace_id=trace.trace_id, engine=self.name, engine_version=self.version, seed=options.seed,
            runs=runs, counters=counters,
        )  # fmt: skip

    def handoff(
        self, trace: Trace, options: ReplayOptions, cut_at: float, *, source: str = "legacy"
    ) -> Handoff:
        """Adopt ``trace``'s runs from a legacy deployment stopped ``cut_at`` virtual seconds after the first
        trigger, and finish them (:mod:`engines.actor.adopt`, docs/HANDOFF.md): the
        :class:`engines.api.HandsOff` capability."""
        if source not in self.handoff_sources:
            raise EngineError(
                f"the actor engine adopts runs from {', '.join(self.handoff_sources)}, not from {source!r}"
            )
        from engines.actor.adopt import handoff_from_legacy

        cpu = time.process_time()
        out = handoff_from_legacy(self, trace, options, cut_at)
        self.last_stats = {"cpu_seconds": time.process_time() - cpu}
        return out

    def _fallback(self, options: ReplayOptions, plan: FaultPlan) -> str | None:
        """Why this replay runs in exact mode (None: fast mode). Fast mode needs a node alone on its
        store with nothing planned that upkeep could see or cause: with a crash, a pause, a lost or
        repeated message or a failing store call, a heartbeat may find a lease lost, a sweep or a
        reconciliation may repair something, and another node competes for leases."""
        if options.exact:
            return "exact requested"
        if self.config.nodes != 1:
            return f"{self.config.nodes} nodes compete for leases"
        if plan.node_faults or plan.message_faults or plan.store_hook is not None:
            return "faults planned"
        return None

    async def _main(
        self, ct: CompiledTrace, options: ReplayOptions, plan: FaultPlan, clock: VirtualClock, start: float,
        *, fast: bool = False,
    ) -> tuple[tuple[RunExecution, ...], dict[str, float]]:  # fmt: skip
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
        cluster.end_when_idle = True
        try:
            for i in range(self.config.nodes):
                cluster.add_node(f"node-{i}").fast = fast
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
            counters = self._counters(cluster, store, world.starts, options.seed)
            counters["virtual_seconds"] = clock.now() - start
            self._stats(cluster)
            runs = records_from_store(ct, store)
        finally:
            cluster.stop()
            store.close()
        return runs, counters

    def _stats(self, cluster: Cluster) -> None:
        accounted: defaultdict[str, float] = defaultdict(float)
        for node in cluster.nodes:
            for k, v in node.accounted.items():
                accounted[k] += v
        self.last_stats.update({f"accounted_{k}": v for k, v in sorted(accounted.items())})
        self.last_stats["ended_idle_at"] = cluster.ended_idle_at

    def _counters(
        self, cluster: Cluster, store: SqliteStore, runtime_starts: int, seed: int
    ) -> dict[str, float]:
        """The record's counters, the same in both modes: what fast mode accounted instead of doing
        is added to the store's own counts; upkeep latency is the closed form of
        :func:`engines.actor.upkeep.upkeep_latency` over all upkeep round trips."""
        total: defaultdict[str, float] = defaultdict(float)
        accounted: defaultdict[str, float] = defaultdict(float)
        for node in cluster.nodes:
            for k, v in node.counters.items():
                total[k] += v
            for k, v in node.accounted.items():
                accounted[k] += v
        total["hot_round_trips"] += cluster.trigger_round_trips
        total["upkeep_round_trips"] += 0.0
        total["flow_round_trips"] += 0.0
        total["background_round_trips"] = total["upkeep_round_trips"]
        total["store_round_trips"] = float(store.counters["round_trips"]) + accounted["round_trips"]
        total["store_commits"] = float(store.counters["commits"]) + accounted["commits"]
        total["store_latency_seconds"] = float(store.counters["latency_seconds"]) + upkeep_latency(
            self.config.latency, seed, int(total["upkeep_round_trips"])
        )
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
        plan = cluster.faults
        store_fired = plan.store_hook.fired if plan.store_hook is not None else 0
        # every planned fault that took effect: messages dropped or repeated, nodes crashed or paused, store
        # round trips failed (a fault planned past the replay's end never fires and is not counted)
        total["faults_fired"] = float(len(plan.fired) + store_fired) + total["crashes"] + total["pauses"]
        for kind in sorted(MESSAGE_KINDS):
            total[f"deliveries_{kind}"] = float(plan.seen[kind])
        return dict(total)


def _close(loop: VirtualTimeLoop) -> None:
    """Cancel what is still pending (timers die with the loop) and close it. The loop is driven
    directly, not through ``asyncio.Runner``: a replay installs no SIGINT handler (whose
    ``signal.getsignal`` check formats the main task's repr, milliseconds per replay)."""
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def records_from_store(ct: CompiledTrace, store: Store) -> tuple[RunExecution, ...]:
    """The canonical runs of ``ct``'s trace as the store holds them (a run still live is ``stuck``)."""
    rows = {r.run_key: r for r in store.runs() if r.workflow_id == ct.trace.trace_id and r.parent_key is None}
    out = []
    for key in sorted(rows):
        loaded = store.load_run(key)
        assert loaded is not None
        state = decode_run(loaded.run.state, loaded.steps)[0]
        if state.unfinished:
            state = replace(state, stuck=True)
        out.append(run_execution(ct, state))
    if len(out) != len(ct.trace.runs):
        raise EngineError(
            f"actor replay of {ct.trace.trace_id!r}: {len(out)} runs in the store for {len(ct.trace.runs)} "
            "triggered; a trigger was lost (store failures past the retry?)"
        )
    return tuple(out)
