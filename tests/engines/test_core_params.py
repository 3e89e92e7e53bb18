"""Workflow and step params (§9): system defaults, interpolation, resolution order, reserved ids."""

from __future__ import annotations

import uuid

import pytest

from corpora.model import Param, WorkflowDefinition
from engines.core.durations import interpolate
from engines.core.errors import ParamError
from engines.core.params import evaluate_params, step_instance_uuid, system_workflow_params, workflow_params
from engines.core.testing import T0, attempts_of, chain, make_trace, oracle, rec, step

WF = WorkflowDefinition("wf", (step("a"),))


class TestWorkflowParams:
    def test_system_defaults_from_trigger_time(self) -> None:
        """System params derive from the trigger time (UTC, and US/Pacific for LOCAL_RUN_DATE), never a clock."""
        p = system_workflow_params(WF, T0, "team-x")  # 2023-11-14T22:13:20Z = 14:13 PST
        assert (p["RUN_TS"], p["RUN_DATE"], p["RUN_DATE_MINUS_1"], p["RUN_DATE_MINUS_7"]) == (
            1_700_000_000_000,
            "20231114",
            "20231113",
            "20231107",
        )
        assert (p["TARGET_RUN_HOUR"], p["LOCAL_RUN_DATE"], p["DERIVED_RUN_HOUR_UTC"]) == (
            "22",
            "20231114",
            "2023111422",
        )
        assert (p["owner"], p["workflow_id"]) == ("team-x", "wf")

    def test_pacific_date_differs_late_utc(self) -> None:
        """At 03:00 UTC the Pacific date is still the previous day."""
        p = system_workflow_params(WF, 1_700_017_200.0, "o")  # 2023-11-15T03:00:00Z
        assert (p["RUN_DATE"], p["LOCAL_RUN_DATE"]) == ("20231115", "20231114")

    def test_merge_order(self) -> None:
        """System defaults < definition params < run params; definition expressions see run params."""
        definition = WorkflowDefinition(
            "wf", (step("a"),), params={"x": Param(value=1), "y": Param(expression="x + 1")}
        )
        p = workflow_params(definition, trigger_time=T0, owner="o", run_params={"x": 10, "extra": "e"})
        assert (p["x"], p["y"], p["extra"]) == (10, 11, "e")

    def test_definition_param_overrides_system_default(self) -> None:
        """A definition param may override a system default such as RUN_DATE."""
        definition = WorkflowDefinition("wf", (step("a"),), params={"RUN_DATE": Param(value="20200101")})
        assert (
            workflow_params(definition, trigger_time=T0, owner="o", run_params={})["RUN_DATE"] == "20200101"
        )


class TestInterpolation:
    @pytest.mark.parametrize(
        ("text", "out"),
        [
            ("$a-x", "1-x"),
            ("${a}b", "1b"),
            ("$$a", "$a"),
            ("no dollars", "no dollars"),
            ("$s $b", "str true"),
        ],
    )
    def test_interpolate(self, text: str, out: str) -> None:
        """$name and ${name} substitute, $$ is a literal dollar, values print like Java."""
        assert interpolate(text, {"a": 1, "s": "str", "b": True}) == out

    def test_unknown_name(self) -> None:
        """Interpolating an unknown name is a ParamError naming it."""
        with pytest.raises(ParamError, match="'nope'"):
            interpolate("$nope", {})

    def test_literal_lists_and_maps_interpolate(self) -> None:
        """Strings inside list and map literals interpolate too."""
        out = evaluate_params(
            {"l": Param(value=["$a", 2]), "m": Param(value={"k": "${a}!"})}, base={}, fallback={"a": "A"}
        )
        assert (out["l"], out["m"]) == (["A", 2], {"k": "A!"})


class TestResolution:
    def test_step_param_recursion_and_order(self) -> None:
        """Step params reference each other in any order; a step param shadows a workflow param of the same name."""
        defs = {"b": Param(expression="a * 2"), "a": Param(expression="w + 1"), "w": Param(value=100)}
        out = evaluate_params(defs, base={}, fallback={"w": 1})
        assert (out["a"], out["b"]) == (101, 202)

    def test_cycle_named(self) -> None:
        """A reference cycle is a ParamError that names the cycle."""
        with pytest.raises(ParamError, match="cycle"):
            evaluate_params({"p": Param(expression="q"), "q": Param(expression="p + 1")}, base={})

    def test_upstream_output_then_param(self) -> None:
        """stepid__name reads an upstream completed step's output, else its evaluated param."""
        a = step("a", "b", params={"pa": Param(value="from-param")})
        b = step("b", params={"o": Param(expression="a__out"), "p": Param(expression="a__pa")})
        run = oracle(
            make_trace([a, b], [rec("a", 1, "succeeded", 1, {"out": 7}), rec("b", 1, "succeeded", 1)])
        )
        assert (attempts_of(run, "b")[0].params["o"], attempts_of(run, "b")[0].params["p"]) == (
            7,
            "from-param",
        )

    def test_reserved_ids_cannot_be_overridden(self) -> None:
        """A definition param named like a reserved id does not replace it."""
        run = oracle(
            make_trace([step("a", params={"step_id": Param(value="hacked")})], [rec("a", 1, "succeeded", 1)])
        )
        assert attempts_of(run, "a")[0].params["step_id"] == "a"

    def test_step_instance_uuid_contract(self) -> None:
        """step_instance_uuid is uuid5(NAMESPACE_URL, 'shadow:{trace}/{run}/{path}/{attempt}')."""
        expected = str(uuid.uuid5(uuid.NAMESPACE_URL, "shadow:trace-1/r1/b/1"))
        assert step_instance_uuid("trace-1", "r1", "b", 1) == expected
        run = oracle(make_trace(chain("a", "b"), [rec("a", 1, "succeeded", 1), rec("b", 1, "succeeded", 1)]))
        assert attempts_of(run, "b")[0].params["step_instance_uuid"] == expected

    def test_workflow_param_interpolated_into_step_timeout(self) -> None:
        """A step timeout '${t}s' reads workflow params only."""
        run = oracle(
            make_trace([step("a", timeout="${t}s")], [rec("a", 1, "succeeded", 100)], params={"t": 5})
        )
        a = attempts_of(run, "a")[0]
        assert (a.status, a.config["timeout_seconds"], a.ended_at) == ("TIMED_OUT", 5.0, T0 + 6)
