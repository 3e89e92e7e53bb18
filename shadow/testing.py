"""Public test helpers: a small trace builder, a scripted fake engine and a planted-fault wrapper.

Users shadow-testing their own engine need the same things we do in our tests: a trace in a few
lines, an engine whose behaviour is known exactly, and an engine that is wrong in one known way so a
test can prove the harness catches it. The fake engine is *not* Maestro: it runs the DAG in
topological order, ignores transition conditions and replays the trace's recorded attempts
verbatim. Use ``engines.core.oracle.CoreOracle`` when the semantics matter.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from corpora.model import (
    JsonValue,
    Outcome,
    Param,
    RecordedAttempt,
    Run,
    Step,
    StepType,
    Trace,
    TraceMetadata,
    Transition,
    WorkflowDefinition,
)
from engines.api import AttemptRecord, Engine, ExecutionRecord, Handoff, ReplayOptions, RunExecution

__all__ = [
    "FAULT_KINDS",
    "PLANTED_CAUSES",
    "CrashingEngine",
    "FailingEngine",
    "FakeEngine",
    "PlantedCausesEngine",
    "PlantedFaultEngine",
    "build_trace",
]

_STATUS_BY_OUTCOME = {
    Outcome.SUCCEEDED: "SUCCEEDED",
    Outcome.USER_ERROR: "USER_FAILED",
    Outcome.PLATFORM_ERROR: "PLATFORM_FAILED",
    Outcome.FATAL_ERROR: "FATALLY_FAILED",
    Outcome.TIMEOUT: "TIMEOUT_FAILED",
}


def build_trace(
    trace_id: str,
    dag: Mapping[str, Sequence[str]],
    attempts: Mapping[str, Sequence[str | tuple[str, float]]] | None = None,
    *,
    params: Mapping[str, Mapping[str, JsonValue]] | None = None,
    step_types: Mapping[str, StepType] | None = None,
    runs: int = 1,
    trigger_time: float = 1_700_000_000.0,
    workflow_type: str = "etl",
    owner: str = "team-a",
    tags: tuple[str, ...] = (),
) -> Trace:
    """A trace from a DAG ``{step: [successors]}`` and per path outcomes ``{path: ["user_error", ...]}``.

    Steps without an entry in ``attempts`` succeed once in 10 s. An outcome may be ``(outcome, seconds)``.
    Every run records the same attempts; run ``i`` is triggered an hour after run ``i-1``."""
    attempts = attempts or {}
    types = step_types or {}
    steps = tuple(
        Step(
            id=sid,
            type=types.get(sid, StepType.SHELL),
            params={k: Param(value=v) for k, v in (params or {}).get(sid, {}).items()},
            transitions=tuple(Transition(to=t) for t in succ),
        )
        for sid, succ in dag.items()
    )
    recorded: list[RecordedAttempt] = []
    for sid in dag:
        for n, spec in enumerate(attempts.get(sid, ["succeeded"]), start=1):
            outcome, seconds = (spec, 10.0) if isinstance(spec, str) else spec
            recorded.append(
                RecordedAttempt(
                    path=sid, attempt=n, outcome=Outcome(outcome), duration=seconds, outputs={"rows": n}
                )
            )
    return Trace(
        trace_id=trace_id,
        definition=WorkflowDefinition(id=f"wf-{trace_id}", steps=steps),
        runs=tuple(
            Run(run_id=f"r{i + 1}", trigger_time=trigger_time + 3600.0 * i, attempts=tuple(recorded))
            for i in range(runs)
        ),
        metadata=TraceMetadata(owner=owner, workflow_type=workflow_type, tags=tags, source="test"),
    )


@dataclass(slots=True)
class FakeEngine:
    """A deterministic toy engine: DAG in topological order, recorded attempts replayed verbatim.

    Each attempt starts ``start_overhead`` seconds (plus a seeded jitter of up to ``jitter``) after it
    became ready, so two seeds differ in latency but never in outcome (an ideal A/A pair)."""

    name: str = "fake"
    version: str = "0.0-test"
    start_overhead: float = 1.0
    jitter: float = 0.5

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        rng = random.Random(f"{options.seed}:{trace.trace_id}")
        runs = tuple(self._run(trace, run, rng) for run in trace.runs)
        return ExecutionRecord(
            trace_id=trace.trace_id,
            engine=self.name,
            engine_version=self.version,
            seed=options.seed,
            runs=runs,
            counters={"attempts": sum(len(r.attempts) for r in runs)},
        )

    def _run(self, trace: Trace, run: Run, rng: random.Random) -> RunExecution:
        graph = nx.DiGraph()
        steps = {s.id: s for s in trace.definition.steps}
        graph.add_nodes_from(steps)
        graph.add_edges_from((s.id, t.to) for s in steps.values() for t in s.transitions)
        by_path: dict[str, list[RecordedAttempt]] = {}
        for att in sorted(run.attempts, key=lambda a: (a.path, a.attempt)):
            by_path.setdefault(att.path, []).append(att)
        ended: dict[str, float] = {}
        failed = False
        records: list[AttemptRecord] = []
        start = run.trigger_time
        for sid in nx.lexicographical_topological_sort(graph):
            if failed:
                break
            preds = list(graph.predecessors(sid))
            ready = max((ended[p] for p in preds), default=start)
            step = steps[sid]
            paths = [p for p in by_path if p == sid or re.match(rf"{re.escape(sid)}(\[\d+\])?/", p)]
            end = ready
            for path in paths:
                t, ok = ready, False
                series = by_path[path]
                for n, att in enumerate(series, start=1):
                    started = t + self.start_overhead + rng.uniform(0.0, self.jitter)
                    finished = started + att.duration
                    ok = att.outcome is Outcome.SUCCEEDED
                    status = _STATUS_BY_OUTCOME[att.outcome]
                    if not ok and n == len(series):
                        status = "FATALLY_FAILED"
                    records.append(
                        AttemptRecord(
                            path=path,
                            step_id=path.rsplit("/", 1)[-1],
                            step_type=step.type.value,
                            attempt=n,
                            status=status,
                            outcome=att.outcome.value,
                            params={k: p.value for k, p in step.params.items()},
                            outputs=dict(att.outputs),
                            config={"failure_mode": "FAIL_IMMEDIATELY"},
                            created_at=t,
                            ready_at=t,
                            started_at=started,
                            ended_at=finished,
                        )
                    )
                    t = finished
                end = max(end, t)
                failed = failed or not ok
            ended[sid] = end
        last = max((r.ended_at or start for r in records), default=start)
        return RunExecution(
            run_id=run.run_id,
            status="FAILED" if failed else "SUCCEEDED",
            workflow_params=dict(run.params),
            triggered_at=run.trigger_time,
            started_at=start,
            ended_at=last,
            attempts=tuple(records),
        )


FAULT_KINDS = ("one_retry_fewer", "drop_param", "lost_wakeup", "reorder")


@dataclass(slots=True)
class PlantedFaultEngine:
    """Wrap an engine and plant one known fault in its records at step ``path`` (every run).

    ``one_retry_fewer``: the last attempt of ``path`` is lost and the one before it ends FATALLY_FAILED
    (the run FAILED). ``drop_param``: param ``param`` is not handed to ``path``. ``lost_wakeup``: the
    wake-up that should start ``path`` is lost without repair, so neither it nor anything after it
    runs and the run is stuck. ``reorder``: ``path`` starts before its predecessors ended (a
    causality violation, outcomes unchanged)."""

    inner: Engine
    fault: str
    path: str
    param: str = ""
    name: str = field(default="")
    version: str = field(default="")

    def __post_init__(self) -> None:
        if self.fault not in FAULT_KINDS:
            raise ValueError(f"unknown planted fault {self.fault!r}; use one of {', '.join(FAULT_KINDS)}")
        self.name = self.name or f"{self.inner.name}+{self.fault}"
        self.version = self.version or self.inner.version

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        record = self.inner.replay(trace, options)
        runs = tuple(self._plant(run) for run in record.runs)
        return replace(record, engine=self.name, runs=runs)

    def _plant(self, run: RunExecution) -> RunExecution:
        mine = [a for a in run.attempts if a.path == self.path]
        if not mine:
            return run
        others = [a for a in run.attempts if a.path != self.path]
        if self.fault == "one_retry_fewer":
            if len(mine) < 2:
                return run
            kept = [*mine[:-2], replace(mine[-2], status="FATALLY_FAILED")]
            later = [a for a in others if (a.started_at or 0.0) < (mine[-1].ended_at or 0.0)]
            return replace(run, status="FAILED", attempts=_ordered([*later, *kept]))
        if self.fault == "drop_param":
            changed = [
                replace(a, params={k: v for k, v in a.params.items() if k != self.param}) for a in mine
            ]
            return replace(run, attempts=_ordered([*others, *changed]))
        if self.fault == "lost_wakeup":
            cut = mine[0].ready_at if mine[0].ready_at is not None else mine[0].started_at or 0.0
            kept = [a for a in others if (a.started_at or 0.0) < cut]
            return replace(run, status="IN_PROGRESS", stuck=True, ended_at=None, attempts=_ordered(kept))
        first = mine[0]
        early = (first.ready_at or 0.0) - 5.0
        moved = replace(first, ready_at=early, started_at=early)
        return replace(run, attempts=_ordered([*others, moved, *mine[1:]]))


@dataclass(slots=True)
class PlantedHandoffEngine:
    """Wrap an engine offering :class:`engines.api.HandsOff` and plant one known fault (a
    :class:`PlantedFaultEngine` kind) in every handed-off record: a broken adoption ``shadow handoff``
    must report."""

    inner: Any
    fault: str
    path: str
    name: str = "planted-handoff"
    version: str = "0.0-test"

    @property
    def handoff_sources(self) -> tuple[str, ...]:
        return tuple(self.inner.handoff_sources)

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        return self.inner.replay(trace, options)  # type: ignore[no-any-return]

    def handoff(
        self, trace: Trace, options: ReplayOptions, cut_at: float, *, source: str = "legacy"
    ) -> Handoff:
        out: Handoff = self.inner.handoff(trace, options, cut_at, source=source)
        planter = PlantedFaultEngine(self.inner, fault=self.fault, path=self.path)
        runs = tuple(planter._plant(run) for run in out.record.runs)
        return replace(out, record=replace(out.record, runs=runs))


def handoff_with_fault(
    fault: str = "one_retry_fewer", path: str = "b", inner: str = "actor"
) -> PlantedHandoffEngine:
    """Factory for ``shadow handoff --target shadow.testing:handoff_with_fault``."""
    from shadow.engines import build_engine, resolve_engine

    return PlantedHandoffEngine(build_engine(resolve_engine(inner)), fault=fault, path=path)


def _ordered(attempts: Iterable[AttemptRecord]) -> tuple[AttemptRecord, ...]:
    return tuple(sorted(attempts, key=lambda a: (a.started_at or 0.0, a.path, a.attempt)))


@dataclass(slots=True)
class FailingEngine:
    """An engine that raises on traces whose id is in ``fail_on`` and otherwise delegates."""

    inner: Engine
    fail_on: frozenset[str] = frozenset()
    name: str = "failing"
    version: str = "0.0-test"

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        if trace.trace_id in self.fail_on:
            raise RuntimeError(f"planted engine crash on {trace.trace_id}")
        return replace(self.inner.replay(trace, options), engine=self.name)


def fake_engine() -> FakeEngine:
    """Factory for ``--candidate shadow.testing:fake_engine``."""
    return FakeEngine()


def fake_engine_with_fault(
    fault: str = "one_retry_fewer", path: str = "b", param: str = "", inner: str = "fake"
) -> PlantedFaultEngine:
    """Factory for ``--candidate shadow.testing:fake_engine_with_fault``: ``inner`` is ``fake`` or any
    engine name ``shadow run`` accepts (``oracle``, ``actor``, ``module:factory``)."""
    from shadow.engines import build_engine, resolve_engine

    engine: Engine = FakeEngine() if inner == "fake" else build_engine(resolve_engine(inner))
    return PlantedFaultEngine(engine, fault=fault, path=path, param=param)


def failing_engine(fail_on: str = "") -> FailingEngine:
    """Factory for ``--candidate shadow.testing:failing_engine``: crashes on the comma-separated ids."""
    return FailingEngine(FakeEngine(), fail_on=frozenset(x for x in fail_on.split(",") if x))


@dataclass(slots=True)
class SlowEngine:
    """Delegates after sleeping ``delay`` real seconds: gives crash tests a window to kill a run mid-way."""

    inner: Engine
    delay: float = 0.02
    name: str = "slow"
    version: str = "0.0-test"

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        import time

        time.sleep(self.delay)
        return replace(self.inner.replay(trace, options), engine=self.name)


def slow_engine(delay: float = 0.1) -> SlowEngine:
    """Factory for ``--candidate shadow.testing:slow_engine``."""
    return SlowEngine(FakeEngine(), delay=delay)


def _upper_step_id(params: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    value = params.get("step_id")
    return {**params, "step_id": value.upper()} if isinstance(value, str) else dict(params)


def _scaled_timeout(config: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    value = config.get("timeout_seconds")
    return {**config, "timeout_seconds": value * 2} if isinstance(value, (int, float)) else dict(config)


def _lower_failure_mode(config: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    value = config.get("failure_mode")
    return {**config, "failure_mode": value.lower()} if isinstance(value, str) else dict(config)


# Five independent bugs a candidate could have, each touching every attempt of every step but changing no
# status (so none causes another): the planted-cause test expects exactly one cause group per bug.
PLANTED_CAUSES: dict[str, Callable[[AttemptRecord], AttemptRecord]] = {
    "output_added": lambda a: replace(a, outputs={**a.outputs, "region": "eu-west-1"}),
    "param_upper_cased": lambda a: replace(a, params=_upper_step_id(a.params)),
    "timeout_doubled": lambda a: replace(a, config=_scaled_timeout(a.config)),
    "output_number_added": lambda a: replace(a, outputs={**a.outputs, "bytes": 1024}),
    "failure_mode_lower_cased": lambda a: replace(a, config=_lower_failure_mode(a.config)),
}


@dataclass(slots=True)
class PlantedCausesEngine:
    """Wrap an engine and apply planted bugs (:data:`PLANTED_CAUSES`) to every attempt it records."""

    inner: Engine
    causes: tuple[str, ...]
    name: str = "planted-causes"
    version: str = "0.0-test"

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        record = self.inner.replay(trace, options)
        bugs = [PLANTED_CAUSES[name] for name in self.causes]

        def planted(attempt: AttemptRecord) -> AttemptRecord:
            for bug in bugs:
                attempt = bug(attempt)
            return attempt

        runs = tuple(replace(run, attempts=tuple(planted(a) for a in run.attempts)) for run in record.runs)
        return replace(record, engine=self.name, runs=runs)


def _planted(count: int) -> PlantedCausesEngine:
    from shadow.engines import build_engine, resolve_engine

    return PlantedCausesEngine(build_engine(resolve_engine("oracle")), tuple(PLANTED_CAUSES)[:count])


def one_cause() -> PlantedCausesEngine:
    """Factory for ``--candidate shadow.testing:one_cause`` (the oracle with one planted bug)."""
    return _planted(1)


def two_causes() -> PlantedCausesEngine:
    """Factory for ``--candidate shadow.testing:two_causes``."""
    return _planted(2)


def five_causes() -> PlantedCausesEngine:
    """Factory for ``--candidate shadow.testing:five_causes``."""
    return _planted(5)


@dataclass(slots=True)
class CrashingEngine:
    """Kills the process replaying it (``os._exit``, like a segfault or the OOM killer) on traces whose id
    is in ``crash_on``; otherwise delegates. With ``once`` (a file path) it crashes only while that file
    does not exist, creating it first: a worker that dies once, mid-batch. For executors with worker
    processes only: inline, it ends the caller."""

    inner: Engine
    crash_on: frozenset[str] = frozenset()
    once: str = ""
    name: str = "fake"
    version: str = "0.0-test"

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        import os

        if trace.trace_id in self.crash_on:
            if not self.once:
                os._exit(70)
            try:
                with open(self.once, "x", encoding="utf-8"):
                    pass
            except FileExistsError:
                pass
            else:
                os._exit(70)
        return self.inner.replay(trace, options)


def crashing_engine(crash_on: str = "", once: str = "") -> CrashingEngine:
    """Factory for ``--candidate shadow.testing:crashing_engine``: kills its worker on the comma-separated ids."""
    return CrashingEngine(FakeEngine(), crash_on=frozenset(x for x in crash_on.split(",") if x), once=once)
