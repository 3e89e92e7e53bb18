"""The step machine called directly: one ``execute`` per Maestro call, state JSON round trips, effects."""

from __future__ import annotations

import json

from corpora.model import FailureMode, Foreach, Param, StepType
from engines.api import ReplayOptions
from engines.core.definition import compile_trace
from engines.core.effects import LaunchChildRuns, RuntimeReport, StartRuntime, TerminateRuntime, Wake
from engines.core.flow import decide, new_run, start_run
from engines.core.oracle import CoreOracle
from engines.core.state import RunState, run_from_json, run_to_json
from engines.core.statuses import StepStatus as S
from engines.core.step import execute
from engines.core.testing import T0, chain, make_trace, oracle_record, rec, step


def started(trace):  # type: ignore[no-untyped-def]
    ct = compile_trace(trace)
    run = trace.runs[0]
    st = start_run(ct, new_run(ct, run, 1), run, T0)
    return ct, decide(ct, st, T0)


class TestExecuteCalls:
    def test_leaf_takes_four_calls(self) -> None:
        """CREATED -> INITIALIZED, -> WAITING_FOR_PERMITS, -> RUNNING (StartRuntime), -> SUCCEEDED on the runtime's report."""
        ct, d = started(make_trace(chain("a", "b")))
        assert d.ready == ("a",)
        r1 = execute(ct, d.run, "a", T0)
        r2 = execute(ct, r1.run, "a", T0)
        r3 = execute(ct, r2.run, "a", T0)
        assert [r.status for r in (r1, r2, r3)] == [S.INITIALIZED, S.WAITING_FOR_PERMITS, S.RUNNING]
        assert all(r.changed for r in (r1, r2, r3))
        assert isinstance(r3.effects[0], StartRuntime)
        assert r3.effects[0].params["step_id"] == "a"
        idle = execute(ct, r3.run, "a", T0 + 1, RuntimeReport.running())
        assert (idle.status, idle.changed, idle.effects, idle.needs_decide) == (S.RUNNING, False, (), False)
        done = execute(ct, idle.run, "a", T0 + 5, RuntimeReport.finished("succeeded", {"o": 1}))
        assert (done.status, done.changed, done.needs_decide) == (S.SUCCEEDED, True, True)
        a = done.run.latest("a")
        assert a is not None
        assert (a.started_at, a.ended_at, a.outputs, a.conditions) == (T0, T0 + 5, {"o": 1}, {"b": True})
        assert decide(ct, done.run, T0 + 5).ready == ("b",)

    def test_terminal_call_is_a_no_op(self) -> None:
        """Calling execute again on a terminal step changes nothing."""
        ct, d = started(make_trace([step("a")]))
        st = d.run
        for report in (None, None, None, RuntimeReport.finished("succeeded")):
            st = execute(ct, st, "a", T0, report).run
        again = execute(ct, st, "a", T0 + 9)
        assert (again.changed, again.effects, again.run is st) == (False, (), True)

    def test_timeout_emits_terminate(self) -> None:
        """A step timeout found at a call terminates the runtime and ends TIMED_OUT."""
        ct, d = started(make_trace([step("a", timeout=5)]))
        st = d.run
        for _ in range(3):
            st = execute(ct, st, "a", T0).run
        r = execute(ct, st, "a", T0 + 6)
        assert r.status is S.TIMED_OUT
        assert r.effects == (TerminateRuntime("a", 1),)

    def test_fail_immediately_wakes_running_siblings(self) -> None:
        """FAIL_IMMEDIATELY marks the scope stopping and asks to wake the running sibling."""
        ct, d = started(make_trace([step("a", failure_mode=FailureMode.FAIL_IMMEDIATELY), step("b")]))
        st = d.run
        for path in ("a", "b"):
            for _ in range(3):
                st = execute(ct, st, path, T0).run
        r = execute(ct, st, "a", T0 + 1, RuntimeReport.finished("fatal_error"))
        assert r.status is S.FATALLY_FAILED
        assert Wake(("b",)) in r.effects
        stop = execute(ct, r.run, "b", T0 + 1)
        assert stop.status is S.STOPPED
        assert stop.effects == (TerminateRuntime("b", 1),)
        assert decide(ct, stop.run, T0 + 1).run.status.value == "FAILED"

    def test_foreach_launch_effect(self) -> None:
        """A RUNNING foreach reports the child runs it launched; decide creates their first steps."""
        fe = Foreach({"i": Param(value=[1, 2])}, (step("x"),))
        ct, d = started(make_trace([step("fan", type=StepType.FOREACH, foreach=fe)]))
        st = d.run
        st = execute(ct, st, "fan", T0).run
        st = execute(ct, st, "fan", T0).run
        r = execute(ct, st, "fan", T0)
        assert r.status is S.RUNNING
        assert LaunchChildRuns("fan", ("fan[0]/", "fan[1]/")) in r.effects
        assert r.needs_decide
        assert decide(ct, r.run, T0).ready == ("fan[0]/x", "fan[1]/x")


class TestStateJson:
    def test_round_trip_mid_run(self) -> None:
        """A run state survives to_json -> json text -> from_json unchanged, mid-flight."""
        ct, d = started(make_trace(chain("a", "b"), params={"p": [1, "x"]}))
        st: RunState = d.run
        for _ in range(3):
            st = execute(ct, st, "a", T0).run
        back = run_from_json(json.loads(json.dumps(run_to_json(st))))
        assert back == st

    def test_reloading_state_every_call_changes_nothing(self) -> None:
        """Replaying with the state reloaded from JSON at every call gives the same record (the legacy engine's way)."""
        fe = Foreach({"i": Param(value=[1, 2, 3])}, (step("x"),), concurrency=2)
        steps = [step("fan", "b", type=StepType.FOREACH, foreach=fe), step("b", retry=None)]
        attempts = [rec(f"fan[{k}]/x", 1, "succeeded", 3 + k) for k in range(3)]
        attempts += [rec("b", 1, "platform_error", 2), rec("b", 2, "succeeded", 1)]
        trace = make_trace(steps, attempts)
        plain = oracle_record(trace)
        reloaded = CoreOracle(reload_state=True).replay(trace, ReplayOptions())
        assert reloaded.runs == plain.runs


class TestTimeline:
    def test_ready_at_is_release_time_not_detection_time(self) -> None:
        """A decide that runs late still records ready_at as the predecessor's end (latency includes detection)."""
        ct, d = started(make_trace(chain("a", "b")))
        st = d.run
        for _ in range(3):
            st = execute(ct, st, "a", T0).run
        st = execute(ct, st, "a", T0 + 5, RuntimeReport.finished("succeeded")).run
        late = decide(ct, st, T0 + 9)
        b = late.run.latest("b")
        assert b is not None
        assert (b.created_at, b.ready_at) == (T0 + 9, T0 + 5)


class TestDocsExample:
    def test_core_md_example_runs(self) -> None:
        """The driving example in docs/CORE.md runs as written and reaches step b."""
        from pathlib import Path

        text = (Path(__file__).resolve().parents[2] / "docs" / "CORE.md").read_text()
        section = text[text.index("## Example") :]
        code = section[
            section.index("```python") + len("```python") : section.index(
                "```", section.index("```python") + 9
            )
        ]
        namespace: dict[str, object] = {}
        exec(compile(code, "docs/CORE.md", "exec"), namespace)
        assert namespace["d"].ready == ("b",)  # type: ignore[attr-defined]
