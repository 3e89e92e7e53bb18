"""Why an exemplar diverged where it did, read off the workflow definition (when the corpus is at hand).

Two explanations, both from the trace's definition and the divergence rows; nothing is replayed:

- **params**: for a ``params`` divergence, the step's param definition (the expression, or the literal
  value) and both evaluated values, with the upstream outputs the expression reads (``stepid__name``
  references: how a param names a completed upstream step's output in the expression language).
- **chain**: when the exemplar's divergence is not the run's first divergence point, the DAG path from
  the first divergence point to it (the definition's graph, :func:`reports.definitions.definition_graph`),
  each hop with the transition's condition, and per hop the ``stepid__name`` references (in the
  condition or in the step's params) to a step earlier on the chain: which changed output can have fed
  which condition or param.

Limits, said where shown: the chain is *control flow* (a path in the DAG); the references are read from
the expression *text*, so a reference through an intermediate param or a workflow param is not followed;
a foreach iteration or subworkflow child is linked to its container by the dashed scope edges only.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from corpora.model import Param, Step, Trace
from reports.definitions import step_at

__all__ = ["ChainHop", "ParamWhy", "Why", "explain", "references"]

_REF = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*?)__([A-Za-z_][A-Za-z0-9_]*)\b")
_PARAM = re.compile(r"params\.([A-Za-z0-9_-]+)")
_ITER = re.compile(r"\[\d+\]$")


def references(text: str | None) -> tuple[tuple[str, str], ...]:
    """``(step_id, output)`` pairs an expression names as ``stepid__output`` (in order, without repeats)."""
    if not text:
        return ()
    return tuple(dict.fromkeys(_REF.findall(text)))


@dataclass(frozen=True, slots=True)
class ParamWhy:
    """A param that differs: its definition and both evaluated values (JSON text)."""

    run_id: str
    path: str
    name: str
    definition: str  # "expression: ..." | "value: ..." | why it is not in the definition
    reads: tuple[str, ...]  # "step.output" the expression reads
    baseline: str
    other: str


@dataclass(frozen=True, slots=True)
class ChainHop:
    """One step on the path from the first divergence point: how it was reached and what it reads."""

    path: str
    condition: str | None  # the transition's condition into this step (None: always taken, or a scope edge)
    reads: tuple[str, ...]  # "step.output" references to a step earlier on the chain


@dataclass(frozen=True, slots=True)
class Why:
    params: tuple[ParamWhy, ...] = ()
    chain: tuple[ChainHop, ...] = ()
    note: str = ""


def _describe(param: Param | None, where: str) -> tuple[str, tuple[str, ...]]:
    if param is None:
        return (f"not in the {where} definition (a reserved or system param, or one the step inherits)", ())
    if param.expression is not None:
        return f"expression: {param.expression}", tuple(f"{s}.{o}" for s, o in references(param.expression))
    text = json.dumps(param.value, ensure_ascii=False)
    return f"value: {text}", tuple(
        f"{s}.{o}" for s, o in references(param.value if isinstance(param.value, str) else None)
    )


def _param_name(divergence: Mapping[str, Any]) -> str | None:
    for text in (str(divergence.get("detail") or ""), str(divergence.get("cause") or "")):
        m = _PARAM.search(text)
        if m:
            return m.group(1)
    return None


def _param_whys(trace: Trace, divergences: Iterable[Mapping[str, Any]]) -> tuple[ParamWhy, ...]:
    out: list[ParamWhy] = []
    for d in divergences:
        if d.get("kind") != "params":
            continue
        name = _param_name(d)
        if name is None:
            continue
        path = str(d.get("path") or "")
        reads: tuple[str, ...] = ()
        if path:
            step = step_at(trace, path)
            if step is None:
                definition = "the step is not in the definition"
            else:
                definition, reads = _describe(step.params.get(name), "step's")
        else:
            definition, reads = _describe(trace.definition.params.get(name), "workflow's")
        out.append(
            ParamWhy(
                str(d.get("run_id") or ""),
                path,
                name,
                definition,
                reads,
                str(d.get("baseline_value") or ""),
                str(d.get("other_value") or ""),
            )
        )
    return tuple(out)


def _step_id(path: str) -> str:
    return _ITER.sub("", path.rsplit("/", 1)[-1])


def _condition(trace: Trace, upstream: str, downstream: str) -> str | None:
    step = step_at(trace, upstream)
    if step is None or upstream.rsplit("/", 1)[:-1] != downstream.rsplit("/", 1)[:-1]:
        return None  # a scope edge (into / out of a foreach or subworkflow): no condition of its own
    target = _step_id(downstream)
    return next((t.condition for t in step.transitions if t.to == target and t.condition), None)


def _reads(step: Step | None, condition: str | None, earlier: set[str]) -> tuple[str, ...]:
    texts: list[str | None] = [condition]
    if step is not None:
        texts += [
            p.expression if p.expression is not None else p.value if isinstance(p.value, str) else None
            for p in step.params.values()
        ]
    found = [f"{s}.{o}" for text in texts for s, o in references(text) if s in earlier]
    return tuple(dict.fromkeys(found))


def _chain(trace: Trace, graph: nx.DiGraph, first: str, target: str) -> tuple[tuple[ChainHop, ...], str]:
    if first not in graph or target not in graph:
        return (), "the first divergence point or this step is not in the definition's graph"
    try:
        path: Sequence[str] = nx.shortest_path(graph, first, target)
    except nx.NetworkXNoPath:
        return (), (
            f"no DAG path from the first divergence point {first} to {target}: they diverged on "
            "separate branches (or across scopes the graph does not link)"
        )
    hops = [ChainHop(first, None, ())]
    earlier = {_step_id(first)}
    for upstream, downstream in itertools.pairwise(path):
        condition = _condition(trace, upstream, downstream)
        hops.append(ChainHop(downstream, condition, _reads(step_at(trace, downstream), condition, earlier)))
        earlier.add(_step_id(downstream))
    return tuple(hops), ""


def explain(
    trace: Trace | None,
    graph: nx.DiGraph | None,
    first: Mapping[str, Any] | None,
    divergences: Sequence[Mapping[str, Any]],
) -> Why:
    """The params and chain explanations for one exemplar (see the module docstring)."""
    if trace is None or graph is None:
        return Why(
            note="the trace's definition is not at hand (corpus file not found): no param definitions "
            "or chain; pass --corpus-root"
        )
    params = _param_whys(trace, divergences)
    chain: tuple[ChainHop, ...] = ()
    note = ""
    if first is not None and divergences:
        first_path = str(first.get("path") or "")
        target = str(divergences[0].get("path") or "")
        same_run = str(first.get("run_id") or "") == str(divergences[0].get("run_id") or "")
        if first_path and target and first_path != target and same_run:
            chain, note = _chain(trace, graph, first_path, target)
    return Why(params, chain, note)
