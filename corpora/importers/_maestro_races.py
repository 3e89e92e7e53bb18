"""Keep synthesized Maestro failures out of latency races (``--race-margin``).

A synthesized run says *what* each attempt does, not *when* the orchestrator notices it. When a
step fails for good at virtual time *t* and another attempt starts or ends a few seconds from *t*
(a sibling branch, the next foreach iteration taking a freed slot), which one an engine sees first
depends on its orchestration latency: FAIL_AFTER_RUNNING stops launching new steps or iterations,
FAIL_IMMEDIATELY stops running ones. The legacy engine adds seconds per launch, the actor engine
milliseconds, so the two engines can then honestly disagree (seen on ``sample-nested-foreach-wf``:
``foreach-job[5]`` launched on one engine, not on the other).

This module moves the end of every failure (it lengthens the final failed attempt, as
:mod:`corpora.generator` does with :func:`corpora._timeline.find_gap`) into a quiet gap at least
``margin + 10 s x depth`` away from every other attempt start or end of the zero-latency timeline
(:func:`corpora._timeline.simulate`); ``depth`` is the number of sequential launches of the run,
since latency accumulates along a chain. Events the failure itself causes (a slot it frees) are
found by simulating the failure as never ending and are not counted as rivals. Outcomes and the
number of attempts never change; only durations of failing attempts grow. Margin 0 keeps the raw
draws (the old behaviour).

Approximations, all on the conservative side or documented in docs/IMPORTERS.md: conditions that
cannot be evaluated at import time count as taken; iterations launched after a failure (which an
engine would not launch) still count as rivals; retry backoff is Maestro's formula with defaults
(60 s base, exponent 2, caps 600 s / 3,600 s) where a value does not resolve to a number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import networkx as nx

from corpora._plans import LeafPlan
from corpora._timeline import DEFAULT_FOREACH_CONCURRENCY, RunPlan, StepState, find_gap, simulate
from corpora.importers._sel import SelSyntaxError, Unresolved, evaluate
from corpora.model import Backoff, BackoffType, Outcome, Step, WorkflowDefinition

__all__ = ["LATENCY_PER_LAUNCH", "backoff_delays", "place_failures", "workflow_timeout_races"]

#: extra margin per sequential launch: the legacy engine needs ~4.5 s to start a step and 0-3 s to see it end
LATENCY_PER_LAUNCH = 10.0
_NEVER = 1.0e12
_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_CLASS = {Outcome.USER_ERROR: "error", Outcome.PLATFORM_ERROR: "platform", Outcome.TIMEOUT: "timeout"}
_EXP_DEFAULTS = {"error": (60, 2, 600), "platform": (60, 2, 3600), "timeout": (60, 2, 3600)}


def _number(value: int | str | None, env: Mapping[str, Any]) -> int | None:
    if value is None or isinstance(value, int):
        return value
    text = _INTERP.sub(lambda m: str(env.get(m.group(1) or m.group(2), m.group(0))), value)
    try:
        return int(text.strip())
    except ValueError:
        return None


def backoff_delays(
    outcomes: Sequence[Outcome], backoff: Backoff | None, env: Mapping[str, Any]
) -> tuple[float, ...]:
    """Seconds an engine waits before attempts 2..n (Maestro's backoff, §1.4 of MAESTRO-SEMANTICS.md)."""
    fixed = backoff is not None and backoff.type is BackoffType.FIXED_BACKOFF
    counts = {"error": 0, "platform": 0, "timeout": 0}
    delays: list[float] = []
    for outcome in outcomes[:-1]:
        klass = _CLASS.get(outcome)
        if klass is None:
            break
        base, exponent, cap = _EXP_DEFAULTS[klass]
        if backoff is not None:
            base = _number(getattr(backoff, f"{klass}_retry_backoff_in_secs"), env) or base
            exponent = _number(getattr(backoff, f"{klass}_retry_exponent"), env) or exponent
            cap = _number(getattr(backoff, f"{klass}_retry_limit_in_secs"), env) or cap
        delays.append(float(base) if fixed else float(min(base * exponent ** counts[klass], cap)))
        counts[klass] += 1
    return tuple(delays)


def _ordered(steps: Sequence[Step]) -> tuple[Step, ...]:
    """Siblings in a topological order (the timeline walks them in list order), stable on ties."""
    graph = nx.DiGraph()
    index = {s.id: i for i, s in enumerate(steps)}
    graph.add_nodes_from(index)
    graph.add_edges_from((s.id, t.to) for s in steps for t in s.transitions if t.to in index)
    by_id = {s.id: s for s in steps}
    out = []
    for step_id in nx.lexicographical_topological_sort(graph, key=index.__getitem__):
        step = by_id[step_id]
        if step.foreach is not None:
            step = replace(step, foreach=replace(step.foreach, steps=_ordered(step.foreach.steps)))
        out.append(step)
    return tuple(out)


def _edges(
    steps: Sequence[Step],
    prefix: str,
    env: Mapping[str, Any],
    iterations: Mapping[str, int],
    subs: Mapping[str, WorkflowDefinition],
    out: dict[tuple[str, str], bool],
) -> None:
    for step in steps:
        for t in step.transitions:
            if t.condition is not None:
                try:
                    truth = bool(evaluate(t.condition, env))
                except (Unresolved, SelSyntaxError, ArithmeticError, TypeError, ValueError):
                    truth = True  # unknown at import time: assume taken (more rivals, never fewer)
                out[(prefix + step.id, t.to)] = truth
        if step.foreach is not None:
            for i in range(iterations.get(prefix + step.id, 0)):
                _edges(step.foreach.steps, f"{prefix}{step.id}[{i}]/", env, iterations, subs, out)
        elif step.subworkflow is not None:
            _edges(
                subs[step.subworkflow.workflow_id].steps, f"{prefix}{step.id}/", env, iterations, subs, out
            )


def _depth(
    steps: Sequence[Step],
    prefix: str,
    iterations: Mapping[str, int],
    plans: Mapping[str, LeafPlan],
    subs: Mapping[str, WorkflowDefinition],
) -> int:
    """Sequential launches along the longest chain of ``steps`` (foreach: waves x the deepest iteration)."""
    longest: dict[str, int] = {}
    preds: dict[str, list[str]] = {s.id: [] for s in steps}
    for step in steps:
        for t in step.transitions:
            preds.setdefault(t.to, []).append(step.id)
    for step in steps:  # topologically ordered by _ordered
        path = prefix + step.id
        if step.foreach is not None:
            count = iterations.get(path, 0)
            waves = (
                math.ceil(count / (step.foreach.concurrency or DEFAULT_FOREACH_CONCURRENCY)) if count else 0
            )
            inner = max(
                (_depth(step.foreach.steps, f"{path}[{i}]/", iterations, plans, subs) for i in range(count)),
                default=0,
            )
            own = 1 + waves * inner
        elif step.subworkflow is not None:
            own = 1 + _depth(subs[step.subworkflow.workflow_id].steps, f"{path}/", iterations, plans, subs)
        else:
            own = len(plans[path].outcomes) if path in plans else 1
        longest[step.id] = own + max((longest.get(p, 0) for p in preds[step.id]), default=0)
    return max(longest.values(), default=0)


def place_failures(
    definition: WorkflowDefinition,
    subworkflows: Mapping[str, WorkflowDefinition],
    plans: Mapping[str, LeafPlan],
    iterations: Mapping[str, int],
    env: Mapping[str, Any],
    margin: float,
) -> tuple[dict[str, LeafPlan], list[str]]:
    """Lengthen the final attempt of every failing leaf so its end keeps ``margin`` (plus latency per
    launch) from every rival event. Returns the new plans and the failing paths that could not be
    placed (a step timeout leaves no room): the caller tags those."""
    out = dict(plans)
    failing = sorted(p for p, plan in plans.items() if plan.terminal == "failed")
    if margin <= 0 or not failing:
        return out, []
    ordered = replace(definition, steps=_ordered(definition.steps))
    subs = {k: replace(v, steps=_ordered(v.steps)) for k, v in subworkflows.items()}
    edges: dict[tuple[str, str], bool] = {}
    _edges(ordered.steps, "", env, iterations, subs, edges)
    wide = margin + LATENCY_PER_LAUNCH * _depth(ordered.steps, "", iterations, out, subs)
    unmet: list[str] = []
    for _round in range(3):  # placing one failure never moves an event independent of it; rounds re-check
        moved = False
        for path in failing:
            leaf = out[path]
            timeline = simulate(ordered, subs, RunPlan(out, edges, iterations))
            begin_end = timeline.steps.get(path)
            if begin_end is None or begin_end[2] in (StepState.UNSATISFIED, StepState.BLOCKED):
                continue
            end = begin_end[1]
            endless = replace(leaf, durations=(*leaf.durations[:-1], _NEVER))
            rivals = simulate(ordered, subs, RunPlan({**out, path: endless}, edges, iterations))
            others = [t for t, p in rivals.events if p != path and t < _NEVER / 10]
            at = find_gap(others, end, wide)
            if at <= end + 1e-6:
                continue
            last = math.ceil((leaf.durations[-1] + (at - end)) * 1000.0) / 1000.0
            if leaf.timeout is not None and last >= leaf.timeout - 1.0:
                if path not in unmet:
                    unmet.append(path)
                continue
            out[path] = replace(leaf, durations=(*leaf.durations[:-1], last))
            moved = True
        if not moved:
            break
    return out, unmet


def _seconds(timeout: int | float | str | None) -> float | None:
    if isinstance(timeout, bool) or timeout is None:
        return None
    if isinstance(timeout, (int, float)):
        return float(timeout)
    text = timeout.strip().lower().removesuffix("s").removesuffix("sec").strip()
    try:
        return float(text)
    except ValueError:
        return None  # "10 min" style strings: not checked (documented)


def workflow_timeout_races(
    definition: WorkflowDefinition,
    subworkflows: Mapping[str, WorkflowDefinition],
    plans: Mapping[str, LeafPlan],
    iterations: Mapping[str, int],
    env: Mapping[str, Any],
    margin: float,
) -> bool:
    """True when the workflow's own timeout fires within ``margin`` (plus latency per launch) of an
    attempt start or end: which attempts ran before the timeout then depends on engine latency. The
    timeout is part of the definition and is not moved; the caller tags the trace."""
    limit = _seconds(definition.timeout)
    if margin <= 0 or limit is None:
        return False
    ordered = replace(definition, steps=_ordered(definition.steps))
    subs = {k: replace(v, steps=_ordered(v.steps)) for k, v in subworkflows.items()}
    edges: dict[tuple[str, str], bool] = {}
    _edges(ordered.steps, "", env, iterations, subs, edges)
    wide = margin + LATENCY_PER_LAUNCH * _depth(ordered.steps, "", iterations, plans, subs)
    timeline = simulate(ordered, subs, RunPlan(plans, edges, iterations))
    if timeline.end < limit - wide:
        return False
    return any(abs(t - limit) < wide for t, _ in timeline.events)
