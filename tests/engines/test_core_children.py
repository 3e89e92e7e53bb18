"""Foreach (§5.1) and subworkflow (§5.2) steps: iterations, concurrency, failure modes, child runs."""

from __future__ import annotations

from corpora.model import FailureMode, Foreach, Param, Step, StepType, Subworkflow, WorkflowDefinition
from engines.core.children import iteration_values
from engines.core.testing import T0, attempts_of, make_trace, oracle, rec, step


def fan(loops: dict[str, list[object]], inner: tuple[Step, ...], *to: str, concurrency: int | None = None,
        strict: bool = False, mode: FailureMode | None = None, **kw: object) -> Step:  # fmt: skip
    fe = Foreach(
        {k: Param(value=v) for k, v in loops.items()}, inner, concurrency=concurrency, strict_ordering=strict
    )  # type: ignore[arg-type]
    return step("fan", *to, type=StepType.FOREACH, foreach=fe, failure_mode=mode, **kw)


def last_status(run: object, path: str) -> str:
    return attempts_of(run, path)[-1].status  # type: ignore[arg-type]


class TestForeach:
    def test_iterations_within_concurrency(self) -> None:
        """3 iterations at concurrency 2: two start at once, the third when the first ends; the step ends with the last."""
        trace = make_trace(
            [fan({"i": [1, 2, 3]}, (step("x"),), concurrency=2)],
            [rec(f"fan[{k}]/x", 1, "succeeded", 10) for k in range(3)],
        )
        run = oracle(trace)
        assert [attempts_of(run, f"fan[{k}]/x")[0].started_at for k in range(3)] == [T0, T0, T0 + 10]
        f = attempts_of(run, "fan")[0]
        assert (f.status, f.ended_at) == ("SUCCEEDED", T0 + 20)
        assert run.status == "SUCCEEDED"

    def test_iteration_params(self) -> None:
        """Each iteration is handed its loop variables, loop_index, the parent's params and the foreach's own params."""
        s = fan({"a": [1, 2], "b": ["x", "y"]}, (step("x"),), params={"own": Param(value="o")})
        run = oracle(
            make_trace([s], [rec(f"fan[{k}]/x", 1, "succeeded", 1) for k in range(4)], params={"wp": 5})
        )
        wps = [attempts_of(run, f"fan[{k}]/x")[0].config["workflow_params"] for k in range(4)]
        got = [(p["a"], p["b"], p["loop_index"], p["own"], p["wp"]) for p in wps]  # type: ignore[index]
        assert got == [(1, "x", 0, "o", 5), (2, "x", 1, "o", 5), (1, "y", 2, "o", 5), (2, "y", 3, "o", 5)]
        assert "loop_params" not in wps[0]  # type: ignore[operator]
        assert attempts_of(run, "fan[3]/x")[0].params["workflow_instance_id"] == 4
        assert attempts_of(run, "fan")[0].params["loop_params"] == {"a": [1, 2], "b": ["x", "y"]}

    def test_iteration_values_mixed_radix(self) -> None:
        """The first loop param varies fastest."""
        assert iteration_values({"a": [1, 2], "b": [10, 20, 30]}, 5) == {"a": 2, "b": 30}

    def test_zero_iterations_succeed_at_once(self) -> None:
        """An empty loop param gives 0 iterations and the foreach SUCCEEDED without children."""
        run = oracle(make_trace([fan({"i": []}, (step("x"),))]))
        assert [(a.path, a.status) for a in run.attempts] == [("fan", "SUCCEEDED")]

    def test_loop_param_from_expression(self) -> None:
        """Loop params may be expressions, e.g. range() or Util.dateIntsBetween()."""
        fe = Foreach({"d": Param(expression="Util.dateIntsBetween(20240101, 20240103, 1)")}, (step("x"),))
        s = step("fan", type=StepType.FOREACH, foreach=fe)
        run = oracle(
            make_trace([s], [rec("fan[0]/x", 1, "succeeded", 1), rec("fan[1]/x", 1, "succeeded", 1)])
        )
        assert [attempts_of(run, f"fan[{k}]/x")[0].config["workflow_params"]["d"] for k in range(2)] == [
            20240101,
            20240102,
        ]  # type: ignore[index]

    def test_fail_after_running_stops_launching(self) -> None:
        """A FAILED iteration stops new launches; running ones finish; the foreach is FATALLY_FAILED at the end."""
        s = fan({"i": [0, 1, 2, 3]}, (step("x"),), concurrency=2)
        attempts = [rec("fan[0]/x", 1, "fatal_error", 1), rec("fan[1]/x", 1, "succeeded", 10)]
        run = oracle(make_trace([s], attempts))
        assert not attempts_of(run, "fan[2]/x")
        f = attempts_of(run, "fan")[0]
        assert (f.status, f.ended_at) == ("FATALLY_FAILED", T0 + 10)
        assert run.status == "FAILED"

    def test_fail_immediately_stops_iterations(self) -> None:
        """FAIL_IMMEDIATELY foreach: a failed iteration stops the running ones at once."""
        s = fan({"i": [0, 1]}, (step("x"),), mode=FailureMode.FAIL_IMMEDIATELY)
        run = oracle(
            make_trace([s], [rec("fan[0]/x", 1, "fatal_error", 1), rec("fan[1]/x", 1, "succeeded", 50)])
        )
        assert last_status(run, "fan[1]/x") == "STOPPED"
        f = attempts_of(run, "fan")[0]
        assert (f.status, f.ended_at) == ("FATALLY_FAILED", T0 + 1)

    def test_ignore_failure_foreach(self) -> None:
        """IGNORE_FAILURE foreach: COMPLETED_WITH_ERROR and the downstream runs."""
        s = fan({"i": [0]}, (step("x"),), "after", mode=FailureMode.IGNORE_FAILURE)
        run = oracle(
            make_trace(
                [s, step("after")], [rec("fan[0]/x", 1, "fatal_error", 1), rec("after", 1, "succeeded", 1)]
            )
        )
        assert (last_status(run, "fan"), last_status(run, "after"), run.status) == (
            "COMPLETED_WITH_ERROR",
            "SUCCEEDED",
            "SUCCEEDED",
        )

    def test_timed_out_iteration_does_not_stop_launches(self) -> None:
        """Only FAILED iterations stop launches; a TIMED_OUT one decides the final status."""
        s = fan({"i": [0, 1]}, (step("x"),), concurrency=1)
        run = oracle(make_trace([s], [rec("fan[0]/x", 1, "timeout", 1), rec("fan[1]/x", 1, "succeeded", 1)]))
        assert last_status(run, "fan[1]/x") == "SUCCEEDED"
        assert last_status(run, "fan") == "TIMED_OUT"

    def test_strict_ordering_window(self) -> None:
        """strict_ordering bounds the window from the oldest unfinished iteration: 2 and 3 wait for 0."""
        s = fan({"i": [0, 1, 2, 3]}, (step("x"),), concurrency=2, strict=True)
        durations = [30, 5, 5, 5]
        run = oracle(
            make_trace([s], [rec(f"fan[{k}]/x", 1, "succeeded", d) for k, d in enumerate(durations)])
        )
        assert [attempts_of(run, f"fan[{k}]/x")[0].started_at for k in range(4)] == [T0, T0, T0 + 30, T0 + 30]

    def test_without_strict_ordering(self) -> None:
        """Without strict ordering a free slot is refilled at once."""
        s = fan({"i": [0, 1, 2, 3]}, (step("x"),), concurrency=2)
        durations = [30, 5, 5, 5]
        run = oracle(
            make_trace([s], [rec(f"fan[{k}]/x", 1, "succeeded", d) for k, d in enumerate(durations)])
        )
        assert [attempts_of(run, f"fan[{k}]/x")[0].started_at for k in range(4)] == [T0, T0, T0 + 5, T0 + 10]

    def test_workflow_step_concurrency_caps_foreach(self) -> None:
        """The workflow's step_concurrency caps a foreach's own concurrency."""
        s = fan({"i": [0, 1, 2]}, (step("x"),), concurrency=10)
        run = oracle(
            make_trace([s], [rec(f"fan[{k}]/x", 1, "succeeded", 10) for k in range(3)], step_concurrency=1)
        )
        assert [attempts_of(run, f"fan[{k}]/x")[0].started_at for k in range(3)] == [T0, T0 + 10, T0 + 20]

    def test_bad_loop_param_fails_step(self) -> None:
        """A loop param that is not an array makes the foreach INTERNALLY_FAILED."""
        run = oracle(make_trace([fan({"i": 3}, (step("x"),))]))  # type: ignore[dict-item]
        assert last_status(run, "fan") == "INTERNALLY_FAILED"

    def test_inner_retries_inside_iteration(self) -> None:
        """An inner step retries inside its iteration with the usual backoff."""
        run = oracle(
            make_trace(
                [fan({"i": [0]}, (step("x"),))],
                [rec("fan[0]/x", 1, "user_error", 1), rec("fan[0]/x", 2, "succeeded", 1)],
            )
        )
        assert [a.started_at for a in attempts_of(run, "fan[0]/x")] == [T0, T0 + 61]
        assert attempts_of(run, "fan")[0].ended_at == T0 + 62


