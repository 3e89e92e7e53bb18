"""The workflow rollup (§3.3): when a workflow instance is done, and with which status.

Only the latest real attempt of each step counts (we never create NOT_CREATED placeholders). A
retryable failure means "not done yet" (its retry is coming). Steps never created are fine only when
``dag_done`` prunes them: an unsuccessful step prunes its whole downstream, joins included. A
workflow that timed out ends once every created step is terminal, whatever was never created.
Precedence: FAILED > TIMED_OUT > STOPPED > SUCCEEDED.
"""

from __future__ import annotations

from engines.core.definition import CompiledWorkflow
from engines.core.state import RunState, Scope
from engines.core.statuses import StepStatus, WorkflowStatus

__all__ = ["FAILED_STEP_STATUSES", "dag_done", "scope_outcome"]

S = StepStatus
FAILED_STEP_STATUSES = frozenset(
    {S.FATALLY_FAILED, S.INTERNALLY_FAILED, S.USER_FAILED, S.PLATFORM_FAILED, S.TIMEOUT_FAILED}
)


def dag_done(wf: CompiledWorkflow, run: RunState, prefix: str) -> bool:
    """Maestro's ``DagHelper.isDone``: every step not pruned by an unsuccessful ancestor is terminal."""
    pruned: set[str] = set()
    for sid in wf.order:
        cs = wf.steps[sid]
        if any(p in pruned for p in cs.predecessors):
            pruned.add(sid)
            continue
        a = run.latest(prefix + sid)
        if a is None or not a.status.is_terminal:
            return False
        if not a.status.is_complete:
            pruned.add(sid)
    return True


def scope_outcome(wf: CompiledWorkflow, run: RunState, scope: Scope) -> WorkflowStatus | None:
    """The final status of the workflow instance ``scope``, or None while it is still going."""
    failed = timed_out = stopped = False
    created = 0
    missing = False
    prefix = scope.prefix
    attempts = run.attempts
    for sid in wf.order:
        atts = attempts.get(prefix + sid)  # run.latest(), inlined: once per step of the scope
        if not atts:
            missing = True
            continue
        a = atts[-1]
        created += 1
        st = a.status
        if not st.is_terminal or st.is_retryable:
            return None
        if st in FAILED_STEP_STATUSES:
            failed = True
        elif st is S.TIMED_OUT:
            timed_out = True
        elif st is S.STOPPED:
            stopped = True
    workflow_timed_out = scope.stopping == "TIME_OUT"
    if missing and not workflow_timed_out and not dag_done(wf, run, prefix):
        return None
    if created == 0 and not (failed or timed_out or stopped or workflow_timed_out):
        return WorkflowStatus.FAILED
    if failed:
        return WorkflowStatus.FAILED
    if timed_out or workflow_timed_out:
        return WorkflowStatus.TIMED_OUT
    if stopped:
        return WorkflowStatus.STOPPED
    return WorkflowStatus.SUCCEEDED
