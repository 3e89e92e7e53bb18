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
concurrency limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from corpora._plans import LeafPlan
from corpora.model import FailureMode, Step, WorkflowDefinition

__all__ = ["RunPlan", "StepState", "Timeline", "find_gap", "simulate"]

DEFAULT_FOREACH_CONCURRENCY = 20


class StepState(Enum):
    RAN = "ran"  # succeeded or completed with error: downstream proceeds
    UNSATISFIED = "unsatisfied"
    FAILED = "failed"  # fatally failed or timed out: downstream blocked
    BLOCKED = "blocked"


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


def simulate(
    definition: WorkflowDefinition, subworkflows: Mapping[str, WorkflowDefinition], plan: RunPlan, start: float = 0.0
) -> Timeline:
    timeline = Timeline()
    end, _ = _scope(definition.steps, "", start, subworkflows, plan, timeline)
    timeline.end = end
    return timeline


def _scope(
    steps: Sequence[Step], prefix: str, start: float, subs: Mapping[str, WorkflowDefinition], plan: RunPlan,
    timeline: Timeline,
) -> tuple[float, bool]:
    """Simulate sibling ``steps`` (already in topological order); return (end time, all ran ok)."""
    preds: dict[str, list[tuple[str, bool]]] = {s.id: [] for s in steps}
    for step in steps:
        for t in step.transitions:
            truth = True if t.condition is None else plan.edges[(prefix + step.id, t.to)]
            preds[t.to].append((step.id, truth))
    done: dict[str, tuple[float, StepState]] = {}
    ok = True
    for step in steps:
        incoming = preds[step.id]
        states = [done[u][1] for u, _ in incoming]
        begin = max([start] + [done[u][0] for u, _ in incoming])
        path = prefix + step.id
        if any(s in (StepState.FAILED, StepState.BLOCKED) for s in states):
            done[step.id] = (begin, StepState.BLOCKED)
        elif incoming and not any(done[u][1] is StepState.RAN and truth for u, truth in incoming):
            done[step.id] = (begin, StepState.UNSATISFIED)
        else:
            end, state = _step(step, path, begin, subs, plan, timeline)
            done[step.id] = (end, state)
        timeline.steps[path] = (begin, done[step.id][0], done[step.id][1])
        ok = ok and done[step.id][1] is not StepState.FAILED
    return max([start] + [end for end, _ in done.values()]), ok


def _step(
    step: Step, path: str, begin: float, subs: Mapping[str, WorkflowDefinition], plan: RunPlan, timeline: Timeline
) -> tuple[float, StepState]:
    if step.foreach is not None:
        count = plan.iterations[path]
        limit = step.foreach.concurrency or DEFAULT_FOREACH_CONCURRENCY
        running: list[float] = []
        end = begin
        all_ok = True
        for i in range(count):
            launch = begin
            if len(running) >= limit:
                launch = heapq.heappop(running)
            it_end, it_ok = _scope(step.foreach.steps, f"{path}[{i}]/", launch, subs, plan, timeline)
            all_ok = all_ok and it_ok
            heapq.heappush(running, it_end)
            end = max(end, it_end)
        return end, StepState.RAN if all_ok else StepState.FAILED
    if step.subworkflow is not None:
        child = subs[step.subworkflow.workflow_id]
        end, child_ok = _scope(child.steps, f"{path}/", begin, subs, plan, timeline)
        return end, StepState.RAN if child_ok else StepState.FAILED
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
    if leaf.terminal == "failed" and step.failure_mode is FailureMode.IGNORE_FAILURE:
        return t, StepState.RAN  # COMPLETED_WITH_ERROR counts as success downstream
    return t, StepState.FAILED


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
