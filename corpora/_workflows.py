"""Workflow definitions for the built-in corpus, plus the facts the run generator needs about them.

A :class:`Blueprint` is one generated definition (top-level DAG, foreach bodies, subworkflow
definitions) with, per leaf step path, the resolved retry policy, step timeout and typical duration,
the conditional branches and the foreach iteration counts. Runs are generated from it in
:mod:`corpora.generator`.

Features added after the first version (nested foreach, workflow ``step_concurrency``, subworkflows
started without waiting, failure modes of inner and subworkflow steps, params whose names collide
across the workflow, foreach-iteration and subworkflow scopes) draw from a second random stream,
``extra``, so that adding them left the rest of every trace as it was.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import networkx as nx

from corpora._conditions import WORKFLOW_PARAMS, Branch, choose_branch
from corpora._dags import make_shape
from corpora._plans import ResolvedRetry, choose_retry_policy, with_timeout_retries
from corpora._timeline import container_limit
from corpora.model import (
    FailureMode,
    Foreach,
    Param,
    Step,
    StepType,
    Subworkflow,
    Transition,
    WorkflowDefinition,
)

__all__ = ["Blueprint", "LeafInfo", "build_blueprint"]

LOOP_BATCH_LIMIT = 50  # iterations a foreach launches per call at most (engines.core.children)

SHAPE_CYCLE = ("chain", "fan_out_in", "diamonds", "random_dag", "layered", "random_dag")
LEAF_TYPES = (StepType.KUBERNETES, StepType.SHELL, StepType.NOTEBOOK, StepType.HTTP, StepType.NOOP)
VERBS = (
    "extract",
    "transform",
    "load",
    "validate",
    "aggregate",
    "publish",
    "train",
    "score",
    "export",
    "clean",
    "join",
    "dedupe",
    "enrich",
    "index",
    "notify",
    "archive",
    "check",
    "compact",
)
TEAMS = ("data-platform", "ml-infra", "growth-analytics", "content-eng", "payments-data", "studio-ops")
TYPES = ("etl", "ml-training", "reporting", "ingest", "backfill")
TAGS = ("daily", "hourly", "critical", "pii", "experimental", "sla-4h")
FAILURE_MODES = (
    None,
    None,
    None,
    FailureMode.FAIL_IMMEDIATELY,
    FailureMode.FAIL_AFTER_RUNNING,
    FailureMode.IGNORE_FAILURE,
)
#: Failure modes of steps whose failure is never placed in a quiet gap (inner steps, containers):
#: FAIL_IMMEDIATELY there would stop siblings at a moment that depends on the engine's latency.
SAFE_FAILURE_MODES = (None, None, FailureMode.FAIL_AFTER_RUNNING, FailureMode.IGNORE_FAILURE)
NESTED_FOREACH_RATE = 0.3
ASYNC_SUBWORKFLOW_RATE = 0.35
STEP_CONCURRENCY_RATE = 0.3
COLLIDING_PARAMS_RATE = 0.3
#: Run params of a subworkflow child that the parent's workflow params (same names) override.
CHILD_PARAMS: dict[str, Param] = {
    "env": Param(value="child-default"),
    "threshold": Param(value=1),
    "output_path": Param(value="s3://child/${env}/out"),
}


@dataclass(frozen=True, slots=True)
class LeafInfo:
    retry: ResolvedRetry
    timeout: float | None
    median: float
    top_level: bool


@dataclass(slots=True)
class Blueprint:
    shape: str
    graph: nx.DiGraph[int]
    graph_by_id: nx.DiGraph[str]
    definition: WorkflowDefinition
    subworkflows: dict[str, WorkflowDefinition]
    top: dict[str, Step]
    branches: dict[str, Branch]
    leaf_paths: dict[str, LeafInfo]
    iterations: dict[str, int]
    failable: list[str]
    #: leaf paths inside foreach iterations or subworkflows whose failure is race-free (see _inner_failable)
    failable_inner: list[str]
    plain_leaves: list[str]
    multi_run: bool
    size: int
    nesting: int
    owner: str
    workflow_type: str
    tags: tuple[str, ...] = ()
    configs: dict[tuple[str, str], LeafInfo] = field(default_factory=dict)
    has_async: bool = False


def _size(rng: random.Random, index: int, median: int, maximum: int) -> int:
    if index % 100 == 37:
        return rng.randint(min(800, maximum), maximum)
    if rng.random() < 0.03:
        return rng.randint(min(120, maximum), min(600, maximum))
    return max(3, min(120, maximum, round(rng.lognormvariate(math.log(median), 0.75))))


class _Builder:
    def __init__(self, rng: random.Random, index: int, extra: random.Random) -> None:
        self.rng = rng
        self.extra = extra
        self.index = index
        self.params: dict[str, Param] = dict(WORKFLOW_PARAMS)
        self.with_timeouts = rng.random() < 0.3 or index % 10 == 4
        self.configs: dict[tuple[str, str], LeafInfo] = {}

    def leaf(self, scope: str, step_id: str, transitions: tuple[Transition, ...], top_level: bool) -> Step:
        rng = self.rng
        policy, retry = choose_retry_policy(rng, self.params)
        timeout: float | None = None
        if self.with_timeouts and rng.random() < 0.2:
            timeout = float(rng.choice([600, 900, 1800, 3600]))
            if rng.random() < 0.4:
                policy, retry = with_timeout_retries(policy, retry, rng.randint(1, 2))
        params: dict[str, Param] = {}
        roll = rng.random()
        if roll < 0.15:
            params["table"] = Param(value=f"warehouse.{step_id}_${{env}}")
        elif roll < 0.25:
            params["batch_size"] = Param(
                expression=rng.choice(["threshold * 2", "max(threshold, 10)", "threshold + 5"])
            )
        median = min(max(rng.lognormvariate(math.log(90.0), 1.0), 5.0), 3600.0)
        self.configs[(scope, step_id)] = LeafInfo(retry, timeout, median, top_level)
        step = Step(
            id=step_id,
            type=rng.choice(LEAF_TYPES),
            params=params,
            transitions=transitions,
            retry_policy=policy,
            timeout=int(timeout) if timeout is not None else None,
            failure_mode=rng.choice(FAILURE_MODES) if top_level else None,
            tags=tuple(rng.sample(TAGS, k=1)) if rng.random() < 0.1 else (),
        )
        if top_level:
            return step
        # inner steps: a failure mode of their own, and step params shadowing the workflow params of the
        # same name (no edge condition reads them: inner transitions are unconditional)
        extra = self.extra
        shadowing = dict(params)
        if extra.random() < COLLIDING_PARAMS_RATE:
            shadowing["threshold"] = Param(value=extra.choice([3, 7, 250]))
            if "table" not in shadowing:
                shadowing["table"] = Param(value=f"warehouse.{step_id}_${{env}}")
        return replace(step, params=shadowing, failure_mode=extra.choice(SAFE_FAILURE_MODES))

    def small_scope(
        self, scope: str, prefix: str, allow_foreach: bool, inner_foreach: bool = False
    ) -> tuple[tuple[Step, ...], int]:
        """A chain or diamond of 1-6 leaves (optionally with a foreach inside: a subworkflow's body with
        ``allow_foreach``, a foreach body with ``inner_foreach``, which makes a nested foreach); returns
        (steps, depth)."""
        rng = self.rng
        n = rng.randint(1, 3) if not allow_foreach else rng.randint(2, 6)
        graph = make_shape(rng.choice(["chain", "diamonds"]), n, rng)
        ids = [f"{prefix}{VERBS[(i * 7 + n) % len(VERBS)]}_{i}" for i in range(n)]
        foreach_at = rng.randrange(n) if allow_foreach and rng.random() < 0.4 else None
        if inner_foreach:
            foreach_at = self.extra.randrange(n)
        steps: list[Step] = []
        for i in range(n):
            transitions = tuple(Transition(ids[v]) for v in sorted(graph.successors(i)))
            if i == foreach_at:
                steps.append(
                    self.foreach(scope, ids[i], transitions, nested=True, inside_foreach=inner_foreach)
                )
            else:
                steps.append(self.leaf(scope, ids[i], transitions, top_level=False))
        return tuple(steps), nx.dag_longest_path_length(graph) + 1 + (3 if foreach_at is not None else 0)

    def foreach(
        self, scope: str, step_id: str, transitions: tuple[Transition, ...], nested: bool,
        inside_foreach: bool = False, branch_source: bool = False,
    ) -> Step:  # fmt: skip
        """A foreach step. ``nested``: inside a subworkflow or a foreach body (fewer iterations);
        ``inside_foreach``: inside a foreach body (its body gets no further foreach); ``branch_source``:
        its out-edges carry conditions on workflow params, so its own params must not shadow them."""
        rng, extra = self.rng, self.extra
        nest = not inside_foreach and extra.random() < NESTED_FOREACH_RATE
        body, _ = self.small_scope(f"{scope}/{step_id}", "", allow_foreach=False, inner_foreach=nest)
        roll = rng.random()
        loop: dict[str, Param]
        if roll < 0.4:
            k = rng.randint(2, 5)
            loop = {"region": Param(value=[f"region-{j}" for j in range(k)])}
        elif roll < 0.8:
            lo = rng.randint(0, 3)
            loop = {"shard": Param(expression=f"range({lo}, {lo + rng.randint(2, 12 if not nested else 4)})")}
        else:
            loop = {"shard": Param(expression="range(0, 3)"), "region": Param(value=["us", "eu"])}
        if not nested and rng.random() < 0.05:
            loop = {"partition": Param(expression=f"range(0, {rng.randint(40, 80)})")}
        if nest or inside_foreach:  # iterations multiply: keep both levels small
            loop = {"shard": Param(expression=f"range(0, {extra.randint(2, 3)})")}
        params: dict[str, Param] = {}
        if extra.random() < COLLIDING_PARAMS_RATE:
            # the loop variable takes the name of a workflow param: each iteration sees its own env
            first, *rest = loop.items()
            loop = {"env": Param(value=[f"env-{j}" for j in range(_count(first[1]))]), **dict(rest)}
        if not branch_source and extra.random() < COLLIDING_PARAMS_RATE:
            params["threshold"] = Param(value=extra.choice([5, 40, 900]))  # passed down into every iteration
        concurrency = rng.choice([None, 1, 2, 3, 5, 10])
        return Step(
            id=step_id,
            type=StepType.FOREACH,
            transitions=transitions,
            params=params,
            foreach=Foreach(
                loop,
                body,
                concurrency=concurrency,
                strict_ordering=concurrency is not None and rng.random() < 0.2,
            ),
        )


def _count(param: Param) -> int:
    """The length of one loop param: a literal list or ``range(lo, hi)``."""
    if isinstance(param.value, list):
        return len(param.value)
    assert param.expression is not None
    assert param.expression.startswith("range(")
    lo, hi = (int(x) for x in param.expression[len("range(") : -1].split(","))
    return max(0, hi - lo)


def _iteration_count(step: Step) -> int:
    assert step.foreach is not None
    return math.prod(_count(param) for param in step.foreach.loop_params.values())


def build_blueprint(
    rng: random.Random, index: int, median_steps: int, max_steps: int, extra: random.Random
) -> Blueprint:
    """The definition of trace ``index``: structure from ``rng``, later features from ``extra``."""
    b = _Builder(rng, index, extra)
    shape = SHAPE_CYCLE[index % len(SHAPE_CYCLE)]
    n = _size(rng, index, median_steps, max_steps)
    if shape == "diamonds":
        n = max(n, 4)
    graph = make_shape(shape, n, rng)
    ids = [f"{VERBS[i % len(VERBS)]}_{i}" for i in range(n)]
    with_foreach = rng.random() < 0.3 or index % 10 == 3
    with_sub = rng.random() < 0.25 or index % 10 == 6
    conditional = rng.random() < 0.4 or index % 10 == 8
    kinds = ["leaf"] * n
    if with_foreach:
        for i in rng.sample(range(n), k=min(n, rng.randint(1, 2))):
            kinds[i] = "foreach"
    subworkflows: dict[str, WorkflowDefinition] = {}
    nesting = 3 if with_foreach else 0
    if with_sub:
        for j in range(rng.randint(1, 2)):
            child_id = f"wf-child-{index}-{j}"
            steps, depth = b.small_scope(child_id, "c_", allow_foreach=True)
            params = dict(CHILD_PARAMS) if extra.random() < COLLIDING_PARAMS_RATE else {}
            limit = None
            if any(s.foreach is not None for s in steps) and extra.random() < STEP_CONCURRENCY_RATE:
                limit = extra.choice([2, 3])
            subworkflows[child_id] = WorkflowDefinition(
                id=child_id, steps=steps, params=params, step_concurrency=limit
            )
            nesting = max(nesting, depth)
        for i in rng.sample([i for i in range(n) if kinds[i] == "leaf"] or [0], k=1):
            kinds[i] = "sub"
    branches: dict[str, Branch] = {}
    top: dict[str, Step] = {}
    for i in range(n):
        succ = [ids[v] for v in sorted(graph.successors(i))]
        branch = None
        if conditional and succ and rng.random() < 0.3:
            branch = choose_branch(rng, ids[i], len(succ), kinds[i] == "leaf")
            branches[ids[i]] = branch
        transitions = tuple(
            Transition(to, branch.conditions[k] if branch else None) for k, to in enumerate(succ)
        )
        if kinds[i] == "foreach":
            step = b.foreach("", ids[i], transitions, nested=False, branch_source=branch is not None)
            step = Step(
                **{**{f: getattr(step, f) for f in step.__slots__}, "failure_mode": rng.choice(FAILURE_MODES)}
            )
        elif kinds[i] == "sub":
            sync = not (index % 20 == 16 or extra.random() < ASYNC_SUBWORKFLOW_RATE)
            shadowing = (
                {}
                if branch is not None or extra.random() >= COLLIDING_PARAMS_RATE
                else {"env": Param(value="from-step")}
            )  # the child's env: over the parent's and the child's own
            step = Step(
                id=ids[i],
                type=StepType.SUBWORKFLOW,
                transitions=transitions,
                params=shadowing,
                subworkflow=Subworkflow(rng.choice(sorted(subworkflows)), sync=sync),
                failure_mode=extra.choice(SAFE_FAILURE_MODES),
            )
        else:
            step = b.leaf("", ids[i], transitions, top_level=True)
        top[ids[i]] = step
    step_concurrency = None
    if with_foreach and extra.random() < STEP_CONCURRENCY_RATE:
        step_concurrency = extra.choice([2, 3, 4, 8])
    definition = WorkflowDefinition(
        id=f"wf-{index}-{shape}",
        steps=tuple(top.values()),
        params=b.params,
        step_concurrency=step_concurrency,
    )
    leaf_paths: dict[str, LeafInfo] = {}
    iterations: dict[str, int] = {}
    containers: dict[str, tuple[Step, int | None]] = {}
    _expand(
        definition.steps,
        "",
        "",
        subworkflows,
        b.configs,
        leaf_paths,
        iterations,
        containers,
        step_concurrency,
    )
    if any(_has_nested_foreach(s) for wf in (definition, *subworkflows.values()) for s in wf.steps):
        nesting += 3
    graph_by_id: nx.DiGraph[str] = nx.relabel_nodes(graph, dict(enumerate(ids)))
    failable = [
        sid
        for sid, step in top.items()
        if step.type.is_leaf
        and not (sid in branches and branches[sid].reads_outputs)
        and not (step.timeout is not None and step.failure_mode is FailureMode.FAIL_IMMEDIATELY)
    ]
    plain = [sid for sid, step in top.items() if step.type.is_leaf and step.timeout is None]
    return Blueprint(
        shape=shape,
        graph=graph,
        graph_by_id=graph_by_id,
        definition=definition,
        subworkflows=subworkflows,
        top=top,
        branches=branches,
        leaf_paths=leaf_paths,
        iterations=iterations,
        failable=failable,
        failable_inner=[path for path in leaf_paths if "/" in path and _inner_failable(path, containers)],
        has_async=any(s.subworkflow is not None and not s.subworkflow.sync for s in top.values()),
        plain_leaves=plain,
        multi_run=n <= 200 and (rng.random() < 0.35 or index % 5 == 1),
        size=n,
        nesting=nesting,
        owner=rng.choice(TEAMS),
        workflow_type=rng.choice(TYPES),
        tags=tuple(rng.sample(TAGS, k=rng.randint(0, 2))),
        configs=b.configs,
    )


def _expand(
    steps: Sequence[Step],
    scope: str,
    prefix: str,
    subs: dict[str, WorkflowDefinition],
    configs: dict[tuple[str, str], LeafInfo],
    out: dict[str, LeafInfo],
    iterations: dict[str, int],
    containers: dict[str, tuple[Step, int | None]],
    step_concurrency: int | None,
) -> None:
    """Every leaf path of a run, in definition order, with the facts of its step definition; every
    container path (foreach, subworkflow) with its step and its workflow's ``step_concurrency``."""
    for step in steps:
        path = prefix + step.id
        if step.foreach is not None:
            count = _iteration_count(step)
            iterations[path] = count
            containers[path] = (step, step_concurrency)
            for i in range(count):
                _expand(
                    step.foreach.steps,
                    f"{scope}/{step.id}",
                    f"{path}[{i}]/",
                    subs,
                    configs,
                    out,
                    iterations,
                    containers,
                    None,
                )  # a foreach body is an inline workflow without a limit of its own
        elif step.subworkflow is not None:
            child = subs[step.subworkflow.workflow_id]
            containers[path] = (step, step_concurrency)
            _expand(
                child.steps,
                child.id,
                f"{path}/",
                subs,
                configs,
                out,
                iterations,
                containers,
                child.step_concurrency,
            )
        else:
            out[path] = configs[(scope, step.id)]


