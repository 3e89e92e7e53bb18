"""The virtual-time loop, the clocks and the testing helpers."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engines.api import EngineError
from engines.clock import Clock, DeadlockError, LiveClock, VirtualClock, VirtualTimeLoop
from engines.testing import VirtualTimeEnvironment, run_virtual


class TestTimers:
    def test_sleep_advances_exactly(self) -> None:
        """A 3.5 s sleep started at t=100 ends at exactly t=103.5."""

        async def main() -> float:
            await asyncio.sleep(3.5)
            return asyncio.get_running_loop().time()

        assert run_virtual(main(), start=100.0) == 103.5

    def test_long_sleep_does_not_take_real_time(self) -> None:
        """A 30-day virtual sleep ends exactly 30 days later (jumps past select's 24 h cap)."""

        async def main() -> float:
            await asyncio.sleep(30 * 86400)
            return asyncio.get_running_loop().time()

        assert run_virtual(main()) == 30 * 86400

    def test_timers_fire_in_time_order(self) -> None:
        """call_later callbacks registered out of order fire in order of their due time."""
        fired: list[tuple[str, float]] = []

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for name, delay in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0)]:
                loop.call_later(delay, lambda n=name: fired.append((n, loop.time())))
            await asyncio.sleep(5)

        run_virtual(main())
        assert fired == [("a", 1.0), ("a2", 1.0), ("b", 2.0), ("c", 3.0)]

    def test_timer_due_now_fires_at_epoch_times(self) -> None:
        """At epoch-sized times (float spacing > 1 ns) a timer due exactly now still fires."""

        async def main() -> float:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(0.1)
            fut: asyncio.Future[float] = loop.create_future()
            loop.call_at(loop.time(), lambda: fut.set_result(loop.time()))
            return await asyncio.wait_for(fut, timeout=1)

        assert run_virtual(main(), start=1_700_000_000.0) == 1_700_000_000.1

    def test_cancelled_timer_does_not_fire(self) -> None:
        """A cancelled timer never runs and does not hold the clock back."""
        fired: list[str] = []

        async def main() -> float:
            loop = asyncio.get_running_loop()
            handle = loop.call_later(10, lambda: fired.append("late"))
            loop.call_later(1, handle.cancel)
            await asyncio.sleep(20)
            return loop.time()

        assert run_virtual(main()) == 20.0
        assert fired == []

    def test_hundred_thousand_timers_in_order(self) -> None:
        """100,000 timers at shuffled distinct times fire in ascending order at their due times."""
        delays = [i * 0.5 for i in range(1, 100_001)]
        random.Random(7).shuffle(delays)
        seen: list[float] = []

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for d in delays:
                loop.call_later(d, lambda d=d: seen.append(loop.time() - d))
            await asyncio.sleep(max(delays) + 1)

        run_virtual(main())
        assert len(seen) == 100_000
        assert all(x == 0.0 for x in seen)


class TestCancellationAndTimeouts:
    def test_task_cancellation(self) -> None:
        """Cancelling a sleeping task at t=2 stops it there; the waiter sees CancelledError."""

        async def main() -> tuple[str, float]:
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(asyncio.sleep(100))
            await asyncio.sleep(2)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return ("cancelled", loop.time())
            return ("finished", loop.time())

        assert run_virtual(main()) == ("cancelled", 2.0)

    def test_asyncio_timeout(self) -> None:
        """asyncio.timeout(5) around a 60 s sleep raises TimeoutError at exactly t=5."""

        async def main() -> float:
            loop = asyncio.get_running_loop()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(5):
                    await asyncio.sleep(60)
            return loop.time()

        assert run_virtual(main()) == 5.0

    def test_wait_for(self) -> None:
        """wait_for lets a 1 s sleep finish and times a 10 s sleep out at 3 s."""

        async def main() -> tuple[str, float]:
            loop = asyncio.get_running_loop()
            result = await asyncio.wait_for(asyncio.sleep(1, result="ok"), timeout=3)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.sleep(10), timeout=3)
            return (result, loop.time())

        assert run_virtual(main()) == ("ok", 4.0)


class TestDeadlock:
    def test_waiting_on_unset_event_raises(self) -> None:
        """Awaiting an event nobody sets raises DeadlockError naming the waiting tasks."""

        async def waiter(event: asyncio.Event) -> None:
            await event.wait()

        async def main() -> None:
            event = asyncio.Event()
            task = asyncio.create_task(waiter(event), name="step-waiter")
            await task

        with pytest.raises(DeadlockError) as info:
            run_virtual(main(), start=50.0)
        assert "step-waiter (" in str(info.value)
        assert "waiter)" in str(info.value)
        assert info.value.now == 50.0
        assert isinstance(info.value, EngineError)

    def test_tracked_thread_is_awaited_not_deadlocked(self) -> None:
        """A future resolved from a tracked thread is awaited; virtual time stays frozen meanwhile."""

        async def main() -> tuple[str, float]:
            loop = asyncio.get_running_loop()
            assert isinstance(loop, VirtualTimeLoop)
            fut: asyncio.Future[str] = loop.create_future()
            loop.call_later(1000, lambda: None)  # a far timer the clock must not jump to

            def work() -> None:
                time.sleep(0.05)
                loop.call_soon_threadsafe(fut.set_result, "done")

            with loop.track():
                threading.Thread(target=work).start()
                value = await fut
            return (value, loop.time())

        assert run_virtual(main()) == ("done", 0.0)

    def test_run_in_executor_is_tracked(self) -> None:
        """run_in_executor work is tracked automatically, so no deadlock and no time jump."""

        async def main() -> tuple[int, float]:
            loop = asyncio.get_running_loop()
            loop.call_later(500, lambda: None)
            value = await loop.run_in_executor(None, lambda: (time.sleep(0.02), 42)[1])
            return (value, loop.time())

        assert run_virtual(main()) == (42, 0.0)


