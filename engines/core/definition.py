"""Compile a trace's workflow definitions into executable DAGs, rejecting what the core cannot run.

:func:`compile_trace` validates and compiles the root definition, every subworkflow it reaches and
every foreach body: each becomes a :class:`CompiledWorkflow` (steps in a stable topological order,
predecessors, successors with parsed conditions, roots). Problems are :class:`DefinitionError` naming
the step and saying what to fix. Compiling once per trace keeps every per-poll function cheap.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from corpora.model import FailureMode, Param, Step, StepType, Trace, WorkflowDefinition
from engines.core.errors import DefinitionError, ExpressionError
from engines.core.expr import Expression, parse
from engines.core.retry import check_policy_shape

__all__ = ["CompiledStep", "CompiledTrace", "CompiledWorkflow", "compile_trace", "foreach_key"]


@dataclass(frozen=True, slots=True)
class CompiledStep:
    """One step of one compiled workflow.

    ``instance_id`` is the 1-based position in the workflow's stable topological order (our
    deterministic stand-in for Maestro's ``step_instance_id``). ``successors`` carry the parsed
    condition of each outgoing edge (None: always true). ``body`` names the compiled workflow a
    FOREACH iterates or a SUBWORKFLOW starts."""

    id: str
    type: StepType
    step: Step
    instance_id: int
    predecessors: tuple[str, ...]
    successors: tuple[tuple[str, Expression | None], ...]
    failure_mode: FailureMode
    param_expressions: Mapping[str, Expression]
    body: str | None = None


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    """A workflow (root, subworkflow or foreach body) as an executable DAG. ``key`` is unique in the
    trace: the workflow id, or ``<workflow key>#<foreach step id>`` for a foreach body."""

    key: str
    definition: WorkflowDefinition
    steps: Mapping[str, CompiledStep]
    order: tuple[str, ...]
    roots: tuple[str, ...]
    param_expressions: Mapping[str, Expression]


@dataclass(frozen=True, slots=True)
class CompiledTrace:
    """Everything an engine needs to execute a trace's definitions: ``workflows`` by key."""

    trace: Trace
    root: CompiledWorkflow
    workflows: Mapping[str, CompiledWorkflow]

    def workflow(self, key: str) -> CompiledWorkflow:
        return self.workflows[key]


def _topological_order(
    steps: tuple[Step, ...],
    succ: Mapping[str, Mapping[str, None]],
    preds: Mapping[str, set[str]],
    position: Mapping[str, int],
) -> tuple[str, ...] | None:
    """Kahn's algorithm taking the ready step of smallest definition position first: exactly
    ``networkx.lexicographical_topological_sort(graph, key=position)``. None if there is a cycle."""
    indegree = {sid: len(p) for sid, p in preds.items()}
    heap = [position[s.id] for s in steps if not indegree[s.id]]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        sid = steps[heapq.heappop(heap)].id
        order.append(sid)
        for to in succ[sid]:
            indegree[to] -= 1
            if not indegree[to]:
                heapq.heappush(heap, position[to])
    return tuple(order) if len(order) == len(steps) else None


def _raise_cycle(key: str, steps: tuple[Step, ...], succ: Mapping[str, Mapping[str, None]]) -> NoReturn:
    """The cycle error, with the cycle networkx finds (only a rejected definition gets here)."""
    import networkx as nx

    graph: nx.DiGraph[str] = nx.DiGraph()
    for step in steps:
        graph.add_node(step.id)
    for sid, tos in succ.items():
        for to in tos:
            graph.add_edge(sid, to)
    cycle = nx.find_cycle(graph)
    names = " -> ".join([e[0] for e in cycle] + [cycle[-1][1]])
    raise DefinitionError(
        f"the step graph has a cycle ({names}); remove one transition", step=cycle[0][0], workflow=key
    )


def foreach_key(workflow_key: str, step_id: str) -> str:
    return f"{workflow_key}#{step_id}"


def _param_expressions(
    params: Mapping[str, Param], *, workflow: str, step: str | None
) -> dict[str, Expression]:
    out: dict[str, Expression] = {}
    for name, p in params.items():
        if p.expression is not None and p.value is not None:
            raise DefinitionError(
                f"param {name!r} sets both value and expression; keep one", step=step, workflow=workflow
            )
        if p.expression is not None:
            try:
                out[name] = parse(p.expression)
            except ExpressionError as exc:
                raise DefinitionError(
                    f"param {name!r}: {exc}; use the documented expression subset (docs/CORE.md)",
                    step=step,
                    workflow=workflow,
                ) from exc
    return out


