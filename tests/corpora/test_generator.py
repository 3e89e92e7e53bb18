"""The built-in corpus: deterministic, valid, covers every listed feature, and free of latency races."""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest

from corpora._plans import NEAR_TIMEOUT_MARGIN, NEAR_TIMEOUT_OVERRUN, TIMEOUT_MARGIN
from corpora._timeline import container_limit, find_gap
from corpora.coverage import FEATURES, CoverageAccumulator
from corpora.generator import GeneratorConfig, generate_corpus, generate_trace
from corpora.io import dump_trace, read_traces, write_traces
from corpora.model import (
    BackoffType,
    FailureMode,
    Outcome,
    RunStrategyRule,
    Step,
    StepType,
    Trace,
    Transition,
    WorkflowDefinition,
)
from corpora.validate import validate_trace


@cache
def corpus() -> tuple[Trace, ...]:
    return tuple(generate_corpus(seed=7, count=200))


def _all_steps(trace: Trace) -> Iterator[Step]:
    stack: list[Step] = list(trace.definition.steps)
    for wf in trace.subworkflows.values():
        stack += wf.steps
    while stack:
        step = stack.pop()
        yield step
        if step.foreach is not None:
            stack += step.foreach.steps


@cache
def corpus_features() -> Counter[str]:
    return _features(corpus())


def _features(traces: tuple[Trace, ...]) -> Counter[str]:
    seen: Counter[str] = Counter()
    for trace in traces:
        seen.update(t for t in trace.metadata.tags if t.startswith("shape:"))
        if len(trace.runs) > 1:
            seen[f"runs:{trace.definition.run_strategy.rule.value}"] += 1
        if trace.definition.timeout is not None:
            seen["workflow_timeout"] += 1
            longest = max(a.duration for r in trace.runs for a in r.attempts)
            if isinstance(trace.definition.timeout, int) and trace.definition.timeout < longest:
                seen["workflow_timeout_midway"] += 1
        if trace.subworkflows:
            seen["subworkflow"] += 1
        for step in _all_steps(trace):
            if any(t.condition for t in step.transitions):
                seen["condition"] += 1
            if step.failure_mode is not None:
                seen[f"mode:{step.failure_mode.value}"] += 1
            if step.foreach is not None:
                seen["foreach"] += 1
                if step.foreach.concurrency is not None:
                    seen["foreach_concurrency"] += 1
                for p in step.foreach.loop_params.values():
                    seen["loop_literal" if isinstance(p.value, list) else "loop_range"] += 1
            policy = step.retry_policy
            if policy is not None and policy.backoff is not None:
                seen[f"backoff:{policy.backoff.type.value}"] += 1
                if any(
                    isinstance(v, str) and v.startswith("$")
                    for v in (policy.error_retry_limit, policy.backoff.error_retry_backoff_in_secs)
                ):
                    seen["param_driven_retry"] += 1
            if step.timeout is not None:
                seen["step_timeout"] += 1
        for run in trace.runs:
            by_path: dict[str, list[Outcome]] = {}
            for a in run.attempts:
                by_path.setdefault(a.path, []).append(a.outcome)
                if "/" in a.path:
                    seen["nested_path"] += 1
                if a.outcome is Outcome.TIMEOUT:
                    seen["timeout_outcome"] += 1
            for outcomes in by_path.values():
                if outcomes[-1] is Outcome.SUCCEEDED and Outcome.USER_ERROR in outcomes:
                    seen["user_retry_then_success"] += 1
                if outcomes[-1] is Outcome.SUCCEEDED and Outcome.PLATFORM_ERROR in outcomes:
                    seen["platform_retry_then_success"] += 1
                if outcomes[-1] is not Outcome.SUCCEEDED and len(outcomes) > 1:
                    seen["exhausted"] += 1
                if outcomes[-1] is Outcome.FATAL_ERROR:
                    seen["fatal"] += 1
    return seen


