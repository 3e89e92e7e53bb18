"""Compiling definitions: DAG structure, stable step instance ids, and typed errors for bad definitions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.model import Foreach, Param, RetryPolicy, Step, StepType, Subworkflow, WorkflowDefinition
from engines.api import EngineError
from engines.core.definition import compile_trace
from engines.core.errors import DefinitionError
from engines.core.testing import make_trace, step

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


class TestCompile:
    def test_dag_shape(self) -> None:
        """Predecessors, successors with parsed conditions, roots and a stable topological order."""
        ct = compile_trace(make_trace([step("c"), step("a", "b", ("c", "x > 1")), step("b", "c")]))
        wf = ct.root
        assert wf.order == ("a", "b", "c")
        assert wf.roots == ("a",)
        assert wf.steps["c"].predecessors == ("a", "b")
        assert [(to, e.source if e else None) for to, e in wf.steps["a"].successors] == [
            ("b", None),
            ("c", "x > 1"),
        ]
        assert [wf.steps[s].instance_id for s in wf.order] == [1, 2, 3]

    def test_order_breaks_ties_by_definition_order(self) -> None:
        """Independent steps keep their definition order (deterministic step_instance_id)."""
        ct = compile_trace(make_trace([step("z"), step("m"), step("a")]))
        assert ct.root.order == ("z", "m", "a")

    def test_foreach_and_subworkflow_bodies(self) -> None:
        """Foreach bodies and subworkflows compile to their own workflows."""
        fan = step("fan", type=StepType.FOREACH, foreach=Foreach({"i": Param(value=[1, 2])}, (step("x"),)))
        call = step("call", type=StepType.SUBWORKFLOW, subworkflow=Subworkflow("child"))
        ct = compile_trace(
            make_trace([fan, call], subworkflows={"child": WorkflowDefinition("child", (step("y"),))})
        )
        assert set(ct.workflows) == {"wf", "wf#fan", "child"}
        assert ct.root.steps["fan"].body == "wf#fan"


class TestBadDefinitions:
    @pytest.mark.parametrize(
        ("steps", "bad_step", "words"),
        [
            ([Step("a", type="WHATEVER")], "a", "unknown step type"),  # type: ignore[arg-type]
            ([step("a", ("b", "1 +")), step("b")], "a", "condition"),
            ([step("a", params={"p": Param(expression="foo(")})], "a", "param 'p'"),
            ([step("a", retry=RetryPolicy(error_retry_limit=1000))], "a", "impossible retry policy"),
            ([step("a", "b"), step("b", "a")], "a", "cycle"),
            ([step("a", "ghost")], "a", "unknown step"),
            ([step("a"), step("a")], "a", "duplicate"),
            ([step("a", "a")], "a", "itself"),
            ([step("fan", type=StepType.FOREACH)], "fan", "foreach"),
            (
                [step("call", type=StepType.SUBWORKFLOW, subworkflow=Subworkflow("nowhere"))],
                "call",
                "nowhere",
            ),
            ([step("a/b")], "a/b", "must not contain"),
        ],
    )
    def test_rejected_with_step_name(self, steps: list[Step], bad_step: str, words: str) -> None:
        """Bad definitions raise a DefinitionError (an EngineError) naming the step and the problem."""
        with pytest.raises(DefinitionError) as info:
            compile_trace(make_trace(steps))
        assert isinstance(info.value, EngineError)
        assert info.value.step == bad_step
        assert words in str(info.value)
        assert not info.value.retryable

    def test_subworkflow_cycle(self) -> None:
        """Subworkflows that call each other are rejected."""
        call_b = step("c", type=StepType.SUBWORKFLOW, subworkflow=Subworkflow("b"))
        call_a = step("c", type=StepType.SUBWORKFLOW, subworkflow=Subworkflow("wf"))
        trace = make_trace(
            [call_b],
            subworkflows={"b": WorkflowDefinition("b", (call_a,)), "wf": WorkflowDefinition("wf", (call_b,))},
        )
        with pytest.raises(DefinitionError, match="cycle"):
            compile_trace(trace)


@pytest.mark.corpora
class TestMaestroCorpus:
    def test_cycle_sample_is_rejected(self) -> None:
        """Maestro's deliberately cyclic sample definition is rejected naming the cycle."""
        path = (
            CORPORA
            / "maestro"
            / "maestro-common__src__testFixtures__resources__fixtures__workflows__request__sample-dag-with-cycle-wf.json"
        )
        if not path.exists():
            pytest.skip(f"public corpora not found at {CORPORA} (see ../shared/corpora/README.md)")
        wf = json.loads(path.read_text())["workflow"]
        steps = []
        for entry in wf["steps"]:
            s = entry["step"]
            succ = s.get("transition", {}).get("successors", {})
            steps.append(step(s["id"], *[(to, cond) for to, cond in succ.items()]))
        with pytest.raises(DefinitionError, match="cycle"):
            compile_trace(make_trace(steps))
