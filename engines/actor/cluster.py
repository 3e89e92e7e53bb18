"""A cluster of actor-engine nodes sharing one store and one outside world, in one process.

In replay every node of the cluster lives on the same virtual-time loop; in live mode a cluster may
hold one node (a ``node_main`` process) while other processes hold the others, and messages to
groups no local node holds wait in the outbox for their owner's sweeper. The cluster also is the
trigger API (runs are inserted at their trigger times through the run-strategy desk) and watches
for the end: every run terminal, or the time limit.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from corpora.model import Run
from engines.actor.config import ActorConfig
from engines.actor.desk import Outgoing, RunDesk
from engines.actor.faults import FaultPlan
from engines.actor.group import group_of
from engines.actor.messages import DurableMessage
from engines.actor.node import Node
from engines.actor.persist import encode_new_run
from engines.actor.world import World
from engines.clock import Clock
from engines.core.definition import CompiledTrace
from engines.core.flow import new_run
from engines.core.statuses import WorkflowStatus
from engines.store.errors import StoreError
from engines.store.protocol import Store
from engines.store.records import WorkflowInstance

__all__ = ["Cluster", "Takeover", "WorkflowEntry", "run_key_of"]


def run_key_of(workflow_id: str, run_index: int) -> str:
    """The store key of root run ``run_index`` (1-based) of a workflow; sorts in trigger order."""
    return f"{workflow_id}|{run_index:06d}"


@dataclass(frozen=True, slots=True)
class WorkflowEntry:
    """A compiled trace the nodes can run: the workflow id is the trace id."""

    ct: CompiledTrace
    runs: tuple[Run, ...]


@dataclass(frozen=True, slots=True)
class Takeover:
    """A group claimed by ``node`` at ``at`` with ``generation`` (generation 1 is a first claim)."""

    group_id: int
    node: str
    generation: int
    at: float


@dataclass(slots=True)
class _Monitor:
    expected: int
    terminal: set[str] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Cluster:
    def __init__(
        self, *, store: Store, clock: Clock, loop: asyncio.AbstractEventLoop, world: World, config: ActorConfig,
        catalog: Mapping[str, WorkflowEntry], faults: FaultPlan, seed: int, expected_runs: int,
    ) -> None:  # fmt: skip
        self.store = store
        self.clock = clock
        self.loop = loop
        self.world = world
        self.config = config
        self.catalog = catalog
        self.faults = faults
        self.seed = seed
        self.desk = RunDesk(store, self._desk_outbox, self.run_ended)
        self.nodes: list[Node] = []
        self.monitor = _Monitor(expected_runs)
        self.takeovers: list[Takeover] = []
        self.halts: list[tuple[str, float, str]] = []
        self.errors: list[BaseException] = []
        self.trigger_round_trips = 0.0
        self.exclusive = True
        """True when this process holds every node on the store (replay): the sweeper may then sleep
        while no outbox row is unacknowledged. Live clusters sharing a file set it False."""
        self.unacked: set[int] = set()
        self.end_when_idle = False
        """Replay: end as soon as nothing can ever happen again (``_check_idle``)."""
        self.ended_idle_at: float | None = None
        self.triggers_scheduled = 0
        self.triggers_done = 0
        self._poked = False

    def written(self, message_id: int) -> None:
        self.unacked.add(message_id)
        for node in self.nodes:
            node.arm_sweep()

    def acked(self, message_ids: list[int]) -> None:
        self.unacked.difference_update(message_ids)

    def add_node(self, node_id: str) -> Node:
        node = Node(self, node_id, len(self.nodes))
        self.nodes.append(node)
        return node

    def start(self, total_nodes: int | None = None) -> None:
        """Start every local node; node i prefers groups g with g mod total_nodes == i."""
        n = total_nodes or len(self.nodes)
        for node in self.nodes:
            node.start([g for g in range(self.config.groups) if g % n == node.index])

    def stop(self) -> None:
        for node in self.nodes:
            node.halt("replay finished")
        self.world.close()

    # ---- routing ----------------------------------------------------------------------------

    def owner_of(self, group_id: int) -> Node | None:
        for node in self.nodes:
            if node.alive and group_id in node.groups:
                return node
        return None

    def route(self, group_id: int, message_id: int | None, message: DurableMessage) -> None:
        """Hand a committed message to its group's owner in memory (faults may drop or repeat it)."""
        owner = self.owner_of(group_id)
        if owner is None:
            return  # nobody here holds the group: the owner's sweeper delivers it
        for _ in range(self.faults.copies(type(message).__name__)):
            owner.receive_durable(group_id, message_id, message)

    def _desk_outbox(self, group_id: int, message: DurableMessage, now: float) -> int:
        node = self.owner_of(group_id) or (self.nodes[0] if self.nodes else None)
        if node is None:
            message_id = self.store.add_outbox(f"group:{group_id}", _encode(message), now, now)
            self.written(message_id)
            return message_id
        return node.add_outbox(group_id, message, now)

    # ---- triggers and the end ---------------------------------------------------------------

    def schedule_triggers(self, workflow_id: str) -> None:
        entry = self.catalog[workflow_id]
        for index, run in enumerate(entry.runs, start=1):
            self.triggers_scheduled += 1
            self.clock.call_at(run.trigger_time, functools.partial(self.trigger, workflow_id, index))

    def trigger(self, workflow_id: str, run_index: int) -> None:
        """Maestro's trigger API: insert the run and apply the run strategy (one transaction)."""
        entry = self.catalog[workflow_id]
        run = entry.runs[run_index - 1]
        state = new_run(entry.ct, run, run_index)
        now = self.clock.now()
        row = WorkflowInstance(
            run_key=run_key_of(workflow_id, run_index), workflow_id=workflow_id, run_id=run.run_id,
            status=state.status.value, state=encode_new_run(state),
            group_id=group_of(workflow_id, run_index, run.run_id, self.config.groups), created_at=now, updated_at=now,
        )  # fmt: skip
        before = self.store.counters["round_trips"]
        try:
            out, ended = self.desk.trigger(row, entry.ct.root.definition.run_strategy, now)
        except StoreError:
            self.clock.call_later(self.config.error_retry, lambda: self.trigger(workflow_id, run_index))
            return
        finally:
            self.trigger_round_trips += self.store.counters["round_trips"] - before
        self.loop.create_task(self._after_trigger(out, ended))

    async def _after_trigger(self, out: list[Outgoing], ended: list[WorkflowInstance]) -> None:
        await self.store.settle(self.clock)
        for row in ended:
            self.run_ended(row)
        for group_id, message_id, message in out:
            self.route(group_id, message_id, message)
        self.triggers_done += 1
        self.poke()

    def poke(self) -> None:
        """Something ended (a run, a group's store work, a trigger, a sweep): look soon whether the
        replay can still progress."""
        if self.end_when_idle and not self._poked:
            self._poked = True
            self.loop.call_soon(self._check_idle)

    def _check_idle(self) -> None:
        """End the replay now if nothing can ever happen again: every trigger done, every run the
        desk admitted ended (async children included), no message unhandled, no actor holding a
        flow or mid-way. Runs still queued (CREATED behind a failed STRICT_SEQUENTIAL run) could
        only move at a trigger or a run's end, and none is left; node upkeep would go on forever
        and change nothing. Both modes end here, at the same instant."""
        self._poked = False
        monitor = self.monitor
        if monitor.done.is_set() or self.triggers_done < self.triggers_scheduled:
            return
        if not self.desk.admitted <= monitor.terminal:
            return
        if self.unacked:
            handled: set[int] = set()
            for node in self.nodes:
                handled.update(node.acks)
            if not self.unacked <= handled:
                return
        for node in self.nodes:
            if not node.alive:
                continue
            for group in node.groups.values():
                if group.flows or group.ops or group.busy:
                    return
        self.ended_idle_at = self.clock.now()
        monitor.done.set()

    def run_ended(self, row: WorkflowInstance) -> None:
        if WorkflowStatus(row.status).is_terminal and row.run_key not in self.monitor.terminal:
            self.monitor.terminal.add(row.run_key)
            if len(self.monitor.terminal) >= self.monitor.expected:
                self.monitor.done.set()
            else:
                self.poke()

    async def wait(self, deadline: float) -> bool:
        """Wait until every expected run is terminal (True) or the clock passes ``deadline`` (False)."""
        timer = self.clock.call_at(deadline, self.monitor.done.set)
        await self.monitor.done.wait()
        timer.cancel()
        if self.errors:
            raise self.errors[0]
        return len(self.monitor.terminal) >= self.monitor.expected

    def fail(self, exc: BaseException) -> None:
        """An actor task raised: stop the replay and surface the error."""
        self.errors.append(exc)
        self.monitor.done.set()

    def node_halted(self, node: Node, reason: str) -> None:
        self.halts.append((node.node_id, self.clock.now(), reason))

    def group_claimed(self, node: Node, group_id: int, generation: int, at: float) -> None:
        self.takeovers.append(Takeover(group_id, node.node_id, generation, at))


def _encode(message: DurableMessage) -> str:
    from engines.actor.messages import encode_message

    return encode_message(message)