class TestProperties:
    @settings(max_examples=60, deadline=None)
    @given(
        delays=st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=60),
        start=st.floats(min_value=0.0, max_value=2e9, allow_nan=False),
    )
    def test_every_sleeper_wakes_exactly_on_time_in_order(self, delays: list[float], start: float) -> None:
        """Any set of concurrent sleeps wakes each task at exactly start + delay, in non-decreasing time."""
        woke: list[tuple[float, float]] = []

        async def sleeper(delay: float) -> None:
            loop = asyncio.get_running_loop()
            due = loop.time() + delay
            await asyncio.sleep(delay)
            woke.append((loop.time(), due))

        async def main() -> None:
            await asyncio.gather(*(sleeper(d) for d in delays))

        run_virtual(main(), start=start)
        times = [w for w, _ in woke]
        assert times == sorted(times)
        # a zero-delay sleep is a bare yield: it wakes at the same instant
        assert all(w == due for w, due in woke)


class TestDeterminism:
    @staticmethod
    def _program(seed: int) -> list[tuple[str, float]]:
        rng = random.Random(seed)
        log: list[tuple[str, float]] = []

        async def worker(name: str) -> None:
            loop = asyncio.get_running_loop()
            for _ in range(50):
                await asyncio.sleep(rng.choice([0, 0.1, 1.0, 2.5]))
                log.append((name, loop.time()))

        async def main() -> None:
            await asyncio.gather(*(worker(f"w{i}") for i in range(20)))

        run_virtual(main(), start=1_700_000_000.0)
        return log

    def test_same_program_same_trace(self) -> None:
        """The same seeded program yields the identical sequence of (task, time) twice."""
        assert self._program(3) == self._program(3)


class TestClocks:
    def test_virtual_clock_protocol(self) -> None:
        """VirtualClock satisfies Clock; call_at fires at the absolute virtual time."""

        async def main() -> list[float]:
            clock = VirtualClock.current()
            assert isinstance(clock, Clock)
            hits: list[float] = []
            clock.call_at(clock.now() + 7, lambda: hits.append(clock.now()))
            clock.call_later(2, lambda: hits.append(clock.now()))
            await clock.sleep(10)
            return hits

        assert run_virtual(main(), start=10.0) == [12.0, 17.0]

    def test_current_on_plain_loop_is_a_clear_error(self) -> None:
        """VirtualClock.current() on a normal loop raises EngineError pointing to run_virtual."""

        async def main() -> None:
            VirtualClock.current()

        with pytest.raises(EngineError, match="run_virtual"):
            asyncio.run(main())

    def test_live_clock_reports_epoch_seconds(self) -> None:
        """LiveClock.now() is close to time.time() and its timers fire in real time."""

        async def main() -> tuple[float, float, float]:
            clock = LiveClock()
            assert isinstance(clock, Clock)
            assert not clock.is_virtual
            before = clock.now()
            await clock.sleep(0.01)
            return (time.time(), before, clock.now())

        wall, before, after = asyncio.run(main())
        assert abs(wall - after) < 1.0
        assert after > before

    def test_live_clock_call_at_uses_epoch_seconds(self) -> None:
        """LiveClock.call_at(now + 0.02) fires about 20 ms later, not at a monotonic-clock reading."""

        async def main() -> float:
            clock = LiveClock()
            fired = asyncio.get_running_loop().create_future()
            due = clock.now() + 0.02
            clock.call_at(due, lambda: fired.set_result(clock.now()))
            at = await asyncio.wait_for(fired, timeout=5)
            return at - due

        late = asyncio.run(main())
        assert -0.005 <= late < 5


class TestEnvironment:
    def test_environment_keeps_time_across_runs(self) -> None:
        """Time advanced by one run is kept by the next run in the same environment."""
        with VirtualTimeEnvironment(start=5.0) as env:
            env.run(env.sleep(10))
            assert env.now == 15.0
            env.run(env.sleep(1))
            assert env.now == 16.0

    def test_skipping_disabled_follows_wall_clock(self) -> None:
        """With skipping off, a 0.05 s sleep takes real time and virtual time moves by about that."""
        with VirtualTimeEnvironment() as env:
            with env.auto_time_skipping_disabled():
                started = time.monotonic()
                env.run(env.sleep(0.05))
                elapsed = time.monotonic() - started
            assert elapsed >= 0.04
            assert env.now == pytest.approx(0.05, abs=1e-6)

    def test_environment_survives_deadlock(self) -> None:
        """After a deadlock the stuck tasks are cancelled and the next run works normally."""

        async def stuck() -> None:
            await asyncio.Event().wait()

        with VirtualTimeEnvironment(start=1.0) as env:
            with pytest.raises(DeadlockError):
                env.run(stuck())
            env.run(env.sleep(2))
            assert env.now == 3.0
            assert env.loop.pending_task_names() == ()

    def test_unused_environment_closes_its_loop(self) -> None:
        """An environment opened and closed without running anything leaves no open loop behind."""
        with VirtualTimeEnvironment() as env:
            loop = env.loop
        assert loop.is_closed()

    def test_closed_environment_is_a_clear_error(self) -> None:
        """Using an environment outside its with-block raises EngineError saying how to open it."""
        env = VirtualTimeEnvironment()
        with pytest.raises(EngineError, match="with VirtualTimeEnvironment"):
            _ = env.now
