"""Corpus statistics: what a corpus holds, computed in one streaming pass.

Used by ``shadow corpus stats`` and handy in notebooks. Per-trace numbers (steps, depth, fan-out) are
kept as small integer lists for percentiles; traces themselves are never held, so a corpus of any size
is summarised in memory proportional to its trace count.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import networkx as nx

from corpora.io import TraceItem
from corpora.model import Outcome, Step, Trace

__all__ = ["CorpusStats", "Distribution", "StatsAccumulator", "compute_stats", "trace_shape"]


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary of one per-trace number."""

    min: float = 0
    median: float = 0
    p95: float = 0
    max: float = 0
    mean: float = 0

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        if not values:
            return cls()
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return cls(
            ordered[0], statistics.median(ordered), p95, ordered[-1], round(statistics.fmean(ordered), 3)
        )


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """What a corpus holds. Rates are fractions in [0, 1]."""

    traces: int
    quarantined: int
    runs: int
    steps: int
    attempts: int
    steps_per_trace: Distribution
    depth: Distribution
    fan_out: Distribution
    runs_per_trace: Distribution
    attempt_failure_rate: float  # attempts whose outcome is not succeeded
    step_failure_rate: float  # (run, step path) pairs whose last recorded attempt failed
    retry_rate: float  # (run, step path) pairs with more than one attempt
    outcomes: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    workflow_types: dict[str, int] = field(default_factory=dict)
    run_strategies: dict[str, int] = field(default_factory=dict)
    error_codes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trace_shape(trace: Trace) -> tuple[int, int, int]:
    """(steps including foreach bodies and subworkflow definitions, depth, max fan-out) of a trace.

    Depth is the number of steps on the longest path of the top-level DAG; fan-out the largest number
    of outgoing transitions of any step in any scope."""
    steps = 0
    fan_out = 0
    pending: list[Step] = list(trace.definition.steps)
    for wf in trace.subworkflows.values():
        pending += wf.steps
    while pending:
        step = pending.pop()
        steps += 1
        fan_out = max(fan_out, len(step.transitions))
        if step.foreach is not None:
            pending += step.foreach.steps
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(s.id for s in trace.definition.steps)
    graph.add_edges_from((s.id, t.to) for s in trace.definition.steps for t in s.transitions)
    depth = nx.dag_longest_path_length(graph) + 1 if graph.number_of_nodes() else 0
    return steps, depth, fan_out


class StatsAccumulator:
    """Feed traces (or reader items) one at a time; ``result()`` gives the :class:`CorpusStats`."""

    def __init__(self) -> None:
        self.traces = self.quarantined = self.runs = self.attempts = 0
        self.step_counts: list[int] = []
        self.depths: list[int] = []
        self.fan_outs: list[int] = []
        self.run_counts: list[int] = []
        self.failed_attempts = 0
        self.step_runs = self.failed_steps = self.retried_steps = 0
        self.outcomes: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.types: Counter[str] = Counter()
        self.strategies: Counter[str] = Counter()
        self.error_codes: Counter[str] = Counter()

    def add_item(self, item: TraceItem) -> None:
        if item.trace is not None:
            self.add(item.trace)
        elif item.error is not None:
            self.quarantined += 1
            self.error_codes[item.error.code] += 1

    def add(self, trace: Trace) -> None:
        self.traces += 1
        steps, depth, fan_out = trace_shape(trace)
        self.step_counts.append(steps)
        self.depths.append(depth)
        self.fan_outs.append(fan_out)
        self.run_counts.append(len(trace.runs))
        self.sources[trace.metadata.source] += 1
        self.types[trace.metadata.workflow_type] += 1
        self.strategies[trace.definition.run_strategy.rule.value] += 1
        for run in trace.runs:
            self.runs += 1
            last: dict[str, tuple[int, Outcome]] = {}
            for attempt in run.attempts:
                self.attempts += 1
                self.outcomes[attempt.outcome.value] += 1
                if attempt.outcome is not Outcome.SUCCEEDED:
                    self.failed_attempts += 1
                if attempt.path not in last or attempt.attempt > last[attempt.path][0]:
                    last[attempt.path] = (attempt.attempt, attempt.outcome)
            self.step_runs += len(last)
            self.failed_steps += sum(1 for _, o in last.values() if o is not Outcome.SUCCEEDED)
            self.retried_steps += sum(1 for n, _ in last.values() if n > 1)

    def result(self) -> CorpusStats:
        def rate(part: int, whole: int) -> float:
            return round(part / whole, 4) if whole else 0.0

        return CorpusStats(
            traces=self.traces,
            quarantined=self.quarantined,
            runs=self.runs,
            steps=sum(self.step_counts),
            attempts=self.attempts,
            steps_per_trace=Distribution.of(self.step_counts),
            depth=Distribution.of(self.depths),
            fan_out=Distribution.of(self.fan_outs),
            runs_per_trace=Distribution.of(self.run_counts),
            attempt_failure_rate=rate(self.failed_attempts, self.attempts),
            step_failure_rate=rate(self.failed_steps, self.step_runs),
            retry_rate=rate(self.retried_steps, self.step_runs),
            outcomes=dict(sorted(self.outcomes.items())),
            sources=dict(sorted(self.sources.items())),
            workflow_types=dict(sorted(self.types.items())),
            run_strategies=dict(sorted(self.strategies.items())),
            error_codes=dict(sorted(self.error_codes.items())),
        )


def compute_stats(items: Iterable[TraceItem | Trace]) -> CorpusStats:
    """Stats of reader items (quarantined ones are counted by error code) or plain traces."""
    acc = StatsAccumulator()
    for item in items:
        if isinstance(item, Trace):
            acc.add(item)
        else:
            acc.add_item(item)
    return acc.result()
