"""The mailbox base every actor uses: a deque drained by ``call_soon``, never a Task per message.

An actor handles its messages one at a time, in order, synchronously (``receive``). When a handler
needs the store (a commit whose latency is awaited on the clock), it raises the actor's ``barrier``:
the drain stops, one asyncio Task runs ``flush`` (the commit and the hand-off of what it announced),
and the drain resumes afterwards. So a burst of messages costs one scheduled callback, and a step's
whole chain of state changes costs one Task per commit, not one per message.

Timers are de-duplicated by key; every timer and every drain of a paused node waits until the pause
ends; a stopped actor (its node crashed or lost its lease) drops everything.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engines.actor.node import Node

__all__ = ["Actor"]


class Actor:
    """A mailbox, timers and the drain loop. Subclasses implement ``receive`` and, if they raise
    ``barrier``, ``flush``."""

    __slots__ = ("_busy", "_mailbox", "_timers", "barrier", "node", "stopped")

    def __init__(self, node: Node) -> None:
        self.node = node
        self._mailbox: deque[Any] = deque()
        self._busy = False
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self.barrier = False
        self.stopped = False

    # ---- sending ---------------------------------------------------------------------------

    def tell(self, message: object) -> None:
        """Queue ``message``; the drain runs soon (never re-entrantly)."""
        if self.stopped:
            return
        self._mailbox.append(message)
        self.node.counters["messages"] += 1
        if not self._busy:
            self._busy = True
            self.node.loop.call_soon(self._drain)

    def timer(self, key: Hashable, when: float, message: object) -> None:
        """Deliver ``message`` to self at clock time ``when``; a timer with the same key is replaced."""
        if self.stopped:
            return
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            if self._timers.get(key) is handle:
                del self._timers[key]
            self.tell(message)

        handle = self.node.clock.call_at(when, fire)
        self._timers[key] = handle

    @property
    def busy(self) -> bool:
        """Messages queued, a drain scheduled or a commit in flight."""
        return self._busy or bool(self._mailbox)

    def has_timer(self, key: Hashable) -> bool:
        return key in self._timers

    def cancel_timer(self, key: Hashable) -> None:
        handle = self._timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def stop(self) -> None:
        """Drop the mailbox and every timer; later messages are ignored."""
        self.stopped = True
        self._mailbox.clear()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # ---- draining --------------------------------------------------------------------------

    def _drain(self) -> None:
        node = self.node
        if self.stopped:
            self._busy = False
            return
        resume_at = node.paused_until
        if resume_at is not None:
            node.clock.call_at(resume_at, self._drain)
            return
        box = self._mailbox
        while box and not self.stopped:
            self.receive(box.popleft())
            if self.barrier:
                break
        if self.stopped:
            self._busy = False
            return
        if self.barrier or self.wants_flush():
            self.barrier = False
            node.counters["actor_flushes"] += 1
            node.spawn(self._flush_then_drain())
            return
        self._busy = False

    async def _flush_then_drain(self) -> None:
        await self.flush()
        if self.stopped:
            self._busy = False
            return
        if self._mailbox or self.barrier or self.wants_flush():
            self.node.loop.call_soon(self._drain)
        else:
            self._busy = False

    def receive(self, message: Any) -> None:
        """Handle one message synchronously."""
        raise NotImplementedError

    def wants_flush(self) -> bool:
        """Whether the mailbox ran dry with something still to commit (outbox rows to announce)."""
        return False

    async def flush(self) -> None:
        """Commit what the handled messages produced; default: nothing."""
