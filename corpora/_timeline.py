"""An idealised, zero-latency timeline of one generated run, used to keep the corpus free of races.

Both engines replay the same recorded attempts, but the legacy engine adds seconds of polling latency
per step while the actor engine adds milliseconds. Whenever two things happen close together in
virtual time (a FAIL_IMMEDIATELY failure and another step finishing, a workflow timeout and a step
ending), which one wins would depend on orchestration latency rather than on the workflow, and the
comparison would report a divergence that is not a bug. The generator therefore computes this
timeline and places such moments in gaps of at least a margin (:func:`find_gap`).

The model follows Maestro's DAG rules: a step becomes eligible when every predecessor is complete;
it runs if any incoming edge is true (else UNSATISFIED, with all its edges false); a failed or
timed-out predecessor blocks everything downstream; foreach iterations launch in order under a
concurrency limit (the smaller of the foreach's own and its workflow's ``step_concurrency``, 20 by
default) and stop launching once an iteration has failed; a foreach or subworkflow whose child failed
fails in turn (IGNORE_FAILURE turns that into a success, not a timeout); a subworkflow started without
waiting (``sync: false``) ends at once, its child running on alongside (:attr:`Timeline.detached_end`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from corpora._plans import LeafPlan
from corpora.model import FailureMode, Step, WorkflowDefinition

__all__ = ["RunPlan", "StepState", "Timeline", "container_limit", "find_gap", "simulate"]

DEFAULT_FOREACH_CONCURRENCY = 20


class StepState(Enum):
    RAN = "ran"  # succeeded or completed with error: downstream proceeds
    UNSATISFIED = "unsatisfied"
    FAILED = "failed"  # fatally failed: downstream blocked
    TIMED_OUT = "timed_out"  # timed out: downstream blocked (no failure mode applies)
    BLOCKED = "blocked"


_DOWN = (StepState.FAILED, StepState.TIMED_OUT, StepState.BLOCKED)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What a generated run will do: a plan per leaf path, the truth of each conditional edge
    (keyed by the source step's path and the target id) and each foreach's iteration count."""

    leaves: Mapping[str, LeafPlan]
    edges: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    iterations: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Timeline:
    events: list[tuple[float, str]] = field(default_factory=list)  # attempt starts and ends, per path
    steps: dict[str, tuple[float, float, StepState]] = field(default_factory=dict)
    end: float = 0.0
    #: when the last child started without waiting (``sync: false``) ends; the run itself may end earlier
    detached_end: float = 0.0


def simulate(
    definition: WorkflowDefinition,
    subworkflows: Mapping[str, WorkflowDefinition],
    plan: RunPlan,
    start: float = 0.0,
) -> Timeline:
    timeline = Timeline()
    end, _ = _scope(definition.steps, "", start, subworkflows, plan, timeline, definition.step_concurrency)
    timeline.end = end
    return timeline


def _scope(
    steps: Sequence[Step],
    prefix: str,
    start: float,
    subs: Mapping[str, WorkflowDefinition],
    plan: RunPlan,
    timeline: Timeline,
    step_concurrency: int | None,
) -> tuple[float, StepState]:
    """Simulate sibling ``steps`` (already in topological order) of one workflow instance whose
    workflow sets ``step_concurrency``; return (end time, RAN, FAILED or TIMED_OUT: the instance's
    outcome, FAILED outranking TIMED_OUT)."""
    preds: dict[str, list[tuple[str, bool]]] = {s.id: [] for s in steps}
    for step in steps:
        for t in step.transitions:
            truth = True if t.condition is None else plan.edges[(prefix + step.id, t.to)]
            preds[t.to].append((step.id, truth))
    done: dict[str, tuple[float, StepState]] = {}
    for step in steps:
        incoming = preds[step.id]
        states = [done[u][1] for u, _ in incoming]
        begin = max([start] + [done[u][0] for u, _ in incoming])
        path = prefix + step.id
        if any(s in _DOWN for s in states):
            done[step.id] = (begin, StepState.BLOCKED)
        elif incoming and not any(done[u][1] is StepState.RAN and truth for u, truth in incoming):
            done[step.id] = (begin, StepState.UNSATISFIED)
        else:
            end, state = _step(step, path, begin, subs, plan, timeline, step_concurrency)
            done[step.id] = (end, state)
        timeline.steps[path] = (begin, done[step.id][0], done[step.id][1])
    seen = {state for _, state in done.values()}
    outcome = next((s for s in (StepState.FAILED, StepState.TIMED_OUT) if s in seen), StepState.RAN)
    return max([start] + [end for end, _ in done.values()]), outcome


