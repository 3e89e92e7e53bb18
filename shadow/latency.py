"""Latency metrics of replayed runs and the statistics that compare two engines.

Metrics (virtual seconds): per attempt the *start overhead* (ready -> started: what the engine adds
before a step runs); per run the *orchestration overhead* (makespan minus the critical path of the
recorded attempt durations and retry backoffs: everything the engine added end to end) and the
*end to end* time (trigger -> end). Engines are compared with quantiles, paired per-trace deltas
(Wilcoxon signed-rank) and a Kayenta-style Mann-Whitney judge on the shift of the distributions.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from corpora.model import Step, Trace
from engines.api import AttemptRecord, RunExecution

__all__ = [
    "LatencyJudgement",
    "LatencySummary",
    "PairedTest",
    "critical_path",
    "judge_shift",
    "paired_test",
    "ratio",
    "run_metrics",
    "summarize",
]


def _durations(trace: Trace, run: RunExecution) -> dict[str, float]:
    """Per leaf path: recorded durations of the attempts the engine ran (cut at their end when the engine
    terminated them early) plus the backoffs between them."""
    recorded = next((r for r in trace.runs if r.run_id == run.run_id), None)
    durations = {(a.path, a.attempt): a.duration for a in recorded.attempts} if recorded else {}
    per_path: dict[str, list[AttemptRecord]] = {}
    for att in run.attempts:
        per_path.setdefault(att.path, []).append(att)
    out: dict[str, float] = {}
    for path, attempts in per_path.items():
        attempts.sort(key=lambda a: a.attempt)
        total, prev_end = 0.0, None
        for att in attempts:
            if att.started_at is None:
                continue
            recorded_seconds = durations.get((path, att.attempt), 0.0)
            if att.ended_at is not None:
                # A terminated attempt (step or workflow timeout, a stop) ran only part of its recording.
                recorded_seconds = min(recorded_seconds, max(0.0, att.ended_at - att.started_at))
            total += recorded_seconds
            if prev_end is not None and att.ready_at is not None:
                total += max(0.0, att.ready_at - prev_end)  # the retry backoff is policy, not overhead
            prev_end = att.ended_at
        out[path] = total
    return out


def critical_path(trace: Trace, run: RunExecution) -> float:
    """Longest path through the DAG of recorded durations (+ backoffs) of what this run executed.

    Foreach iterations count as fully parallel (a concurrency limit makes this an underestimate of the
    ideal makespan, so the overhead an overestimate, equally for both engines)."""
    durations = _durations(trace, run)
    paths = list(durations)

    def body(steps: Sequence[Step], prefix: str) -> float:
        graph = nx.DiGraph()
        graph.add_nodes_from(s.id for s in steps)
        graph.add_edges_from((s.id, t.to) for s in steps for t in s.transitions if t.to in graph)
        if not nx.is_directed_acyclic_graph(graph):
            return 0.0
        by_id = {s.id: s for s in steps}
        finish: dict[str, float] = {}
        for sid in nx.topological_sort(graph):
            start = max((finish[p] for p in graph.predecessors(sid)), default=0.0)
            finish[sid] = start + weight(by_id[sid], prefix + sid)
        return max(finish.values(), default=0.0)

    def weight(step: Step, path: str) -> float:
        if step.foreach is not None:
            indices = sorted({p[len(path) + 1 :].split("]", 1)[0] for p in paths if p.startswith(path + "[")})
            return max((body(step.foreach.steps, f"{path}[{i}]/") for i in indices), default=0.0)
        if step.subworkflow is not None:
            child = trace.subworkflows.get(step.subworkflow.workflow_id)
            return body(child.steps, path + "/") if child else 0.0
        return durations.get(path, 0.0)

    return body(trace.definition.steps, "")


@dataclass(frozen=True, slots=True)
class LatencySummary:
    n: int
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


def summarize(values: Sequence[float]) -> LatencySummary:
    """Count, mean, p50/p95/p99 (linear interpolation) and max; None statistics when empty."""
    clean = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if clean.size == 0:
        return LatencySummary(0, None, None, None, None, None)
    p50, p95, p99 = (float(x) for x in np.percentile(clean, [50, 95, 99]))
    return LatencySummary(int(clean.size), float(clean.mean()), p50, p95, p99, float(clean.max()))


@dataclass(frozen=True, slots=True)
class PairedTest:
    n_pairs: int
    statistic: float | None
    p_value: float | None


def paired_test(baseline: Sequence[float], candidate: Sequence[float]) -> PairedTest:
    """Wilcoxon signed-rank on per-trace pairs; None statistics when fewer than 2 non-zero deltas."""
    pairs = [
        (b, c) for b, c in zip(baseline, candidate, strict=True) if math.isfinite(b) and math.isfinite(c)
    ]
    deltas = [c - b for b, c in pairs if c != b]
    if len(deltas) < 2:
        return PairedTest(len(pairs), None, None)
    from scipy import stats  # here, not at import: scipy.stats costs every worker process ~60 MB

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample and ties approximations are expected here
        result = stats.wilcoxon(deltas)
    return PairedTest(len(pairs), float(result.statistic), float(result.pvalue))


@dataclass(frozen=True, slots=True)
class LatencyJudgement:
    """Shift (candidate - baseline) with its CI, and the verdict ``pass | regression | improvement``."""

    n_baseline: int
    n_candidate: int
    shift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str


def judge_shift(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    confidence: float = 0.98,
    tolerance: float = 0.25,
    max_samples: int = 2000,
    seed: int = 0,
) -> LatencyJudgement:
    """Kayenta-style Mann-Whitney judge: is the candidate's latency shifted beyond ``tolerance``?

    The shift is the Hodges-Lehmann estimate (median of all pairwise differences candidate - baseline)
    with the distribution-free ``confidence`` interval from the Mann-Whitney U distribution (normal
    approximation of its critical value). The allowed band is ``tolerance`` x |median(baseline)|:
    ``regression`` when the whole CI lies above it, ``improvement`` when it lies below minus it,
    else ``pass``. Samples larger than ``max_samples`` are subsampled with ``seed`` (pairwise
    differences are quadratic). Fewer than 3 values on a side gives ``insufficient_data``."""
    b = np.asarray([v for v in baseline if math.isfinite(v)], dtype=float)
    c = np.asarray([v for v in candidate if math.isfinite(v)], dtype=float)
    if b.size < 3 or c.size < 3:
        return LatencyJudgement(int(b.size), int(c.size), None, None, None, None, "insufficient_data")
    rng = random.Random(seed)
    if b.size > max_samples:
        b = np.asarray(rng.sample(list(b), max_samples))
    if c.size > max_samples:
        c = np.asarray(rng.sample(list(c), max_samples))
    from scipy import stats  # here, not at import (see paired_test)

    n, m = int(b.size), int(c.size)
    diffs = np.sort(np.subtract.outer(c, b).ravel())
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    k = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    k = max(0, min(k, diffs.size - 1))
    low, high = float(diffs[k]), float(diffs[diffs.size - 1 - k])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p_value = float(stats.mannwhitneyu(c, b, alternative="two-sided").pvalue)
    band = tolerance * abs(float(np.median(b)))
    if low > band:
        verdict = "regression"
    elif high < -band:
        verdict = "improvement"
    else:
        verdict = "pass"
    return LatencyJudgement(n, m, float(np.median(diffs)), low, high, p_value, verdict)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, None when undefined (a zero candidate median has no finite speed-up)."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def run_metrics(trace: Trace, run: RunExecution) -> Mapping[str, float | None]:
    """end_to_end, makespan, critical_path and orchestration_overhead of one run (None when open)."""
    cp = critical_path(trace, run)
    end_to_end = makespan = overhead = None
    if run.ended_at is not None and not run.stuck:
        if run.triggered_at is not None:
            end_to_end = run.ended_at - run.triggered_at
        if run.started_at is not None:
            makespan = run.ended_at - run.started_at
            overhead = makespan - cp
    return {
        "end_to_end": end_to_end,
        "makespan": makespan,
        "critical_path": cp,
        "orchestration_overhead": overhead,
    }
