"""Run strategies across the runs of one workflow, computed from the store (not from any node's memory).

Runs of one workflow hash to different groups, owned by different nodes, so no flow actor can own
the strategy. The desk is a function of the store: on a trigger and on a run's end it reads the
workflow's runs (one read; not on the step hot path), asks :mod:`engines.core.strategy` for a plan,
and writes the plan in the same transaction: a queued run it admits is marked IN_PROGRESS and gets a
StartFlow outbox row; a run it stops while queued is written STOPPED; a running run it displaces
gets a StopFlow row. A run is ``started`` for the strategy once admitted, so two desks planning one
after the other never admit the same slot twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from corpora.model import RunStrategy
from engines.actor.messages import DurableMessage, StartFlow, StopFlow
from engines.actor.persist import decode_run, encode_new_run
from engines.core.flow import stop_queued_run
from engines.core.statuses import WorkflowStatus
from engines.core.strategy import RunSlot, StrategyPlan, on_insert, on_run_end
from engines.store.protocol import Fence, Store
from engines.store.records import WorkflowInstance

__all__ = ["Outgoing", "RunDesk"]

Outgoing = tuple[int, int, DurableMessage]
"""``(group_id, message_id, message)`` written by the desk, to hand over after the commit."""

W = WorkflowStatus


class RunDesk:
    """Plans and writes run-strategy decisions. ``add_outbox(group, message, now)`` writes one row
    and returns its id; ``on_terminal(row)`` hears of runs the desk itself ended (stopped queued)."""

    def __init__(
        self, store: Store, add_outbox: Callable[[int, DurableMessage, float], int],
        on_terminal: Callable[[WorkflowInstance], None],
    ) -> None:  # fmt: skip
        self.store = store
        self.add_outbox = add_outbox
        self.on_terminal = on_terminal
        self.admitted: set[str] = set()
        """Run keys the desk admitted (marked IN_PROGRESS, committed): every run that can act."""

    def rows(self, workflow_id: str) -> list[WorkflowInstance]:
        return [r for r in self.store.runs() if r.workflow_id == workflow_id and r.parent_key is None]

    @staticmethod
    def slots(rows: Sequence[WorkflowInstance]) -> list[RunSlot]:
        """CoreOracle's view: live runs in trigger order, plus the first FAILED run in front."""
        out: list[RunSlot] = []
        first_failed: RunSlot | None = None
        for r in rows:
            status = W(r.status)
            if not status.is_terminal:
                out.append(RunSlot(r.run_id, status, status is not W.CREATED))
            elif status is W.FAILED and first_failed is None:
                first_failed = RunSlot(r.run_id, W.FAILED, True)
        if first_failed is not None:
            out.insert(0, first_failed)
        return out

    def trigger(
        self, row: WorkflowInstance, strategy: RunStrategy, now: float
    ) -> tuple[list[Outgoing], list[WorkflowInstance]]:
        """Insert a triggered run (CREATED) and apply the strategy's insert plan, atomically."""
        ended: list[WorkflowInstance] = []
        with self.store.transaction():
            self.store.create_run(row)
            rows = self.rows(row.workflow_id)
            plan = on_insert(strategy, self.slots(rows), row.run_id)
            out = self._apply(plan, rows, strategy, now, None, ended)
        self._admitted(out)
        return out, ended

    def run_ended(
        self, workflow_id: str, strategy: RunStrategy, now: float, fence: Fence | None
    ) -> tuple[list[Outgoing], list[WorkflowInstance]]:
        """A run of ``workflow_id`` ended: dequeue what the strategy allows, atomically."""
        ended: list[WorkflowInstance] = []
        with self.store.transaction():
            rows = self.rows(workflow_id)
            plan = on_run_end(strategy, self.slots(rows))
            out = self._apply(plan, rows, strategy, now, fence, ended)
        self._admitted(out)
        return out, ended

    def _admitted(self, out: list[Outgoing]) -> None:
        self.admitted.update(m.run_key for _, _, m in out if isinstance(m, StartFlow))

    def _apply(
        self, plan: StrategyPlan, rows: list[WorkflowInstance], strategy: RunStrategy, now: float,
        fence: Fence | None, ended: list[WorkflowInstance],
    ) -> list[Outgoing]:  # fmt: skip
        by_id = {r.run_id: i for i, r in enumerate(rows)}
        out: list[Outgoing] = []
        for run_id in plan.stop_queued:
            i = by_id[run_id]
            r = rows[i]
            state = stop_queued_run(decode_run(r.state)[0], now)
            rows[i] = self.store.save_run(
                replace(r, status=state.status.value, state=encode_new_run(state), updated_at=now),
                fence=fence,
            )
            ended.append(rows[i])
        for run_id in plan.stop_running:
            r = rows[by_id[run_id]]
            out.append((_group(r), self.add_outbox(_group(r), StopFlow(r.run_key), now), StopFlow(r.run_key)))
        for run_id in plan.start:
            i = by_id[run_id]
            r = rows[i]
            rows[i] = self.store.save_run(replace(r, status=W.IN_PROGRESS.value, updated_at=now), fence=fence)
            out.append(
                (_group(r), self.add_outbox(_group(r), StartFlow(r.run_key), now), StartFlow(r.run_key))
            )
        if plan.stop_queued:
            again = on_run_end(strategy, self.slots(rows))
            out.extend(self._apply(again, rows, strategy, now, fence, ended))
        return out


def _group(row: WorkflowInstance) -> int:
    assert row.group_id is not None
    return row.group_id
