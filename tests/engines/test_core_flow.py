"""DAG readiness, conditions, the rollup, failure modes and timeouts, with exact virtual times."""

from __future__ import annotations

from corpora.model import FailureMode, Param, RetryPolicy
from engines.core.testing import T0, attempts_of, chain, make_trace, oracle, rec, step

FI, FAR, IGN = FailureMode.FAIL_IMMEDIATELY, FailureMode.FAIL_AFTER_RUNNING, FailureMode.IGNORE_FAILURE


def statuses(run: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in run.attempts:  # type: ignore[attr-defined]
        out[a.path] = a.status
    return out


class TestDag:
    def test_chain_times(self) -> None:
        """A chain a -> b -> c starts each step the moment its predecessor ends (zero overhead)."""
        run = oracle(
            make_trace(
                chain("a", "b", "c"),
                [rec("a", 1, "succeeded", 5), rec("b", 1, "succeeded", 7), rec("c", 1, "succeeded", 1)],
            )
        )
        assert [(a.path, a.created_at, a.started_at, a.ended_at) for a in run.attempts] == [
            ("a", T0, T0, T0 + 5), ("b", T0 + 5, T0 + 5, T0 + 12), ("c", T0 + 12, T0 + 12, T0 + 13),
        ]  # fmt: skip
        assert (run.status, run.started_at, run.ended_at) == ("SUCCEEDED", T0, T0 + 13)

    def test_join_waits_for_all_predecessors(self) -> None:
        """A join starts only when its last predecessor ends."""
        steps = [step("a", "c"), step("b", "c"), step("c")]
        run = oracle(
            make_trace(
                steps,
                [rec("a", 1, "succeeded", 5), rec("b", 1, "succeeded", 20), rec("c", 1, "succeeded", 1)],
            )
        )
        assert attempts_of(run, "c")[0].started_at == T0 + 20

    def test_any_true_condition_satisfies_a_join(self) -> None:
        """Join semantics: ALL predecessors complete, then ANY incoming condition true."""
        steps = [step("a", ("c", "false")), step("b", ("c", "1 < 2")), step("c")]
        run = oracle(
            make_trace(
                steps, [rec("a", 1, "succeeded", 1), rec("b", 1, "succeeded", 1), rec("c", 1, "succeeded", 1)]
            )
        )
        c = attempts_of(run, "c")[0]
        assert c.status == "SUCCEEDED"
        assert c.params["maestro_step_satisfied"] is True

    def test_unsatisfied_cascades(self) -> None:
        """A false edge makes the successor UNSATISFIED and the cascade continues; the run succeeds."""
        steps = [step("a", ("b", "x > 1"), ("c", "x <= 1")), step("b", "d"), step("c"), step("d")]
        run = oracle(make_trace(steps, [rec("a", 1, "succeeded", 2, {"x": 0}), rec("c", 1, "succeeded", 1)]))
        assert statuses(run) == {"a": "SUCCEEDED", "b": "UNSATISFIED", "c": "SUCCEEDED", "d": "UNSATISFIED"}
        assert attempts_of(run, "b")[0].started_at is None
        assert attempts_of(run, "b")[0].config["conditions"] == {"d": False}
        assert run.status == "SUCCEEDED"

    def test_condition_reads_upstream_output_and_step_param(self) -> None:
        """Conditions read the step's own outputs and params; params read upstream outputs as step__name."""
        b = step("b", ("c", "y == 'v3'"), params={"y": Param(expression="'v' + a__n")})
        steps = [step("a", "b"), b, step("c")]
        run = oracle(
            make_trace(
                steps,
                [
                    rec("a", 1, "succeeded", 1, {"n": 3}),
                    rec("b", 1, "succeeded", 1),
                    rec("c", 1, "succeeded", 1),
                ],
            )
        )
        assert attempts_of(run, "b")[0].params["y"] == "v3"
        assert statuses(run)["c"] == "SUCCEEDED"

    def test_condition_error_fails_predecessor(self) -> None:
        """A condition that errors turns the SUCCEEDED predecessor INTERNALLY_FAILED (§4.3, §10.6)."""
        steps = [step("a", ("b", "nope > 1")), step("b")]
        run = oracle(make_trace(steps, [rec("a", 1, "succeeded", 1)]))
        assert statuses(run) == {"a": "INTERNALLY_FAILED"}
        assert run.status == "FAILED"

    def test_non_boolean_condition_fails_predecessor(self) -> None:
        """A condition that is not boolean is an error of the predecessor."""
        run = oracle(make_trace([step("a", ("b", "1 + 1")), step("b")], [rec("a", 1, "succeeded", 1)]))
        assert statuses(run)["a"] == "INTERNALLY_FAILED"

    def test_bad_param_is_internally_failed(self) -> None:
        """A step param naming nothing makes the step INTERNALLY_FAILED before it starts."""
        run = oracle(make_trace([step("a", params={"p": Param(expression="ghost + 1")})]))
        a = attempts_of(run, "a")[0]
        assert (a.status, a.started_at) == ("INTERNALLY_FAILED", None)
        assert run.status == "FAILED"


class TestFailureModes:
    def test_fail_after_running_lets_independent_branches_finish(self) -> None:
        """FAIL_AFTER_RUNNING: the failed step's downstream never starts, the other branch runs; run FAILED at its end."""
        steps = [step("a", "c", failure_mode=FAR), step("b", "d"), step("c"), step("d")]
        run = oracle(
            make_trace(
                steps,
                [rec("a", 1, "fatal_error", 1), rec("b", 1, "succeeded", 30), rec("d", 1, "succeeded", 5)],
            )
        )
        assert statuses(run) == {"a": "FATALLY_FAILED", "b": "SUCCEEDED", "d": "SUCCEEDED"}
        assert (run.status, run.ended_at) == ("FAILED", T0 + 35)

    def test_fail_immediately_stops_running_steps(self) -> None:
        """FAIL_IMMEDIATELY: a running sibling is STOPPED at the failure time; the run ends FAILED then."""
        steps = [step("a", failure_mode=FI), step("b", "c"), step("c")]
        run = oracle(make_trace(steps, [rec("a", 1, "fatal_error", 5), rec("b", 1, "succeeded", 100)]))
        b = attempts_of(run, "b")[0]
        assert (b.status, b.ended_at) == ("STOPPED", T0 + 5)
        assert "c" not in statuses(run)
        assert (run.status, run.ended_at) == ("FAILED", T0 + 5)

    def test_fail_immediately_stops_step_in_backoff(self) -> None:
        """FAIL_IMMEDIATELY starts a pending retry at once and it is STOPPED without running."""
        steps = [step("a", failure_mode=FI), step("b")]
        run = oracle(make_trace(steps, [rec("a", 1, "fatal_error", 10), rec("b", 1, "user_error", 1)]))
        b = attempts_of(run, "b")
        assert [(x.attempt, x.status, x.started_at) for x in b] == [
            (1, "USER_FAILED", T0),
            (2, "STOPPED", None),
        ]
        assert b[1].created_at == T0 + 10
        assert run.status == "FAILED"

    def test_ignore_failure(self) -> None:
        """IGNORE_FAILURE: the step ends COMPLETED_WITH_ERROR, downstream proceeds, the run SUCCEEDED."""
        steps = [step("a", "b", failure_mode=IGN), step("b")]
        run = oracle(make_trace(steps, [rec("a", 1, "fatal_error", 1), rec("b", 1, "succeeded", 1)]))
        assert statuses(run) == {"a": "COMPLETED_WITH_ERROR", "b": "SUCCEEDED"}
        assert run.status == "SUCCEEDED"

    def test_ignore_failure_after_exhausted_retries(self) -> None:
        """IGNORE_FAILURE applies when user-error retries are exhausted too."""
        steps = [step("a", "b", failure_mode=IGN, retry=RetryPolicy(error_retry_limit=0)), step("b")]
        run = oracle(make_trace(steps, [rec("a", 1, "user_error", 1), rec("b", 1, "succeeded", 1)]))
        assert statuses(run) == {"a": "COMPLETED_WITH_ERROR", "b": "SUCCEEDED"}

    def test_internally_failed_does_not_apply_failure_mode(self) -> None:
        """INTERNALLY_FAILED ignores FAIL_IMMEDIATELY: the sibling keeps running (§3.1, §10.2)."""
        steps = [step("a", failure_mode=FI, params={"p": Param(expression="ghost")}), step("b")]
        run = oracle(make_trace(steps, [rec("b", 1, "succeeded", 50)]))
        assert statuses(run) == {"a": "INTERNALLY_FAILED", "b": "SUCCEEDED"}
        assert (run.status, run.ended_at) == ("FAILED", T0 + 50)


class TestTimeouts:
    def test_step_timeout_detected_at_next_poll(self) -> None:
        """A 10 s step timeout on a 100 s job is seen at the 3 s poll at +12 s: TIMED_OUT, no failure mode."""
        run = oracle(make_trace([step("a", timeout=10)], [rec("a", 1, "succeeded", 100)]))
        a = attempts_of(run, "a")[0]
        assert (a.status, a.ended_at) == ("TIMED_OUT", T0 + 12)
        assert a.config["timeout_seconds"] == 10
        assert (run.status, run.ended_at) == ("TIMED_OUT", T0 + 12)

    def test_step_timeout_with_retry(self) -> None:
        """With a timeout retry limit of 1: TIMEOUT_FAILED at +12, retry at +72 (60 s backoff), TIMED_OUT at +84."""
        s = step("a", timeout="10s", retry=RetryPolicy(timeout_retry_limit=1))
        run = oracle(make_trace([s], [rec("a", 1, "succeeded", 100), rec("a", 2, "succeeded", 100)]))
        assert [(a.status, a.started_at, a.ended_at) for a in attempts_of(run, "a")] == [
            ("TIMEOUT_FAILED", T0, T0 + 12), ("TIMED_OUT", T0 + 72, T0 + 84),
        ]  # fmt: skip

    def test_recorded_timeout_outcome(self) -> None:
        """A recorded 'timeout' outcome with no timeout retries left is TIMED_OUT at once."""
        run = oracle(make_trace([step("a")], [rec("a", 1, "timeout", 7)]))
        assert [(a.status, a.ended_at) for a in attempts_of(run, "a")] == [("TIMED_OUT", T0 + 7)]
        assert run.status == "TIMED_OUT"

    def test_bad_step_timeout_is_internally_failed(self) -> None:
        """A step timeout beyond 120 days fails the step at CREATED."""
        run = oracle(make_trace([step("a", timeout="200 days")]))
        assert statuses(run) == {"a": "INTERNALLY_FAILED"}

    def test_workflow_timeout(self) -> None:
        """A 30 s workflow timeout stops the running step as TIMED_OUT at +30; later steps stay uncreated."""
        run = oracle(make_trace(chain("a", "b"), [rec("a", 1, "succeeded", 100)], timeout=30))
        assert statuses(run) == {"a": "TIMED_OUT"}
        assert (run.status, run.ended_at) == ("TIMED_OUT", T0 + 30)

    def test_workflow_timeout_with_failed_step_is_failed(self) -> None:
        """A workflow timeout with a FATALLY_FAILED step ends FAILED (FAILED outranks TIMED_OUT)."""
        steps = [step("a"), step("b")]
        run = oracle(
            make_trace(steps, [rec("a", 1, "fatal_error", 1), rec("b", 1, "succeeded", 100)], timeout=30)
        )
        assert statuses(run) == {"a": "FATALLY_FAILED", "b": "TIMED_OUT"}
        assert (run.status, run.ended_at) == ("FAILED", T0 + 30)

    def test_workflow_timeout_starts_pending_retry(self) -> None:
        """A step in backoff when the workflow times out gets its retry at once, which is TIMED_OUT."""
        run = oracle(make_trace([step("a")], [rec("a", 1, "user_error", 5)], timeout=20))
        assert [(a.status, a.created_at) for a in attempts_of(run, "a")] == [
            ("USER_FAILED", T0),
            ("TIMED_OUT", T0 + 20),
        ]
        assert run.status == "TIMED_OUT"


class TestParams:
    def test_reserved_and_workflow_params(self) -> None:
        """An attempt is handed the reserved ids, system params from the trigger time and definition params."""
        trace = make_trace(
            chain("a", "b"),
            [rec("a", 1, "succeeded", 1), rec("b", 1, "user_error", 1), rec("b", 2, "succeeded", 1)],
            params={"k": "v-$RUN_DATE"},
        )
        run = oracle(trace)
        b1, b2 = attempts_of(run, "b")
        assert (b1.params["step_id"], b1.params["step_instance_id"], b1.params["step_attempt_id"]) == (
            "b",
            2,
            1,
        )
        assert b2.params["step_attempt_id"] == 2
        assert b1.params["step_instance_uuid"] != b2.params["step_instance_uuid"]
        assert b1.params["workflow_instance_id"] == 1
        assert run.workflow_params["k"] == "v-20231114"
        assert run.workflow_params["RUN_TS"] == int(T0 * 1000)

    def test_run_params_override_definition(self) -> None:
        """Run params win over definition params, and definition expressions see them."""
        from corpora.model import Run

        trace = make_trace([step("a")], params={"x": 1, "y": Param(expression="x * 10")},
                           runs=[Run("r1", T0, params={"x": 4}, attempts=(rec("a", 1, "succeeded", 1),))])  # fmt: skip
        run = oracle(trace)
        assert (run.workflow_params["x"], run.workflow_params["y"]) == (4, 40)

    def test_param_cycle_is_internally_failed(self) -> None:
        """Step params that reference each other in a cycle fail the step."""
        s = step("a", params={"p": Param(expression="q"), "q": Param(expression="p")})
        run = oracle(make_trace([s]))
        assert statuses(run) == {"a": "INTERNALLY_FAILED"}
