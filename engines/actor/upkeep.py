"""Node upkeep accounting: the latency model of upkeep round trips and what the fast mode needs.

Upkeep -- heartbeats (lease renewal), sweeps, reconciliation reads, claim checks -- is work a node
does for itself; nothing on a flow's path waits for it (in Maestro it runs on its own timers). So
its store round trips draw no latency from the store's shared sampler (``store.unsampled()``): the
flows' commits see the same seeded latency stream whether or not, and when, upkeep ran, and an
upkeep statement never adds to a latency a flow settles. Upkeep is still charged: round trip
number ``i`` (0-based, per replay) costs ``table[i % UPKEEP_TABLE]``, a cycle of draws from the
same :class:`~engines.store.latency.LatencyModel`, seeded by the replay seed. The total over ``n``
upkeep round trips is then a closed form (:func:`upkeep_latency`), the same whether the round trips
were simulated one by one (exact mode) or accounted in bulk (fast mode).

The fast mode's view of the event loop (:func:`loop_is_idle`, :func:`next_event_at`) reads the
asyncio loop's ready queue and timer heap: the only places an event can come from in a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import math
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from engines.clock import VirtualTimeLoop
from engines.store.latency import LatencyModel, LatencySampler

__all__ = ["UPKEEP_TABLE", "ReplayLoop", "loop_is_idle", "next_event_at", "unsampled", "upkeep_latency"]


class _Timer(asyncio.TimerHandle):
    """A timer ordered by (time, creation order): timers due at the same instant fire first come,
    first served, whatever other timers sit in the heap."""

    __slots__ = ("_seq",)
    _seq: int

    def __lt__(self, other: object) -> bool:
        # called ~20 times per heap push/pop (over a million times per corpus replay): kept minimal
        if type(other) is _Timer:
            mine: Any = self  # ``_when`` is TimerHandle's (untyped) slot
            theirs: Any = other
            when, their_when = mine._when, theirs._when
            return bool(when < their_when) if when != their_when else self._seq < other._seq
        return super().__lt__(other)  # type: ignore[operator]


class ReplayLoop(VirtualTimeLoop):
    """The actor replay's loop: a :class:`VirtualTimeLoop` whose timers due at the same instant fire
    in the order they were scheduled. asyncio orders only by time, so equal-time timers (two
    runtimes started together with the same recorded duration) would pop in an order that depends
    on the heap's shape -- on every other timer in it, upkeep timers included. Fast mode keeps fewer
    upkeep timers than exact mode, so without this the two modes could order simultaneous events
    differently."""

    def __init__(self, start: float = 0.0) -> None:
        super().__init__(start)
        self._timer_seq = itertools.count()

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()  # type: ignore[attr-defined]
        timer = _Timer(when, callback, args, self, context)
        timer._seq = next(self._timer_seq)
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def next_timer_at(self) -> float:
        """The time of the earliest live timer (inf if none). Cancelled timers at the head of the
        heap are dropped first, exactly as ``BaseEventLoop._run_once`` drops them."""
        scheduled: list[Any] = self._scheduled  # type: ignore[attr-defined]
        while scheduled and scheduled[0]._cancelled:
            self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            handle = heapq.heappop(scheduled)
            handle._scheduled = False
        return scheduled[0]._when if scheduled else math.inf


UPKEEP_TABLE = 256
"""Draws in the cycle of upkeep latencies (their mean is what matters: upkeep is off every path)."""


@functools.lru_cache(maxsize=32)
def _prefix(model: LatencyModel, seed: int) -> tuple[float, ...]:
    sampler = LatencySampler(model, zlib.crc32(f"actor-upkeep:{seed}".encode()))
    out = [0.0]
    for _ in range(UPKEEP_TABLE):
        out.append(out[-1] + sampler.draw())
    return tuple(out)


def upkeep_latency(model: LatencyModel, seed: int, round_trips: int) -> float:
    """Modeled seconds of ``round_trips`` upkeep round trips of a replay seeded ``seed``."""
    prefix = _prefix(model, seed)
    cycles, rest = divmod(int(round_trips), UPKEEP_TABLE)
    return cycles * prefix[UPKEEP_TABLE] + prefix[rest]


def unsampled(store: Any) -> contextlib.AbstractContextManager[None]:
    """``store.unsampled()`` where the store has it (every SQL store does), else a no-op."""
    method = getattr(store, "unsampled", None)
    return method() if method is not None else contextlib.nullcontext()


def loop_is_idle(loop: asyncio.AbstractEventLoop) -> bool:
    """Nothing else is ready to run at this instant (the running callback aside)."""
    ready = getattr(loop, "_ready", None)
    return ready is not None and not ready


def next_event_at(loop: asyncio.AbstractEventLoop, exclude: Any = None) -> float:
    """The time of the earliest live timer of ``loop`` other than ``exclude`` (inf if none)."""
    if exclude is None and isinstance(loop, ReplayLoop):
        return loop.next_timer_at()
    scheduled = getattr(loop, "_scheduled", None)
    if scheduled is None:
        return -math.inf
    best = math.inf
    for handle in _live(scheduled, exclude):
        when = handle.when()
        if when < best:
            best = when
    return best


def _live(scheduled: list[asyncio.TimerHandle], exclude: Any) -> Iterator[asyncio.TimerHandle]:
    for handle in scheduled:
        if handle is not exclude and not handle.cancelled():
            yield handle
