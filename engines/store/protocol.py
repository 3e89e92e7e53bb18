"""The narrow store interface both engines code against (SQLite today, PostgreSQL-ready).

Every method is synchronous: in replay, store calls take zero virtual time and the engine pays the
simulated latency with ``await store.settle(clock)`` right after its calls (before any other await,
so the latency it settles is its own). Every method is one transaction unless called inside
``with store.transaction():``, which makes all of them one atomic unit: on an exception nothing of
it is written.

Fencing: writes made on behalf of a group take ``fence=(group_id, generation)``; inside the same
transaction the store checks that the group's lease is still at that generation and raises
StaleGenerationError otherwise, so a node that lost its lease cannot overwrite its successor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from engines.clock import Clock
from engines.store.records import (
    GroupLease,
    LeaseRenewal,
    LoadedRun,
    OutboxMessage,
    QueueTask,
    StepAction,
    StepInstance,
    WorkflowInstance,
)

__all__ = ["Fence", "Store"]

Fence = tuple[int, int]
"""``(group_id, generation)`` a write is made under."""


@runtime_checkable
class Store(Protocol):
    """Durable state of both engines. See the module docstring for transactions, latency, fencing."""

    @property
    def counters(self) -> Mapping[str, float]: ...

    def transaction(self, *, write: bool = True) -> contextlib.AbstractContextManager[None]: ...

    def pending_latency(self) -> float: ...

    def take_latency(self) -> float: ...

    async def settle(self, clock: Clock) -> float: ...

    def close(self) -> None: ...

    # runs and step attempts
    def create_run(self, run: WorkflowInstance, *, fence: Fence | None = None) -> None: ...

    def get_run(self, run_key: str) -> WorkflowInstance | None: ...

    def load_run(self, run_key: str) -> LoadedRun | None: ...

    def save_run(self, run: WorkflowInstance, *, fence: Fence | None = None) -> WorkflowInstance: ...

    def save_steps(self, steps: Sequence[StepInstance], *, fence: Fence | None = None) -> None: ...

    def runs(
        self, *, group_id: int | None = None, statuses: Iterable[str] | None = None
    ) -> list[WorkflowInstance]: ...

    def child_runs(self, parent_key: str) -> list[WorkflowInstance]: ...

    # step actions
    def add_step_action(self, run_key: str, path: str, action: str, created_at: float) -> int: ...

    def take_step_actions(self, run_key: str) -> list[StepAction]: ...

    # legacy queue
    def enqueue(self, run_key: str, path: str, visible_at: float) -> int: ...

    def claim(self, owner: str, now: float, *, claim_seconds: float, limit: int = 1) -> list[QueueTask]: ...

    def requeue(self, task_id: int, owner: str, visible_at: float) -> bool: ...

    def ack(self, task_id: int, owner: str) -> bool: ...

    def next_visible_at(self) -> float | None: ...

    def queue_depth(self) -> int: ...

    def queue_tasks(self) -> list[QueueTask]: ...

    # actor engine: outbox and leases
    def add_outbox(
        self, target: str, message: str, created_at: float, deliver_by: float, *, fence: Fence | None = None
    ) -> int: ...

    def mark_delivered(self, message_ids: Sequence[int]) -> None: ...

    def undelivered(self, due_by: float, *, limit: int = 1000) -> list[OutboxMessage]: ...

    def acquire_lease(self, group_id: int, owner: str, now: float, ttl: float) -> GroupLease | None: ...

    def heartbeat(self, group_id: int, owner: str, generation: int, now: float, ttl: float) -> GroupLease: ...

    def renew_leases(self, owner: str, held: Mapping[int, int], now: float, ttl: float) -> LeaseRenewal: ...

    def lease(self, group_id: int) -> GroupLease | None: ...
