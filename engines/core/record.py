"""Turn final run states into the canonical :class:`engines.api.RunExecution` records.

Both engines (and the oracle) build their record with :func:`run_execution`, so any difference
between two records comes from execution, never from formatting. Attempts are listed by path, then
attempt number (parallel branches have no meaningful order). The ``config`` parity set holds the
parsed retry policy, the step timeout in seconds, the failure mode after defaulting, the tags and the
successor condition results; for steps of a child run (foreach iteration, subworkflow) also the
child's ``workflow_params`` (loop variables, ``loop_index``, passed-down params).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, replace
from typing import Any

from engines.api import AttemptRecord, ExecutionRecord, RunExecution
from engines.core.definition import CompiledStep, CompiledTrace
from engines.core.state import Attempt, RunState, scope_of
from engines.core.statuses import StepStatus

__all__ = ["attempt_record", "execution_record", "run_execution"]


def _make_attempt_record() -> Callable[..., AttemptRecord]:
    """A straight-line ``AttemptRecord`` constructor (positional, every field), generated once from
    its field list: the frozen dataclass ``__init__`` sets each field through ``object.__setattr__``,
    which was most of the cost of a record. Only field names reach the generated source."""
    names = [f.name for f in fields(AttemptRecord)]
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": AttemptRecord}
    body = [f"def make({', '.join(names)}):", "    n = _new(_cls)"]
    for i, name in enumerate(names):
        ns[f"_s{i}"] = AttemptRecord.__dict__[name].__set__
        body.append(f"    _s{i}(n, {name})")
    body.append("    return n")
    exec("\n".join(body), ns)
    fn: Callable[..., AttemptRecord] = ns["make"]
    return fn


_new_attempt_record = _make_attempt_record()
assert [f.name for f in fields(AttemptRecord)] == [
    "path", "step_id", "step_type", "attempt", "status", "outcome", "unrecorded", "params", "outputs",
    "config", "created_at", "ready_at", "started_at", "ended_at",
]  # fmt: skip


def attempt_record(ct: CompiledTrace, run: RunState, a: Attempt) -> AttemptRecord:
    prefix, sid = scope_of(a.path)
    scope = run.scopes[prefix]
    cs = ct.workflows[scope.workflow].steps[sid]
    return _attempt_record(a, sid, prefix, scope.params, cs, cs.failure_mode.value, cs.type.value)


def _attempt_record(
    a: Attempt,
    sid: str,
    prefix: str,
    scope_params: Mapping[str, Any],
    cs: CompiledStep,
    mode: str,
    stype: str,
) -> AttemptRecord:
    config: dict[str, Any] = {
        "retry_policy": a.policy.to_json(),
        "timeout_seconds": a.timeout_s,
        "failure_mode": mode,
        "tags": list(cs.step.tags),
        "conditions": dict(a.conditions) if a.conditions is not None else None,
    }
    if prefix:  # a child run's workflow params (the root's are RunExecution.workflow_params)
        config["workflow_params"] = dict(scope_params)
    params = a.params
    return _new_attempt_record(
        a.path, sid, stype, a.attempt, _STATUS_VALUE[a.status], a.outcome, a.unrecorded,
        dict(params) if params is not None else {}, dict(a.outputs), config,
        a.created_at, a.ready_at, a.started_at, a.ended_at,
    )  # fmt: skip


_STATUS_VALUE = {m: m.value for m in StepStatus}


def run_execution(ct: CompiledTrace, run: RunState) -> RunExecution:
    """The canonical record of one run (root and children) as it stands."""
    root = run.scopes.get("")
    scopes = run.scopes
    workflows = ct.workflows
    records: list[AttemptRecord] = []
    by_prefix: dict[str, tuple[Mapping[str, Any], Mapping[str, CompiledStep]]] = {}
    for path in sorted(run.attempts):
        cut = path.rfind("/") + 1
        prefix, sid = path[:cut], path[cut:]
        hit = by_prefix.get(prefix)
        if hit is None:
            scope = scopes[prefix]
            hit = by_prefix[prefix] = (scope.params, workflows[scope.workflow].steps)
        cs = hit[1][sid]
        mode, stype = cs.failure_mode.value, cs.type.value
        for a in run.attempts[path]:
            records.append(_attempt_record(a, sid, prefix, hit[0], cs, mode, stype))
    return RunExecution(
        run_id=run.run_id,
        status=run.status.value,
        stuck=run.stuck,
        workflow_params=dict(root.params) if root is not None else {},
        triggered_at=run.triggered_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
        attempts=tuple(records),
    )


def execution_record(
    ct: CompiledTrace,
    states: Iterable[RunState],
    *,
    engine: str,
    version: str,
    seed: int,
    counters: Mapping[str, float] | None = None,
) -> ExecutionRecord:
    """The whole record of a replay from the final run states (in trace order). A run that started
    and is not terminal is reported ``stuck`` with its last status; a run that never started keeps
    CREATED (queued, blocked) or STOPPED (displaced by its strategy) and is not stuck."""
    runs = []
    for st in states:
        if st.unfinished and not st.stuck:
            st = replace(st, stuck=True)
        runs.append(run_execution(ct, st))
    return ExecutionRecord(
        trace_id=ct.trace.trace_id,
        engine=engine,
        engine_version=version,
        seed=seed,
        runs=tuple(runs),
        counters=dict(counters or {}),
    )
