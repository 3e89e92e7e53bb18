"""Trace builders for tests, here and in user code: a valid trace of a common shape in one line.

Every builder returns a trace that passes :func:`corpora.validate.validate_trace`. Attempts are
recorded for every leaf path the shape has; pass ``outcomes`` to script a step's attempt sequence
(``{"b": ["user_error", "succeeded"]}``). Durations default to 10 s so a test reads easily in virtual time.

    >>> trace = chain_trace(3, outcomes={"s2": ["platform_error", "succeeded"]})
    >>> [a.path for a in trace.runs[0].attempts]
    ['s1', 's2', 's2', 's3']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from corpora.model import (
    Foreach,
    JsonValue,
    Outcome,
    Param,
    RecordedAttempt,
    Run,
    Step,
    StepType,
    Subworkflow,
    Trace,
    TraceMetadata,
    Transition,
    WorkflowDefinition,
)

__all__ = [
    "DEFAULT_TRIGGER_TIME",
    "attempts",
    "chain_trace",
    "diamond_trace",
    "fanout_trace",
    "foreach_trace",
    "json_slots",
    "leaf",
    "make_trace",
    "subworkflow_trace",
]

DEFAULT_TRIGGER_TIME = 1_700_000_000.0
Outcomes = Mapping[str, Sequence[Outcome | str]]


def leaf(
    step_id: str, *to: str, type: StepType = StepType.NOOP, when: str | None = None, **fields: object
) -> Step:
    """A step with transitions to ``to`` (each guarded by ``when`` if given); extra ``fields`` go to :class:`Step`."""
    transitions = tuple(Transition(target, when) for target in to)
    return Step(id=step_id, type=type, transitions=transitions, **fields)  # type: ignore[arg-type]


def attempts(
    path: str,
    outcomes: Sequence[Outcome | str] = ("succeeded",),
    *,
    duration: float = 10.0,
    outputs: Mapping[str, JsonValue] | None = None,
) -> tuple[RecordedAttempt, ...]:
    """Recorded attempts 1..n of ``path``; the last one carries ``outputs``."""
    last = len(outcomes)
    return tuple(
        RecordedAttempt(path, n, Outcome(o), duration, dict(outputs or {}) if n == last else {})
        for n, o in enumerate(outcomes, start=1)
    )


def _leaf_paths(
    steps: Sequence[Step],
    subworkflows: Mapping[str, WorkflowDefinition],
    prefix: str,
    iterations: Mapping[str, int],
) -> list[str]:
    paths: list[str] = []
    for step in steps:
        if step.foreach is not None:
            for i in range(iterations.get(step.id, 0)):
                paths += _leaf_paths(step.foreach.steps, subworkflows, f"{prefix}{step.id}[{i}]/", iterations)
        elif step.subworkflow is not None:
            child = subworkflows.get(step.subworkflow.workflow_id)
            if child is not None:  # an unresolved reference is left for validation to report
                paths += _leaf_paths(child.steps, subworkflows, f"{prefix}{step.id}/", iterations)
        else:
            paths.append(prefix + step.id)
    return paths


def make_trace(
    steps: Iterable[Step],
    *,
    trace_id: str = "t1",
    workflow_id: str | None = None,
    outcomes: Outcomes | None = None,
    duration: float = 10.0,
    runs: int = 1,
    params: Mapping[str, Param] | None = None,
    subworkflows: Mapping[str, WorkflowDefinition] | None = None,
    iterations: Mapping[str, int] | None = None,
    trigger_time: float = DEFAULT_TRIGGER_TIME,
    run_spacing: float = 3600.0,
    **definition: object,
) -> Trace:
    """A trace of ``steps`` with ``runs`` runs, each recording attempts for every leaf path.

    ``iterations`` says how many iterations to record per foreach step id (default 0)."""
    steps = tuple(steps)
    subs = dict(subworkflows or {})
    wf = WorkflowDefinition(
        id=workflow_id or f"wf-{trace_id}",
        steps=steps,
        params=dict(params or {}),
        **definition,  # type: ignore[arg-type]
    )
    scripted = dict(outcomes or {})
    recorded: list[RecordedAttempt] = []
    for path in _leaf_paths(steps, subs, "", iterations or {}):
        recorded += attempts(path, scripted.get(path, ("succeeded",)), duration=duration)
    run_list = tuple(
        Run(run_id=f"run-{n + 1}", trigger_time=trigger_time + n * run_spacing, attempts=tuple(recorded))
        for n in range(runs)
    )
    return Trace(
        trace_id=trace_id,
        definition=wf,
        runs=run_list,
        subworkflows=subs,
        metadata=TraceMetadata(owner="tests", source="testing"),
    )


def chain_trace(n: int = 3, **kw: object) -> Trace:
    """``s1 -> s2 -> ... -> sn``."""
    ids = [f"s{i}" for i in range(1, n + 1)]
    steps = [leaf(s, *ids[i + 1 : i + 2]) for i, s in enumerate(ids)]
    return make_trace(steps, **kw)  # type: ignore[arg-type]


def diamond_trace(**kw: object) -> Trace:
    """``a -> (b, c) -> d``."""
    steps = [leaf("a", "b", "c"), leaf("b", "d"), leaf("c", "d"), leaf("d")]
    return make_trace(steps, **kw)  # type: ignore[arg-type]


def fanout_trace(width: int = 5, **kw: object) -> Trace:
    """``start -> w1..w<width> -> join``."""
    wide = [f"w{i}" for i in range(1, width + 1)]
    steps = [leaf("start", *wide), *(leaf(w, "join") for w in wide), leaf("join")]
    return make_trace(steps, **kw)  # type: ignore[arg-type]


def foreach_trace(iterations: int = 3, *, concurrency: int | None = None, **kw: object) -> Trace:
    """``prepare -> fan (foreach over range(0, iterations): inner) -> done``."""
    fan = Step(
        id="fan",
        type=StepType.FOREACH,
        transitions=(Transition("done"),),
        foreach=Foreach(
            loop_params={"i": Param(expression=f"range(0, {iterations})")},
            steps=(leaf("inner"),),
            concurrency=concurrency,
        ),
    )
    steps = [leaf("prepare", "fan"), fan, leaf("done")]
    return make_trace(steps, iterations={"fan": iterations}, **kw)  # type: ignore[arg-type]


def subworkflow_trace(child_steps: int = 2, **kw: object) -> Trace:
    """``before -> call (child workflow: c1 -> ... -> cN) -> after``."""
    ids = [f"c{i}" for i in range(1, child_steps + 1)]
    child = WorkflowDefinition(
        id="child", steps=tuple(leaf(s, *ids[i + 1 : i + 2]) for i, s in enumerate(ids))
    )
    call = Step(
        id="call",
        type=StepType.SUBWORKFLOW,
        transitions=(Transition("after"),),
        subworkflow=Subworkflow("child"),
    )
    steps = [leaf("before", "call"), call, leaf("after")]
    return make_trace(steps, subworkflows={"child": child}, **kw)  # type: ignore[arg-type]


def json_slots(data: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every position in a JSON value as a key/index path (the root is ``()``): where a mutation can go."""
    out = [path]
    if isinstance(data, dict):
        for k, v in data.items():
            out += json_slots(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += json_slots(v, (*path, i))
    return out