def _has_nested_foreach(step: Step, inside: bool = False) -> bool:
    if step.foreach is None:
        return False
    return inside or any(_has_nested_foreach(s, True) for s in step.foreach.steps)


def _inner_failable(path: str, containers: dict[str, tuple[Step, int | None]]) -> bool:
    """Whether the leaf at ``path`` (inside foreach iterations / subworkflows) can fail for good without
    a race. Its own failure mode is never FAIL_IMMEDIATELY (inner leaves draw from SAFE_FAILURE_MODES),
    so its siblings run on. Every enclosing container must be just as calm: no FAIL_IMMEDIATELY (which
    would stop the container's siblings at a latency-dependent moment), and a foreach must launch all
    its iterations in its first call (at most its concurrency limit and the 50-per-call batch): a failed
    iteration stops further launches, and which iterations were launched by then would depend on when
    each engine noticed the failure."""
    segments = path.split("/")[:-1]
    container = ""
    for segment in segments:
        step, step_concurrency = containers[container + segment.split("[", 1)[0]]
        if step.failure_mode is FailureMode.FAIL_IMMEDIATELY:
            return False
        if step.foreach is not None:
            count = _iteration_count(step)
            if count > min(container_limit(step, step_concurrency), LOOP_BATCH_LIMIT):
                return False
        container += segment + "/"
    return True
