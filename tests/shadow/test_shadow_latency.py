"""Latency metrics and statistics."""

from __future__ import annotations

import random
from dataclasses import replace

from engines.api import ReplayOptions
from engines.core.oracle import CoreOracle
from shadow.latency import critical_path, judge_shift, paired_test, run_metrics, summarize
from shadow.testing import FakeEngine, build_trace


class TestMetrics:
    def test_critical_path_and_overhead(self) -> None:
        """Diamond a -> (b 30 s, c 5 s) -> d: critical path 10+30+10; overhead = makespan minus that."""
        trace = build_trace(
            "t",
            {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []},
            {"b": [("succeeded", 30.0)], "c": [("succeeded", 5.0)]},
        )
        record = FakeEngine(start_overhead=2.0, jitter=0.0).replay(trace, ReplayOptions())
        run = record.runs[0]
        assert critical_path(trace, run) == 50.0
        metrics = run_metrics(trace, run)
        assert metrics["orchestration_overhead"] == 6.0  # three chained starts of 2 s each

    def test_retry_backoff_is_not_overhead(self) -> None:
        """Retried attempts count their recorded durations on the critical path."""
        trace = build_trace("t", {"a": []}, {"a": [("user_error", 4.0), ("succeeded", 6.0)]})
        record = FakeEngine(start_overhead=1.0, jitter=0.0).replay(trace, ReplayOptions())
        assert critical_path(trace, record.runs[0]) == 10.0

    def test_terminated_attempt_counts_only_what_ran(self) -> None:
        """A step cut by a 600 s workflow timeout adds 600 s, not its 5,000 s recording: overhead stays >= 0."""
        base = build_trace(
            "t", {"a": ["b"], "b": []}, {"a": [("succeeded", 10.0)], "b": [("succeeded", 5000.0)]}
        )
        trace = replace(base, definition=replace(base.definition, timeout=600))
        run = CoreOracle().replay(trace, ReplayOptions()).runs[0]
        assert run.status == "TIMED_OUT"
        assert critical_path(trace, run) == 600.0
        assert run_metrics(trace, run)["orchestration_overhead"] == 0.0

    def test_summarize(self) -> None:
        """Quantiles interpolate; an empty sample has no statistics."""
        s = summarize([float(i) for i in range(1, 101)])
        assert (s.n, s.p50, s.max) == (100, 50.5, 100.0)
        assert summarize([]).p50 is None


class TestJudge:
    def test_regression_detected(self) -> None:
        """A candidate twice as slow is a regression with a CI above zero."""
        rng = random.Random(1)
        base = [rng.uniform(4.0, 6.0) for _ in range(200)]
        slow = [2 * x for x in base]
        judgement = judge_shift(base, slow)
        assert judgement.verdict == "regression"
        assert judgement.ci_low is not None
        assert judgement.ci_low > 0

    def test_improvement_and_pass(self) -> None:
        """A 100x faster candidate improves; a same-distribution one passes."""
        rng = random.Random(2)
        base = [rng.uniform(4.0, 6.0) for _ in range(200)]
        assert judge_shift(base, [x / 100 for x in base]).verdict == "improvement"
        same = [rng.uniform(4.0, 6.0) for _ in range(200)]
        assert judge_shift(base, same).verdict == "pass"

    def test_insufficient(self) -> None:
        """Fewer than three values on a side cannot be judged."""
        assert judge_shift([1.0, 2.0], [1.0, 2.0, 3.0]).verdict == "insufficient_data"

    def test_paired(self) -> None:
        """Consistently smaller candidate values give a small Wilcoxon p; identical pairs give none."""
        base = [float(i) for i in range(1, 31)]
        result = paired_test(base, [x - 0.5 - i * 0.01 for i, x in enumerate(base)])
        assert result.n_pairs == 30
        assert result.p_value is not None
        assert result.p_value < 0.001
        assert paired_test(base, base).p_value is None
