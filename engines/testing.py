"""Helpers for running coroutines in virtual time, for our tests and for users' own tests.

Two shapes:

- :func:`run_virtual` runs one coroutine to completion on a fresh :class:`VirtualTimeLoop` and returns
  its result: ``run_virtual(main(), start=1_700_000_000.0)``.
- :class:`VirtualTimeEnvironment` keeps a loop open across several ``run`` calls, shaped like
  temporalio's ``WorkflowEnvironment.start_time_skipping()``: ``env.now``, ``await env.sleep(d)``,
  and ``env.auto_time_skipping_disabled()`` to let virtual time follow the wall clock for a while.

Time skipping trade-off (as trio's MockClock explains for autojump): a test that waits on something
the loop cannot see (a thread, a subprocess) must say so with ``env.track()`` / ``loop.track()``;
otherwise the clock jumps past it, or the loop reports a deadlock when no timer is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from engines.api import EngineError
from engines.clock import DeadlockError, VirtualClock, VirtualTimeLoop

__all__ = ["VirtualTimeEnvironment", "run_virtual"]

_T = TypeVar("_T")


def run_virtual(coro: Coroutine[Any, Any, _T], *, start: float = 0.0, debug: bool = False) -> _T:
    """Run ``coro`` on a fresh virtual-time loop starting at ``start`` seconds; return its result.

    Raises :class:`engines.clock.DeadlockError` if the program waits for an event that can never
    arrive. The loop is closed afterwards; pending tasks are cancelled as ``asyncio.run`` does."""
    with VirtualTimeEnvironment(start=start, debug=debug) as env:
        return env.run(coro)


class VirtualTimeEnvironment:
    """A virtual-time loop driven from synchronous code (a test, a replay worker).

    ``with VirtualTimeEnvironment(start=t0) as env: env.run(main(env.clock))``. The clock persists
    across ``run`` calls, so a test can run, inspect, and run again. Not thread-safe: use it from
    one thread."""

    def __init__(self, *, start: float = 0.0, debug: bool = False) -> None:
        self._start = float(start)
        self._debug = debug
        self._runner: asyncio.Runner | None = None
        self._loop: VirtualTimeLoop | None = None

    def __enter__(self) -> VirtualTimeEnvironment:
        self._loop = VirtualTimeLoop(self._start)
        loop = self._loop
        self._runner = asyncio.Runner(debug=self._debug, loop_factory=lambda: loop)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancel what is still pending and close the loop. Idempotent."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            runner.close()
        # A Runner that never ran leaves its loop unopened and unclosed: close it ourselves.
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()

    @property
    def loop(self) -> VirtualTimeLoop:
        if self._loop is None or self._runner is None:
            raise EngineError(
                "VirtualTimeEnvironment is not open: use it as `with VirtualTimeEnvironment() as env:`"
            )
        return self._loop

    @property
    def clock(self) -> VirtualClock:
        """The clock to inject into engines and runtimes."""
        return VirtualClock(self.loop)

    @property
    def now(self) -> float:
        """Current virtual time, seconds."""
        return self.loop.time()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` to completion in virtual time and return its result.

        On a :class:`DeadlockError` the tasks left waiting are cancelled before the error propagates,
        so the environment stays usable and a later deadlock report names only its own tasks."""
        self.loop  # noqa: B018 - raises the clear error when the environment is not open
        assert self._runner is not None
        try:
            return self._runner.run(coro)
        except DeadlockError:
            self._runner.run(self._cancel_pending())
            raise

    async def _cancel_pending(self) -> None:
        me = asyncio.current_task()
        stuck = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)

    async def sleep(self, delay: float) -> None:
        """Wait ``delay`` virtual seconds (instant in real time while skipping is on)."""
        await asyncio.sleep(delay)

    def track(self) -> contextlib.AbstractContextManager[None]:
        """Freeze virtual time while off-loop work (a thread, a subprocess) is in flight."""
        return self.loop.track()

    @contextlib.contextmanager
    def auto_time_skipping_disabled(self) -> Iterator[None]:
        """Within the block, virtual time advances at wall-clock pace instead of jumping."""
        loop = self.loop
        previous = loop.skipping
        loop.skipping = False
        try:
            yield
        finally:
            loop.skipping = previous