class TestDeterminism:
    def test_same_seed_gives_byte_identical_files(self, tmp_path: Path) -> None:
        """Two runs of the generator with one seed write the same bytes."""
        write_traces(tmp_path / "a.jsonl.gz", generate_corpus(seed=3, count=25))
        write_traces(tmp_path / "b.jsonl.gz", generate_corpus(seed=3, count=25))
        assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()

    def test_output_does_not_depend_on_hash_seed(self, tmp_path: Path) -> None:
        """Processes with different PYTHONHASHSEED write identical corpora (no set-order leaks)."""
        script = (
            "from corpora.generator import generate_corpus; from corpora.io import write_traces; "
            "import sys; write_traces(sys.argv[1], generate_corpus(11, 40))"
        )
        for hash_seed in ("1", "2"):
            env = {**os.environ, "PYTHONHASHSEED": hash_seed}
            subprocess.run(
                [sys.executable, "-c", script, str(tmp_path / f"{hash_seed}.jsonl")], env=env, check=True
            )
        assert (tmp_path / "1.jsonl").read_bytes() == (tmp_path / "2.jsonl").read_bytes()

    def test_different_seeds_differ(self) -> None:
        """Another seed gives other traces."""
        assert dump_trace(generate_trace(1, 0)) != dump_trace(generate_trace(2, 0))

    def test_prefix_property(self) -> None:
        """Trace i does not depend on how many traces are generated."""
        assert list(generate_corpus(7, 3)) == list(corpus()[:3])


class TestValidity:
    def test_every_trace_validates_and_round_trips(self, tmp_path: Path) -> None:
        """The whole seed-7 corpus validates and reads back unchanged through the file format."""
        for trace in corpus():
            validate_trace(trace)
        write_traces(tmp_path / "c.jsonl", corpus())
        items = list(read_traces([tmp_path / "c.jsonl"]))
        assert [i.error for i in items if not i.ok] == []
        assert tuple(i.trace for i in items) == corpus()

    def test_metadata(self) -> None:
        """Every trace says it comes from the generator and has an owner and workflow type."""
        for trace in corpus():
            assert trace.metadata.source == "generator"
            assert trace.metadata.owner != "unknown"
        assert len({t.metadata.owner for t in corpus()}) >= 4
        assert {t.metadata.workflow_type for t in corpus()} >= {"etl", "ml-training", "reporting", "ingest"}


