"""Semantic validation: every rule has a test that breaks it and checks the code and JSON path."""

from __future__ import annotations

import dataclasses
import math

import pytest

from corpora.errors import TraceError
from corpora.model import (
    Foreach,
    Param,
    RecordedAttempt,
    RetryPolicy,
    Step,
    StepType,
    Subworkflow,
    Trace,
    Transition,
    WorkflowDefinition,
)
from corpora.testing import chain_trace, diamond_trace, foreach_trace, leaf, make_trace, subworkflow_trace
from corpora.validate import parse_step_path, resolve_step_path, validate_trace


def _raises(trace: Trace, code: str) -> TraceError:
    with pytest.raises(TraceError) as info:
        validate_trace(trace)
    assert info.value.code == code, str(info.value)
    return info.value


def _with_attempts(trace: Trace, *extra: RecordedAttempt) -> Trace:
    run = dataclasses.replace(trace.runs[0], attempts=trace.runs[0].attempts + extra)
    return dataclasses.replace(trace, runs=(run, *trace.runs[1:]))


class TestValidShapes:
    @pytest.mark.parametrize("build", [chain_trace, diamond_trace, foreach_trace, subworkflow_trace])
    def test_builders_are_valid(self, build: object) -> None:
        """Every testing builder yields a trace that validates."""
        validate_trace(build())  # type: ignore[operator]


class TestGraphRules:
    def test_cycle_names_steps_in_order(self) -> None:
        """A cycle a -> b -> c -> a is reported with the steps in cycle order."""
        trace = make_trace([leaf("a", "b"), leaf("b", "c"), leaf("c", "a")])
        error = _raises(trace, "cycle")
        assert "a -> b -> c -> a" in error.message
        assert error.location.json_path.startswith("$.definition.steps[")

    def test_self_loop_is_a_cycle(self) -> None:
        """A step that transitions to itself is a cycle of one."""
        error = _raises(make_trace([leaf("a", "a")]), "cycle")
        assert "a -> a" in error.message

    def test_missing_transition_target(self) -> None:
        """A transition to a step that does not exist names the JSON path of the transition."""
        error = _raises(make_trace([leaf("a", "ghost")]), "missing_transition_target")
        assert error.location.json_path == "$.definition.steps[0].transitions[0].to"
        assert "ghost" in error.message

    def test_duplicate_step_id(self) -> None:
        """Two sibling steps with one id are rejected at the second one."""
        error = _raises(make_trace([leaf("a"), leaf("a")]), "duplicate_step_id")
        assert error.location.json_path == "$.definition.steps[1].id"

    def test_cycle_inside_foreach_body(self) -> None:
        """Foreach bodies are DAG scopes of their own and are checked too."""
        fan = Step(
            id="fan",
            type=StepType.FOREACH,
            foreach=Foreach(loop_params={"i": Param(value=[1, 2])}, steps=(leaf("x", "y"), leaf("y", "x"))),
        )
        error = _raises(make_trace([fan]), "cycle")
        assert ".foreach.steps" in error.location.json_path

    def test_bad_step_id_characters(self) -> None:
        """A step id with '/' would make attempt paths ambiguous."""
        _raises(make_trace([leaf("a/b")]), "bad_step_id")

    def test_step_type_mismatch(self) -> None:
        """A FOREACH step without a foreach block is rejected."""
        _raises(make_trace([Step(id="f", type=StepType.FOREACH)]), "step_type_mismatch")


class TestSubworkflows:
    def test_unresolved_subworkflow(self) -> None:
        """A subworkflow step whose workflow is not in the trace is rejected with its path."""
        call = Step(id="call", type=StepType.SUBWORKFLOW, subworkflow=Subworkflow("nowhere"))
        error = _raises(make_trace([call]), "unresolved_subworkflow")
        assert error.location.json_path == "$.definition.steps[0].subworkflow.workflow_id"

    def test_recursive_subworkflows(self) -> None:
        """Subworkflows that call each other in a loop are rejected."""
        a = WorkflowDefinition(
            id="A", steps=(Step(id="x", type=StepType.SUBWORKFLOW, subworkflow=Subworkflow("B")),)
        )
        b = WorkflowDefinition(
            id="B", steps=(Step(id="y", type=StepType.SUBWORKFLOW, subworkflow=Subworkflow("A")),)
        )
        trace = Trace(
            "t",
            WorkflowDefinition(id="main", steps=(leaf("z"),)),
            runs=chain_trace(1).runs,
            subworkflows={"A": a, "B": b},
        )
        trace = dataclasses.replace(trace, runs=(dataclasses.replace(trace.runs[0], attempts=()),))
        error = _raises(trace, "subworkflow_cycle")
        assert "A -> B -> A" in error.message or "B -> A -> B" in error.message


