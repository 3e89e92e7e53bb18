"""Workflow definitions for the built-in corpus, plus the facts the run generator needs about them.

A :class:`Blueprint` is one generated definition (top-level DAG, foreach bodies, subworkflow
definitions) with, per leaf step path, the resolved retry policy, step timeout and typical duration,
the conditional branches and the foreach iteration counts. Runs are generated from it in
:mod:`corpora.generator`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx

from corpora._conditions import WORKFLOW_PARAMS, Branch, choose_branch
from corpora._dags import make_shape
from corpora._plans import ResolvedRetry, choose_retry_policy, with_timeout_retries
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

SHAPE_CYCLE = ("chain", "fan_out_in", "diamonds", "random_dag", "layered", "random_dag")
LEAF_TYPES = (StepType.KUBERNETES, StepType.SHELL, StepType.NOTEBOOK, StepType.HTTP, StepType.NOOP)
VERBS = ("extract", "transform", "load", "validate", "aggregate", "publish", "train", "score", "export",
         "clean", "join", "dedupe", "enrich", "index", "notify", "archive", "check", "compact")
TEAMS = ("data-platform", "ml-infra", "growth-analytics", "content-eng", "payments-data", "studio-ops")
TYPES = ("etl", "ml-training", "reporting", "ingest", "backfill")
TAGS = ("daily", "hourly", "critical", "pii", "experimental", "sla-4h")
FAILURE_MODES = (None, None, None, FailureMode.FAIL_IMMEDIATELY, FailureMode.FAIL_AFTER_RUNNING,
                 FailureMode.IGNORE_FAILURE)


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
    plain_leaves: list[str]
    multi_run: bool
    size: int
    nesting: int
    owner: str
    workflow_type: str
    tags: tuple[str, ...] = ()
    configs: dict[tuple[str, str], LeafInfo] = field(default_factory=dict)


def _size(rng: random.Random, index: int, median: int, maximum: int) -> int:
    if index % 100 == 37:
        return rng.randint(min(800, maximum), maximum)
    if rng.random() < 0.03:
        return rng.randint(min(120, maximum), min(600, maximum))
    return max(3, min(120, maximum, round(rng.lognormvariate(math.log(median), 0.75))))


class _Builder:
    def __init__(self, rng: random.Random, index: int) -> None:
        self.rng = rng
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
            params["batch_size"] = Param(expression=rng.choice(["threshold * 2", "max(threshold, 10)", "threshold + 5"]))
        median = min(max(rng.lognormvariate(math.log(90.0), 1.0), 5.0), 3600.0)
        self.configs[(scope, step_id)] = LeafInfo(retry, timeout, median, top_level)
        return Step(
            id=step_id, type=rng.choice(LEAF_TYPES), params=params, transitions=transitions,
            retry_policy=policy, timeout=int(timeout) if timeout is not None else None,
            failure_mode=rng.choice(FAILURE_MODES) if top_level else None,
            tags=tuple(rng.sample(TAGS, k=1)) if rng.random() < 0.1 else (),
        )

    def small_scope(self, scope: str, prefix: str, allow_foreach: bool) -> tuple[tuple[Step, ...], int]:
        """A chain or diamond of 1-6 leaves (optionally with a foreach inside); returns (steps, depth)."""
        rng = self.rng
        n = rng.randint(1, 3) if not allow_foreach else rng.randint(2, 6)
        graph = make_shape(rng.choice(["chain", "diamonds"]), n, rng)
        ids = [f"{prefix}{VERBS[(i * 7 + n) % len(VERBS)]}_{i}" for i in range(n)]
        foreach_at = rng.randrange(n) if allow_foreach and rng.random() < 0.4 else None
        steps: list[Step] = []
        for i in range(n):
            transitions = tuple(Transition(ids[v]) for v in sorted(graph.successors(i)))
            if i == foreach_at:
                steps.append(self.foreach(scope, ids[i], transitions, nested=True))
            else:
                steps.append(self.leaf(scope, ids[i], transitions, top_level=False))
        return tuple(steps), nx.dag_longest_path_length(graph) + 1 + (3 if foreach_at is not None else 0)

    def foreach(self, scope: str, step_id: str, transitions: tuple[Transition, ...], nested: bool) -> Step:
        rng = self.rng
        body, _ = self.small_scope(f"{scope}/{step_id}", "", allow_foreach=False)
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
        concurrency = rng.choice([None, 1, 2, 3, 5, 10])
        return Step(
            id=step_id, type=StepType.FOREACH, transitions=transitions,
            foreach=Foreach(loop, body, concurrency=concurrency,
                            strict_ordering=concurrency is not None and rng.random() < 0.2),
        )


def _iteration_count(step: Step) -> int:
    assert step.foreach is not None
    count = 1
    for param in step.foreach.loop_params.values():
        if isinstance(param.value, list):
            count *= len(param.value)
        else:
            assert param.expression is not None
            assert param.expression.startswith("range(")
            lo, hi = (int(x) for x in param.expression[len("range("):-1].split(","))
            count *= max(0, hi - lo)
    return count


def build_blueprint(rng: random.Random, index: int, median_steps: int, max_steps: int) -> Blueprint:
    b = _Builder(rng, index)
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
            subworkflows[child_id] = WorkflowDefinition(id=child_id, steps=steps)
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
            step = b.foreach("", ids[i], transitions, nested=False)
            step = Step(**{**{f: getattr(step, f) for f in step.__slots__}, "failure_mode": rng.choice(FAILURE_MODES)})
        elif kinds[i] == "sub":
            step = Step(id=ids[i], type=StepType.SUBWORKFLOW, transitions=transitions,
                        subworkflow=Subworkflow(rng.choice(sorted(subworkflows))))
        else:
            step = b.leaf("", ids[i], transitions, top_level=True)
        top[ids[i]] = step
    definition = WorkflowDefinition(id=f"wf-{index}-{shape}", steps=tuple(top.values()), params=b.params)
    leaf_paths: dict[str, LeafInfo] = {}
    iterations: dict[str, int] = {}
    _expand(definition.steps, "", "", subworkflows, b.configs, leaf_paths, iterations)
    graph_by_id: nx.DiGraph[str] = nx.relabel_nodes(graph, dict(enumerate(ids)))
    failable = [
        sid for sid, step in top.items()
        if step.type.is_leaf and not (sid in branches and branches[sid].reads_outputs)
        and not (step.timeout is not None and step.failure_mode is FailureMode.FAIL_IMMEDIATELY)
    ]
    plain = [sid for sid, step in top.items() if step.type.is_leaf and step.timeout is None]
    return Blueprint(
        shape=shape, graph=graph, graph_by_id=graph_by_id, definition=definition, subworkflows=subworkflows,
        top=top, branches=branches, leaf_paths=leaf_paths, iterations=iterations, failable=failable,
        plain_leaves=plain, multi_run=n <= 200 and (rng.random() < 0.35 or index % 5 == 1), size=n,
        nesting=nesting, owner=rng.choice(TEAMS), workflow_type=rng.choice(TYPES),
        tags=tuple(rng.sample(TAGS, k=rng.randint(0, 2))), configs=b.configs,
    )


def _expand(
    steps: Sequence[Step], scope: str, prefix: str, subs: dict[str, WorkflowDefinition],
    configs: dict[tuple[str, str], LeafInfo], out: dict[str, LeafInfo], iterations: dict[str, int],
) -> None:
    """Every leaf path of a run, in definition order, with the facts of its step definition."""
    for step in steps:
        path = prefix + step.id
        if step.foreach is not None:
            count = _iteration_count(step)
            iterations[path] = count
            for i in range(count):
                _expand(step.foreach.steps, f"{scope}/{step.id}", f"{path}[{i}]/", subs, configs, out, iterations)
        elif step.subworkflow is not None:
            child = subs[step.subworkflow.workflow_id]
            _expand(child.steps, child.id, f"{path}/", subs, configs, out, iterations)
        else:
            out[path] = configs[(scope, step.id)]
