"""Time for engines and runtimes: a virtual-time asyncio loop for replay and a live clock for real runs.

Engines and runtimes read time only from an injected :class:`Clock`. In replay it is a
:class:`VirtualClock` over a :class:`VirtualTimeLoop`; in live mode a :class:`LiveClock` over an
ordinary asyncio loop. Both speak epoch-like seconds as floats, so timestamps from either clock land
in the same columns.

The virtual loop is a plain ``SelectorEventLoop`` whose clock is a number it owns. Whenever the loop
would block (nothing ready), it first polls real I/O without waiting, then, if no *tracked* work is
in flight, jumps its clock straight to the earliest timer. It never spins idle passes before a jump
(``looptime`` does, and ran 25 times slower on replay-shaped programs). Because a jump happens only
when nothing can make progress at the current instant, the order of events depends only on the
program, never on wall time: the same program yields the same trace of times.

Tracked work is work the loop cannot see from its timers: a thread, a subprocess, a socket peer.
While any is in flight (``loop.track()``), the virtual clock is frozen and the loop waits in real
time for I/O, so a 3-second real subprocess does not let the virtual clock race ahead by hours.
``run_in_executor`` is tracked automatically.

If tasks are pending but nothing is ready, no timer is scheduled and nothing is tracked, no event
can ever arrive: the loop raises :class:`DeadlockError` naming the pending tasks instead of hanging.

Concurrency: a loop, its clocks and its tracking counter belong to the loop's thread; only the
``track()`` release may come from another thread (it wakes the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import selectors
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Any, Protocol, TypeVar, TypeVarTuple, Unpack, runtime_checkable

from engines.api import EngineError

__all__ = [
    "Clock",
    "DeadlockError",
    "LiveClock",
    "VirtualClock",
    "VirtualTimeLoop",
]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

# While tracked work is in flight the loop waits on real I/O in slices this long, so a tracked
# counter released from a thread without a wake-up still lets the loop resume promptly.
_TRACKED_POLL_SECONDS = 0.02


def _nothing() -> None:
    """A no-op callback whose only purpose is to wake the loop's selector."""


class DeadlockError(EngineError):
    """Tasks wait for something that can never happen: nothing ready, no timer, no tracked work.

    ``pending`` names the waiting tasks (task name and coroutine) so the message points at the
    component that forgot to schedule a wake-up."""

    def __init__(self, now: float, pending: tuple[str, ...]) -> None:
        self.now = now
        self.pending = pending
        listed = ", ".join(pending) if pending else "<none>"
        super().__init__(
            f"deadlock at virtual time {now:.6f}: {len(pending)} task(s) pending with nothing ready, "
            f"no timer scheduled and no tracked work in flight: {listed}. A task awaits an event nobody "
            "will deliver; if it waits on a thread, subprocess or socket, wrap that work in loop.track()"
        )


