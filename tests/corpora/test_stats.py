"""Corpus statistics: shape of a trace and the streamed summary."""

from __future__ import annotations

from corpora.errors import TraceError
from corpora.io import TraceItem
from corpora.stats import Distribution, compute_stats, trace_shape
from corpora.testing import chain_trace, diamond_trace, fanout_trace, foreach_trace, subworkflow_trace


class TestTraceShape:
    def test_chain_depth_equals_length(self) -> None:
        """A chain of 5 has depth 5 and fan-out 1."""
        assert trace_shape(chain_trace(5)) == (5, 5, 1)

    def test_fanout_and_diamond(self) -> None:
        """Fan-out counts the widest step; depth the longest path."""
        assert trace_shape(fanout_trace(7)) == (9, 3, 7)
        assert trace_shape(diamond_trace()) == (4, 3, 2)

    def test_nested_steps_are_counted(self) -> None:
        """Foreach bodies and subworkflow definitions add to the step count, not to the top-level depth."""
        assert trace_shape(foreach_trace(3)) == (4, 3, 1)
        assert trace_shape(subworkflow_trace(3)) == (6, 3, 1)


class TestComputeStats:
    def test_rates_and_quarantine(self) -> None:
        """Failure and retry rates are per (run, step path); quarantined items are counted by code."""
        ok = chain_trace(2, outcomes={"s1": ["platform_error", "succeeded"], "s2": ["fatal_error"]}, runs=2)
        bad = TraceItem("f.jsonl", 3, error=TraceError("cycle", "a -> a"))
        stats = compute_stats([TraceItem("f.jsonl", 1, trace=ok), bad])
        assert (stats.traces, stats.quarantined, stats.runs, stats.attempts) == (1, 1, 2, 6)
        assert stats.step_failure_rate == 0.5
        assert stats.retry_rate == 0.5
        assert stats.attempt_failure_rate == round(4 / 6, 4)
        assert stats.error_codes == {"cycle": 1}
        assert stats.outcomes == {"fatal_error": 2, "platform_error": 2, "succeeded": 2}

    def test_empty_corpus(self) -> None:
        """No input gives zeros, not a division error."""
        stats = compute_stats([])
        assert stats.traces == 0
        assert stats.depth == Distribution()

    def test_distribution(self) -> None:
        """Distribution reports min, median, p95, max and mean."""
        d = Distribution.of(list(range(1, 101)))
        assert (d.min, d.median, d.p95, d.max, d.mean) == (1, 50.5, 96, 100, 50.5)
