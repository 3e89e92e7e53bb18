"""Graph shapes for the built-in corpus: chains, wide fan-out/fan-in, diamonds, layered and random DAGs.

Every shape is a ``networkx.DiGraph`` over the integers ``0..n-1`` whose edges all go from a lower to a
higher number, so the numbering is a topological order and no shape can contain a cycle.
"""

from __future__ import annotations

import random

import networkx as nx

__all__ = ["SHAPES", "chain", "diamonds", "fan_out_in", "layered", "make_shape", "random_dag"]


def chain(n: int, rng: random.Random) -> nx.DiGraph[int]:
    del rng
    return nx.path_graph(n, create_using=nx.DiGraph)


def fan_out_in(n: int, rng: random.Random) -> nx.DiGraph[int]:
    """``0 -> (1..w) -> w+1``, then a chain tail for the remaining steps."""
    graph: nx.DiGraph[int] = nx.DiGraph()
    graph.add_nodes_from(range(n))
    width = max(1, min(n - 2, rng.randint(max(1, (n - 2) // 2), n - 2)))
    join = width + 1
    for w in range(1, width + 1):
        graph.add_edge(0, w)
        graph.add_edge(w, join)
    for tail in range(join + 1, n):
        graph.add_edge(tail - 1, tail)
    return graph


def diamonds(n: int, rng: random.Random) -> nx.DiGraph[int]:
    """Diamonds ``a -> (b, c) -> d`` in sequence, the last node of one being the first of the next."""
    del rng
    graph: nx.DiGraph[int] = nx.DiGraph()
    graph.add_nodes_from(range(n))
    top = 0
    while top + 3 < n:
        graph.add_edges_from([(top, top + 1), (top, top + 2), (top + 1, top + 3), (top + 2, top + 3)])
        top += 3
    for rest in range(top + 1, n):
        graph.add_edge(rest - 1, rest)
    return graph


def layered(n: int, rng: random.Random) -> nx.DiGraph[int]:
    """Layers of a few steps each; every step depends on one to three steps of the layer before."""
    graph: nx.DiGraph[int] = nx.DiGraph()
    graph.add_nodes_from(range(n))
    previous = [0]
    node = 1
    while node < n:
        width = min(n - node, rng.randint(1, max(2, int(n**0.5))))
        layer = list(range(node, node + width))
        for v in layer:
            for u in rng.sample(previous, k=min(len(previous), rng.randint(1, 3))):
                graph.add_edge(u, v)
        previous, node = layer, node + width
    return graph


def random_dag(n: int, rng: random.Random) -> nx.DiGraph[int]:
    """A sparse random DAG (networkx's G(n, p), oriented low -> high), with every step but 0 reachable
    from an earlier one so the graph reads as one workflow rather than many."""
    p = min(0.5, 2.2 / max(n, 1))
    raw = nx.fast_gnp_random_graph(n, p, seed=rng.randrange(2**32), directed=False)
    graph: nx.DiGraph[int] = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((min(u, v), max(u, v)) for u, v in sorted(raw.edges()))
    for v in range(1, n):
        if graph.in_degree(v) == 0 and rng.random() < 0.8:
            graph.add_edge(rng.randrange(max(0, v - 20), v), v)
    return graph


SHAPES = {
    "chain": chain,
    "fan_out_in": fan_out_in,
    "diamonds": diamonds,
    "layered": layered,
    "random_dag": random_dag,
}


def make_shape(kind: str, n: int, rng: random.Random) -> nx.DiGraph[int]:
    graph = SHAPES[kind](n, rng)
    assert nx.is_directed_acyclic_graph(graph)
    return graph
