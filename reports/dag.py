"""The DAG of one exemplar run as inline SVG, divergent steps marked.

The results database holds what the engines did, not the workflow definition, so the graph is
recovered from the baseline's record: a step was *released by* the step whose end came last before
the step became ready (``ready_at``). For a join that is the last parent to finish, which is the edge
that mattered for latency; earlier parents of a join are not drawn. The page says the graph is
inferred. Layout: networkx topological generations as layers (``multipartite_layout``), left to right.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
from markupsafe import Markup

from reports.charts import status_color
from reports.text import escape_visible as escape

__all__ = ["INFERRED_NOTE", "DagNode", "dag_svg", "node_summaries", "released_by_graph"]

INFERRED_NOTE = "inferred from the baseline timeline (released-by edges; the corpus file was not found)"

_FONT = 'font-family="system-ui,sans-serif" font-size="10"'


@dataclass(frozen=True, slots=True)
class DagNode:
    path: str
    status: str
    attempts: int
    ready_at: float | None
    ended_at: float | None


def node_summaries(attempts: Iterable[Mapping[str, Any]]) -> dict[str, DagNode]:
    """One node per step path: first ready time, last end time, final status, attempt count."""
    acc: dict[str, dict[str, Any]] = {}
    for a in attempts:
        path = str(a.get("path", ""))
        n = acc.setdefault(path, {"status": "", "attempts": 0, "ready_at": None, "ended_at": None, "last": 0})
        n["attempts"] += 1
        number = int(a.get("attempt") or 0)
        if number >= n["last"]:
            n["last"], n["status"] = number, str(a.get("status", ""))
        r, e = a.get("ready_at"), a.get("ended_at")
        if isinstance(r, int | float) and (n["ready_at"] is None or r < n["ready_at"]):
            n["ready_at"] = float(r)
        if isinstance(e, int | float) and (n["ended_at"] is None or e > n["ended_at"]):
            n["ended_at"] = float(e)
    return {p: DagNode(p, v["status"], v["attempts"], v["ready_at"], v["ended_at"]) for p, v in acc.items()}


def released_by_graph(attempts: Sequence[Mapping[str, Any]], *, tolerance: float = 1e-6) -> nx.DiGraph:
    """The inferred DAG of one run's attempts (see the module docstring). Node attribute ``node``."""
    nodes = node_summaries(attempts)
    graph = nx.DiGraph()
    for p, node in nodes.items():
        graph.add_node(p, node=node)
    ended = sorted((n.ended_at, p) for p, n in nodes.items() if n.ended_at is not None)
    ends = [e for e, _ in ended]

    def order(path: str) -> tuple[float, str]:
        ready = nodes[path].ready_at
        return (ready if ready is not None else float("-inf"), path)

    for p, node in nodes.items():
        if node.ready_at is None:
            continue
        # Candidates end at or before p became ready; edges only go forward in (ready_at, path)
        # order, so the graph is acyclic by construction even with zero-length steps.
        stop = bisect.bisect_right(ends, node.ready_at + tolerance)
        latest: float | None = None
        for i in range(stop - 1, -1, -1):  # newest end first; stop once past the releasing instant
            e, q = ended[i]
            if latest is not None and latest - e > tolerance:
                break
            if q == p or order(q) >= order(p):
                continue
            latest = e if latest is None else latest
            # Parents that finished at the same instant as the releasing one released it together.
            graph.add_edge(q, p)
    return graph


def dag_svg(
    graph: nx.DiGraph,
    *,
    divergent: frozenset[str] = frozenset(),
    max_nodes: int = 120,
    note: str = INFERRED_NOTE,
) -> Markup:
    """Draw ``graph`` left to right; divergent nodes get a thick red border and a ⚠.

    Edges with ``style="dashed"`` (scope entry and exit of foreach / subworkflow steps) are dashed;
    nodes whose status is empty (containers) are neutral, "NOT RUN" nodes are pale."""
    if graph.number_of_nodes() == 0:
        return Markup('<p class="muted">no steps recorded</p>')
    hidden = 0
    if graph.number_of_nodes() > max_nodes:
        keep = list(nx.topological_sort(graph))[:max_nodes]
        hidden = graph.number_of_nodes() - len(keep)
        graph = graph.subgraph(keep).copy()
    for layer, names in enumerate(nx.topological_generations(graph)):
        for name in names:
            graph.nodes[name]["layer"] = layer
    layers = max(nx.get_node_attributes(graph, "layer").values()) + 1
    tallest = max(sum(1 for _, d in graph.nodes(data=True) if d["layer"] == i) for i in range(layers))
    pos = nx.multipartite_layout(graph, subset_key="layer", align="vertical", scale=1.0)
    box_w, box_h, col_w, row_h, pad = 150, 26, 190, 36, 12
    width = layers * col_w + pad * 2
    height = tallest * row_h + pad * 2 + 18
    xs = sorted({round(float(p[0]), 9) for p in pos.values()})
    ys = [float(p[1]) for p in pos.values()]
    y_lo, y_hi = min(ys), max(ys)

    def place(name: str) -> tuple[float, float]:
        px, py = pos[name]
        col = xs.index(round(float(px), 9))
        frac = 0.5 if y_hi == y_lo else (float(py) - y_lo) / (y_hi - y_lo)
        return pad + col * col_w, pad + frac * (tallest - 1) * row_h

    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="step DAG">',
        '<defs><marker id="arr" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>',
    ]
    for a, b, edge in graph.edges(data=True):
        (ax, ay), (bx, by) = place(a), place(b)
        dash = ' stroke-dasharray="4 3"' if edge.get("style") == "dashed" else ""
        body.append(
            f'<line x1="{ax + box_w:.1f}" y1="{ay + box_h / 2:.1f}" x2="{bx:.1f}" y2="{by + box_h / 2:.1f}" '
            f'stroke="#888"{dash} marker-end="url(#arr)"/>'
        )
    for name, data in graph.nodes(data=True):
        node: DagNode = data["node"]
        x, y = place(name)
        bad = name in divergent
        stroke = ' stroke="#c0392b" stroke-width="3"' if bad else ' stroke="#555" stroke-width="1"'
        label = ("⚠ " if bad else "") + (name if len(name) <= 22 else name[:21] + "…")
        kind = str(data.get("kind") or "")
        tip = f"{name} {kind}: {node.status or 'container'}, {node.attempts} attempt(s)" + (
            " — DIVERGES" if bad else ""
        )
        fill = (
            "#dddddd"
            if not node.status
            else ("#ffffff" if node.status == "NOT RUN" else status_color(node.status))
        )
        if node.status == "NOT RUN" and not bad:
            stroke = ' stroke="#aaa" stroke-width="1" stroke-dasharray="3 2"'
        body.append(
            f'<g><title>{escape(tip)}</title><rect x="{x:.1f}" y="{y:.1f}" width="{box_w}" height="{box_h}" rx="4" '
            f'fill="{fill}" fill-opacity="0.35"{stroke}/>'
            f'<text x="{x + 6:.1f}" y="{y + 17:.1f}" {_FONT}>{escape(label)}</text></g>'
        )
    note = note + (f"; {hidden} more steps not drawn" if hidden else "")
    body.append(f'<text x="{pad}" y="{height - 6}" {_FONT} fill="#666">{escape(note)}</text></svg>')
    return Markup("".join(body))