def _step(
    step: Step,
    path: str,
    begin: float,
    subs: Mapping[str, WorkflowDefinition],
    plan: RunPlan,
    timeline: Timeline,
    step_concurrency: int | None,
) -> tuple[float, StepState]:
    if step.foreach is not None:
        count = plan.iterations[path]
        limit = container_limit(step, step_concurrency)
        running: list[float] = []
        failed_at: list[float] = []  # end times of the FAILED iterations
        end = begin
        outcomes: set[StepState] = set()
        for i in range(count):
            launch = begin
            if len(running) >= limit:
                launch = heapq.heappop(running)
            if any(t <= launch for t in failed_at):
                break  # an iteration failed before this one could launch: no more launches
            it_end, it_state = _scope(step.foreach.steps, f"{path}[{i}]/", launch, subs, plan, timeline, None)
            outcomes.add(it_state)
            if it_state is StepState.FAILED:
                failed_at.append(it_end)
            heapq.heappush(running, it_end)
            end = max(end, it_end)
        state = next((s for s in (StepState.FAILED, StepState.TIMED_OUT) if s in outcomes), StepState.RAN)
        return end, _apply_mode(step, state)
    if step.subworkflow is not None:
        child = subs[step.subworkflow.workflow_id]
        end, child_state = _scope(
            child.steps, f"{path}/", begin, subs, plan, timeline, child.step_concurrency
        )
        if not step.subworkflow.sync:  # succeeds at the launch; the child runs on by itself
            timeline.detached_end = max(timeline.detached_end, end)
            return begin, StepState.RAN
        return end, _apply_mode(step, child_state)
    leaf = plan.leaves[path]
    t = begin
    for k in range(len(leaf.outcomes)):
        timeline.events.append((t, path))
        t += leaf.elapsed(k)
        timeline.events.append((t, path))
        if k < len(leaf.delays):
            t += leaf.delays[k]
    if leaf.terminal is None:
        return t, StepState.RAN
    return t, _apply_mode(step, StepState.TIMED_OUT if leaf.terminal == "timed_out" else StepState.FAILED)


def _apply_mode(step: Step, state: StepState) -> StepState:
    """IGNORE_FAILURE turns a fatal failure into COMPLETED_WITH_ERROR, which counts as success downstream;
    it does not apply to a timeout."""
    if state is StepState.FAILED and step.failure_mode is FailureMode.IGNORE_FAILURE:
        return StepState.RAN
    return state


def container_limit(step: Step, step_concurrency: int | None) -> int:
    """How many iterations of the foreach ``step`` run at once in a workflow with ``step_concurrency``:
    the smaller of its own concurrency and the workflow's limit (20 when unset), as the core computes it."""
    assert step.foreach is not None
    workflow = step_concurrency or DEFAULT_FOREACH_CONCURRENCY
    own = step.foreach.concurrency
    return min(own, workflow) if own is not None else workflow


def find_gap(events: Sequence[float], earliest: float, margin: float) -> float:
    """The first time ``>= earliest`` at least ``margin`` away from every event."""
    t = earliest
    for e in sorted(events):
        if e <= t - margin:
            continue
        if e < t + margin:
            t = e + margin
            continue
        break
    return t