class TestSubworkflow:
    CHILD = WorkflowDefinition(
        "child", (step("y", "z"), step("z")), params={"cp": Param(expression="base * 2")}
    )

    def call(self, *to: str, sync: bool = True, explicit: bool = False, **kw: object) -> Step:
        return step(
            "call",
            *to,
            type=StepType.SUBWORKFLOW,
            subworkflow=Subworkflow("child", sync=sync, explicit_params=explicit),
            **kw,
        )

    def test_child_run_and_params(self) -> None:
        """The child run's steps live under 'call/', receive passed-down params, and the step mirrors the child."""
        trace = make_trace([self.call(params={"extra": Param(value="e")})], [rec("call/y", 1, "succeeded", 3), rec("call/z", 1, "succeeded", 4)],
                           params={"base": 21}, subworkflows={"child": self.CHILD})  # fmt: skip
        run = oracle(trace)
        y = attempts_of(run, "call/y")[0]
        child_params = y.config["workflow_params"]
        assert (child_params["cp"], child_params["extra"], child_params["workflow_id"]) == (42, "e", "child")  # type: ignore[index]
        assert "subworkflow_id" not in child_params  # type: ignore[operator]
        c = attempts_of(run, "call")[0]
        assert (c.status, c.started_at, c.ended_at) == ("SUCCEEDED", T0, T0 + 7)
        assert y.params["workflow_instance_id"] == 1
        assert run.status == "SUCCEEDED"

    def test_child_sees_parent_params(self) -> None:
        """Child definition params are evaluated against params passed down from the parent."""
        child = WorkflowDefinition(
            "child",
            (step("y", params={"v": Param(expression="cp + 1")}),),
            params={"cp": Param(expression="base * 2")},
        )
        trace = make_trace(
            [self.call()],
            [rec("call/y", 1, "succeeded", 1)],
            params={"base": 21},
            subworkflows={"child": child},
        )
        assert attempts_of(oracle(trace), "call/y")[0].params["v"] == 43

    def test_explicit_params_pass_only_step_params(self) -> None:
        """explicit_params: parent workflow params are not passed down; the child param expression fails."""
        child = WorkflowDefinition("child", (step("y"),), params={"cp": Param(expression="base * 2")})
        trace = make_trace([self.call(explicit=True)], params={"base": 1}, subworkflows={"child": child})
        assert last_status(oracle(trace), "call") == "FATALLY_FAILED"

    def test_child_failure_is_fatal(self) -> None:
        """A FAILED child makes the step FATALLY_FAILED (no retry) and the run FAILED."""
        trace = make_trace(
            [self.call()],
            [rec("call/y", 1, "fatal_error", 2)],
            subworkflows={"child": self.CHILD},
            params={"base": 1},
        )
        run = oracle(trace)
        assert [a.status for a in attempts_of(run, "call")] == ["FATALLY_FAILED"]
        assert run.status == "FAILED"

    def test_child_timeout(self) -> None:
        """A child that times out makes the step TIMED_OUT."""
        child = WorkflowDefinition("child", (step("y"),), timeout=10)
        trace = make_trace([self.call()], [rec("call/y", 1, "succeeded", 100)], subworkflows={"child": child})
        run = oracle(trace)
        assert (last_status(run, "call/y"), last_status(run, "call"), run.status) == (
            "TIMED_OUT",
            "TIMED_OUT",
            "TIMED_OUT",
        )
        assert attempts_of(run, "call")[0].ended_at == T0 + 10

    def test_async_subworkflow(self) -> None:
        """sync=false: the step succeeds as soon as the child is launched; the child still runs."""
        trace = make_trace([self.call("after", sync=False), step("after")],
                           [rec("call/y", 1, "succeeded", 50), rec("call/z", 1, "succeeded", 1), rec("after", 1, "succeeded", 1)],
                           subworkflows={"child": self.CHILD}, params={"base": 1})  # fmt: skip
        run = oracle(trace)
        assert attempts_of(run, "after")[0].started_at == T0
        assert last_status(run, "call/z") == "SUCCEEDED"
        assert run.ended_at == T0 + 1

    def test_nested_foreach_in_subworkflow(self) -> None:
        """Paths compose: a foreach inside a subworkflow is 'call/fan[i]/x'."""
        inner = fan({"i": [0, 1]}, (step("x"),))
        trace = make_trace([self.call()], [rec(f"call/fan[{k}]/x", 1, "succeeded", 2) for k in range(2)],
                           subworkflows={"child": WorkflowDefinition("child", (inner,))})  # fmt: skip
        run = oracle(trace)
        assert last_status(run, "call/fan[1]/x") == "SUCCEEDED"
        assert run.status == "SUCCEEDED"

    def test_fail_immediately_stops_running_child(self) -> None:
        """A FAIL_IMMEDIATELY sibling stops a running subworkflow: its child steps and the step end STOPPED."""
        trace = make_trace([self.call(), step("boom", failure_mode=FailureMode.FAIL_IMMEDIATELY)],
                           [rec("call/y", 1, "succeeded", 100), rec("boom", 1, "fatal_error", 5)],
                           subworkflows={"child": self.CHILD}, params={"base": 1})  # fmt: skip
        run = oracle(trace)
        assert (last_status(run, "call/y"), last_status(run, "call")) == ("STOPPED", "STOPPED")
        assert attempts_of(run, "call")[0].ended_at == T0 + 5
        assert run.status == "FAILED"

    def test_workflow_timeout_reaches_foreach_iterations(self) -> None:
        """A root workflow timeout times out a running foreach and its iterations."""
        trace = make_trace(
            [fan({"i": [0, 1]}, (step("x"),))],
            [rec(f"fan[{k}]/x", 1, "succeeded", 100) for k in range(2)],
            timeout=20,
        )
        run = oracle(trace)
        assert (last_status(run, "fan[0]/x"), last_status(run, "fan"), run.status) == (
            "TIMED_OUT",
            "TIMED_OUT",
            "TIMED_OUT",
        )
        assert run.ended_at == T0 + 20


class TestForeachBatches:
    def test_loop_batch_limit(self) -> None:
        """At most 50 launches per call: the call entering RUNNING and the immediate next one launch 100, the rest wait for the 3 s poll."""
        s = fan({"i": list(range(120))}, (step("x"),), concurrency=200)
        trace = make_trace(
            [s], [rec(f"fan[{k}]/x", 1, "succeeded", 10) for k in range(120)], step_concurrency=200
        )
        run = oracle(trace)
        starts = [attempts_of(run, f"fan[{k}]/x")[0].started_at for k in range(120)]
        assert starts == [T0] * 100 + [T0 + 3] * 20
        assert attempts_of(run, "fan")[0].ended_at == T0 + 13
