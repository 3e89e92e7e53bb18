"""The built-in corpus: seeded, realistic, race-free synthetic traces.

``generate_corpus(seed, count)`` yields ``count`` traces. Trace ``i`` draws from its own
``random.Random(f"{seed}:{i}")`` (never the global generator), so the same seed gives byte-identical
files and any prefix of a corpus equals a smaller corpus. The mix (see :mod:`corpora._dags`,
:mod:`corpora._plans`, :mod:`corpora._conditions`): chains, fan-out/fan-in, diamonds, layered and random
DAGs of 3 to 2,000 steps (median about 15); conditional branches; retries after user, platform and
timeout errors under default, fixed, exponential and param-driven policies; step timeouts, with attempts
far from them and, in small traces, close to them; all three failure modes; foreach with concurrency,
under a workflow ``step_concurrency``, and nested in a foreach body; subworkflows (some with a foreach
inside, some started without waiting); failures for good at the top level, inside foreach iterations
and inside subworkflows; params whose names collide across the workflow, foreach-iteration and
subworkflow scopes (step params shadowing workflow params, a loop variable named like a workflow param,
a child's own params overridden by the parent's); several runs under each run strategy; lognormal
durations from seconds to hours. Every feature of :data:`corpora.coverage.FEATURES` occurs in the main
job's corpus (seed 1, 200 traces; ``tests/corpora/test_coverage.py``).

Race-freedom: both engines replay these traces and must agree, yet their orchestration latency differs
by seconds. So every attempt an engine could ask for is recorded (even on branches that end up not
running), a FAIL_IMMEDIATELY failure is placed at least a margin away from every other attempt start or
end (:mod:`corpora._timeline`), overlapping runs under FIRST_ONLY / LAST_ONLY arrive seconds apart
while the first run is minutes from its first step end, and a workflow timeout is either far above the
run or mid-way through a long step with the same margin. A step attempt ends either at least 120 s from
its step timeout or, near it (timeouts up to 900 s), at least 20 s before (in traces too small for the
legacy engine's queue to delay noticing the end by that much) or anywhere past it (an engine checks the timeout before the
runtime's result, so any overrun times out on every engine). A failure inside a foreach iteration or a
subworkflow is never FAIL_IMMEDIATELY, in no container that is FAIL_IMMEDIATELY, and only in foreach
steps that launch every iteration in their first call, so no engine's latency decides which siblings
or iterations still run. A subworkflow started without waiting never shares a trace with overlapping
runs (a LAST_ONLY stop would race its launch). Decisions for features added later draw from a second
seeded stream per trace (``extra``), so that adding them left the rest of the corpus unchanged.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

import networkx as nx

from corpora._conditions import run_param_overrides
from corpora._plans import TIMEOUT_MARGIN, LeafPlan, ResolvedRetry, plan_leaf
from corpora._timeline import RunPlan, StepState, Timeline, find_gap, simulate
from corpora._workflows import Blueprint, build_blueprint
from corpora.model import (
    FailureMode,
    JsonValue,
    Outcome,
    RecordedAttempt,
    Run,
    RunStrategy,
    RunStrategyRule,
    Trace,
    TraceMetadata,
)

__all__ = ["GeneratorConfig", "generate_corpus", "generate_trace"]


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """Knobs of the built-in corpus. The defaults are what ``shadow corpus generate`` writes."""

    median_steps: int = 15
    max_steps: int = 2000
    start_epoch: float = 1_704_067_200.0  # 2024-01-01T00:00:00Z
    failing_run_rate: float = 0.25
    #: base distance between a race-prone moment and any other event; grows with DAG depth
    race_margin: float = 300.0


def generate_corpus(seed: int, count: int, config: GeneratorConfig | None = None) -> Iterator[Trace]:
    """Yield ``count`` traces; the same ``seed`` always yields the same traces."""
    cfg = config or GeneratorConfig()
    for index in range(count):
        yield generate_trace(seed, index, cfg)


def generate_trace(seed: int, index: int, config: GeneratorConfig | None = None) -> Trace:
    """Trace number ``index`` of the corpus for ``seed`` (independent of every other index)."""
    cfg = config or GeneratorConfig()
    rng = random.Random(f"shadow-corpus:{seed}:{index}")
    extra = random.Random(f"shadow-corpus-extra:{seed}:{index}")
    blueprint = build_blueprint(rng, index, cfg.median_steps, cfg.max_steps, extra)
    return _TraceAssembly(rng, extra, index, seed, blueprint, cfg).build()


RULES = tuple(RunStrategyRule)
#: Of the failing runs of a trace with race-free inner leaves, the share that fails inside a foreach
#: iteration or a subworkflow rather than at the top level.
INNER_FAILURE_SHARE = 0.5
#: Near-timeout attempts only in traces with at most this many leaf paths per run: the legacy engine's
#: single worker queue stays short enough to notice a job's end well within NEAR_TIMEOUT_MARGIN.
NEAR_TIMEOUT_MAX_LEAVES = 80


class _TraceAssembly:
    """Turns a :class:`Blueprint` (definition plus per-step generation facts) into runs and a trace."""

    def __init__(
        self,
        rng: random.Random,
        extra: random.Random,
        index: int,
        seed: int,
        blueprint: Blueprint,
        cfg: GeneratorConfig,
    ) -> None:
        self.rng, self.extra, self.index, self.seed, self.bp, self.cfg = (
            rng,
            extra,
            index,
            seed,
            blueprint,
            cfg,
        )
        depth = nx.dag_longest_path_length(blueprint.graph) + 1 + blueprint.nesting
        self.margin = cfg.race_margin + 10.0 * depth

    def build(self) -> Trace:
        rng, bp = self.rng, self.bp
        n_runs = 1
        rule = RunStrategyRule.SEQUENTIAL
        if bp.multi_run:
            n_runs = rng.randint(2, 4)
            rule = RULES[(self.index // 5) % len(RULES)] if self.index % 5 == 1 else rng.choice(RULES)
        overlap = n_runs > 1 and rng.random() < (
            0.6 if rule in (RunStrategyRule.FIRST_ONLY, RunStrategyRule.LAST_ONLY) else 0.3
        )
        overlap = overlap and not bp.has_async
        offsets = [0.0]
        for _ in range(n_runs - 1):
            offsets.append(round(offsets[-1] + rng.uniform(3.0, 12.0), 3))
        wants_midway = n_runs == 1 and rng.random() < 0.12
        plans: list[tuple[dict[str, JsonValue], RunPlan]] = []
        for r in range(n_runs):
            params = run_param_overrides(rng) if r > 0 or rng.random() < 0.3 else {}
            failing = not wants_midway and rng.random() < self.cfg.failing_run_rate and bool(bp.failable)
            plan = self._plan_run(params, failing, long_step=wants_midway)
            if overlap and r < n_runs - 1:
                plan = self._stretch_roots(plan, offsets[-1])
            plans.append((params, self._place_failure(plan)))
        timelines = [simulate(bp.definition, bp.subworkflows, p) for _, p in plans]
        if overlap and any(_first_end(t) < offsets[-1] + self.cfg.race_margin for t in timelines[:-1]):
            overlap = False  # could not make the first run last long enough: space the runs out instead
        if not overlap:
            offsets = [0.0]
            for t in timelines[:-1]:
                gap = max(t.end, t.detached_end) + 10.0 * bp.size + rng.uniform(2.0, 8.0) * 3600.0
                offsets.append(round(offsets[-1] + gap, 3))
        definition = bp.definition
        concurrency = rng.choice([2, 3]) if rule is RunStrategyRule.PARALLEL else None
        timeout = self._workflow_timeout(timelines, wants_midway)
        definition = replace(definition, run_strategy=RunStrategy(rule, concurrency), timeout=timeout)
        base = self.cfg.start_epoch + rng.uniform(0, 90 * 86400.0)
        runs = tuple(
            Run(
                run_id=f"run-{r + 1}",
                trigger_time=round(base + offsets[r], 3),
                params=params,
                initiator=rng.choice(["time-trigger", "time-trigger", "manual", "signal"]),
                attempts=self._attempts(plan),
            )
            for r, (params, plan) in enumerate(plans)
        )
        captured = dt.datetime.fromtimestamp(base + offsets[-1] + 86400.0, tz=dt.UTC).isoformat(
            timespec="seconds"
        )
        metadata = TraceMetadata(
            owner=bp.owner,
            tags=(f"shape:{bp.shape}", *bp.tags),
            workflow_type=bp.workflow_type,
            source="generator",
            captured_at=captured.replace("+00:00", "Z"),
        )
        return Trace(
            trace_id=f"gen-{self.seed}-{self.index:05d}",
            definition=definition,
            runs=runs,
            metadata=metadata,
            subworkflows=bp.subworkflows,
        )

    # -- runs ---------------------------------------------------------------------------------

    def _plan_run(self, params: dict[str, JsonValue], failing: bool, long_step: bool) -> RunPlan:
        rng, bp = self.rng, self.bp
        edges: dict[tuple[str, str], bool] = {}
        outputs: dict[str, dict[str, JsonValue]] = {}
        for source, branch in bp.branches.items():
            truths, outs = branch.decide(rng, params)
            step = bp.top[source]
            for transition, truth in zip(step.transitions, truths, strict=True):
                edges[(source, transition.to)] = truth
            outputs[source] = outs
        terminal = rng.choice(bp.failable) if failing else None
        if failing and bp.failable_inner and self.extra.random() < INNER_FAILURE_SHARE:
            terminal = self.extra.choice(bp.failable_inner)  # inside a foreach iteration or a subworkflow
        long_path = rng.choice(bp.plain_leaves) if long_step and bp.plain_leaves else None
        near = self.extra if len(bp.leaf_paths) <= NEAR_TIMEOUT_MAX_LEAVES else None
        leaves: dict[str, LeafPlan] = {}
        for path, info in bp.leaf_paths.items():
            retry: ResolvedRetry = info.retry
            if path == terminal:
                kind = "timed_out" if info.timeout is not None and rng.random() < 0.5 else "fail"
            elif rng.random() < (0.15 if info.top_level else 0.08):
                kind = "retry"
            else:
                kind = "ok"
            plan = plan_leaf(
                rng,
                kind,
                retry,
                timeout=info.timeout,
                median=info.median,
                outputs=outputs.get(path),
                near=near,
            )
            if path == long_path:  # a step of hours, so a workflow timeout can fire mid-way through it
                plan = replace(
                    plan,
                    durations=(round(rng.uniform(4 * 3600.0, 8 * 3600.0), 3),),
                    outcomes=plan.outcomes[-1:],
                    delays=(),
                )
            leaves[path] = plan
        return RunPlan(leaves, edges, bp.iterations)

    def _stretch_roots(self, plan: RunPlan, last_offset: float) -> RunPlan:
        """Make every attempt that starts at the run's first moment last well past the last overlapping
        trigger, so FIRST_ONLY / LAST_ONLY decide before anything in the first run ends."""
        floor = last_offset + self.cfg.race_margin + 300.0
        timeline = simulate(self.bp.definition, self.bp.subworkflows, plan)
        starters = sorted(
            {path for t, path in timeline.events if t == 0.0}
        )  # sorted: set order is per-process
        leaves = dict(plan.leaves)
        for path in starters:
            leaf = leaves[path]
            if leaf.timeout is not None and leaf.timeout - TIMEOUT_MARGIN < floor + 1:
                continue  # cannot outlast the triggers inside its timeout: the overlap check falls back
            first = max(leaf.durations[0], round(floor + self.rng.uniform(0, 600), 3))
            if leaf.timeout is not None and leaf.outcomes[0] is not Outcome.TIMEOUT:
                first = min(first, leaf.timeout - TIMEOUT_MARGIN)
            leaves[path] = replace(leaf, durations=(first, *leaf.durations[1:]))
        return replace(plan, leaves=leaves)

    def _place_failure(self, plan: RunPlan) -> RunPlan:
        """Move a FAIL_IMMEDIATELY failure into a quiet gap of the rest of the run."""
        failed = [p for p, leaf in plan.leaves.items() if leaf.terminal == "failed"]
        if not failed:
            return plan
        (path,) = failed
        step = self.bp.top.get(path)  # None: inside a foreach / subworkflow, never FAIL_IMMEDIATELY
        if step is None or step.failure_mode is not FailureMode.FAIL_IMMEDIATELY:
            return plan
        timeline = simulate(self.bp.definition, self.bp.subworkflows, plan)
        _begin, end, state = timeline.steps[path]
        if state is StepState.UNSATISFIED or state is StepState.BLOCKED:
            return plan
        leaf = plan.leaves[path]
        last_start = end - leaf.elapsed(len(leaf.outcomes) - 1)
        downstream = nx.descendants(self.bp.graph_by_id, path) | {path}
        others = [t for t, p in timeline.events if _top(p) not in downstream]
        at = find_gap(others, last_start + leaf.durations[-1], self.margin)
        durations = (*leaf.durations[:-1], round(at - last_start, 3))
        leaves = dict(plan.leaves)
        leaves[path] = replace(leaf, durations=durations)
        return replace(plan, leaves=leaves)

    def _workflow_timeout(self, timelines: list[Timeline], midway: bool) -> int | None:
        rng = self.rng
        if midway:
            only = timelines[0]
            at = find_gap([t for t, _ in only.events], 900.0, self.margin)
            if at < only.end - self.margin:
                return int(at) + 1
        if rng.random() < 0.3:
            total = max(t.end for t in timelines)
            return int(2 * total + 3600 + 10 * self.bp.size)
        return None

    def _attempts(self, plan: RunPlan) -> tuple[RecordedAttempt, ...]:
        out: list[RecordedAttempt] = []
        for path, leaf in plan.leaves.items():
            last = len(leaf.outcomes)
            for k, (outcome, duration) in enumerate(zip(leaf.outcomes, leaf.durations, strict=True), start=1):
                outputs = leaf.outputs if k == last and leaf.terminal is None else {}
                out.append(RecordedAttempt(path, k, outcome, duration, outputs))
        return tuple(out)


def _first_end(timeline: Timeline) -> float:
    ends = [t for t, _ in timeline.events if t > 0.0]
    return min(ends) if ends else float("inf")


def _top(path: str) -> str:
    return path.split("/", 1)[0].split("[", 1)[0]
