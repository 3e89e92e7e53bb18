"""Name resolution for a step inside a run: the params it is handed and what its conditions read.

Kept apart from :mod:`engines.core.params` (which knows nothing about runs) so the step machine, the
foreach launcher and the record builder share one definition of "what this step sees".
"""

from __future__ import annotations

from collections.abc import Callable

from corpora.model import StepType
from engines.core.definition import CompiledStep, CompiledTrace
from engines.core.errors import ParamError
from engines.core.expr import Value
from engines.core.params import evaluate_params, step_instance_uuid
from engines.core.state import Attempt, RunState, Scope

__all__ = ["condition_resolver", "evaluate_loop_params", "evaluate_step_params", "upstream_reader"]


def upstream_reader(run: RunState, scope: Scope) -> Callable[[str, str], Value]:
    """``stepid__name``: the output (else the evaluated param) of a *completed* step of the same scope."""

    def read(step_id: str, name: str) -> Value:
        a = run.latest(scope.prefix + step_id)
        if a is None or not a.status.is_complete:
            raise KeyError(name)
        if name in a.outputs:
            return a.outputs[name]
        if a.params is not None and name in a.params:
            return a.params[name]
        raise KeyError(name)

    return read


def _reserved(
    ct: CompiledTrace, run: RunState, scope: Scope, cs: CompiledStep, att: Attempt
) -> dict[str, Value]:
    return {
        "workflow_instance_id": scope.instance_id,
        "step_id": cs.id,
        "step_attempt_id": att.attempt,
        "step_instance_uuid": step_instance_uuid(run.trace_id, run.run_id, att.path, att.attempt),
        "step_instance_id": cs.instance_id,
    }


def evaluate_step_params(
    ct: CompiledTrace, run: RunState, scope: Scope, cs: CompiledStep, att: Attempt
) -> dict[str, Value]:
    """The evaluated step params of ``att`` (§9): reserved ids (they cannot be overridden), type
    defaults, the step definition's params, ``maestro_step_satisfied``. Raises ParamError."""
    base: dict[str, Value] = {}
    if cs.type is StepType.FOREACH and cs.step.foreach is not None:
        base["loop_index"] = -1
    elif cs.type is StepType.SUBWORKFLOW and cs.step.subworkflow is not None:
        base["subworkflow_id"] = cs.step.subworkflow.workflow_id
        base["subworkflow_version"] = "active"
    fixed = _reserved(ct, run, scope, cs, att)
    fixed["maestro_step_satisfied"] = bool(att.satisfied) if att.satisfied is not None else True
    params = evaluate_params(
        cs.step.params,
        base=base,
        fixed=fixed,
        fallback=scope.params,
        upstream=upstream_reader(run, scope),
        expressions=cs.param_expressions,
    )
    if cs.type is StepType.FOREACH and cs.step.foreach is not None:
        params["loop_params"] = evaluate_loop_params(run, scope, cs, params)
    return params


def evaluate_loop_params(
    run: RunState, scope: Scope, cs: CompiledStep, step_params: dict[str, Value]
) -> dict[str, Value]:
    """A foreach's loop params; each must be a non-nested array (§5.1)."""
    assert cs.step.foreach is not None
    fallback = dict(scope.params)
    fallback.update(step_params)
    values = evaluate_params(
        cs.step.foreach.loop_params, base={}, fallback=fallback, upstream=upstream_reader(run, scope)
    )
    for name, v in values.items():
        if not isinstance(v, list) or any(isinstance(x, list | dict) or x is None for x in v):
            raise ParamError(
                "a loop param must evaluate to an array of strings, numbers or booleans", param=name
            )
    return values


def condition_resolver(
    ct: CompiledTrace, run: RunState, scope: Scope, cs: CompiledStep, att: Attempt
) -> Callable[[str], Value]:
    """What a complete step's outgoing conditions read: its outputs, its params (generated when it
    never evaluated them, e.g. SKIPPED), workflow params, upstream outputs."""
    params = att.params
    if params is None:
        params = evaluate_step_params(ct, run, scope, cs, att)
    upstream = upstream_reader(run, scope)
    outputs = att.outputs

    def resolve(name: str) -> Value:
        if name in outputs:
            return outputs[name]
        if name in params:
            return params[name]
        if name in scope.params:
            return scope.params[name]
        if "__" in name:
            sid, _, out = name.partition("__")
            if sid == cs.id and out in outputs:
                return outputs[out]
            if sid == cs.id and out in params:
                return params[out]
            try:
                return upstream(sid, out)
            except KeyError:
                pass
        raise ParamError("is not defined for this condition", param=name)

    return resolve
