"""Foreach and subworkflow steps (§5): child runs as scopes of the same run state.

A RUNNING foreach launches iterations ``fan[i]/`` in ascending order within its concurrency limit,
stops launching after a FAILED iteration, and ends once every launched iteration is terminal. A
RUNNING subworkflow starts one child ``call/`` and mirrors its status. Child params never depend on
the engine's clock: system params derive from the run's trigger time, as for the root.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from corpora.model import FailureMode, StepType
from engines.core.definition import CompiledStep, CompiledTrace
from engines.core.durations import DEFAULT_TIMEOUT_SECONDS, resolve_timeout_seconds
from engines.core.effects import Effect, LaunchChildRuns, Wake
from engines.core.errors import ParamError
from engines.core.expr import Value
from engines.core.params import system_workflow_params, workflow_params
from engines.core.state import Attempt, RunState, Scope, evolve, scope_of
from engines.core.statuses import StepStatus, WorkflowStatus

__all__ = [
    "DEFAULT_STEP_CONCURRENCY",
    "LOOP_BATCH_LIMIT",
    "MAX_ITERATIONS",
    "can_launch_more",
    "child_prefixes",
    "iteration_values",
    "new_scope",
    "run_child_step",
    "stop_children",
]

DEFAULT_STEP_CONCURRENCY = 20
LOOP_BATCH_LIMIT = 50
MAX_ITERATIONS = 25_000
S = StepStatus
W = WorkflowStatus


def new_scope(
    run: RunState, *, prefix: str, workflow: str, params: Mapping[str, Value], instance_id: int,
    parent_step: str | None, now: float, waiting: tuple[str, ...], timeout_s: float = DEFAULT_TIMEOUT_SECONDS,
) -> RunState:  # fmt: skip
    """Add a child workflow instance (IN_PROGRESS from ``now``; ``waiting``: its step order) to the run."""
    scope = Scope(
        prefix,
        workflow,
        dict(params),
        instance_id,
        parent_step,
        W.IN_PROGRESS,
        now,
        timeout_s,
        waiting=waiting,
    )
    return run.with_scope(scope)


def child_prefixes(cs: CompiledStep, att: Attempt) -> list[str]:
    """The scope prefixes of the children this step attempt launched so far."""
    if cs.type is StepType.FOREACH:
        return [f"{att.path}[{i}]/" for i in range(att.children)]
    return [f"{att.path}/"] if att.children else []


def iteration_values(loop_params: Mapping[str, Value], index: int) -> dict[str, Value]:
    """The loop variables of iteration ``index``: mixed radix, the first loop param varying fastest."""
    out: dict[str, Value] = {}
    idx = index
    for name, arr in loop_params.items():
        assert isinstance(arr, list)
        out[name] = arr[idx % len(arr)]
        idx //= len(arr)
    return out


def stop_children(run: RunState, path: str, kind: str, now: float) -> tuple[RunState, bool, tuple[str, ...]]:
    """Ask every non-terminal child scope of the step at ``path`` to stop (``kind``: STOP or
    TIME_OUT). Returns the new state, whether some child is still not terminal, and the paths of the
    children's live steps to wake (Maestro wakes the tasks when it writes the actions)."""
    att = run.latest(path)
    assert att is not None
    waiting = False
    wake: list[str] = []
    prefixes = [p for p, s in run.scopes.items() if s.parent_step == path] if att.children else []
    for prefix in prefixes:
        scope = run.scopes[prefix]
        if scope.status.is_terminal:
            continue
        waiting = True
        if scope.stopping is None:
            run = run.with_scope(evolve(scope, {"stopping": kind}))
            wake.extend(
                p
                for p, atts in run.attempts.items()
                if p.startswith(prefix) and not atts[-1].status.is_terminal
            )
    return run, waiting, tuple(wake)


