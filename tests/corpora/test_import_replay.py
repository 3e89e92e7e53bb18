"""Imported traces replay to a terminal state on the core's reference executor (CoreOracle).

The oracle runs the same core semantics as the engines with zero orchestration overhead, so it checks
that every import is executable (no unrecorded attempt, no stuck run) and, for WfFormat, that the
replayed makespan equals the critical path of the recorded runtimes. The same traces on the legacy
engine: test_import_legacy_replay.py; on the actor engine: test_import_actor_replay.py.
"""

from __future__ import annotations

import networkx as nx
import pytest

from corpora.importers import ImportOptions
from corpora.model import Trace
from engines.api import ReplayOptions
from engines.core.expr import parse
from engines.core.oracle import CoreOracle
from tests.corpora._import_helpers import RESOURCES, SHARED, import_all

_TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"}


def _critical_path(trace: Trace) -> float:
    graph = nx.DiGraph()
    durations = {a.path: a.duration for a in trace.runs[0].attempts}
    for step in trace.definition.steps:
        graph.add_node(step.id)
        graph.add_edges_from((step.id, t.to) for t in step.transitions)
    finish: dict[str, float] = {}
    for node in nx.topological_sort(graph):
        finish[node] = max((finish[p] for p in graph.predecessors(node)), default=0.0) + durations[node]
    return max(finish.values())


def _expressions(trace: Trace) -> list[str]:
    found: list[str] = []

    def walk(steps: tuple, params: dict) -> None:  # type: ignore[type-arg]
        found.extend(p.expression for p in params.values() if p.expression is not None)
        for step in steps:
            found.extend(p.expression for p in step.params.values() if p.expression is not None)
            found.extend(t.condition for t in step.transitions if t.condition is not None)
            if step.foreach is not None:
                found.extend(
                    p.expression for p in step.foreach.loop_params.values() if p.expression is not None
                )
                walk(step.foreach.steps, {})

    walk(trace.definition.steps, dict(trace.definition.params))
    for sub in trace.subworkflows.values():
        walk(sub.steps, dict(sub.params))
    return found


def _replay_all(
    source: str, *paths: object, options: ImportOptions | None = None
) -> list[tuple[Trace, object]]:
    out: list[tuple[Trace, object]] = []
    for item in import_all(source, *paths, options=options):  # type: ignore[arg-type]
        if item.trace is None:
            continue
        record = CoreOracle().replay(item.trace, ReplayOptions())
        for run in record.runs:
            assert run.status in _TERMINAL, (item.trace.trace_id, run.status)
            assert not run.stuck, item.trace.trace_id
            assert not any(a.unrecorded for a in run.attempts), item.trace.trace_id
        out.append((item.trace, record))
    return out


class TestFixturesReplay:
    @pytest.mark.parametrize("source", ["wfformat", "maestro", "argo", "nextflow", "alibaba"])
    def test_fixture_traces_end_terminal_without_unrecorded_attempts(self, source: str) -> None:
        """Every trace imported from the test fixtures ends terminal and never runs an unrecorded attempt."""
        assert _replay_all(source, RESOURCES / source)

    def test_wfformat_makespan_is_the_critical_path(self) -> None:
        """With zero overhead the diamond's replayed makespan equals 5 + max(10.5, 20) + 2."""
        ((trace, record),) = _replay_all("wfformat", RESOURCES / "wfformat" / "diamond-1.5.json")
        run = record.runs[0]  # type: ignore[attr-defined]
        assert run.ended_at - run.started_at == pytest.approx(_critical_path(trace)) == 27.0

    def test_maestro_expressions_parse_in_the_engines_language(self) -> None:
        """Every expression and condition the Maestro importer emits parses with engines.core.expr."""
        for item in import_all("maestro", RESOURCES / "maestro"):
            assert item.trace is not None
            for text in _expressions(item.trace):
                parse(text)


@pytest.mark.corpora
@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real corpora not found at {SHARED} (../shared/corpora)")
class TestRealCorporaReplay:
    @pytest.mark.parametrize(
        ("source", "folder"),
        [("maestro", "maestro"), ("argo", "argo"), ("nextflow", "nextflow"), ("alibaba", "alibaba")],
    )
    def test_real_traces_end_terminal(self, source: str, folder: str) -> None:
        """Every imported real trace replays to a terminal state without unrecorded attempts."""
        assert _replay_all(source, SHARED / folder)

    def test_wfinstances_makespan_matches_critical_path_and_undercuts_recorded(self) -> None:
        """Replayed WfInstances makespans equal their critical paths and never exceed what production took."""
        results = _replay_all("wfformat", SHARED / "wfinstances")
        assert len(results) == 31
        for trace, record in results:
            run = record.runs[0]  # type: ignore[attr-defined]
            observed = trace.runs[0].observed
            assert observed is not None
            assert observed.end_time is not None
            replayed = run.ended_at - run.started_at
            assert replayed == pytest.approx(_critical_path(trace), rel=1e-9, abs=1e-6)
            assert observed.start_time is not None
            assert replayed <= observed.end_time - observed.start_time + 1e-6

    def test_maestro_expressions_parse_in_the_engines_language(self) -> None:
        """Every expression and condition imported from the real Maestro samples parses with engines.core.expr."""
        for item in import_all("maestro", SHARED / "maestro"):
            if item.trace is not None:
                for text in _expressions(item.trace):
                    parse(text)
