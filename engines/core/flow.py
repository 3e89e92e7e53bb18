"""The flow: creating runs, deciding which step attempts exist and when, rolling workflows up.

:func:`decide` is the flow engine's ``decide`` for every workflow instance (scope) of a run: it
creates first attempts of steps whose predecessors are ALL complete (the step machine then tests ANY
incoming condition), creates retry attempts once their backoff is due (at once when the scope is
being stopped or timed out, as Maestro's wake-up does), fires workflow timeouts (§2.7) and rolls
finished scopes up (§3.3), waking the foreach / subworkflow step that owns a finished child.
It returns the paths to ``execute`` now and the next virtual time it must be called again.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, replace

from corpora.model import Run
from engines.core.definition import CompiledTrace, CompiledWorkflow
from engines.core.durations import resolve_timeout_seconds
from engines.core.errors import ParamError
from engines.core.params import workflow_params
from engines.core.retry import DEFAULT_RETRY_POLICY, RetryCounters, resolve_retry_policy
from engines.core.rollup import scope_outcome
from engines.core.state import (
    Attempt,
    RunState,
    Scope,
    evolve,
    frozen_constructor,
    new_attempt,
    scope_counts,
    scope_of,
)  # fmt: skip
from engines.core.statuses import StepStatus, WorkflowStatus

__all__ = ["Decision", "decide", "new_run", "start_run", "stop_queued_run", "stop_run"]

S = StepStatus
W = WorkflowStatus


@dataclass(frozen=True, slots=True)
class Decision:
    """What :func:`decide` found: the new state; ``ready`` paths whose new attempt (CREATED) must be
    executed now; ``wake`` paths to execute now (stop reached them, a child run ended); ``next_due``
    the earliest future virtual time at which ``decide`` must run again (a retry, a timeout), if any."""

    run: RunState
    ready: tuple[str, ...]
    wake: tuple[str, ...]
    next_due: float | None

    @property
    def status(self) -> WorkflowStatus:
        return self.run.status


_decision = frozen_constructor(Decision)


def new_run(ct: CompiledTrace, run: Run, run_index: int) -> RunState:
    """A run as inserted by its trigger: CREATED (queued), no scopes yet. ``run_index`` is 1-based
    (it is the root ``workflow_instance_id``)."""
    return RunState(
        trace_id=ct.trace.trace_id, run_id=run.run_id, run_index=run_index, status=W.CREATED,
        triggered_at=run.trigger_time, scopes={}, attempts={},
    )  # fmt: skip


def start_run(ct: CompiledTrace, state: RunState, run: Run, now: float) -> RunState:
    """Start a queued run at ``now``: evaluate the workflow params (from the trigger time) and the
    workflow timeout; a bad param or timeout fails the run at once (Maestro rejects the start)."""
    wf = ct.root
    try:
        params = workflow_params(wf.definition, trigger_time=run.trigger_time, owner=ct.trace.metadata.owner,
                                 run_params=run.params, expressions=wf.param_expressions)  # fmt: skip
        timeout = resolve_timeout_seconds(wf.definition.timeout, params)
    except ParamError:
        return replace(state, status=W.FAILED, started_at=now, ended_at=now)
    root = Scope("", wf.key, params, state.run_index, None, W.IN_PROGRESS, now, timeout, waiting=wf.order)
    return replace(state, status=W.IN_PROGRESS, started_at=now, scopes={"": root}, open_scopes=("",))


def stop_queued_run(state: RunState, now: float) -> RunState:
    """A run that never starts (FIRST_ONLY insert, LAST_ONLY displaced): STOPPED at ``now``."""
    return replace(state, status=W.STOPPED, ended_at=now)


def stop_run(state: RunState) -> tuple[RunState, tuple[str, ...]]:
    """Ask a running run to stop (LAST_ONLY): every incomplete step of the root gets STOP. Returns
    the new state and the live step paths to execute now; the run ends STOPPED once they are
    terminal (keep calling :func:`decide` as usual)."""
    root = state.scopes.get("")
    if root is None or root.status.is_terminal or root.stopping is not None:
        return state, ()
    wake = tuple(p for p in state.live if "/" not in p)
    return state.with_scope(replace(root, stopping="STOP")), wake


def _first_attempt(
    ct: CompiledTrace, run: RunState, scope: Scope, sid: str, path: str, now: float
) -> Attempt:
    """The first attempt, created now. ``ready_at`` is when the DAG released the step -- the end of its
    last predecessor, or the start of its workflow instance for a root step -- not when this engine
    noticed, so an engine's ready -> started latency includes its own detection delay."""
    cs = ct.workflows[scope.workflow].steps[sid]
    policy = (
        resolve_retry_policy(cs.step.retry_policy, scope.params) if cs.type.is_leaf else DEFAULT_RETRY_POLICY
    )
    ready = scope.started_at
    for pred in cs.predecessors:
        p = run.latest(scope.prefix + pred)
        if p is not None and p.ended_at is not None and p.ended_at > ready:
            ready = p.ended_at
    return new_attempt(path, sid, 1, S.CREATED, now, min(ready, now), policy, _NO_RETRIES)


