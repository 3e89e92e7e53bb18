"""reports.definitions: the real DAG from the trace's definition, and reading exemplar traces from the corpus."""

from __future__ import annotations

from pathlib import Path

from corpora.io import TraceWriter
from corpora.model import (
    Foreach,
    Outcome,
    Param,
    RecordedAttempt,
    Run,
    Step,
    StepType,
    Subworkflow,
    Trace,
    Transition,
    WorkflowDefinition,
)
from reports.dag import dag_svg
from reports.definitions import definition_graph, load_exemplar_traces

LEAVES = ("plan", "fan[0]/work", "fan[0]/check", "fan[1]/work", "fan[1]/check", "call/publish")


def _trace(trace_id: str = "nested") -> Trace:
    body = (Step("work", StepType.SHELL, transitions=(Transition("check"),)), Step("check", StepType.NOOP))
    steps = (
        Step("plan", StepType.NOOP, transitions=(Transition("fan"),)),
        Step(
            "fan",
            StepType.FOREACH,
            transitions=(Transition("call"),),
            foreach=Foreach(loop_params={"i": Param(expression="range(0, 2)")}, steps=body),
        ),
        Step(
            "call",
            StepType.SUBWORKFLOW,
            transitions=(Transition("skipped"),),
            subworkflow=Subworkflow("child"),
        ),
        Step("skipped", StepType.NOOP),
    )
    attempts = tuple(RecordedAttempt(p, 1, Outcome.SUCCEEDED, 1.0) for p in LEAVES)
    return Trace(
        trace_id=trace_id,
        definition=WorkflowDefinition(id="wf", steps=steps),
        runs=(Run(run_id="r1", trigger_time=1_700_000_000.0, attempts=attempts),),
        subworkflows={"child": WorkflowDefinition(id="child", steps=(Step("publish", StepType.HTTP),))},
    )


def _attempts() -> list[dict[str, object]]:
    return [
        {"path": p, "attempt": 1, "status": "SUCCEEDED", "ready_at": float(i), "ended_at": i + 1.0}
        for i, p in enumerate(LEAVES)
    ]


class TestDefinitionGraph:
    def test_edges_follow_definition_and_scopes(self) -> None:
        """Transitions give solid edges; foreach iterations and subworkflow children hang off their step."""
        graph = definition_graph(_trace(), _attempts())
        solid = {(a, b) for a, b, d in graph.edges(data=True) if d["style"] == "solid"}
        dashed = {(a, b) for a, b, d in graph.edges(data=True) if d["style"] == "dashed"}
        assert {
            ("plan", "fan"),
            ("fan", "call"),
            ("fan[0]/work", "fan[0]/check"),
            ("call", "skipped"),
        } <= solid
        assert {
            ("fan", "fan[0]/work"),
            ("fan", "fan[1]/work"),
            ("fan[1]/check", "call"),
            ("call", "call/publish"),
            ("call/publish", "skipped"),
        } <= dashed

    def test_unexecuted_steps_marked(self) -> None:
        """A step in the definition that never ran is a NOT RUN node; executed leaves carry their status."""
        graph = definition_graph(_trace(), _attempts())
        assert graph.nodes["skipped"]["node"].status == "NOT RUN"
        assert graph.nodes["fan[1]/check"]["node"].status == "SUCCEEDED"
        assert graph.nodes["fan"]["node"].status == ""

    def test_svg_draws_dashed_scope_edges(self) -> None:
        """The drawing has dashed edges for scopes and marks divergent steps."""
        svg = str(
            dag_svg(definition_graph(_trace(), _attempts()), divergent=frozenset({"call/publish"}), note="n")
        )
        assert 'stroke-dasharray="4 3"' in svg
        assert "⚠ call/publish" in svg

    def test_unknown_paths_still_drawn(self) -> None:
        """An attempt whose path the definition does not know is still a node."""
        graph = definition_graph(
            _trace(), [*_attempts(), {"path": "ghost", "attempt": 1, "status": "SUCCEEDED"}]
        )
        assert "ghost" in graph


class TestLoadExemplarTraces:
    def test_reads_only_wanted_lines(self, tmp_path: Path) -> None:
        """Traces are found by file and line, relative paths against the roots; mismatched ids are skipped."""
        corpus = tmp_path / "c.jsonl"
        with TraceWriter(str(corpus)) as writer:
            writer.write(_trace("one"))
            writer.write(_trace("two"))
        found = load_exemplar_traces(
            {"two": ("c.jsonl", 2), "one": ("c.jsonl", 3), "gone": ("missing.jsonl", 1)},
            [tmp_path / "x", tmp_path],
        )
        assert set(found) == {"two"}
        assert load_exemplar_traces({"one": (str(corpus), 2)}, []) == {}
        assert found["two"].subworkflows["child"].steps[0].id == "publish"