class TestCoverage:
    REQUIRED = (
        "shape:chain",
        "shape:fan_out_in",
        "shape:diamonds",
        "shape:random_dag",
        "shape:layered",
        "condition",
        "user_retry_then_success",
        "platform_retry_then_success",
        "exhausted",
        "fatal",
        f"backoff:{BackoffType.FIXED_BACKOFF.value}",
        f"backoff:{BackoffType.EXPONENTIAL_BACKOFF.value}",
        "param_driven_retry",
        "step_timeout",
        "timeout_outcome",
        "workflow_timeout",
        "workflow_timeout_midway",
        *(f"mode:{m.value}" for m in FailureMode),
        "foreach",
        "foreach_concurrency",
        "loop_literal",
        "loop_range",
        "subworkflow",
        "nested_path",
        *(f"runs:{r.value}" for r in RunStrategyRule),
    )

    @pytest.mark.parametrize("feature", REQUIRED)
    def test_feature_occurs(self, feature: str) -> None:
        """Each listed feature occurs in generate_corpus(seed=7, count=200)."""
        assert corpus_features()[feature] >= 1

    def test_every_coverage_feature_occurs(self) -> None:
        """Every feature of corpora.coverage occurs in this corpus too, not only in the main job's (seed 1,
        tests/corpora/test_coverage.py), so full coverage is no accident of one seed."""
        acc = CoverageAccumulator()
        for trace in corpus():
            acc.add(trace)
        assert acc.missing() == []
        assert set(acc.counts) <= set(FEATURES)

    def test_param_names_collide_across_scopes(self) -> None:
        """A loop variable named like a workflow param, inner and container step params shadowing workflow
        params, and subworkflow definitions with params of their own that the parent's override."""
        workflow_names = set(corpus()[0].definition.params)
        seen: Counter[str] = Counter()
        for trace in corpus():
            for step in _all_steps(trace):
                if step.foreach is not None and set(step.foreach.loop_params) & workflow_names:
                    seen["loop_variable"] += 1
                if step.foreach is not None and set(step.params) & workflow_names:
                    seen["foreach_param"] += 1
                if step.subworkflow is not None and set(step.params) & workflow_names:
                    seen["subworkflow_step_param"] += 1
            for wf in trace.subworkflows.values():
                if set(wf.params) & workflow_names:
                    seen["child_definition"] += 1
                seen["inner_step_param"] += sum(bool(set(s.params) & workflow_names) for s in wf.steps)
        assert (
            min(
                seen[k]
                for k in (
                    "loop_variable",
                    "foreach_param",
                    "subworkflow_step_param",
                    "child_definition",
                    "inner_step_param",
                )
            )
            >= 1
        ), seen

    def test_sizes(self) -> None:
        """Sizes run from 3 to the thousands with a median near 15 top-level steps."""
        sizes = [len(t.definition.steps) for t in corpus()]
        assert min(sizes) == 3
        assert max(sizes) >= 800
        assert 10 <= statistics.median(sizes) <= 22

    def test_heavy_tailed_durations(self) -> None:
        """Durations span seconds to hours."""
        durations = [a.duration for t in corpus() for r in t.runs for a in r.attempts]
        assert min(durations) < 10
        assert max(durations) > 3600
        assert statistics.median(durations) < 600

    def test_some_conditions_are_false(self) -> None:
        """Some recorded outputs make their branch condition false, so UNSATISFIED propagation happens."""
        expr = pytest.importorskip("engines.core.expr")
        truths: Counter[bool] = Counter()
        for trace in corpus()[:80]:
            params = {k: p.value for k, p in trace.definition.params.items() if p.expression is None}
            for run in trace.runs:
                outputs = {a.path: a.outputs for a in run.attempts if a.outcome is Outcome.SUCCEEDED}
                scope = {**params, **run.params}
                for step in trace.definition.steps:
                    for t in step.transitions:
                        if t.condition is None:
                            continue

                        def resolve(name: str, scope: dict = scope, outputs: dict = outputs) -> object:  # type: ignore[type-arg]
                            if "__" in name:
                                sid, key = name.split("__", 1)
                                return outputs[sid][key]
                            return scope[name]

                        truths[bool(expr.evaluate(t.condition, resolve))] += 1
        assert truths[True] > 10
        assert truths[False] > 10


