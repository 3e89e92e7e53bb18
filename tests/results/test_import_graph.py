"""The run-time import graph of the project's own modules has no cycle.

Owned objects keep a typed pointer to their owner (an actor to its node, a flow to its group, a legacy worker
to its deployment, the fast path to the worker it drives); those imports sit under ``if TYPE_CHECKING:`` and are
annotations only. What Python executes at import time is a tree of ownership: node -> group -> flow -> task ->
actors, deployment -> worker -> fastpath. This test keeps it so (a drawing of every import, annotations
included, shows the back references as circles; they are not dependencies of the running code).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("corpora", "engines", "results", "shadow", "reports")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported at import time: top-level imports and those in top-level if/try blocks that are not
    ``if TYPE_CHECKING:`` (imports inside functions run later, at call time)."""
    found: list[str] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append(node.module)
                found.extend(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                test = node.test
                if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                    visit(node.orelse)
                    continue
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return found


def _graph() -> nx.DiGraph:
    modules = {_module(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for target in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if target in modules and target != name:
                graph.add_edge(name, target)
    return graph


def test_no_runtime_import_cycle() -> None:
    graph = _graph()
    assert graph.number_of_nodes() > 100
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, "run-time import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles[:5])


def test_engines_own_their_parts_top_down() -> None:
    """The ownership chains the engines are built on are import edges in this direction only."""
    graph = _graph()
    for owner, part in [
        ("engines.actor.node", "engines.actor.group"),
        ("engines.actor.group", "engines.actor.flow"),
        ("engines.actor.flow", "engines.actor.task"),
        ("engines.legacy.deployment", "engines.legacy.worker"),
        ("engines.legacy.worker", "engines.legacy.fastpath"),
    ]:
        assert nx.has_path(graph, owner, part), (owner, part)
        assert not nx.has_path(graph, part, owner), (part, owner)
