"""Causal (DAG) order of step paths, and the start-order check against it.

Engines may legally start independent branches in any order, so start order is never compared
between engines. What must hold in every engine's record is causality: no attempt of a step starts
before every predecessor that ran (in the same workflow body) has ended its final attempt. Foreach
iterations and subworkflow children are checked inside their own bodies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import networkx as nx

from corpora.model import Step, Trace
from engines.api import AttemptRecord, RunExecution

__all__ = ["CausalOrder", "CausalityViolation", "check_causality"]

_SEGMENT = re.compile(r"^(?P<id>[^\[/]+)(?:\[(?P<index>\d+)\])?$")
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class _Body:
    rank: dict[str, int]
    preds: dict[str, tuple[str, ...]]
    steps: dict[str, Step]


def _body(steps: Sequence[Step]) -> _Body:
    graph = nx.DiGraph()
    graph.add_nodes_from(s.id for s in steps)
    graph.add_edges_from((s.id, t.to) for s in steps for t in s.transitions if t.to in graph)
    try:
        order = list(nx.lexicographical_topological_sort(graph))
    except nx.NetworkXUnfeasible:  # a cyclic definition: fall back to declaration order
        order = [s.id for s in steps]
    return _Body(
        rank={sid: i for i, sid in enumerate(order)},
        preds={sid: tuple(sorted(graph.predecessors(sid))) for sid in graph},
        steps={s.id: s for s in steps},
    )


class CausalOrder:
    """Sort keys and predecessor lookups for the step paths of one trace."""

    def __init__(self, trace: Trace) -> None:
        self._trace = trace
        self._bodies: dict[int, _Body] = {}
        self.key = cache(self._key)

    def _body_of(self, steps: Sequence[Step]) -> _Body:
        body = self._bodies.get(id(steps))
        if body is None:
            body = self._bodies[id(steps)] = _body(steps)
        return body

    def _resolve(self, path: str) -> tuple[list[tuple[_Body, str, int]], bool]:
        """Each segment's (body, step id, loop index); False when the path leaves the definition."""
        steps: Sequence[Step] = self._trace.definition.steps
        out: list[tuple[_Body, str, int]] = []
        for segment in path.split("/"):
            match = _SEGMENT.match(segment)
            body = self._body_of(steps)
            if match is None or match["id"] not in body.steps:
                return out, False
            sid = match["id"]
            out.append((body, sid, int(match["index"] or -1)))
            step = body.steps[sid]
            if step.foreach is not None:
                steps = step.foreach.steps
            elif step.subworkflow is not None and step.subworkflow.workflow_id in self._trace.subworkflows:
                steps = self._trace.subworkflows[step.subworkflow.workflow_id].steps
            else:
                steps = ()
        return out, True

    def _key(self, path: str) -> tuple[tuple[int, int, str], ...]:
        """Ancestors before descendants, DAG order within a body, unknown paths last (by name)."""
        if not path:
            return ((-1, -1, ""),)
        resolved, known = self._resolve(path)
        key = [(body.rank[sid], index, sid) for body, sid, index in resolved]
        if not known:
            key.append((1 << 30, 0, path))
        return tuple(key)

    def predecessors(self, path: str) -> tuple[str, ...]:
        """Paths of the step's DAG predecessors in the same body (same prefix)."""
        resolved, known = self._resolve(path)
        if not known or not resolved:
            return ()
        body, sid, _ = resolved[-1]
        prefix = path[: len(path) - len(path.rsplit("/", 1)[-1])]
        return tuple(prefix + p for p in body.preds.get(sid, ()))


@dataclass(frozen=True, slots=True)
class CausalityViolation:
    path: str
    predecessor: str
    started_at: float
    predecessor_ended_at: float


def _spans(attempts: Iterable[AttemptRecord]) -> dict[str, tuple[float, float]]:
    """(first start, last end) per path and per every ancestor path (composite steps have no attempts)."""
    spans: dict[str, tuple[float, float]] = {}
    for att in attempts:
        if att.started_at is None:
            continue
        end = att.ended_at if att.ended_at is not None else float("inf")
        parts = att.path.split("/")
        names = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        # `fan[2]` also stands for its foreach step `fan`.
        names += [re.sub(r"\[\d+\]$", "", n) for n in names if n.endswith("]")]
        for name in names:
            lo, hi = spans.get(name, (att.started_at, end))
            spans[name] = (min(lo, att.started_at), max(hi, end))
    return spans


def check_causality(run: RunExecution, order: CausalOrder) -> list[CausalityViolation]:
    """Every step (leaf or composite) whose first start precedes a ran predecessor's last end."""
    spans = _spans(run.attempts)
    out: list[CausalityViolation] = []
    for path in sorted(spans, key=order.key):
        if path.endswith("]"):  # an iteration stands in for its foreach step, checked as that step
            continue
        start = spans[path][0]
        for pred in order.predecessors(path):
            if pred in spans and start < spans[pred][1] - _EPSILON:
                out.append(CausalityViolation(path, pred, start, spans[pred][1]))
    return out