def can_launch_more(ct: CompiledTrace, run: RunState, path: str) -> bool:
    """True when a RUNNING foreach at ``path`` would launch iterations at its next poll: some are
    left and slots are free (the 50-per-call batch limit held them back). Otherwise only an
    iteration ending (which wakes the step) can change anything, so a poll is a no-op."""
    att = run.latest(path)
    if att is None or att.child_total is None or att.children >= att.child_total:
        return False
    scope = run.scopes[scope_of(path)[0]]
    cs = ct.workflows[scope.workflow].steps[att.step_id]
    if cs.step.foreach is None:
        return False
    failed, open_ids = _launched_iterations(run, path, att.children)
    if failed:
        return False
    if cs.step.foreach.strict_ordering:
        running = (att.children - open_ids[0]) if open_ids else 0
    else:
        running = len(open_ids)
    return running < _limit(ct, scope, cs)


def _limit(ct: CompiledTrace, scope: Scope, cs: CompiledStep) -> int:
    assert cs.step.foreach is not None
    wf_limit = ct.workflows[scope.workflow].definition.step_concurrency or DEFAULT_STEP_CONCURRENCY
    own = cs.step.foreach.concurrency
    return min(own, wf_limit) if own is not None else wf_limit


def run_child_step(
    ct: CompiledTrace, run: RunState, scope: Scope, cs: CompiledStep, att: Attempt, now: float
) -> tuple[RunState, Attempt, list[Effect]]:
    """One RUNNING call of a foreach or subworkflow step."""
    if att.terminating is not None:
        run, waiting, wake = stop_children(run, att.path, "STOP", now)
        if not waiting:
            att = att.with_status(StepStatus(att.terminating), now)
        return run, att, [Wake(wake)] if wake else []
    if cs.type is StepType.FOREACH:
        return _foreach(ct, run, scope, cs, att, now)
    return _subworkflow(ct, run, scope, cs, att, now)


def _foreach(
    ct: CompiledTrace, run: RunState, scope: Scope, cs: CompiledStep, att: Attempt, now: float
) -> tuple[RunState, Attempt, list[Effect]]:
    assert cs.step.foreach is not None
    assert cs.body is not None
    params = att.params or {}
    loops = params.get("loop_params")
    assert isinstance(loops, dict)
    if att.child_total is None:
        count = math.prod(len(v) for v in loops.values() if isinstance(v, list))
        if count > MAX_ITERATIONS:
            return (
                run,
                att.with_status(S.FATALLY_FAILED, now, note=f"{count} iterations exceed {MAX_ITERATIONS}"),
                [],
            )
        att = evolve(att, {"child_total": count})
    total: int = att.child_total if att.child_total is not None else 0
    failed, open_ids = _launched_iterations(run, att.path, att.children)
    if failed and open_ids and cs.failure_mode is FailureMode.FAIL_IMMEDIATELY:
        run, _, wake = stop_children(run, att.path, "STOP", now)
        return run, att, [Wake(wake)] if wake else []
    effects: list[Effect] = []
    if not failed and att.children < total:
        if cs.step.foreach.strict_ordering:
            running = (att.children - 1 - open_ids[0] + 1) if open_ids else 0
        else:
            running = len(open_ids)
        n = min(max(0, _limit(ct, scope, cs) - running), LOOP_BATCH_LIMIT, total - att.children)
        if n > 0:
            base = {k: v for k, v in params.items() if k != "loop_params"}
            inherited = dict(scope.params)
            inherited.update(base)
            prefixes = []
            for i in range(att.children, att.children + n):
                child_params = dict(inherited)
                child_params["loop_index"] = i
                child_params.update(iteration_values(loops, i))
                prefix = f"{att.path}[{i}]/"
                run = new_scope(run, prefix=prefix, workflow=cs.body, params=child_params, instance_id=i + 1,
                                parent_step=att.path, now=now, waiting=ct.workflows[cs.body].order)  # fmt: skip
                prefixes.append(prefix)
            att = evolve(att, {"children": att.children + n})
            effects.append(LaunchChildRuns(att.path, tuple(prefixes)))
            open_ids.extend(range(att.children - n, att.children))
    if open_ids or (att.children < total and not failed):
        return run, att, effects
    statuses = [run.scopes[f"{att.path}[{i}]/"].status for i in range(att.children)]  # once, at the end
    return run, _derive(att, statuses, now), effects


