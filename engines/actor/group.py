"""The group actor: one per group a node holds by lease; it owns the flows of that group's runs.

A run's group is ``hash(workflow, instance, run) mod G`` with a stable hash (crc32), computed once
when the run is triggered and stored on its row; child runs (foreach iterations, subworkflows) are
scopes of their parent's run state, so they live in the parent's flow and group by construction.

The group actor routes durable messages to its flows (creating a flow from the store when a
StartFlow names a run it does not hold yet), runs the run-strategy desk when a run ends, and on a
takeover resumes every unfinished run of the group from the store. Store work happens in ``flush``
(one Task per batch), so its latency is awaited on the clock like every other round trip.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engines.actor.actors import Actor
from engines.actor.desk import Outgoing
from engines.actor.flow import FlowActor
from engines.actor.messages import DurableMessage, RunEnded, Shutdown, StartFlow, StartTask, StopFlow
from engines.actor.persist import decode_run, detached_key
from engines.core.statuses import WorkflowStatus
from engines.store.errors import StaleGenerationError, StoreError
from engines.store.protocol import Fence
from engines.store.records import WorkflowInstance

if TYPE_CHECKING:
    from engines.actor.node import Node

__all__ = ["GroupActor", "group_of"]

LIVE_STATUSES = tuple(s.value for s in WorkflowStatus if not s.is_terminal)


def group_of(workflow_id: str, instance: int, run_id: str, groups: int) -> int:
    """``hash(workflow, instance, run) mod G`` with crc32: stable across processes and Python runs."""
    return zlib.crc32(f"{workflow_id}\x1f{instance}\x1f{run_id}".encode()) % groups


class GroupActor(Actor):
    """``generation`` is the lease generation every write of this group is fenced with."""

    __slots__ = ("ended_rows", "flows", "generation", "group_id", "ops", "out")

    def __init__(self, node: Node, group_id: int, generation: int) -> None:
        super().__init__(node)
        self.group_id = group_id
        self.generation = generation
        self.flows: dict[str, FlowActor] = {}
        self.ops: list[Callable[[], None]] = []
        self.out: list[Outgoing] = []
        self.ended_rows: list[WorkflowInstance] = []

    @property
    def fence(self) -> Fence:
        return (self.group_id, self.generation)

    def receive(self, message: Any) -> None:
        match message:
            case (int() | None) as message_id, StartFlow(run_key=key) as start:
                flow = self.flows.get(key)
                if flow is not None:
                    flow.tell(start)
                    self._ack(message_id)
                else:
                    self._load(key, message_id, start)
            case (int() | None) as message_id, StopFlow(run_key=key) as stop:
                flow = self.flows.get(key)
                if flow is not None:
                    flow.tell(stop)
                    self._ack(message_id)
                else:
                    self._load(key, message_id, stop)
            case (int() | None) as message_id, StartTask(run_key=key) as start_task:
                flow = self.flows.get(key)
                if flow is not None:
                    flow.start_task(start_task, message_id)
                else:  # the run is not (or no longer) here: a finished run's late duplicate
                    self._ack(message_id)
            case (int() | None) as message_id, RunEnded(run_key=key):
                self.ops.append(lambda: self._run_ended(key, message_id))
                self.barrier = True
            case ("kick",):
                pass
            case Shutdown():
                for flow in self.flows.values():
                    flow.shutdown()
                self.flows.clear()
                self.stop()
            case _:
                raise TypeError(f"group actor {self.group_id} got an unknown message {message!r}")

    def _ack(self, message_id: int | None) -> None:
        if message_id is not None:
            self.node.ack(message_id)

    # ---- store work (runs in flush) ---------------------------------------------------------

    def _load(self, run_key: str, message_id: int | None, then: DurableMessage) -> None:
        def op() -> None:
            row = self.node.store.get_run(run_key)
            live = row is not None and (
                not WorkflowStatus(row.status).is_terminal or self._detached_live(run_key)
            )
            if row is not None and live and row.group_id == self.group_id and run_key not in self.flows:
                flow = self.adopt(row)
                if flow is not None:
                    flow.tell(then)
            self._ack(message_id)

        self.ops.append(op)
        self.barrier = True

    def _run_ended(self, run_key: str, message_id: int | None) -> None:
        node = self.node
        workflow_id = run_key.rsplit("|", 1)[0]
        entry = node.catalog.get(workflow_id)
        if entry is not None:
            strategy = entry.ct.root.definition.run_strategy
            out, ended = node.desk.run_ended(workflow_id, strategy, node.clock.now(), self.fence)
            self.out.extend(out)
            self.ended_rows.extend(ended)
        self._ack(message_id)

    def resume_all(self) -> None:
        """A takeover: adopt every unfinished run of the group from the store."""

        def op() -> None:
            for row in self.node.store.runs(group_id=self.group_id, statuses=LIVE_STATUSES):
                self.adopt_live_row(row)

        self.ops.append(op)
        self.barrier = True

    def _detached_live(self, run_key: str) -> bool:
        marker = self.node.store.get_run(detached_key(run_key))
        return marker is not None and not WorkflowStatus(marker.status).is_terminal

    def adopt_live_row(self, row: WorkflowInstance) -> FlowActor | None:
        """Adopt the flow a live row stands for, unless held already: a root run, or the ended run
        behind a live detached-work marker (async children that outlive their parent's run)."""
        if row.parent_key is None:
            return None if row.run_key in self.flows else self.adopt(row)
        if row.run_key != detached_key(row.parent_key) or row.parent_key in self.flows:
            return None
        parent = self.node.store.get_run(row.parent_key)
        return None if parent is None else self.adopt(parent)

    def reload(self, run_key: str, reason: Exception) -> None:
        """A flow's write lost an optimistic race: drop its memory, re-adopt the run from the store."""
        flow = self.flows.pop(run_key, None)
        if flow is not None:
            flow.shutdown()
        self._load(run_key, None, StartFlow(run_key))
        self.node.loop.call_soon(self._kick)

    def _kick(self) -> None:
        self.tell(("kick",))

    def adopt(self, row: WorkflowInstance) -> FlowActor | None:
        """Build a flow from its committed rows (two reads) and resume it."""
        entry = self.node.catalog.get(row.workflow_id)
        if entry is None:
            self.node.counters["unknown_workflows"] += 1
            return None
        loaded = self.node.store.load_run(row.run_key)
        if loaded is None:
            return None
        row = loaded.run
        state, codec = decode_run(row.state, loaded.steps)
        run = entry.runs[state.run_index - 1]
        flow = FlowActor(self, entry.ct, run, row, state, codec)
        if state.status.is_terminal:  # ended: async children may still run behind a marker row
            flow.detached = self.node.store.get_run(detached_key(row.run_key))
        self.flows[row.run_key] = flow
        self.node.counters["flows_adopted"] += 1
        if WorkflowStatus(row.status) is not WorkflowStatus.CREATED:
            flow.resume_now()
        return flow

    def flow_done(self, flow: FlowActor) -> None:
        if self.flows.get(flow.run_key) is flow:
            del self.flows[flow.run_key]
        flow.shutdown()

    def wants_flush(self) -> bool:
        return bool(self.ops)

    async def flush(self) -> None:
        node = self.node
        while self.ops and not self.stopped:
            ops, self.ops = self.ops, []
            before = node.store.counters["round_trips"]
            try:
                for op in ops:
                    op()
            except StaleGenerationError as exc:
                node.fenced(self.group_id, exc)
                return
            except StoreError:
                node.counters["store_errors"] += 1
                self.ops = ops + self.ops  # ops are idempotent: redo them all
                await node.clock.sleep(node.config.error_retry)
                continue
            finally:
                node.counters["hot_round_trips"] += node.store.counters["round_trips"] - before
            await node.store.settle(node.clock)
            if self.stopped:
                return
            out, self.out = self.out, []
            ended, self.ended_rows = self.ended_rows, []
            for row in ended:
                node.run_ended(row)
            for group_id, message_id, message in out:
                node.deliver(group_id, message_id, message)
        node.cluster.poke()