class TestRaceFreedom:
    def test_step_timeouts_are_clear(self) -> None:
        """Attempts of a step with a timeout succeed at least 20 s before it (120 s unless the plan is
        "near timeout") or run past it, and some of each kind come close to it."""
        near = Counter[str]()
        for trace in corpus():
            timeouts: dict[str, float] = {}
            _collect_timeouts(trace.definition, "", trace, timeouts)
            for run in trace.runs:
                for a in run.attempts:
                    limit = timeouts.get(_strip(a.path))
                    if limit is None:
                        continue
                    if a.outcome is Outcome.TIMEOUT:
                        assert a.duration > limit
                        near["over"] += a.duration <= limit + NEAR_TIMEOUT_OVERRUN
                        if a.duration < limit + TIMEOUT_MARGIN:
                            assert a.duration <= limit + NEAR_TIMEOUT_OVERRUN
                    else:
                        assert a.duration <= limit - NEAR_TIMEOUT_MARGIN
                        near["under"] += a.duration > limit - TIMEOUT_MARGIN
        assert near["over"] >= 3, near
        assert near["under"] >= 10, near

    def test_inner_failures_are_in_calm_containers(self) -> None:
        """A step that fails for good inside a foreach iteration or a subworkflow is not FAIL_IMMEDIATELY,
        none of its containers is, and each enclosing foreach launches all its iterations at once."""
        from corpora._workflows import _iteration_count

        checked = 0
        for trace in corpus():
            for run in trace.runs:
                last: dict[str, Outcome] = {}
                for a in sorted(run.attempts, key=lambda a: a.attempt):
                    last[a.path] = a.outcome
                for path, outcome in last.items():
                    if outcome is Outcome.SUCCEEDED or "/" not in path:
                        continue
                    checked += 1
                    steps, limit = trace.definition.steps, trace.definition.step_concurrency
                    for segment in path.split("/"):
                        step = next(s for s in steps if s.id == segment.split("[")[0])
                        assert step.failure_mode is not FailureMode.FAIL_IMMEDIATELY, (trace.trace_id, path)
                        if step.foreach is not None:
                            assert _iteration_count(step) <= container_limit(step, limit), (
                                trace.trace_id,
                                path,
                            )
                            steps, limit = step.foreach.steps, None
                        elif step.subworkflow is not None:
                            child = trace.subworkflows[step.subworkflow.workflow_id]
                            steps, limit = child.steps, child.step_concurrency
        assert checked >= 5

    def test_async_subworkflows_never_overlap_runs(self) -> None:
        """A trace with a subworkflow started without waiting spaces its runs hours apart."""
        checked = 0
        for trace in corpus():
            if not any(s.subworkflow is not None and not s.subworkflow.sync for s in trace.definition.steps):
                continue
            checked += 1
            triggers = [r.trigger_time for r in trace.runs]
            assert all(b - a > 3600 for a, b in itertools.pairwise(triggers))
        assert checked >= 5

    def test_overlapping_first_and_last_only_runs_outlast_the_triggers(self) -> None:
        """Runs arriving seconds apart under FIRST_ONLY/LAST_ONLY: every root step's first attempt of the
        earlier runs lasts past the last trigger plus the race margin; otherwise runs are hours apart."""
        checked = 0
        for trace in corpus():
            rule = trace.definition.run_strategy.rule
            runs = trace.runs
            if rule not in (RunStrategyRule.FIRST_ONLY, RunStrategyRule.LAST_ONLY) or len(runs) < 2:
                continue
            span = runs[-1].trigger_time - runs[0].trigger_time
            if span > 60:
                assert span > 3600  # hours apart
                continue
            checked += 1
            targets = {t.to for s in trace.definition.steps for t in s.transitions}
            roots = {s.id for s in trace.definition.steps if s.id not in targets and s.type.is_leaf}
            for run in runs[:-1]:
                firsts = [a for a in run.attempts if a.path in roots and a.attempt == 1]
                assert all(
                    a.duration >= span + GeneratorConfig().race_margin
                    for a in firsts
                    if a.outcome is not Outcome.TIMEOUT
                )
        assert checked >= 1

    def test_recorded_attempts_cover_every_leaf_path(self) -> None:
        """Every run records at least one attempt for every leaf step path, run or not."""
        for trace in corpus()[:60]:
            for run in trace.runs:
                paths = {a.path for a in run.attempts}
                for step in trace.definition.steps:
                    if step.type.is_leaf:
                        assert step.id in paths


def _strip(path: str) -> str:
    """'fan[2]/inner' -> 'fan/inner': timeouts are per step definition, not per iteration."""
    return "/".join(seg.split("[", 1)[0] for seg in path.split("/"))


def _collect_timeouts(wf: WorkflowDefinition, prefix: str, trace: Trace, out: dict[str, float]) -> None:
    for step in wf.steps:
        if step.timeout is not None:
            out[prefix + step.id] = float(step.timeout)
        if step.foreach is not None:
            _collect_timeouts(
                WorkflowDefinition(id="body", steps=step.foreach.steps), f"{prefix}{step.id}/", trace, out
            )
        if step.type is StepType.SUBWORKFLOW and step.subworkflow is not None:
            _collect_timeouts(
                trace.subworkflows[step.subworkflow.workflow_id], f"{prefix}{step.id}/", trace, out
            )