class _Compiler:
    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.out: dict[str, CompiledWorkflow] = {}
        self.visiting: list[str] = []

    def workflow(self, key: str, definition: WorkflowDefinition, steps: tuple[Step, ...]) -> CompiledWorkflow:
        if key in self.out:
            return self.out[key]
        if key in self.visiting:
            chain = " -> ".join([*self.visiting[self.visiting.index(key) :], key])
            raise DefinitionError(
                f"subworkflows call each other in a cycle ({chain}); break the cycle", workflow=key
            )
        self.visiting.append(key)
        wf = definition.id
        if not steps:
            raise DefinitionError("has no steps; a workflow needs at least one step", workflow=key)
        by_id: dict[str, Step] = {}
        position: dict[str, int] = {}
        for i, step in enumerate(steps):
            if not isinstance(step.id, str) or not step.id or "/" in step.id or "[" in step.id:
                raise DefinitionError(
                    "step ids must be non-empty and must not contain '/' or '[' (they build step paths)",
                    step=str(step.id), workflow=key,
                )  # fmt: skip
            if step.id in by_id:
                raise DefinitionError(
                    "duplicate step id; step ids must be unique in a workflow", step=step.id, workflow=key
                )
            by_id[step.id] = step
            position[step.id] = i
        succ: dict[str, dict[str, None]] = {sid: {} for sid in by_id}  # the edges, deduplicated, in order
        preds: dict[str, set[str]] = {sid: set() for sid in by_id}
        for step in steps:
            for t in step.transitions:
                if t.to not in by_id:
                    raise DefinitionError(
                        f"transition to unknown step {t.to!r}; name a step of the same workflow",
                        step=step.id,
                        workflow=key,
                    )
                if t.to == step.id:
                    raise DefinitionError(
                        "transition to itself; a workflow must be a DAG", step=step.id, workflow=key
                    )
                succ[step.id][t.to] = None
                preds[t.to].add(step.id)
        order = _topological_order(steps, succ, preds, position)
        if order is None:
            _raise_cycle(key, steps, succ)
        compiled: dict[str, CompiledStep] = {}
        for idx, sid in enumerate(order, start=1):
            compiled[sid] = self.step(
                key, wf, by_id[sid], idx, tuple(sorted(preds[sid], key=position.__getitem__))
            )
        roots = tuple(s for s in order if not compiled[s].predecessors)
        cw = CompiledWorkflow(
            key=key, definition=definition, steps=compiled, order=order, roots=roots,
            param_expressions=_param_expressions(definition.params, workflow=key, step=None),
        )  # fmt: skip
        self.visiting.pop()
        self.out[key] = cw
        return cw

    def step(self, key: str, wf: str, step: Step, idx: int, preds: tuple[str, ...]) -> CompiledStep:
        try:
            stype = StepType(step.type)
        except ValueError:
            allowed = ", ".join(t.value for t in StepType)
            raise DefinitionError(
                f"unknown step type {step.type!r}; use one of {allowed}", step=step.id, workflow=key
            ) from None
        try:
            mode = (
                FailureMode(step.failure_mode)
                if step.failure_mode is not None
                else FailureMode.FAIL_AFTER_RUNNING
            )
        except ValueError:
            raise DefinitionError(
                f"unknown failure mode {step.failure_mode!r}", step=step.id, workflow=key
            ) from None
        successors: list[tuple[str, Expression | None]] = []
        for t in step.transitions:
            cond = None
            if t.condition is not None:
                try:
                    cond = parse(t.condition)
                except ExpressionError as exc:
                    raise DefinitionError(
                        f"condition of the transition to {t.to!r}: {exc}; use the documented expression subset",
                        step=step.id, workflow=key,
                    ) from exc  # fmt: skip
            successors.append((t.to, cond))
        if step.retry_policy is not None:
            problem = check_policy_shape(step.retry_policy)
            if problem is not None:
                raise DefinitionError(
                    f"impossible retry policy: {problem}; limits are 0..99, backoff and cap seconds 1..86400",
                    step=step.id, workflow=key,
                )  # fmt: skip
        body: str | None = None
        if stype is StepType.FOREACH:
            if step.foreach is None:
                raise DefinitionError(
                    "a FOREACH step needs a 'foreach' block (loop_params and steps)",
                    step=step.id,
                    workflow=key,
                )
            if not step.foreach.loop_params:
                raise DefinitionError(
                    "a FOREACH step needs at least one loop param", step=step.id, workflow=key
                )
            if step.foreach.concurrency is not None and step.foreach.concurrency < 1:
                raise DefinitionError("foreach concurrency must be at least 1", step=step.id, workflow=key)
            _param_expressions(step.foreach.loop_params, workflow=key, step=step.id)
            body = foreach_key(key, step.id)
            self.workflow(body, WorkflowDefinition(id=body, steps=step.foreach.steps), step.foreach.steps)
        elif stype is StepType.SUBWORKFLOW:
            if step.subworkflow is None:
                raise DefinitionError(
                    "a SUBWORKFLOW step needs a 'subworkflow' block", step=step.id, workflow=key
                )
            child = self.trace.subworkflows.get(step.subworkflow.workflow_id)
            if child is None:
                raise DefinitionError(
                    f"subworkflow {step.subworkflow.workflow_id!r} is not in the trace's subworkflows; include its definition",
                    step=step.id, workflow=key,
                )  # fmt: skip
            body = step.subworkflow.workflow_id
            self.workflow(body, child, child.steps)
        return CompiledStep(
            id=step.id, type=stype, step=step, instance_id=idx, predecessors=preds,
            successors=tuple(successors), failure_mode=mode,
            param_expressions=_param_expressions(step.params, workflow=key, step=step.id), body=body,
        )  # fmt: skip


def compile_trace(trace: Trace) -> CompiledTrace:
    """Validate and compile every definition of ``trace``; raise :class:`DefinitionError` if any is
    not executable (unknown step type, bad expression, impossible retry policy, cycle, ...)."""
    c = _Compiler(trace)
    root = c.workflow(trace.definition.id, trace.definition, trace.definition.steps)
    return CompiledTrace(trace=trace, root=root, workflows=dict(c.out))
