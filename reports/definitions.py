"""The real DAG of an exemplar run, from its workflow definition in the corpus, when the corpus is at hand.

The results database records where each trace came from (``traces.corpus_file``, ``corpus_line``),
not its definition. When that file can be found (relative paths are tried against the given roots:
the results database's folder, then the working directory), the exemplar's line is decoded with
``corpora.io.load_trace`` and the graph is built from the definition: transitions between steps of
the same scope, a dashed edge from a foreach or subworkflow step to the entry steps of each scope it
ran (``fan[2]/…``, ``call/…``) and from the exit steps of that scope to the step's own successors.
Steps the definition has but the run never executed are drawn as "not run". When the file is gone
the drill-down falls back to the released-by graph of :mod:`reports.dag` and says so.
"""

from __future__ import annotations

import gzip
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from corpora.errors import TraceError
from corpora.io import load_trace
from corpora.model import Step, Trace
from reports.dag import DagNode, node_summaries

__all__ = ["definition_graph", "load_exemplar_traces", "step_at"]

_ITERATION = re.compile(r"^(.*)\[(\d+)\]$")


def _resolve(name: str, roots: Sequence[Path]) -> Path | None:
    path = Path(name)
    if path.is_absolute():
        return path if path.is_file() else None
    return next((root / path for root in roots if (root / path).is_file()), None)


def load_exemplar_traces(refs: Mapping[str, tuple[str, int]], roots: Sequence[Path]) -> dict[str, Trace]:
    """Decode the traces at ``refs`` (trace id -> (corpus file, 1-based line)); unreadable ones are left out.

    Each file is read once, streaming, and only the wanted lines are decoded."""
    wanted: dict[Path, dict[int, str]] = defaultdict(dict)
    for trace_id, (name, line) in refs.items():
        path = _resolve(name, roots) if name else None
        if path is not None and line:
            wanted[path][int(line)] = trace_id
    out: dict[str, Trace] = {}
    for path, lines in wanted.items():
        last = max(lines)
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as f:
                for number, raw in enumerate(f, start=1):
                    if number in lines:
                        try:
                            trace = load_trace(raw)
                        except TraceError:
                            continue
                        if trace.trace_id == lines[number]:  # the file may have changed since the run
                            out[trace.trace_id] = trace
                    if number >= last:
                        break
        except (OSError, EOFError):
            continue
    return out


def _scope_steps(trace: Trace, steps: Sequence[Step], tokens: Sequence[str]) -> Sequence[Step] | None:
    """The steps of the scope reached by following ``tokens`` (``fan[2]``, ``call``) from ``steps``."""
    for token in tokens:
        m = _ITERATION.match(token)
        sid = m.group(1) if m else token
        step = next((s for s in steps if s.id == sid), None)
        if step is None:
            return None
        if step.foreach is not None and m:
            steps = step.foreach.steps
        elif step.subworkflow is not None and not m:
            child = trace.subworkflows.get(step.subworkflow.workflow_id)
            if child is None:
                return None
            steps = child.steps
        else:
            return None
    return steps


def step_at(trace: Trace, path: str) -> Step | None:
    """The definition of the step at ``path`` (``fan[2]/inner``, ``call/c1``), None when the definition has none."""
    *scope, last = path.split("/")
    steps = _scope_steps(trace, trace.definition.steps, scope)
    if steps is None:
        return None
    sid = _ITERATION.sub(r"\1", last) if _ITERATION.match(last) else last
    return next((s for s in steps if s.id == sid), None)


def _container_node(prefix_tokens: Sequence[str]) -> str:
    """The node of the step that opened a scope: ``fan[2]`` -> ``fan``; ``a[1]/call`` -> ``a[1]/call``."""
    *head, last = prefix_tokens
    m = _ITERATION.match(last)
    return "/".join([*head, m.group(1) if m else last])


def definition_graph(trace: Trace, attempts: Iterable[Mapping[str, Any]]) -> nx.DiGraph:
    """The run's DAG from ``trace.definition`` (see the module docstring); node attribute ``node``."""
    executed = node_summaries(attempts)
    scopes: set[tuple[str, ...]] = {()}
    for path in executed:
        tokens = path.split("/")
        for i in range(1, len(tokens)):
            scopes.add(tuple(tokens[:i]))
    graph = nx.DiGraph()
    for scope in sorted(scopes, key=len):
        steps = _scope_steps(trace, trace.definition.steps, scope)
        if steps is None:
            continue
        prefix = "/".join(scope) + "/" if scope else ""
        for step in steps:
            name = prefix + step.id
            node = executed.get(name) or DagNode(
                name, "" if not step.type.is_leaf else "NOT RUN", 0, None, None
            )
            graph.add_node(name, node=node, kind=str(step.type))
        for step in steps:
            for t in step.transitions:
                graph.add_edge(prefix + step.id, prefix + t.to, style="solid")
        if scope:
            container = _container_node(scope)
            if container not in graph:
                graph.add_node(container, node=DagNode(container, "", 0, None, None), kind="")
            ids = {s.id for s in steps}
            targets = {t.to for s in steps for t in s.transitions if t.to in ids}
            exits = [s.id for s in steps if not any(t.to in ids for t in s.transitions)]
            for s in steps:
                if s.id not in targets:
                    graph.add_edge(container, prefix + s.id, style="dashed")
            for succ in [v for _, v, d in graph.out_edges(container, data=True) if d.get("style") == "solid"]:
                for x in exits:
                    graph.add_edge(prefix + x, succ, style="dashed")
    for path, node in executed.items():  # attempts the definition does not explain still show up
        if path not in graph:
            graph.add_node(path, node=node, kind="?")
    if not nx.is_directed_acyclic_graph(graph):
        graph.remove_edges_from(
            [(a, b) for a, b, d in list(graph.edges(data=True)) if d.get("style") == "dashed"]
        )
    return graph