def _launched_iterations(run: RunState, path: str, launched: int) -> tuple[bool, list[int]]:
    """(whether an iteration among the first ``launched`` of the foreach at ``path`` is FAILED, the
    indices of those still open, ascending), read from the parent scope's ``failed_children`` and
    the run's ``open_scopes`` -- O(open scopes), not O(iterations), at every wake of a wide foreach.
    Equal to reading ``run.scopes[f"{path}[{i}]/"].status`` for every ``i < launched``."""
    base = path + "["
    cut = len(base)

    def index(prefix: str) -> int:
        """i when ``prefix`` is exactly ``{path}[i]/``, else -1 (a nested or another step's scope)."""
        if prefix.startswith(base) and prefix.endswith("]/") and prefix[cut:-2].isdigit():
            return int(prefix[cut:-2])
        return -1

    parent = run.scopes[path[: path.rfind("/") + 1]]
    failed = any(0 <= index(k) < launched for k in parent.failed_children)
    open_ids = sorted(i for i in map(index, run.open_scopes) if 0 <= i < launched)
    return failed, open_ids


def _derive(att: Attempt, statuses: list[WorkflowStatus], now: float) -> Attempt:
    """Status once all iterations are done: FAILED > TIMED_OUT > STOPPED > SUCCEEDED."""
    if W.FAILED in statuses:
        return att.with_status(S.FATALLY_FAILED, now, note="an iteration failed")
    if W.TIMED_OUT in statuses:
        return att.with_status(S.TIMED_OUT, now)
    if W.STOPPED in statuses:
        return att.with_status(S.STOPPED, now)
    return att.with_status(S.SUCCEEDED, now)


def _subworkflow(
    ct: CompiledTrace, run: RunState, scope: Scope, cs: CompiledStep, att: Attempt, now: float
) -> tuple[RunState, Attempt, list[Effect]]:
    assert cs.step.subworkflow is not None
    assert cs.body is not None
    prefix = f"{att.path}/"
    if att.children == 0:
        child_wf = ct.workflows[cs.body]
        passed: dict[str, Value] = {}
        if not cs.step.subworkflow.explicit_params:
            system = system_workflow_params(
                ct.workflows[scope.workflow].definition, run.triggered_at, ct.trace.metadata.owner
            )
            passed.update({k: v for k, v in scope.params.items() if k not in system})
        passed.update(
            {
                k: v
                for k, v in (att.params or {}).items()
                if k not in ("subworkflow_id", "subworkflow_version")
            }
        )
        try:
            params = workflow_params(child_wf.definition, trigger_time=run.triggered_at, owner=ct.trace.metadata.owner,
                                     run_params=passed, expressions=child_wf.param_expressions)  # fmt: skip
            timeout = resolve_timeout_seconds(child_wf.definition.timeout, params)
        except ParamError as exc:
            return (
                run,
                att.with_status(S.FATALLY_FAILED, now, note=f"cannot start the subworkflow: {exc}"),
                [],
            )
        run = new_scope(run, prefix=prefix, workflow=cs.body, params=params, instance_id=1, parent_step=att.path,
                        now=now, timeout_s=timeout, waiting=child_wf.order)  # fmt: skip
        att = evolve(att, {"children": 1})
        effects: list[Effect] = [LaunchChildRuns(att.path, (prefix,))]
        if not cs.step.subworkflow.sync:
            return run, att.with_status(S.SUCCEEDED, now), effects
        return run, att, effects
    child = run.scopes[prefix].status
    if not child.is_terminal:
        return run, att, []
    mapped = {
        W.SUCCEEDED: S.SUCCEEDED,
        W.FAILED: S.FATALLY_FAILED,
        W.STOPPED: S.STOPPED,
        W.TIMED_OUT: S.TIMED_OUT,
    }
    return run, att.with_status(mapped[child], now), []