_NO_RETRIES = RetryCounters()  # immutable: every first attempt can share it


def _retry_attempt(last: Attempt, now: float, ready_at: float) -> Attempt:
    return new_attempt(
        last.path, last.step_id, last.attempt + 1, S.CREATED, now, ready_at, last.policy,
        last.counters.after(last.status),
    )  # fmt: skip


_FRONTIERS: dict[int, tuple[tuple[str, ...], CompiledWorkflow, tuple[str, ...]]] = {}
"""``id(waiting)`` -> (waiting, workflow, frontier): the waiting steps none of whose predecessors is
waiting, in ``waiting`` order. Keyed by identity (the tuple is held, so the id stays valid); a scope
keeps its ``waiting`` tuple until a step of it is created, so a scan costs O(frontier), not
O(waiting) -- the full scan made a wide DAG quadratic. Bounded: cleared when it grows large."""
_FRONTIERS_MAX = 4096


def _frontier(wf: CompiledWorkflow, waiting: tuple[str, ...]) -> tuple[str, ...]:
    hit = _FRONTIERS.get(id(waiting))
    if hit is not None and hit[0] is waiting and hit[1] is wf:
        return hit[2]
    steps = wf.steps
    wset = set(waiting)
    frontier = tuple([s for s in waiting if wset.isdisjoint(steps[s].predecessors)])
    _remember(wf, waiting, frontier)
    return frontier


def _remember(wf: CompiledWorkflow, waiting: tuple[str, ...], frontier: tuple[str, ...]) -> None:
    if len(_FRONTIERS) >= _FRONTIERS_MAX:
        _FRONTIERS.clear()
    _FRONTIERS[id(waiting)] = (waiting, wf, frontier)


def _after_created(
    wf: CompiledWorkflow, waiting: tuple[str, ...], frontier: tuple[str, ...], created: list[str]
) -> tuple[str, ...]:
    """``waiting`` without ``created`` (all on its frontier), with the new frontier remembered: the
    old frontier minus ``created``, plus successors of ``created`` whose predecessors all left."""
    gone = set(created)
    still = tuple([s for s in waiting if s not in gone])
    wset = set(still)
    steps = wf.steps
    front = set(frontier)
    front.difference_update(gone)
    for sid in created:
        for to, _ in steps[sid].successors:
            if to in wset and to not in front and wset.isdisjoint(steps[to].predecessors):
                front.add(to)
    if len(front) == len(still):
        frontier = still
    else:
        frontier = tuple(sorted(front, key=lambda s: steps[s].instance_id))  # ``order`` position
    _remember(wf, still, frontier)
    return still


_EARLIEST: dict[int, tuple[Mapping[str, float], float]] = {}


def _earliest_due(backoff: Mapping[str, float]) -> float:
    """``min(backoff.values())``, remembered per mapping object (held, so its id stays valid; the run
    state never mutates it): every decide between two backoff changes sees the same mapping."""
    hit = _EARLIEST.get(id(backoff))
    if hit is not None and hit[0] is backoff:
        return hit[1]
    earliest = min(backoff.values())
    if len(_EARLIEST) >= 64:
        _EARLIEST.clear()
    _EARLIEST[id(backoff)] = (backoff, earliest)
    return earliest


def _in_scope(path: str, prefix: str) -> bool:
    return scope_of(path)[0] == prefix


