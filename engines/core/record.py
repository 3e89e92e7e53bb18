"""Turn final run states into the canonical :class:`engines.api.RunExecution` records.

Both engines (and the oracle) build their record with :func:`run_execution`, so any difference
between two records comes from execution, never from formatting. Attempts are listed by path, then
attempt number (parallel branches have no meaningful order). The ``config`` parity set holds the
parsed retry policy, the step timeout in seconds, the failure mode after defaulting, the tags and the
successor condition results; for steps of a child run (foreach iteration, subworkflow) also the
child's ``workflow_params`` (loop variables, ``loop_index``, passed-down params).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from engines.api import AttemptRecord, ExecutionRecord, RunExecution
from engines.core.definition import CompiledTrace
from engines.core.state import Attempt, RunState, scope_of

__all__ = ["attempt_record", "execution_record", "run_execution"]


def attempt_record(ct: CompiledTrace, run: RunState, a: Attempt) -> AttemptRecord:
    prefix, sid = scope_of(a.path)
    scope = run.scopes[prefix]
    cs = ct.workflows[scope.workflow].steps[sid]
    config: dict[str, Any] = {
        "retry_policy": a.policy.to_json(),
        "timeout_seconds": a.timeout_s,
        "failure_mode": cs.failure_mode.value,
        "tags": list(cs.step.tags),
        "conditions": dict(a.conditions) if a.conditions is not None else None,
    }
    if prefix:  # a child run's workflow params (the root's are RunExecution.workflow_params)
        config["workflow_params"] = dict(scope.params)
    return AttemptRecord(
        path=a.path,
        step_id=sid,
        step_type=cs.type.value,
        attempt=a.attempt,
        status=a.status.value,
        outcome=a.outcome,
        unrecorded=a.unrecorded,
        params=dict(a.params) if a.params is not None else {},
        outputs=dict(a.outputs),
        config=config,
        created_at=a.created_at,
        ready_at=a.ready_at,
        started_at=a.started_at,
        ended_at=a.ended_at,
    )


def run_execution(ct: CompiledTrace, run: RunState) -> RunExecution:
    """The canonical record of one run (root and children) as it stands."""
    root = run.scopes.get("")
    attempts = tuple(attempt_record(ct, run, a) for path in sorted(run.attempts) for a in run.attempts[path])
    return RunExecution(
        run_id=run.run_id,
        status=run.status.value,
        stuck=run.stuck,
        workflow_params=dict(root.params) if root is not None else {},
        triggered_at=run.triggered_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
        attempts=attempts,
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
        if st.started_at is not None and not st.status.is_terminal and not st.stuck:
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
