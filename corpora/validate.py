"""Semantic validation of a decoded :class:`~corpora.model.Trace`.

The codec already guarantees the *shape* of a trace (types, required fields, enum values). This module
checks what a shape cannot express: the step graph is acyclic, transitions point at steps that exist,
step ids are unique, every recorded attempt names a leaf step path that exists, every number is inside
its bound (:mod:`corpora.bounds`, also for traces built in Python, which skip the codec), attempt
numbers count 1, 2, 3 ... per path, and every subworkflow reference resolves. Each problem
is a :class:`~corpora.errors.TraceError` with a stable ``code`` and the JSON path of the culprit,
so a quarantined trace can be fixed without guessing.

Engines rely on these guarantees: after ``validate_trace`` they may build a DAG and look attempts up by
path without defensive checks.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterator, Mapping, Sequence

from corpora.bounds import (
    BACKOFF_EXPONENT,
    BACKOFF_SECONDS,
    CONCURRENCY,
    COUNT,
    DURATION,
    MAX_EXPRESSION_CHARS,
    MAX_RETRY_LIMIT,
    MAX_TRIGGER_SPAN_SECONDS,
    RETRY_LIMIT,
    TIMEOUT,
    TIMESTAMP,
)
from corpora.errors import TraceError, TraceLocation
from corpora.model import FORMAT, ObservedRun, Param, RetryPolicy, Step, StepType, Trace, WorkflowDefinition

__all__ = ["MAX_RETRY_LIMIT", "iter_scopes", "parse_step_path", "resolve_step_path", "validate_trace"]

_SEGMENT = re.compile(r"^(?P<id>[^/\[\]]+)(?:\[(?P<index>0|[1-9][0-9]*)\])?$")
_BAD_ID_CHARS = re.compile(r"[/\[\]\s\ud800-\udfff]")
# A lone surrogate (read from a "\ud800" escape) cannot be encoded as UTF-8: engines hash ids into
# the per-attempt UUID, so an id holding one is refused here rather than crashing a replay.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _error(code: str, path: str, message: str, hint: str, trace_id: str | None = None) -> TraceError:
    return TraceError(code, message, location=TraceLocation(json_path=path), hint=hint, trace_id=trace_id)


def parse_step_path(path: str) -> tuple[tuple[str, int | None], ...]:
    """Split ``outer[1]/call/leaf`` into ``(("outer", 1), ("call", None), ("leaf", None))``.

    Raises ``ValueError`` for a malformed path (empty segment, bad index)."""
    segments: list[tuple[str, int | None]] = []
    for raw in path.split("/"):
        match = _SEGMENT.match(raw)
        if match is None:
            raise ValueError(f"malformed path segment {raw!r}")
        index = match.group("index")
        segments.append((match.group("id"), int(index) if index is not None else None))
    return tuple(segments)


def resolve_step_path(trace: Trace, path: str, index: dict[int, dict[str, Step]] | None = None) -> Step:
    """The leaf :class:`Step` a recorded attempt path names; ``KeyError`` with the reason if none does.

    ``fan[i]`` must name a FOREACH step, a bare id followed by more segments a SUBWORKFLOW step, and the
    last segment a leaf step (foreach and subworkflow steps have no attempts of their own)."""
    try:
        segments = parse_step_path(path)
    except ValueError as exc:
        raise KeyError(str(exc)) from None
    # ``index`` caches {step id: step} per sibling list (keyed by the list's identity) across calls.
    by_id = {} if index is None else index
    steps: Sequence[Step] = trace.definition.steps
    for position, (step_id, iteration) in enumerate(segments):
        scope = by_id.get(id(steps))
        if scope is None:
            scope = by_id[id(steps)] = {}
            for s in steps:
                scope.setdefault(s.id, s)
        step = scope.get(step_id)
        if step is None:
            raise KeyError(f"no step {step_id!r} at segment {position + 1}")
        last = position == len(segments) - 1
        if iteration is not None:
            if step.type is not StepType.FOREACH or step.foreach is None:
                raise KeyError(f"{step_id!r} is indexed but is not a FOREACH step")
            if last:
                raise KeyError(f"path ends at foreach iteration {step_id}[{iteration}], not at a leaf step")
            steps = step.foreach.steps
            continue
        if last:
            if not step.type.is_leaf:
                raise KeyError(f"{step_id!r} is a {step.type.value} step, which records no attempts")
            return step
        if step.type is StepType.FOREACH:
            raise KeyError(f"foreach step {step_id!r} needs an iteration index, e.g. {step_id}[0]")
        if step.type is not StepType.SUBWORKFLOW or step.subworkflow is None:
            raise KeyError(f"{step_id!r} is a leaf step and has no children")
        child = trace.subworkflows.get(step.subworkflow.workflow_id)
        if child is None:
            raise KeyError(f"subworkflow {step.subworkflow.workflow_id!r} is not defined")
        steps = child.steps
    raise KeyError("empty path")  # pragma: no cover - parse_step_path never returns ()


def iter_scopes(trace: Trace) -> Iterator[tuple[str, Sequence[Step]]]:
    """Every list of sibling steps (a DAG scope) with its JSON path: the workflow, each subworkflow
    definition and each foreach body, recursively."""
    roots: list[tuple[str, WorkflowDefinition]] = [("$.definition", trace.definition)]
    roots += [(f"$.subworkflows.{key}", wf) for key, wf in trace.subworkflows.items()]
    stack: list[tuple[str, Sequence[Step]]] = [(f"{p}.steps", wf.steps) for p, wf in roots]
    while stack:
        path, steps = stack.pop(0)
        yield path, steps
        for i, step in enumerate(steps):
            if step.foreach is not None:
                stack.append((f"{path}[{i}].foreach.steps", step.foreach.steps))


def validate_trace(trace: Trace) -> None:
    """Raise the first :class:`TraceError` found in ``trace``; return None when it is consistent."""
    tid = trace.trace_id
    if trace.format != FORMAT:
        raise _error(
            "unsupported_format",
            "$.format",
            f"unsupported format {trace.format!r}",
            f"this version reads {FORMAT!r}; convert the trace or upgrade workflow-shadow",
            tid,
        )
    if not trace.trace_id.strip():
        raise _error("bad_value", "$.trace_id", "empty trace_id", "give every trace a unique non-empty id")
    _check_id(trace.trace_id, "$.trace_id", tid)
    _check_definitions(trace)
    _check_runs(trace)
    _check_redactions(trace)


REDACTION_ACTIONS = ("hash", "mask", "drop")


def _check_redactions(trace: Trace) -> None:
    for i, note in enumerate(trace.metadata.redactions):
        if note.action not in REDACTION_ACTIONS:
            raise _error(
                "bad_value", f"$.metadata.redactions[{i}].action", f"unknown redaction action {note.action!r}",
                f"one of {', '.join(REDACTION_ACTIONS)}", trace.trace_id,
            )  # fmt: skip


def _check_definitions(trace: Trace) -> None:
    tid = trace.trace_id
    for key, wf in trace.subworkflows.items():
        if wf.id != key:
            raise _error(
                "bad_value",
                f"$.subworkflows.{key}.id",
                f"subworkflow stored under {key!r} has id {wf.id!r}",
                "store each subworkflow definition under its own id",
                tid,
            )
    defs = [("$.definition", trace.definition)] + [
        (f"$.subworkflows.{k}", w) for k, w in trace.subworkflows.items()
    ]
    for path, wf in defs:
        _check_id(wf.id, f"{path}.id", tid)
        _check_params(wf.params, f"{path}.params", tid)
        _check_positive(wf.step_concurrency, f"{path}.step_concurrency", tid)
        _check_positive(
            wf.run_strategy.workflow_concurrency, f"{path}.run_strategy.workflow_concurrency", tid
        )
        _check_duration_field(wf.timeout, f"{path}.timeout", tid)
    for scope_path, steps in iter_scopes(trace):
        _check_scope(trace, scope_path, steps)
    _check_subworkflow_calls(trace)


def _check_scope(trace: Trace, scope_path: str, steps: Sequence[Step]) -> None:
    tid = trace.trace_id
    if not steps:
        raise _error(
            "bad_value", scope_path, "a workflow or foreach body has no steps", "add at least one step", tid
        )
    seen: dict[str, int] = {}
    for i, step in enumerate(steps):
        path = f"{scope_path}[{i}]"
        if not step.id or _BAD_ID_CHARS.search(step.id):
            raise _error(
                "bad_step_id",
                f"{path}.id",
                f"step id {step.id!r} is empty or contains '/', '[', ']' or spaces",
                "step ids name path segments; use letters, digits, '_', '-' or '.' (no lone surrogates)",
                tid,
            )
        if step.id in seen:
            raise _error(
                "duplicate_step_id",
                f"{path}.id",
                f"step id {step.id!r} is used twice (also at {scope_path}[{seen[step.id]}])",
                "rename one of the steps; ids must be unique among siblings",
                tid,
            )
        seen[step.id] = i
        _check_step(trace, step, path)
    graph: dict[str, list[str]] = {s.id: [] for s in steps}
    for i, step in enumerate(steps):
        for j, transition in enumerate(step.transitions):
            if transition.to not in seen:
                raise _error(
                    "missing_transition_target",
                    f"{scope_path}[{i}].transitions[{j}].to",
                    f"step {step.id!r} transitions to {transition.to!r}, which is not a step here",
                    "known steps: " + ", ".join(sorted(seen)[:20]),
                    tid,
                )
            _check_expression(transition.condition, f"{scope_path}[{i}].transitions[{j}].condition", tid)
            graph[step.id].append(transition.to)
    names = _cycle(graph)
    if names is None:
        return
    raise _error(
        "cycle",
        f"{scope_path}[{seen[names[0]]}].transitions",
        f"the steps form a cycle: {' -> '.join(names)}",
        "a workflow is a DAG; remove one transition of the cycle",
        tid,
    )


def _cycle(edges: dict[str, list[str]], *, nodes_first: bool = True) -> list[str] | None:
    """One cycle of the graph as nodes (first repeated last), or None. The stdlib's topological sort answers
    the common case (no cycle) without loading networkx (a fifth of a second at CLI start); networkx's
    ``find_cycle`` names the cycle as before when there is one."""
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError:
        import networkx as nx

        graph: nx.DiGraph[str] = nx.DiGraph()
        if nodes_first:  # the order networkx met the nodes in decides where the named cycle starts
            graph.add_nodes_from(edges)
        graph.add_edges_from((a, b) for a, targets in edges.items() for b in targets)
        cycle_edges = nx.find_cycle(graph)
        return [str(edge[0]) for edge in cycle_edges] + [str(cycle_edges[0][0])]
    return None


def _check_step(trace: Trace, step: Step, path: str) -> None:
    tid = trace.trace_id
    _check_params(step.params, f"{path}.params", tid)
    _check_duration_field(step.timeout, f"{path}.timeout", tid)
    if step.retry_policy is not None:
        _check_retry_policy(step.retry_policy, f"{path}.retry_policy", tid)
    if (step.type is StepType.FOREACH) != (step.foreach is not None):
        raise _error(
            "step_type_mismatch",
            f"{path}.foreach",
            f"step {step.id!r} of type {step.type.value} "
            + ("has no 'foreach' block" if step.foreach is None else "has a 'foreach' block"),
            "a FOREACH step needs 'foreach'; other types must not have one",
            tid,
        )
    if (step.type is StepType.SUBWORKFLOW) != (step.subworkflow is not None):
        raise _error(
            "step_type_mismatch",
            f"{path}.subworkflow",
            f"step {step.id!r} of type {step.type.value} "
            + ("has no 'subworkflow' block" if step.subworkflow is None else "has a 'subworkflow' block"),
            "a SUBWORKFLOW step needs 'subworkflow'; other types must not have one",
            tid,
        )
    if step.foreach is not None:
        if not step.foreach.loop_params:
            raise _error(
                "bad_value",
                f"{path}.foreach.loop_params",
                "a foreach needs at least one loop param",
                "add an array-valued loop param",
                tid,
            )
        _check_params(step.foreach.loop_params, f"{path}.foreach.loop_params", tid)
        _check_positive(step.foreach.concurrency, f"{path}.foreach.concurrency", tid)
    if step.subworkflow is not None and step.subworkflow.workflow_id not in trace.subworkflows:
        raise _error(
            "unresolved_subworkflow",
            f"{path}.subworkflow.workflow_id",
            f"step {step.id!r} calls subworkflow {step.subworkflow.workflow_id!r}, which the trace does not define",
            "add its definition to 'subworkflows' (keyed by workflow id)",
            tid,
        )


def _check_subworkflow_calls(trace: Trace) -> None:
    """A workflow that (transitively) calls itself would never finish a replay."""
    calls: dict[str, list[str]] = {}
    defs = {trace.definition.id: trace.definition, **trace.subworkflows}
    for wf_id, wf in defs.items():
        pending: list[Step] = list(wf.steps)
        while pending:
            step = pending.pop()
            if step.subworkflow is not None:
                calls.setdefault(wf_id, []).append(step.subworkflow.workflow_id)
            if step.foreach is not None:
                pending.extend(step.foreach.steps)
    names = _cycle(calls, nodes_first=False)
    if names is None:
        return
    raise _error(
        "subworkflow_cycle",
        "$.subworkflows",
        f"subworkflows call each other in a cycle: {' -> '.join(names)}",
        "break the recursion; a replay of it would never end",
        trace.trace_id,
    )


def _check_params(params: Mapping[str, Param], path: str, tid: str) -> None:
    for name, param in params.items():
        _check_expression(param.expression, f"{path}.{name}.expression", tid)
        if param.expression is not None and param.value is not None:
            raise _error(
                "bad_param",
                f"{path}.{name}",
                f"param {name!r} has both a value and an expression",
                "keep exactly one of 'value' and 'expression'",
                tid,
            )


def _check_expression(text: str | None, path: str, tid: str) -> None:
    if text is not None and len(text) > MAX_EXPRESSION_CHARS:
        raise _error(
            "bad_param",
            path,
            f"expression is {len(text):,} characters long (at most {MAX_EXPRESSION_CHARS:,})",
            "shorten it; pass large values as params",
            tid,
        )


def _check_id(value: str, path: str, tid: str) -> None:
    if _SURROGATE.search(value):
        raise _error(
            "bad_value",
            path,
            f"id {value.encode('utf-8', 'backslashreplace').decode()!r} holds a lone UTF-16 surrogate",
            "ids must be valid Unicode text (no unpaired \\ud800-\\udfff escapes)",
            tid,
        )


def _check_positive(value: int | None, path: str, tid: str) -> None:
    CONCURRENCY.check(value, path, tid)


def _check_duration_field(value: int | float | str | None, path: str, tid: str) -> None:
    TIMEOUT.check(value, path, tid)
    TIMEOUT.check_duration_text(value, path, tid)


def _check_retry_policy(policy: RetryPolicy, path: str, tid: str) -> None:
    for name in ("error_retry_limit", "platform_retry_limit", "timeout_retry_limit"):
        RETRY_LIMIT.check(getattr(policy, name), f"{path}.{name}", tid)
    if policy.backoff is not None:
        for name in policy.backoff.__slots__:
            bound = BACKOFF_EXPONENT if name.endswith("_exponent") else BACKOFF_SECONDS
            if name != "type":
                bound.check(getattr(policy.backoff, name), f"{path}.backoff.{name}", tid)
                if bound is BACKOFF_SECONDS:
                    bound.check_duration_text(getattr(policy.backoff, name), f"{path}.backoff.{name}", tid)


def _check_runs(trace: Trace) -> None:
    tid = trace.trace_id
    if not trace.runs:
        raise _error("no_runs", "$.runs", "the trace has no runs", "a trace records at least one run", tid)
    run_ids: dict[str, int] = {}
    index: dict[int, dict[str, Step]] = {}
    resolved: dict[str, str | None] = {}  # path -> None when it resolves, else why not
    for r, run in enumerate(trace.runs):
        rpath = f"$.runs[{r}]"
        if run.run_id in run_ids:
            raise _error(
                "duplicate_run_id",
                f"{rpath}.run_id",
                f"run id {run.run_id!r} is used twice (also at $.runs[{run_ids[run.run_id]}])",
                "give every run of a trace its own id",
                tid,
            )
        run_ids[run.run_id] = r
        _check_id(run.run_id, f"{rpath}.run_id", tid)
        TIMESTAMP.check(run.trigger_time, f"{rpath}.trigger_time", tid)
        first = trace.runs[0].trigger_time
        if abs(run.trigger_time - first) > MAX_TRIGGER_SPAN_SECONDS:
            raise _error(
                "bad_duration",
                f"{rpath}.trigger_time",
                f"run {run.run_id!r} is triggered {abs(run.trigger_time - first) / 86_400:,.0f} days from "
                f"the first run; the runs of one trace span at most 366 days",
                "split the runs into traces by year (a replay simulates the time between triggers)",
                tid,
            )
        if run.observed is not None:
            _check_observed(run.observed, f"{rpath}.observed", tid)
        numbers: dict[str, list[tuple[int, int]]] = {}
        for a, attempt in enumerate(run.attempts):
            apath = f"{rpath}.attempts[{a}]"
            if not DURATION.contains(attempt.duration):
                raise _error(
                    "bad_duration",
                    f"{apath}.duration",
                    f"duration {attempt.duration!r} of {attempt.path!r} attempt {attempt.attempt} is "
                    f"negative, not finite or too long (allowed: {DURATION.range_text})",
                    DURATION.hint,
                    tid,
                )
            if attempt.path not in resolved:
                try:
                    resolve_step_path(trace, attempt.path, index)
                    resolved[attempt.path] = None
                except KeyError as exc:
                    resolved[attempt.path] = str(exc.args[0])
            reason = resolved[attempt.path]
            if reason is not None:
                raise _error(
                    "unknown_attempt_path",
                    f"{apath}.path",
                    f"recorded attempt for unknown step path {attempt.path!r}: {reason}",
                    "paths look like 'step', 'fan[0]/inner' or 'call/leaf'",
                    tid,
                )
            numbers.setdefault(attempt.path, []).append((attempt.attempt, a))
        for step_path, seen in numbers.items():
            seen.sort()
            for expected, (number, a) in enumerate(seen, start=1):
                if number == expected:
                    continue
                code = "duplicate_attempt" if number == expected - 1 else "bad_attempt_number"
                raise _error(
                    code,
                    f"{rpath}.attempts[{a}].attempt",
                    f"attempts of {step_path!r} are numbered {[n for n, _ in seen]}",
                    "number each step path's attempts 1, 2, 3 ... without gaps or repeats",
                    tid,
                )


def _check_observed(observed: ObservedRun, path: str, tid: str) -> None:
    TIMESTAMP.check(observed.start_time, f"{path}.start_time", tid)
    TIMESTAMP.check(observed.end_time, f"{path}.end_time", tid)
    for name, step in observed.steps.items():
        TIMESTAMP.check(step.start_time, f"{path}.steps.{name}.start_time", tid)
        TIMESTAMP.check(step.end_time, f"{path}.steps.{name}.end_time", tid)
        COUNT.check(step.attempts, f"{path}.steps.{name}.attempts", tid)
