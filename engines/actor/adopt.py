"""In-flight hand-off: the actor engine adopts the runs a legacy deployment left half done (docs/HANDOFF.md).

A cut-over does not wait for every run to end. :func:`handoff_from_legacy` replays a trace on the legacy
engine up to a cut point, stops the deployment there (its workers are cancelled between transactions, as
a process stopped mid-run: the store holds what they committed; steps RUNNING, tasks queued, retries in
backoff, foreach half launched, subworkflows running, runs queued behind a run strategy), then lets the
actor engine take the runs over through its own recovery path:

1. **read the legacy store** with the legacy row layout (a root row per run plus child rows per foreach
   iteration / subworkflow, one row per step attempt): each run's core ``RunState`` and its run-strategy
   bookkeeping (``dequeued``);
2. **write them in the actor's layout** (a run row with its scopes, one step row per attempt, the group of
   ``hash(workflow, instance, run) mod G``) into the actor's store, in one transaction; a run that ended
   with async children still running gets its detached-work marker;
3. **the outside world carries on**: runtimes the legacy workers launched keep running (their results
   arrive when they were due), so an actor node resuming a RUNNING attempt attaches to its job instead of
   starting it again; a RUNNING attempt whose job the world does not know (the legacy worker was stopped
   after committing the start, before launching) is *lost* and started by the actor, once;
4. **the nodes claim the groups** and adopt every live run exactly as after a node's death
   (:meth:`GroupActor.resume_all` -> :meth:`FlowActor.resume_now`: RUNNING attempts re-attached, steps
   mid-way executed, retries re-armed at their due times, a full ``decide``); runs still queued stay
   CREATED until the actor's run-strategy desk admits them; triggers still to come fire on the actor.

The record is built from the actor's store at the end: attempts before the cut carry the legacy
engine's timestamps, those after it the actor's.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from corpora.model import Trace
from engines.actor.cluster import Cluster, WorkflowEntry, run_key_of
from engines.actor.config import ActorConfig
from engines.actor.engine import records_from_store
from engines.actor.faults import parse_faults
from engines.actor.group import group_of
from engines.actor.persist import RunCodec, detached_key, has_detached_work
from engines.actor.upkeep import ReplayLoop
from engines.actor.world import TraceWorld
from engines.api import ExecutionRecord, Handoff, ReplayOptions, RunExecution
from engines.clock import VirtualClock
from engines.core.definition import CompiledTrace, compile_trace
from engines.core.state import RunState, scope_of
from engines.core.statuses import StepStatus, WorkflowStatus
from engines.legacy.config import LegacyConfig
from engines.legacy.deployment import Deployment, workflow_entry
from engines.legacy.sampling import BlockSampler
from engines.runtimes import ReplayRuntime, RuntimeRegistry
from engines.store import LatencyModel, SqliteConfig, SqliteStore
from engines.store.records import WorkflowInstance
from engines.testing import VirtualTimeEnvironment

if TYPE_CHECKING:
    from engines.actor.engine import ActorEngine

__all__ = [
    "AdoptedRun",
    "LegacyCut",
    "adopt_cut",
    "adopt_live",
    "adopt_rows",
    "handoff_from_legacy",
    "read_legacy_store",
    "stop_legacy_at",
]

ENGINE_NAME = "legacy>actor"
JobState = tuple[tuple[str, str, int], float | None, bool]


@dataclass(frozen=True, slots=True)
class AdoptedRun:
    """One root run as the legacy store held it at the cut (None state: its trigger had not fired)."""

    run_index: int
    run_id: str
    state: RunState | None
    dequeued: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class LegacyCut:
    """What the legacy deployment left at the cut: its runs, the jobs still in the world, the
    attempts it ever launched (``(run_id, path, attempt)``) and its counters."""

    at: float
    runs: tuple[AdoptedRun, ...]
    jobs: tuple[tuple[str, str, int, float | None, bool], ...]
    launched: frozenset[tuple[str, str, int]]
    counters: Mapping[str, float]


def stop_legacy_at(
    trace: Trace, options: ReplayOptions, cut: float, *, config: LegacyConfig | None = None,
    latency: LatencyModel | None = None,
) -> LegacyCut:  # fmt: skip
    """Replay ``trace`` on a legacy deployment exactly as :class:`LegacyEngine` does, stop it at the
    absolute virtual time ``cut`` (or when it finished, if earlier) and read what it left."""
    cfg = config if config is not None else LegacyConfig()
    model = latency if latency is not None else LatencyModel()
    entry = workflow_entry(trace)
    start = min(r.trigger_time for r in trace.runs)
    deadline = max(r.trigger_time for r in trace.runs) + options.time_limit
    store = SqliteStore(SqliteConfig(latency=model, seed=options.seed))
    store._sampler = BlockSampler(model, options.seed)  # type: ignore[assignment]  # as LegacyEngine.replay
    try:
        with VirtualTimeEnvironment(start=start) as env:
            fast = not options.exact and cfg.workers == 1
            deployment = Deployment(
                store=store, clock=env.clock, config=cfg, registry=RuntimeRegistry.replay(trace),
                workflows={trace.trace_id: entry}, seed=options.seed, fast=fast,
            )  # fmt: skip
            env.run(deployment.serve(deadline=min(cut, deadline)))
            at = env.loop.time()
        runs = []
        run_ids: dict[str, str] = {}
        for _, run_id, key in deployment.root_keys():
            index = entry.run_index[run_id]
            run_ids[key] = run_id
            loaded = deployment.codec.load(store, key)
            if loaded is None:
                runs.append(AdoptedRun(index, run_id, None, False, 0.0))
            else:
                runs.append(AdoptedRun(index, run_id, loaded.state, bool(loaded.book.get("dequeued")),
                                       loaded.root.created_at))  # fmt: skip
        jobs = tuple((run_ids[k[0]], k[1], k[2], due, done) for k, due, done in deployment.stopped_jobs)
        launched = frozenset((run_ids[k[0]], k[1], k[2]) for k in deployment.jobs.history)
        counters = {k: float(v) for k, v in deployment.counters.items()}
        counters["jobs_launched"] = float(deployment.jobs.launched)
        counters["store_round_trips"] = float(store.counters["round_trips"])
    finally:
        store.close()
    return LegacyCut(at, tuple(sorted(runs, key=lambda r: r.run_index)), jobs, launched, counters)


def _leaf_step(ct: CompiledTrace, state: RunState, path: str) -> bool:
    prefix, sid = scope_of(path)
    scope = state.scopes.get(prefix)
    step = None if scope is None else ct.workflows[scope.workflow].steps.get(sid)
    return step is not None and step.body is None


def adopt_rows(
    ct: CompiledTrace, adopted: AdoptedRun, groups: int, now: float
) -> tuple[WorkflowInstance, list[WorkflowInstance], list[object]]:
    """The actor's rows for one legacy run: its run row, its detached-work marker if it ended with async
    children still running, and its step rows (one per attempt)."""
    state = adopted.state
    assert state is not None
    workflow_id = ct.trace.trace_id
    key = run_key_of(workflow_id, adopted.run_index)
    codec = RunCodec()
    # A run the legacy strategy queued is CREATED and not dequeued: it stays CREATED (queued) for the
    # actor's desk. One it admitted carries its own status.
    row = WorkflowInstance(
        run_key=key, workflow_id=workflow_id, run_id=adopted.run_id, status=state.status.value,
        state=codec.run_text(state), group_id=group_of(workflow_id, adopted.run_index, adopted.run_id, groups),
        created_at=adopted.created_at, updated_at=now,
    )  # fmt: skip
    steps: list[object] = list(codec.step_rows(key, state, replace(state, attempts={}), now))
    extra = []
    if state.status.is_terminal and has_detached_work(state):
        extra.append(WorkflowInstance(
            run_key=detached_key(key), workflow_id=workflow_id, run_id=adopted.run_id,
            status=WorkflowStatus.IN_PROGRESS.value, parent_key=key, group_id=row.group_id, created_at=now,
            updated_at=now,
        ))  # fmt: skip
    return row, extra, steps


def handoff_from_legacy(
    engine: ActorEngine, trace: Trace, options: ReplayOptions, cut_at: float, *,
    legacy_config: LegacyConfig | None = None,
) -> Handoff:  # fmt: skip
    """Replay ``trace`` on the legacy engine until ``cut_at`` virtual seconds after its first trigger,
    stop it, and let ``engine`` (the actor engine) adopt the runs and finish them. See the module
    docstring."""
    if not trace.runs:
        record = ExecutionRecord(trace.trace_id, ENGINE_NAME, engine.version, options.seed, ())
        return Handoff(record, cut_at, "legacy", engine.name)
    if cut_at < 0:
        raise ValueError(f"cut point {cut_at!r} s is before the first trigger of {trace.trace_id!r}")
    start = min(r.trigger_time for r in trace.runs)
    legacy = stop_legacy_at(trace, options, start + cut_at, config=legacy_config)
    return adopt_cut(engine, trace, options, legacy)


def adopt_cut(engine: ActorEngine, trace: Trace, options: ReplayOptions, legacy: LegacyCut) -> Handoff:
    """The actor half of a hand-off: adopt what ``legacy`` left and finish it (see the module docstring)."""
    ct = compile_trace(trace)
    start = min(r.trigger_time for r in trace.runs)
    loop = ReplayLoop(legacy.at)
    try:
        runs, counters, facts = loop.run_until_complete(
            _adopt(engine, ct, options, legacy, VirtualClock(loop))
        )
    finally:
        from engines.actor.engine import _close

        _close(loop)
    counters.update({f"legacy_{k}": v for k, v in legacy.counters.items()})
    counters["handoff_at"] = legacy.at - start
    record = ExecutionRecord(
        trace_id=trace.trace_id, engine=ENGINE_NAME, engine_version=engine.version, seed=options.seed,
        runs=runs, counters=counters,
    )  # fmt: skip
    return Handoff(record, legacy.at - start, "legacy", engine.name, **facts)


async def _adopt(
    engine: ActorEngine, ct: CompiledTrace, options: ReplayOptions, legacy: LegacyCut, clock: VirtualClock
) -> tuple[tuple[RunExecution, ...], dict[str, float], dict[str, int]]:

    trace = ct.trace
    config = engine.config
    plan = parse_faults(engine.faults + tuple(options.faults), nodes=config.nodes, seed=options.seed)
    fast = engine._fallback(options, plan) is None
    store = SqliteStore(SqliteConfig(latency=config.latency, seed=options.seed), faults=plan.store_hook)
    runtime = ReplayRuntime(trace)
    world = TraceWorld(runtime, clock)
    cluster = Cluster(
        store=store, clock=clock, loop=asyncio.get_running_loop(), world=world, config=config,
        catalog={trace.trace_id: WorkflowEntry(ct, tuple(trace.runs))}, faults=plan, seed=options.seed,
        expected_runs=len(trace.runs),
    )  # fmt: skip
    cluster.end_when_idle = True
    engine.last_cluster = cluster
    now = clock.now()
    facts = dict.fromkeys(
        ("runs_live", "runs_queued", "runs_ended", "runs_untriggered", "attempts_running", "attempts_lost",
         "attempts_finished_unseen", "retries_pending", "duplicate_starts"), 0,
    )  # fmt: skip
    jobs = {(run_id, path, attempt): (due, done) for run_id, path, attempt, due, done in legacy.jobs}
    untriggered: list[int] = []
    try:
        with store.transaction():
            for adopted in legacy.runs:
                state = adopted.state
                if state is None:
                    untriggered.append(adopted.run_index)
                    facts["runs_untriggered"] += 1
                    continue
                row, extra, steps = adopt_rows(ct, adopted, config.groups, now)
                store.create_run(row)
                for marker in extra:
                    store.create_run(marker)
                store.save_steps(steps)  # type: ignore[arg-type]
                if state.status.is_terminal and not extra:
                    facts["runs_ended"] += 1
                    cluster.monitor.terminal.add(row.run_key)
                elif state.status is WorkflowStatus.CREATED and not adopted.dequeued:
                    facts["runs_queued"] += 1
                else:
                    facts["runs_live"] += 1
                    cluster.desk.admitted.add(row.run_key)
                facts["retries_pending"] += len(state.backoff)
                for path, atts in state.attempts.items():
                    att = atts[-1]
                    if att.status is not StepStatus.RUNNING or not _leaf_step(ct, state, path):
                        continue
                    job = jobs.get((state.run_id, path, att.attempt))
                    if job is None:
                        facts["attempts_lost"] += 1
                    elif job[1]:
                        facts["attempts_finished_unseen"] += 1
                    else:
                        facts["attempts_running"] += 1
        await store.settle(clock)
        # The world outside: every job the legacy workers launched and nobody consumed goes on.
        for (run_id, path, attempt), (due, done) in jobs.items():
            world.adopt(run_id, path, attempt, ends_at=due, finished=done)
        for i in range(config.nodes):
            cluster.add_node(f"node-{i}").fast = fast
        if len(cluster.monitor.terminal) >= cluster.monitor.expected:
            cluster.monitor.done.set()
        cluster.start()
        for fault in plan.node_faults:
            node = cluster.nodes[fault.node]
            if fault.kind == "crash":
                clock.call_at(now + fault.at, node.crash)
            else:
                clock.call_at(now + fault.at, functools.partial(node.pause, fault.duration))
        for index in untriggered:
            cluster.triggers_scheduled += 1
            run = trace.runs[index - 1]
            clock.call_at(run.trigger_time, functools.partial(cluster.trigger, trace.trace_id, index))
        cluster.poke()
        last_trigger = max(r.trigger_time for r in trace.runs)
        await cluster.wait(last_trigger + options.time_limit)
        cluster.stop()
        counters = engine._counters(cluster, store, world.starts, options.seed)
        counters["virtual_seconds"] = clock.now() - min(r.trigger_time for r in trace.runs)
        runs = records_from_store(ct, store)
    finally:
        cluster.stop()
        store.close()
    facts["duplicate_starts"] = len(world.started & legacy.launched)
    return runs, counters, facts


# ---- live mode: a live legacy deployment's SQLite file, adopted by live actor nodes -------------------------


def read_legacy_store(path: str, traces: Sequence[Trace]) -> dict[str, list[AdoptedRun]]:
    """The runs of ``traces`` as a (stopped) live legacy deployment left them in its SQLite file
    (:mod:`engines.legacy.live`), per trace id. Opened without simulated latency; nothing is written."""
    from engines.legacy.rows import RowCodec, root_key

    store = SqliteStore(SqliteConfig(path=path, latency=LatencyModel.zero()))
    codec = RowCodec()
    out: dict[str, list[AdoptedRun]] = {}
    try:
        for trace in traces:
            runs = out.setdefault(trace.trace_id, [])
            for index, run in enumerate(trace.runs, start=1):
                loaded = codec.load(store, root_key(trace.trace_id, index))
                if loaded is None:
                    runs.append(AdoptedRun(index, run.run_id, None, False, 0.0))
                else:
                    runs.append(AdoptedRun(index, run.run_id, loaded.state, bool(loaded.book.get("dequeued")),
                                           loaded.root.created_at))  # fmt: skip
    finally:
        store.close()
    return out


async def adopt_live(
    legacy_path: str, actor_path: str, traces: Sequence[Trace], *, nodes: int = 1, config: ActorConfig | None = None,
    timeout: float = 60.0,
) -> tuple[list[ExecutionRecord], dict[str, int]]:  # fmt: skip
    """Live hand-off: live actor nodes (this process, real clock) adopt the runs a stopped live legacy
    deployment left in ``legacy_path`` and finish them in the actor store ``actor_path``. Runs the legacy
    deployment never triggered are triggered now. The world is :class:`TraceWorld` in live form: an attempt
    RUNNING at the cut is re-attached and ends at its legacy ``started_at`` + its recorded duration (the job
    ran on outside the stopped deployment). Returns the records and what was found at the cut."""
    from engines.actor.live import LIVE_CONFIG, _cluster, open_live_store

    cfg = replace(config if config is not None else LIVE_CONFIG, nodes=nodes)
    adopted = read_legacy_store(legacy_path, traces)
    store = open_live_store(actor_path)
    cluster = _cluster(store, traces, cfg, exclusive=True, expected=sum(len(t.runs) for t in traces))
    facts = dict.fromkeys(
        ("runs_live", "runs_queued", "runs_ended", "runs_untriggered", "attempts_running"), 0
    )
    now = cluster.clock.now()
    untriggered: list[tuple[str, int]] = []
    try:
        with store.transaction():
            for trace in traces:
                ct = cluster.catalog[trace.trace_id].ct
                for run in adopted[trace.trace_id]:
                    if run.state is None:
                        untriggered.append((trace.trace_id, run.run_index))
                        facts["runs_untriggered"] += 1
                        continue
                    row, extra, steps = adopt_rows(ct, run, cfg.groups, now)
                    store.create_run(row)
                    for marker in extra:
                        store.create_run(marker)
                    store.save_steps(steps)  # type: ignore[arg-type]
                    state = run.state
                    if state.status.is_terminal and not extra:
                        facts["runs_ended"] += 1
                        cluster.monitor.terminal.add(row.run_key)
                    elif state.status is WorkflowStatus.CREATED and not run.dequeued:
                        facts["runs_queued"] += 1
                    else:
                        facts["runs_live"] += 1
                        cluster.desk.admitted.add(row.run_key)
                    facts["attempts_running"] += sum(
                        1 for path, atts in state.attempts.items()
                        if atts[-1].status is StepStatus.RUNNING and _leaf_step(ct, state, path)
                    )  # fmt: skip
        if len(cluster.monitor.terminal) >= cluster.monitor.expected:
            cluster.monitor.done.set()
        for i in range(nodes):
            cluster.add_node(f"node-{i}")
        cluster.start()
        for trace_id, index in untriggered:
            cluster.trigger(trace_id, index)
        await cluster.wait(cluster.clock.now() + timeout)
        cluster.stop()
        records = [
            ExecutionRecord(
                t.trace_id, ENGINE_NAME, "1", 0, records_from_store(cluster.catalog[t.trace_id].ct, store)
            )
            for t in traces
        ]
    finally:
        cluster.stop()
        store.close()
    return records, facts
