"""Step runtimes: replay answers from the trace; live runtimes run for real."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from corpora.model import Outcome, RecordedAttempt, Run, Step, StepType, Trace, WorkflowDefinition
from engines.clock import LiveClock, VirtualClock
from engines.runtimes import (
    NoopRuntime,
    ReplayRuntime,
    RuntimeNotAvailableError,
    RuntimeRegistry,
    RuntimeResult,
    ShellRuntime,
    SleepRuntime,
    StepRuntime,
)
from engines.testing import run_virtual


def _trace() -> Trace:
    definition = WorkflowDefinition(id="wf", steps=(Step(id="a", type=StepType.SHELL), Step(id="b")))
    runs = (
        Run(
            run_id="r1",
            trigger_time=1000.0,
            attempts=(
                RecordedAttempt(path="a", attempt=1, outcome=Outcome.USER_ERROR, duration=30.0),
                RecordedAttempt(
                    path="a", attempt=2, outcome=Outcome.SUCCEEDED, duration=12.5, outputs={"rows": 7}
                ),
                RecordedAttempt(path="fan[1]/inner", attempt=1, outcome=Outcome.TIMEOUT, duration=60.0),
            ),
        ),
        Run(run_id="r2", trigger_time=2000.0),
    )
    return Trace(trace_id="t1", definition=definition, runs=runs)


def _live(coro_factory):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        return await coro_factory(LiveClock())

    return asyncio.run(main())


class TestReplayRuntime:
    def test_recorded_attempt_waits_its_duration(self) -> None:
        """Attempt 2 of step a returns its recorded outcome and outputs after exactly 12.5 virtual s."""
        runtime = ReplayRuntime(_trace())

        async def main() -> tuple[RuntimeResult, float]:
            clock = VirtualClock.current()
            result = await runtime.run("r1", "a", 2, {"x": 1}, clock)
            return result, clock.now()

        result, now = run_virtual(main(), start=1000.0)
        assert result == RuntimeResult(outcome=Outcome.SUCCEEDED, outputs={"rows": 7}, duration=12.5)
        assert now == 1012.5

    def test_unrecorded_attempt_returns_at_once(self) -> None:
        """An attempt the trace never recorded comes back immediately, unrecorded, with no outcome."""
        runtime = ReplayRuntime(_trace())

        async def main() -> tuple[RuntimeResult, float]:
            clock = VirtualClock.current()
            return await runtime.run("r1", "a", 3, {}, clock), clock.now()

        result, now = run_virtual(main(), start=5.0)
        assert result.unrecorded
        assert result.outcome is None
        assert now == 5.0

    def test_attempts_are_keyed_by_run(self) -> None:
        """The same path in another run is a different attempt (r2 records nothing)."""
        runtime = ReplayRuntime(_trace())
        assert runtime.lookup("r1", "a", 1) is not None
        assert runtime.lookup("r2", "a", 1) is None
        assert runtime.lookup("r1", "fan[1]/inner", 1) == RecordedAttempt(
            path="fan[1]/inner", attempt=1, outcome=Outcome.TIMEOUT, duration=60.0
        )

    def test_params_are_recorded_in_order_first_wins(self) -> None:
        """Handed params are kept per attempt in hand-over order; a duplicate delivery keeps the first."""
        runtime = ReplayRuntime(_trace())

        async def main() -> None:
            clock = VirtualClock.current()
            await runtime.run("r1", "a", 1, {"date": 20240101}, clock)
            await runtime.run("r1", "a", 2, {"date": 20240102}, clock)
            await runtime.run("r1", "a", 2, {"date": 99}, clock)

        run_virtual(main(), start=0.0)
        handed = runtime.handed
        assert [(h.attempt, h.params, h.at) for h in handed] == [
            (1, {"date": 20240101}, 0.0),
            (2, {"date": 20240102}, 30.0),
        ]
        assert runtime.handed_params("r1", "a", 2) == handed[1]

    def test_result_for_is_non_blocking(self) -> None:
        """result_for gives the recorded answer without a loop, for poll-based engines."""
        runtime = ReplayRuntime(_trace())
        assert runtime.result_for("r1", "a", 1).duration == 30.0
        assert runtime.result_for("r1", "zzz", 1).unrecorded

    def test_concurrent_attempts_end_at_their_own_times(self) -> None:
        """Two attempts run concurrently each end after their own recorded duration."""
        runtime = ReplayRuntime(_trace())
        ends: dict[int, float] = {}

        async def one(attempt: int) -> None:
            clock = VirtualClock.current()
            await runtime.run("r1", "a", attempt, {}, clock)
            ends[attempt] = clock.now()

        async def main() -> None:
            await asyncio.gather(one(1), one(2))

        run_virtual(main(), start=0.0)
        assert ends == {1: 30.0, 2: 12.5}


class TestLiveRuntimes:
    def test_noop_succeeds(self) -> None:
        """The no-op runtime succeeds with no outputs."""

        async def main() -> tuple[RuntimeResult, float]:
            clock = VirtualClock.current()
            return await NoopRuntime().run("r", "s", 1, {}, clock), clock.now()

        result, now = run_virtual(main(), start=3.0)
        assert result == RuntimeResult(outcome=Outcome.SUCCEEDED)
        assert now == 3.0

    def test_sleep_waits_on_the_clock(self) -> None:
        """SleepRuntime with sleep_seconds='90' succeeds after exactly 90 virtual seconds."""

        async def main() -> tuple[RuntimeResult, float]:
            clock = VirtualClock.current()
            return await SleepRuntime().run("r", "s", 1, {"sleep_seconds": "90"}, clock), clock.now()

        result, now = run_virtual(main(), start=10.0)
        assert result.outcome is Outcome.SUCCEEDED
        assert result.duration == 90.0
        assert now == 100.0

    @pytest.mark.parametrize("bad", [None, "soon", -1, True])
    def test_sleep_bad_param_is_fatal(self, bad: object) -> None:
        """A missing or malformed sleep_seconds ends fatally with the reason in outputs."""

        async def main() -> RuntimeResult:
            params = {} if bad is None else {"sleep_seconds": bad}
            return await SleepRuntime().run("r", "s", 1, params, VirtualClock.current())  # type: ignore[arg-type]

        result = run_virtual(main())
        assert result.outcome is Outcome.FATAL_ERROR
        assert "sleep_seconds" in str(result.outputs["error"])


class TestShellRuntime:
    def test_exit_zero_succeeds_with_stdout_and_params(self) -> None:
        """Exit 0 succeeds; stdout's tail and the exported params come back."""
        result = _live(
            lambda clock: ShellRuntime().run(
                "run-1",
                "fan[0]/s",
                2,
                {"command": 'echo "$SHADOW_PARAM_DAY $SHADOW_STEP_PATH $SHADOW_ATTEMPT"', "day": 20240101},
                clock,
            )
        )
        assert result.outcome is Outcome.SUCCEEDED
        assert result.outputs["exit_code"] == 0
        assert result.outputs["stdout"] == "20240101 fan[0]/s 2\n"

    def test_nonzero_exit_is_user_error(self) -> None:
        """A non-zero exit is a user error carrying the code and stderr."""
        result = _live(
            lambda clock: ShellRuntime().run("r", "s", 1, {"command": "echo boom >&2; exit 3"}, clock)
        )
        assert result.outcome is Outcome.USER_ERROR
        assert result.outputs["exit_code"] == 3
        assert result.outputs["stderr"] == "boom\n"

    def test_timeout_kills_process_group(self) -> None:
        """A command outliving timeout_seconds ends as timeout and its process group is killed."""
        result = _live(
            lambda clock: ShellRuntime().run(
                "r", "s", 1, {"command": "sleep 30 & sleep 30", "timeout_seconds": 0.2}, clock
            )
        )
        assert result.outcome is Outcome.TIMEOUT
        assert result.duration < 10

    def test_cancellation_kills_the_process_group(self, tmp_path: Path) -> None:
        """Cancelling a running shell attempt (a STOP) kills its process group and re-raises CancelledError."""
        marker = tmp_path / "still-running"
        command = f"sleep 0.5 && touch {marker} & sleep 30"

        async def main() -> str:
            clock = LiveClock()
            task = asyncio.create_task(ShellRuntime().run("r", "s", 1, {"command": command}, clock))
            await asyncio.sleep(0.2)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            else:
                return "finished"
            await asyncio.sleep(0.6)  # past the background child's 0.5 s: it must be dead too
            return "cancelled"

        assert asyncio.run(main()) == "cancelled"
        assert not marker.exists()

    def test_tail_is_bounded(self) -> None:
        """Only the last tail_bytes of stdout are kept."""
        command = f"{sys.executable} -c \"print('x' * 10000 + 'END')\""
        result = _live(
            lambda clock: ShellRuntime(tail_bytes=10).run("r", "s", 1, {"command": command}, clock)
        )
        assert result.outputs["stdout"] == "xxxxxxEND\n"

    def test_missing_command_is_fatal(self) -> None:
        """No command param ends fatally without starting a process."""
        result = _live(lambda clock: ShellRuntime().run("r", "s", 1, {}, clock))
        assert result.outcome is Outcome.FATAL_ERROR

    def test_runs_under_virtual_clock_tracked(self) -> None:
        """On a virtual clock the subprocess is tracked: no deadlock, virtual time does not jump."""

        async def main() -> tuple[RuntimeResult, float]:
            clock = VirtualClock.current()
            clock.call_later(3600, lambda: None)
            return await ShellRuntime().run("r", "s", 1, {"command": "sleep 0.05"}, clock), clock.now()

        result, now = run_virtual(main(), start=100.0)
        assert result.outcome is Outcome.SUCCEEDED
        assert now == 100.0


class TestRegistry:
    def test_replay_registry_serves_every_leaf(self) -> None:
        """The replay registry answers every leaf type with the one replay runtime."""
        registry = RuntimeRegistry.replay(_trace())
        runtime = registry.replay_runtime()
        assert runtime is not None
        for t in StepType:
            if t.is_leaf:
                assert registry.for_type(t) is runtime

    def test_live_registry_types(self) -> None:
        """Live mode runs NOOP, SLEEP and SHELL; KUBERNETES is a typed error naming the step."""
        registry = RuntimeRegistry.live()
        assert isinstance(registry.for_type(StepType.SHELL), StepRuntime)
        with pytest.raises(RuntimeNotAvailableError, match="'train'"):
            registry.for_type(StepType.KUBERNETES, step="train")
        assert isinstance(RuntimeRegistry.live(others_as_noop=True).for_type(StepType.HTTP), NoopRuntime)

    def test_foreach_is_never_a_runtime(self) -> None:
        """FOREACH has no runtime in any mode; the error says the engine runs it as child runs."""
        with pytest.raises(RuntimeNotAvailableError, match="child runs"):
            RuntimeRegistry.replay(_trace()).for_type(StepType.FOREACH, step="fan")