class TestTimeline:
    def test_find_gap_skips_close_events(self) -> None:
        """The chosen time is at least the margin away from every event."""
        assert find_gap([100.0, 450.0, 700.0], 120.0, 300.0) == 1000.0
        assert find_gap([100.0, 2000.0], 500.0, 300.0) == 500.0

    def test_simulate_branches_and_blocking(self) -> None:
        """A false edge makes its target UNSATISFIED; a failed step blocks its successors."""
        from corpora._plans import LeafPlan
        from corpora._timeline import RunPlan, StepState, simulate
        from corpora.testing import leaf

        ok = LeafPlan((Outcome.SUCCEEDED,), (10.0,), ())
        failed = LeafPlan((Outcome.USER_ERROR, Outcome.USER_ERROR), (5.0, 5.0), (60.0,), terminal="failed")
        wf = WorkflowDefinition(
            id="w",
            steps=(
                leaf("a", "b", "c", when="x"),
                leaf("b"),
                leaf("c", "d"),
                leaf("d"),
            ),
        )
        plan = RunPlan({"a": ok, "b": ok, "c": failed, "d": ok}, edges={("a", "b"): False, ("a", "c"): True})
        timeline = simulate(wf, {}, plan)
        assert timeline.steps["b"][2] is StepState.UNSATISFIED
        assert timeline.steps["c"] == (10.0, 80.0, StepState.FAILED)
        assert timeline.steps["d"][2] is StepState.BLOCKED

    def test_simulate_containers(self) -> None:
        """A failed iteration fails its foreach unless IGNORE_FAILURE (a timed-out one is not ignored); the
        workflow's step_concurrency caps the iterations at once; an async subworkflow ends at its launch."""
        from corpora._plans import LeafPlan
        from corpora._timeline import RunPlan, StepState, simulate
        from corpora.model import Foreach, Param, Subworkflow
        from corpora.testing import leaf

        ok = LeafPlan((Outcome.SUCCEEDED,), (10.0,), ())
        failed = LeafPlan((Outcome.FATAL_ERROR,), (5.0,), (), terminal="failed")
        timed_out = LeafPlan((Outcome.TIMEOUT,), (700.0,), (), timeout=600.0, terminal="timed_out")
        fan = Step(
            id="fan",
            type=StepType.FOREACH,
            transitions=(),
            foreach=Foreach({"i": Param(value=[1, 2, 3, 4])}, (leaf("x"),)),
        )
        plan = RunPlan({f"fan[{i}]/x": ok for i in range(4)}, iterations={"fan": 4})
        wide = simulate(WorkflowDefinition(id="w", steps=(fan,)), {}, plan)
        assert wide.steps["fan"] == (0.0, 10.0, StepState.RAN)
        capped = simulate(WorkflowDefinition(id="w", steps=(fan,), step_concurrency=2), {}, plan)
        assert capped.steps["fan"] == (0.0, 20.0, StepState.RAN)
        failing = RunPlan({**plan.leaves, "fan[1]/x": failed}, iterations={"fan": 4})
        assert (
            simulate(WorkflowDefinition(id="w", steps=(fan,)), {}, failing).steps["fan"][2]
            is StepState.FAILED
        )
        ignoring = replace(fan, failure_mode=FailureMode.IGNORE_FAILURE)
        assert (
            simulate(WorkflowDefinition(id="w", steps=(ignoring,)), {}, failing).steps["fan"][2]
            is StepState.RAN
        )
        late = RunPlan({**plan.leaves, "fan[1]/x": timed_out}, iterations={"fan": 4})
        assert (
            simulate(WorkflowDefinition(id="w", steps=(ignoring,)), {}, late).steps["fan"][2]
            is StepState.TIMED_OUT
        )
        child = WorkflowDefinition(id="child", steps=(leaf("c"),))
        call = Step(
            id="call",
            type=StepType.SUBWORKFLOW,
            transitions=(Transition("after"),),
            subworkflow=Subworkflow("child", sync=False),
        )
        wf = WorkflowDefinition(id="w", steps=(call, leaf("after")))
        detached = simulate(
            wf,
            {"child": child},
            RunPlan({"call/c": LeafPlan((Outcome.SUCCEEDED,), (500.0,), ()), "after": ok}),
        )
        assert detached.steps["call"] == (0.0, 0.0, StepState.RAN)
        assert (detached.end, detached.detached_end) == (10.0, 500.0)