class TestAttempts:
    def test_unknown_attempt_path(self) -> None:
        """An attempt for a step that does not exist is located at its path field."""
        trace = _with_attempts(chain_trace(2), RecordedAttempt("nope", 1, "succeeded", 1.0))  # type: ignore[arg-type]
        error = _raises(trace, "unknown_attempt_path")
        assert error.location.json_path == "$.runs[0].attempts[2].path"

    @pytest.mark.parametrize(
        "path", ["fan/inner", "fan[0]", "prepare/x", "fan[-1]/inner", "fan[01]/inner", ""]
    )
    def test_malformed_or_non_leaf_paths(self, path: str) -> None:
        """Paths must index foreach steps and end at a leaf step."""
        trace = _with_attempts(foreach_trace(1), RecordedAttempt(path, 1, "succeeded", 1.0))  # type: ignore[arg-type]
        _raises(trace, "unknown_attempt_path")

    def test_nested_paths_resolve(self) -> None:
        """fan[i]/inner and call/c1 resolve to their leaf steps."""
        assert resolve_step_path(foreach_trace(2), "fan[1]/inner").id == "inner"
        assert resolve_step_path(subworkflow_trace(), "call/c2").id == "c2"
        assert parse_step_path("outer[1]/call/leaf") == (("outer", 1), ("call", None), ("leaf", None))

    @pytest.mark.parametrize("duration", [-1.0, math.nan, math.inf])
    def test_bad_duration(self, duration: float) -> None:
        """Negative, NaN and infinite durations are bad_duration at the attempt's duration."""
        trace = _with_attempts(chain_trace(1), RecordedAttempt("s1", 2, "succeeded", duration))  # type: ignore[arg-type]
        error = _raises(trace, "bad_duration")
        assert error.location.json_path == "$.runs[0].attempts[1].duration"

    def test_duplicate_attempt(self) -> None:
        """Two attempts numbered 1 for one path are duplicate_attempt."""
        trace = _with_attempts(chain_trace(1), RecordedAttempt("s1", 1, "succeeded", 1.0))  # type: ignore[arg-type]
        _raises(trace, "duplicate_attempt")

    def test_attempts_must_start_at_one(self) -> None:
        """An attempt sequence 1, 3 has a gap."""
        trace = _with_attempts(chain_trace(1), RecordedAttempt("s1", 3, "succeeded", 1.0))  # type: ignore[arg-type]
        _raises(trace, "bad_attempt_number")


class TestOtherRules:
    def test_no_runs(self) -> None:
        """A trace without runs has nothing to replay."""
        _raises(dataclasses.replace(chain_trace(1), runs=()), "no_runs")

    def test_duplicate_run_id(self) -> None:
        """Run ids are unique within a trace."""
        trace = chain_trace(1, runs=2)
        trace = dataclasses.replace(trace, runs=(trace.runs[0], trace.runs[0]))
        _raises(trace, "duplicate_run_id")

    def test_unsupported_format(self) -> None:
        """A record claiming another format version is refused."""
        _raises(dataclasses.replace(chain_trace(1), format="shadow-trace/2"), "unsupported_format")

    def test_retry_limit_range(self) -> None:
        """A literal retry limit above Maestro's 99 is rejected; '$param' strings are left to runtime."""
        bad = make_trace([leaf("a", retry_policy=RetryPolicy(error_retry_limit=100))])
        _raises(bad, "bad_value")
        validate_trace(make_trace([leaf("a", retry_policy=RetryPolicy(error_retry_limit="$n"))]))

    def test_negative_step_timeout(self) -> None:
        """A non-positive step timeout is a bad_duration."""
        _raises(make_trace([leaf("a", timeout=-5)]), "bad_duration")

    def test_param_with_value_and_expression(self) -> None:
        """A param is a value or an expression, not both."""
        _raises(make_trace([leaf("a")], params={"x": Param(value=1, expression="2")}), "bad_param")

    def test_transition_conditions_are_kept(self) -> None:
        """Conditional transitions validate like plain ones."""
        validate_trace(make_trace([Step(id="a", transitions=(Transition("b", "x > 1"),)), leaf("b")]))
