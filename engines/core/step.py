"""The step state machine: one :func:`execute` call is one Maestro ``MaestroTask.execute()`` (§2.2-§2.6).

A call first checks the step timeout (lazily, as Maestro does), else applies a pending stop of the
step's scope, then runs transitions until a stop point (table §2.3) and returns the new run state,
whether the status changed and the effects for the engine. An engine calls it again at once after a
status change, and after its own polling delay otherwise (both engines poll RUNNING every 3 s).

One deliberate difference from Maestro: STARTING emits :class:`StartRuntime` and stops at RUNNING
(Maestro continues into ``execute()`` in the same call). The runtime's result can only come back
as an input of the *next* call, which follows at once because the status changed; the outcome and
every virtual timestamp are the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from corpora.model import FailureMode, Outcome, StepType
from engines.core.children import run_child_step, stop_children
from engines.core.definition import CompiledStep, CompiledTrace, CompiledWorkflow
from engines.core.durations import resolve_timeout_seconds
from engines.core.effects import Effect, LaunchChildRuns, RuntimeReport, StartRuntime, TerminateRuntime, Wake
from engines.core.errors import ExpressionError, ParamError
from engines.core.expr import Value
from engines.core.resolve import condition_resolver, evaluate_step_params
from engines.core.retry import is_exhausted, retry_delay_seconds
from engines.core.state import Attempt, RunState, Scope, frozen_constructor, scope_of
from engines.core.statuses import StepStatus

__all__ = ["StepResult", "execute"]

S = StepStatus
_RUNTIME_STATUSES = frozenset({S.STARTING, S.RUNNING, S.FINISHING})
_TO_PARAMS = frozenset({S.INITIALIZED, S.PAUSED, S.WAITING_FOR_SIGNALS, S.EVALUATING_PARAMS})


@dataclass(frozen=True, slots=True)
class StepResult:
    """The outcome of one ``execute`` call: the new run state, whether the step's status changed in
    this call (then call again at once), the effects to carry out, and the step's status now."""

    run: RunState
    changed: bool
    effects: tuple[Effect, ...]
    status: StepStatus

    needs_decide: bool = False
    """True when :func:`engines.core.flow.decide` may now have something to do: the step reached a
    terminal status, a scope started stopping, children were launched, or paths must be woken."""


_step_result = frozen_constructor(StepResult)
_DECIDE_EFFECTS = frozenset({Wake, LaunchChildRuns})
_start_runtime = frozen_constructor(StartRuntime)
_new = object.__new__
_set_attr = object.__setattr__


class _Call:
    """Mutable scratch for one call; never escapes :func:`execute`."""

    __slots__ = ("att", "cs", "ct", "effects", "now", "path", "run", "scope", "wf")

    def __init__(self, ct: CompiledTrace, run: RunState, path: str, now: float, latest: Attempt) -> None:
        self.ct = ct
        self.run = run
        self.path = path
        self.now = now
        cut = path.rfind("/") + 1  # scope_of(path), inlined
        self.scope: Scope = run.scopes[path[:cut]]
        self.wf: CompiledWorkflow = ct.workflows[self.scope.workflow]
        self.cs: CompiledStep = self.wf.steps[path[cut:]]
        self.att: Attempt = latest
        self.effects: list[Effect] = []

    def set(self, status: StepStatus, **changes: object) -> None:
        """``self.att = self.att.with_status(status, self.now, **changes)``, inlined (every transition)."""
        att = self.att
        if status.is_terminal and att.ended_at is None and "ended_at" not in changes:
            changes["ended_at"] = self.now
        changes["status"] = status
        d = att.__dict__.copy()
        d.update(changes)
        new: Attempt = _new(Attempt)
        _set_attr(new, "__dict__", d)
        self.att = new


def execute(
    ct: CompiledTrace, run: RunState, path: str, now: float, runtime: RuntimeReport | None = None
) -> StepResult:
    """Run one ``execute()`` of the latest attempt of the step at ``path`` at virtual time ``now``.

    ``runtime`` reports the attempt's runtime (leaf steps in RUNNING); None means "still running"."""
    before = run.latest(path)
    if before is None:
        raise KeyError(f"step {path!r} has no attempt in run {run.run_id!r}; decide() creates attempts")
    c = _Call(ct, run, path, now, before)
    start_status = before.status
    if start_status in _RUNTIME_STATUSES and _timed_out(c):
        _handle_timeout(c)
    elif c.scope.stopping is not None and not start_status.is_terminal:
        _apply_stop(c)
    else:
        _loop(c, runtime)
    status = c.att.status
    changed = status is not start_status
    new_run = c.run.with_attempt(c.att) if c.att is not before else c.run
    effects = c.effects
    needs_decide = (
        (changed and status.is_terminal)
        or c.run.scopes is not run.scopes
        # effects are instances of the four frozen effect classes (none is subclassed)
        or (bool(effects) and any(type(e) in _DECIDE_EFFECTS for e in effects))
    )
    return _step_result(new_run, changed, tuple(effects), status, needs_decide)


