"""Run strategies across the runs of one workflow (§6), as pure planning functions.

The engine keeps one :class:`RunSlot` per run it has inserted (in trigger order) and asks
:func:`on_insert` when a run is triggered and :func:`on_run_end` when a run reaches a terminal
status. The returned :class:`StrategyPlan` says which runs to start now, which queued runs end
STOPPED without starting, and which running runs to stop (LAST_ONLY).

Choices (docs/SEMANTICS-CHOICES.md): a run blocked by STRICT_SEQUENTIAL never starts; it ends the
replay as CREATED with ``stuck=False`` (it is a correct outcome, not an engine hang).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from corpora.model import RunStrategy, RunStrategyRule
from engines.core.statuses import WorkflowStatus

__all__ = ["RunSlot", "StrategyPlan", "concurrency_of", "on_insert", "on_run_end"]

R = RunStrategyRule
W = WorkflowStatus


@dataclass(frozen=True, slots=True)
class RunSlot:
    """What the strategy needs to know of one inserted run: ``started`` once it was dequeued."""

    run_id: str
    status: WorkflowStatus
    started: bool


@dataclass(frozen=True, slots=True)
class StrategyPlan:
    start: tuple[str, ...] = ()
    stop_queued: tuple[str, ...] = ()
    stop_running: tuple[str, ...] = ()


def concurrency_of(strategy: RunStrategy) -> int:
    """``workflow_concurrency``: default 20 for PARALLEL, 1 otherwise; only PARALLEL may exceed 1."""
    if strategy.rule is R.PARALLEL:
        return 20 if strategy.workflow_concurrency is None else max(0, strategy.workflow_concurrency)
    if strategy.workflow_concurrency == 0:
        return 0
    return 1


def _queued(slots: Sequence[RunSlot]) -> list[str]:
    return [s.run_id for s in slots if not s.started and s.status is W.CREATED]


def _running(slots: Sequence[RunSlot]) -> int:
    return sum(1 for s in slots if s.started and not s.status.is_terminal)


def _dequeue(strategy: RunStrategy, slots: Sequence[RunSlot]) -> StrategyPlan:
    if strategy.rule is R.STRICT_SEQUENTIAL and any(s.status is W.FAILED for s in slots):
        return StrategyPlan()
    free = concurrency_of(strategy) - _running(slots)
    return StrategyPlan(start=tuple(_queued(slots)[: max(0, free)]))


def on_insert(strategy: RunStrategy, slots: Sequence[RunSlot], new_run: str) -> StrategyPlan:
    """A run was triggered; ``slots`` already include it (CREATED, not started)."""
    rule = strategy.rule
    if rule is R.FIRST_ONLY:
        busy = any(s.run_id != new_run and not s.status.is_terminal for s in slots)
        if busy:
            return StrategyPlan(stop_queued=(new_run,))
        return StrategyPlan(start=(new_run,))
    if rule is R.LAST_ONLY:
        earlier_queued = tuple(r for r in _queued(slots) if r != new_run)
        running = tuple(s.run_id for s in slots if s.started and not s.status.is_terminal)
        if running:
            return StrategyPlan(stop_queued=earlier_queued, stop_running=running)
        return StrategyPlan(start=(new_run,), stop_queued=earlier_queued)
    return _dequeue(strategy, slots)


def on_run_end(strategy: RunStrategy, slots: Sequence[RunSlot]) -> StrategyPlan:
    """A run reached a terminal status (``slots`` show it): dequeue what the strategy allows."""
    if strategy.rule is R.FIRST_ONLY:
        return StrategyPlan()
    if strategy.rule is R.LAST_ONLY:
        if _running(slots):
            return StrategyPlan()
        queued = _queued(slots)
        return StrategyPlan(start=tuple(queued[-1:]), stop_queued=tuple(queued[:-1]))
    return _dequeue(strategy, slots)