class _VirtualSelector(selectors.BaseSelector):
    """Delegates I/O registration to a real selector; decides in ``select`` whether to jump time."""

    def __init__(self, loop: VirtualTimeLoop, real: selectors.BaseSelector) -> None:
        self._loop = loop
        self._real = real

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        if (
            timeout is not None
            and timeout > 0
            and loop.skipping
            and loop._tracked == 0
            and len(self._real.get_map()) <= 1
        ):
            # Fast path of a pure replay: only the loop's own wake-up pipe is registered (whose
            # call_soon_threadsafe callbacks are already in the ready queue), nothing is tracked, so no
            # real event can be pending that would change what happens now: jump without a syscall.
            loop._jump_to_next_timer(timeout)
            return []
        # Real events (call_soon_threadsafe wake-ups, subprocess pipes) always come first.
        events = self._real.select(0)
        if events or (timeout is not None and timeout <= 0):
            return events
        if loop.tracked_count > 0:
            # Frozen clock: wait in real time for the tracked work to report back.
            return self._real.select(
                _TRACKED_POLL_SECONDS if timeout is None else min(timeout, _TRACKED_POLL_SECONDS)
            )
        if timeout is None:
            raise DeadlockError(loop.time(), loop.pending_task_names())
        if not loop.skipping:
            # Skipping disabled: virtual time advances at wall-clock pace, up to the next timer.
            started = time.monotonic()
            events = self._real.select(timeout)
            loop._advance(min(time.monotonic() - started, timeout))
            return events
        loop._jump_to_next_timer(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock starts at ``start`` and jumps to the next timer when idle.

    Use it through ``asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start))`` or
    :func:`engines.testing.run_virtual`. ``skipping`` (default True) may be turned off to let
    virtual time follow the wall clock, e.g. while a test watches a live component."""

    def __init__(self, start: float = 0.0) -> None:
        real = selectors.DefaultSelector()
        self._virtual_now = float(start)
        self._tracked = 0
        # track() may be released from a worker thread; += on an attribute is not atomic across threads.
        self._tracked_lock = threading.Lock()
        self.skipping = True
        self.jumps = 0
        super().__init__(_VirtualSelector(self, real))
        self._set_now(float(start))

    def time(self) -> float:
        return self._virtual_now

    @property
    def tracked_count(self) -> int:
        """How many tracked pieces of off-loop work are in flight (the clock is frozen while > 0)."""
        return self._tracked

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Freeze virtual time while the block's off-loop work (thread, subprocess) is in flight."""
        with self._tracked_lock:
            self._tracked += 1
        try:
            yield
        finally:
            with self._tracked_lock:
                self._tracked -= 1
            # The release may come from another thread: wake the loop so it re-decides at once.
            if not self.is_closed():
                self.call_soon_threadsafe(_nothing)

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[_Ts]], _T], *args: *_Ts
    ) -> asyncio.Future[_T]:
        """Like the base method, but the thread's work is tracked: virtual time waits for it."""
        future = super().run_in_executor(executor, func, *args)
        with self._tracked_lock:
            self._tracked += 1

        def _release(_: asyncio.Future[_T]) -> None:
            with self._tracked_lock:
                self._tracked -= 1

        future.add_done_callback(_release)
        return future

    async def shutdown_default_executor(self) -> None:
        with self.track():
            await super().shutdown_default_executor()

    def pending_task_names(self) -> tuple[str, ...]:
        """Names of the loop's unfinished tasks, ``name (coroutine qualname)``, sorted for stable messages."""
        names = []
        for task in asyncio.all_tasks(self):
            if task.done():
                continue
            coro = task.get_coro()
            qualname = getattr(coro, "__qualname__", type(coro).__name__)
            names.append(f"{task.get_name()} ({qualname})")
        return tuple(sorted(names))

    def _set_now(self, now: float) -> None:
        self._virtual_now = now
        # The base loop fires timers with ``when < now + _clock_resolution``. At epoch-sized times the
        # float spacing (~2.4e-7 s at 1.7e9) exceeds the monotonic clock's 1e-9 resolution, so
        # ``now + 1e-9 == now`` and a timer due exactly now would never fire (the loop would spin).
        # One ulp makes the test exactly ``when <= now``: a timer never fires early, not even by 1 ns.
        self._clock_resolution = math.ulp(now)

    def _advance(self, seconds: float) -> None:
        self._set_now(self._virtual_now + seconds)

    def _jump_to_next_timer(self, timeout: float) -> None:
        # Jump to the earliest timer's exact time (the base loop keeps the heap in ``_scheduled``);
        # adding ``timeout`` would be off by float rounding and capped at 24 h per select.
        scheduled: list[asyncio.TimerHandle] = getattr(self, "_scheduled", [])
        target = scheduled[0].when() if scheduled else self._virtual_now + timeout
        if target > self._virtual_now:
            self._set_now(target)
        self.jumps += 1


@runtime_checkable
class Clock(Protocol):
    """The only source of time for engines and runtimes. Seconds as floats, epoch-like."""

    def now(self) -> float: ...

    async def sleep(self, delay: float) -> None: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle: ...

    def track(self) -> contextlib.AbstractContextManager[None]: ...

    @property
    def is_virtual(self) -> bool: ...


class VirtualClock:
    """A :class:`Clock` over a :class:`VirtualTimeLoop`: time moves only when the program waits."""

    __slots__ = ("_loop",)

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    @classmethod
    def current(cls) -> VirtualClock:
        """The clock of the running loop; it must be a :class:`VirtualTimeLoop`."""
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeLoop):
            raise EngineError(
                f"VirtualClock.current() needs a running VirtualTimeLoop, got {type(loop).__name__}; "
                "run the coroutine with engines.testing.run_virtual(...)"
            )
        return cls(loop)

    @property
    def loop(self) -> VirtualTimeLoop:
        return self._loop

    @property
    def is_virtual(self) -> bool:
        return True

    def now(self) -> float:
        return self._loop.time()

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return self._loop.call_at(when, callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)

    def track(self) -> contextlib.AbstractContextManager[None]:
        return self._loop.track()


class LiveClock:
    """A :class:`Clock` in real time over an ordinary loop, reporting epoch seconds.

    The loop's monotonic clock drives timers; ``now()`` maps it to epoch seconds through an anchor
    taken when the clock is created, so live timestamps are comparable with trace trigger times and
    immune to wall-clock steps during a run."""

    __slots__ = ("_loop", "_offset")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._offset = time.time() - self._loop.time()

    @property
    def is_virtual(self) -> bool:
        return False

    def now(self) -> float:
        return self._loop.time() + self._offset

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return self._loop.call_at(when - self._offset, callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)

    def track(self) -> contextlib.AbstractContextManager[None]:
        # Real time runs on its own; there is nothing to freeze.
        return contextlib.nullcontext()