def _timed_out(c: _Call) -> bool:
    a = c.att
    return a.started_at is not None and a.timeout_s is not None and c.now - a.started_at >= a.timeout_s


def _handle_timeout(c: _Call) -> None:
    a = c.att
    if not c.cs.type.is_leaf:
        if not is_exhausted(a.policy, a.counters, S.TIMEOUT_FAILED) and a.children == 0:
            _retryable(c, S.TIMEOUT_FAILED, note="step timed out")
            return
        _terminate_children(c, S.TIMED_OUT, "TIME_OUT")
        return
    c.effects.append(TerminateRuntime(c.path, a.attempt))
    if not is_exhausted(a.policy, a.counters, S.TIMEOUT_FAILED):
        _retryable(c, S.TIMEOUT_FAILED, note="step timed out")
    else:
        c.set(S.TIMED_OUT, note="Step instance is timed out")


def _apply_stop(c: _Call) -> None:
    """The scope is being stopped (FAIL_IMMEDIATELY, parent stopped) or timed out: terminate."""
    kind = c.scope.stopping
    status = S.TIMED_OUT if kind == "TIME_OUT" else S.STOPPED
    if c.cs.type.is_leaf:
        if c.att.status in _RUNTIME_STATUSES:
            c.effects.append(TerminateRuntime(c.path, c.att.attempt))
        c.set(status, note=f"terminated by {kind}")
        return
    _terminate_children(c, status, kind or "STOP")


def _terminate_children(c: _Call, status: StepStatus, kind: str) -> None:
    """A foreach or subworkflow step ends only once its children are terminal (Maestro's terminate
    raises a retryable error until then); meanwhile it records the status it was asked for."""
    c.run, waiting, wake = stop_children(c.run, c.path, kind, c.now)
    if wake:
        c.effects.append(Wake(wake))
    if waiting:
        if c.att.terminating is None:
            c.att = c.att.with_status(c.att.status, c.now, terminating=status.value)
        return
    c.set(status, note=f"terminated by {kind}")


def _retryable(c: _Call, status: StepStatus, **changes: object) -> None:
    delay = retry_delay_seconds(c.att.policy, c.att.counters, status)
    c.set(status, retry_at=c.now + delay, **changes)


def _fail(
    c: _Call, status: StepStatus, outcome: str | None = None, outputs: Mapping[str, Value] | None = None
) -> None:
    """USER_FAILED / PLATFORM_FAILED / TIMEOUT_FAILED, or their exhausted status (§1.3, §1.6)."""
    extra: dict[str, object] = {"outcome": outcome} if outcome is not None else {}
    if outputs:
        extra["outputs"] = outputs
    if not is_exhausted(c.att.policy, c.att.counters, status):
        _retryable(c, status, **extra)
    elif status is S.TIMEOUT_FAILED:
        c.set(S.TIMED_OUT, **extra)
    else:
        c.set(S.FATALLY_FAILED, **extra)


def _internal(c: _Call, message: str) -> None:
    c.set(S.INTERNALLY_FAILED, note=message)


def _loop(c: _Call, runtime: RuntimeReport | None) -> None:
    while True:
        st = c.att.status
        if st is S.CREATED:
            if not _initialize(c):
                continue
            return
        if st in _TO_PARAMS:
            # No breakpoints or signals in traces: INITIALIZED -> WAITING_FOR_SIGNALS -> EVALUATING_PARAMS
            # -> WAITING_FOR_PERMITS happen in this call; the intermediate statuses never persist.
            try:
                params = evaluate_step_params(c.ct, c.run, c.scope, c.cs, c.att)
            except (ParamError, ExpressionError) as exc:
                _internal(c, f"param evaluation failed: {exc}")
                continue
            c.set(S.WAITING_FOR_PERMITS, params=params)
            return
        elif st is S.WAITING_FOR_PERMITS or st is S.STARTING:
            # permits are granted at once; entering STARTING sets started_at, then start() -> RUNNING
            if st is S.WAITING_FOR_PERMITS:
                c.set(S.RUNNING, started_at=c.now)
            else:
                c.set(S.RUNNING)
            if c.cs.type.is_leaf:
                c.effects.append(_start_runtime(c.path, c.att.attempt, c.cs.type.value, c.att.params or {}))
                return
        elif st is S.RUNNING:
            if c.cs.type.is_leaf:
                if runtime is None or runtime.state == "running":
                    return
                _leaf_result(c, runtime)
                runtime = None
            else:
                before = c.att
                c.run, c.att, effects = run_child_step(c.ct, c.run, c.scope, c.cs, c.att, c.now)
                c.effects.extend(effects)
                if c.att.status is before.status:
                    return
        elif st is S.FINISHING:
            c.set(S.SUCCEEDED)
        elif st.is_complete:
            if c.att.conditions is None:
                _evaluate_conditions(c)
                continue
            return
        elif st is S.FATALLY_FAILED:
            if _failure_mode(c):
                continue
            return
        else:  # retryable failures wait for decide(); INTERNALLY_FAILED, STOPPED, TIMED_OUT are final
            return


