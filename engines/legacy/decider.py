"""The legacy decider: Conductor's ``decide`` pass per workflow, and run strategies across runs.

After a cycle that changed something, the worker runs one decider pass on the run it just advanced
(as Conductor's ``updateTask`` ran ``decide``): :func:`decide_pass` calls the core's ``decide`` and
turns its answer into queue entries: a task for every new attempt (visible now, so the next poll
picks it up), a wake-up for every path the core wants executed, and the run's decider task at the
next due time (a retry backoff or a workflow timeout), so a retry becomes visible exactly when its
backoff expires. Foreach iterations and subworkflow runs are child workflow instances in the store
(see :mod:`engines.legacy.rows`); the core's ``decide`` creates their steps like any other.

:class:`RunDesk` is the part of Maestro's API and ``StartWorkflowJobEvent`` handler the engine
needs: inserting a triggered run and applying the workflow's run strategy (start, queue, stop) when
a run is inserted or ends. It works inside the caller's store transaction, so the strategy reads
the runs and writes its decisions atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from corpora.model import Run, Trace
from engines.core.definition import CompiledTrace
from engines.core.flow import decide, new_run, start_run, stop_queued_run, stop_run
from engines.core.state import RunState
from engines.core.statuses import WorkflowStatus
from engines.core.strategy import RunSlot, StrategyPlan, on_insert, on_run_end
from engines.legacy.rows import RowCodec, root_key
from engines.store import DECIDER_PATH, Store

__all__ = ["DecideOutcome", "RunDesk", "WorkflowEntry", "decide_pass"]

QueueEntry = tuple[str, float]
"""``(path, visible_at)`` of a queue task of one run (``DECIDER_PATH`` for the decider)."""


@dataclass(frozen=True, slots=True)
class WorkflowEntry:
    """A workflow the deployment knows: its compiled definition and the runs it was triggered with."""

    trace: Trace
    ct: CompiledTrace
    runs: Mapping[str, Run]
    run_index: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class DecideOutcome:
    state: RunState
    tasks: tuple[QueueEntry, ...]
    ended: bool  # the run reached a terminal status in this pass


def decide_pass(ct: CompiledTrace, state: RunState, now: float) -> DecideOutcome:
    """One core ``decide`` over the run, as queue entries."""
    was_terminal = state.status.is_terminal
    d = decide(ct, state, now)
    tasks: list[QueueEntry] = [(p, now) for p in d.ready]
    tasks.extend((p, now) for p in d.wake)
    if d.next_due is not None:
        tasks.append((DECIDER_PATH, d.next_due))
    return DecideOutcome(d.run, tuple(tasks), not was_terminal and d.run.status.is_terminal)


class RunDesk:
    """Run insertion and run strategies, inside the caller's ``store.transaction()``.

    Single-threaded (the loop's thread); stateless apart from its collaborators."""

    def __init__(self, store: Store, codec: RowCodec, workflows: Mapping[str, WorkflowEntry]) -> None:
        self._store = store
        self._codec = codec
        self._workflows = workflows
        self.enqueued = 0

    def insert(self, workflow_id: str, run_id: str, now: float) -> None:
        """A run was triggered: insert it CREATED and let the run strategy start, queue or stop it."""
        wf = self._workflows[workflow_id]
        index = wf.run_index[run_id]
        state = new_run(wf.ct, wf.runs[run_id], index)
        key = root_key(workflow_id, index)
        run = wf.runs[run_id]
        book = {"dequeued": False, "run_params": dict(run.params), "initiator": run.initiator}
        self._store.create_run(self._codec.new_root(key, workflow_id, state, book, now))
        plan = on_insert(wf.ct.root.definition.run_strategy, self._slots(workflow_id), run_id)
        self._apply(workflow_id, plan, now)

    def run_ended(self, workflow_id: str, now: float) -> None:
        """A run of the workflow reached a terminal status: dequeue what the strategy allows."""
        wf = self._workflows[workflow_id]
        self._apply(
            workflow_id, on_run_end(wf.ct.root.definition.run_strategy, self._slots(workflow_id)), now
        )

    def _slots(self, workflow_id: str) -> list[RunSlot]:
        slots = []
        for row in self._store.runs():
            if row.parent_key is None and row.workflow_id == workflow_id:
                dequeued = bool(json.loads(row.state)["book"].get("dequeued", False))
                slots.append(RunSlot(row.run_id, WorkflowStatus(row.status), dequeued))
        return slots

    def _apply(self, workflow_id: str, plan: StrategyPlan, now: float) -> None:
        wf = self._workflows[workflow_id]
        store, codec = self._store, self._codec
        ended_again = False
        for run_id in plan.stop_queued:
            loaded = codec.load(store, root_key(workflow_id, wf.run_index[run_id]))
            assert loaded is not None
            writes = codec.writes(loaded, stop_queued_run(loaded.state, now), now)
            if writes is not None:
                writes.apply(store)
        for run_id in plan.stop_running:
            key = root_key(workflow_id, wf.run_index[run_id])
            loaded = codec.load(store, key)
            assert loaded is not None
            state, wake = stop_run(loaded.state)
            out = decide_pass(wf.ct, state, now)
            writes = codec.writes(loaded, out.state, now)
            if writes is not None:
                writes.apply(store)
            for path in wake:
                self._enqueue(key, path, now)
            for path, at in out.tasks:
                self._enqueue(key, path, at)
            ended_again = ended_again or out.ended
        for run_id in plan.start:
            key = root_key(workflow_id, wf.run_index[run_id])
            loaded = codec.load(store, key)
            assert loaded is not None
            if loaded.book.get("dequeued"):
                continue
            state = start_run(wf.ct, loaded.state, wf.runs[run_id], now)
            out = decide_pass(wf.ct, state, now)
            writes = codec.writes(loaded, out.state, now, {**loaded.book, "dequeued": True})
            assert writes is not None
            writes.apply(store)
            for path, at in out.tasks:
                self._enqueue(key, path, at)
            ended_again = ended_again or out.ended or out.state.status.is_terminal
        if plan.stop_queued or ended_again:
            self.run_ended(workflow_id, now)

    def _enqueue(self, run_key: str, path: str, at: float) -> None:
        self._store.enqueue(run_key, path, at)
        self.enqueued += 1