def decide(ct: CompiledTrace, run: RunState, now: float) -> Decision:
    """One flow ``decide`` over every open scope of ``run`` at virtual time ``now``.

    Cost is proportional to the open scopes, the steps not yet created and the steps in backoff,
    not to the size of the DAG (``RunState.live`` / ``backoff`` / ``Scope.waiting`` are its indexes)."""
    if run.status is W.CREATED or not run.open_scopes:
        return _decision(run, (), (), None)
    ready: list[str] = []
    wake: list[str] = []
    next_due: float | None = None
    for prefix in run.open_scopes:
        scope = run.scopes[prefix]
        if scope.stopping != "TIME_OUT":
            deadline = scope.started_at + scope.timeout_s
            if now >= deadline:
                run = run.with_scope(evolve(scope, {"stopping": "TIME_OUT"}))
                wake.extend(p for p in run.live if _in_scope(p, prefix))
            elif next_due is None or deadline < next_due:
                next_due = deadline
    if run.backoff:
        scopes = run.scopes
        if any(scopes[p].stopping is not None for p in run.open_scopes):
            due_now = [
                (path, due)
                for path, due in run.backoff.items()
                if due <= now or scopes[path[: path.rfind("/") + 1]].stopping is not None
            ]
        else:  # the common case: only the due time matters (a path in backoff is in an open scope)
            earliest = _earliest_due(run.backoff)
            if earliest > now:  # nothing due: no pass over the backoff (many decides see the same one)
                due_now = []
            else:
                due_now = [(path, due) for path, due in run.backoff.items() if due <= now]
        if len(due_now) < len(run.backoff):
            if due_now:
                gone = {path for path, _ in due_now}
                later = min(due for path, due in run.backoff.items() if path not in gone)
            else:
                later = _earliest_due(run.backoff)
            if next_due is None or later < next_due:
                next_due = later
        for path, due in due_now:
            last = run.attempts[path][-1]
            new = _retry_attempt(last, now, min(due, now))
            run = run.with_attempt(new)
            ready.append(path)
    for prefix in run.open_scopes:
        scope = run.scopes[prefix]
        # after a workflow timeout nothing new is created; readiness only changes when a step of this
        # scope completes (Scope.completed, kept by RunState.with_attempt)
        if scope.waiting and scope.stopping != "TIME_OUT" and scope.scanned != scope.completed:
            wf = ct.workflows[scope.workflow]
            steps = wf.steps
            waiting = scope.waiting
            # Only the frontier can be ready: a waiting step with a waiting predecessor has a
            # predecessor without attempts (attempts are only created from ``waiting``). Checking the
            # frontier alone, in ``waiting`` order, creates exactly what a full scan creates.
            frontier = _frontier(wf, waiting)
            created: list[str] = []
            for sid in frontier:
                attempts = run.attempts
                for pred in steps[sid].predecessors:
                    atts = attempts.get(prefix + pred)
                    if not atts:
                        break
                    p = atts[-1]
                    if not p.status.is_complete or p.conditions is None:
                        break
                else:
                    path = prefix + sid
                    new = _first_attempt(ct, run, scope, sid, path, now)
                    run = run.with_attempt(new)
                    ready.append(path)
                    created.append(sid)
            if created:
                waiting = _after_created(wf, waiting, frontier, created)
            scope = evolve(scope, {"waiting": waiting, "scanned": scope.completed})
            run = run.with_scope(scope)
    if len(run.open_scopes) == 1:  # the common case: only the root is open
        busy: Container[str] = {run.open_scopes[0]} if run.live or run.backoff else ()
    else:  # the scopes with a live step or a pending retry (counts kept along with live / backoff)
        live_in, backoff_in = scope_counts(run.live), scope_counts(run.backoff)
        busy = {p for p in run.open_scopes if p in live_in or p in backoff_in}
    for prefix in run.open_scopes:
        if prefix in busy:
            continue
        scope = run.scopes[prefix]
        outcome = scope_outcome(ct.workflows[scope.workflow], run, scope)
        if outcome is not None:
            run = run.with_scope(evolve(scope, {"status": outcome, "ended_at": now}))
            if scope.parent_step is not None:
                wake.append(scope.parent_step)
            elif prefix == "" and not run.status.is_terminal:
                run = replace(run, status=outcome, ended_at=now)
    return _decision(run, tuple(ready), tuple(wake), next_due)