def _initialize(c: _Call) -> bool:
    """CREATED: satisfaction test (§4.2), then the timeout (§2.6). True when the call stops here."""
    satisfied = _is_satisfied(c)
    if not satisfied:
        c.set(S.UNSATISFIED, satisfied=False, note="no predecessors can reach it")
        return False
    try:
        timeout = resolve_timeout_seconds(c.cs.step.timeout, c.scope.params)
    except ParamError as exc:
        c.set(S.INTERNALLY_FAILED, satisfied=True, note=f"bad step timeout: {exc}")
        return False
    c.set(S.INITIALIZED, satisfied=True, timeout_s=timeout)
    return True


def _is_satisfied(c: _Call) -> bool:
    if not c.cs.predecessors:
        return True
    for pred in c.cs.predecessors:
        p = c.run.latest(c.scope.prefix + pred)
        if p is not None and p.conditions is not None and p.conditions.get(c.cs.id, False):
            return True
    return False


_FLAG_TYPES = frozenset({StepType.KUBERNETES, StepType.TITUS, StepType.HTTP})


def _non_retryable_flag(c: _Call, outputs: Mapping[str, Value]) -> bool:
    """§1.5: a KUBERNETES / TITUS / HTTP job's output ``{"maestro_retry": {"retryable": false}}``."""
    flag = outputs.get("maestro_retry")
    return c.cs.type in _FLAG_TYPES and isinstance(flag, dict) and flag.get("retryable") is False


def _leaf_result(c: _Call, runtime: RuntimeReport) -> None:
    if runtime.state == "unrecorded":
        c.set(S.INTERNALLY_FAILED, unrecorded=True, note="the trace records no such attempt")
        return
    outcome = runtime.outcome
    outputs = dict(runtime.outputs)
    if outcome == Outcome.SUCCEEDED:  # RUNNING -> FINISHING -> SUCCEEDED: outputs merged, nothing to persist
        c.set(S.SUCCEEDED, outcome=outcome, outputs=outputs)
    elif outcome in (Outcome.USER_ERROR, Outcome.PLATFORM_ERROR):
        if _non_retryable_flag(c, outputs):
            c.set(S.FATALLY_FAILED, outcome=outcome, outputs=outputs, note="the job said it is not retryable")
        else:
            _fail(c, S.USER_FAILED if outcome == Outcome.USER_ERROR else S.PLATFORM_FAILED, outcome, outputs)
    elif outcome == Outcome.TIMEOUT:
        _fail(c, S.TIMEOUT_FAILED, outcome, outputs)
    elif outcome == Outcome.FATAL_ERROR:
        c.set(S.FATALLY_FAILED, outcome=outcome, outputs=outputs)
    else:
        _internal(c, f"runtime reported unknown outcome {outcome!r}")


def _evaluate_conditions(c: _Call) -> None:
    """A complete step evaluates its outgoing edges (§4.3); an error fails the step internally (§10.6)."""
    if c.att.status is S.UNSATISFIED:
        c.att = c.att.with_status(c.att.status, c.now, conditions={to: False for to, _ in c.cs.successors})
        return
    results: dict[str, bool] = {}
    try:
        resolve = condition_resolver(c.ct, c.run, c.scope, c.cs, c.att)
        for to, expr in c.cs.successors:
            value: Value = True if expr is None else expr.evaluate(resolve)
            if not isinstance(value, bool):
                raise ParamError(
                    f"condition {expr.source if expr else ''!r} gave {value!r}, not a boolean", param=to
                )
            results[to] = value
    except (ParamError, ExpressionError) as exc:
        c.att = c.att.with_status(
            S.INTERNALLY_FAILED, c.now, ended_at=c.att.ended_at, note=f"successor condition failed: {exc}"
        )
        return
    c.att = c.att.with_status(c.att.status, c.now, conditions=results)


def _failure_mode(c: _Call) -> bool:
    """FATALLY_FAILED: apply the step's failure mode (§3). True when the loop should continue."""
    mode = c.cs.failure_mode
    if mode is FailureMode.IGNORE_FAILURE:
        c.set(S.COMPLETED_WITH_ERROR)
        return True
    if mode is FailureMode.FAIL_IMMEDIATELY and c.scope.stopping is None:
        # the scope as it is now: a child launched in this call may have updated its failed_children
        c.run = c.run.with_scope(_replace_scope(c.run.scopes[c.scope.prefix], "STOP"))
        prefix = c.scope.prefix
        wake = tuple(p for p in (*c.run.live, *c.run.backoff) if p != c.path and scope_of(p)[0] == prefix)
        if wake:
            c.effects.append(Wake(wake))
    return False


def _replace_scope(scope: Scope, stopping: str) -> Scope:
    return replace(scope, stopping=stopping)
