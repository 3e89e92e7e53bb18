"""The gate's statistics: the Wilson bound and the per-cohort latency judge."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadow.gate.statistics import LatencyOutcome, judge_latency, wilson_upper

JUDGE = {"tolerance": 0.25, "confidence": 0.98, "p99_warn": 1.2, "p99_max": 1.5, "min_samples": 10}


class TestWilson:
    def test_textbook_value_at_zero_failures(self) -> None:
        """0 failures in 20 gives an upper bound of 16.1 % at 95 % (the rule-of-three neighbourhood)."""
        assert wilson_upper(0, 20) == pytest.approx(0.1611, abs=1e-4)

    @given(st.integers(1, 5000), st.data())
    def test_bound_lies_between_observed_rate_and_one(self, n: int, data: st.DataObject) -> None:
        """The upper bound is never below the observed rate nor above 1."""
        k = data.draw(st.integers(0, n))
        assert k / n <= wilson_upper(k, n) <= 1.0

    @given(st.integers(2, 2000), st.data())
    def test_one_more_failure_raises_the_bound(self, n: int, data: st.DataObject) -> None:
        """More failures in the same sample never lower the bound."""
        k = data.draw(st.integers(0, n - 1))
        assert wilson_upper(k + 1, n) > wilson_upper(k, n)

    def test_no_sample_proves_nothing(self) -> None:
        """With no traces the bound is 1: any budget is unproven."""
        assert wilson_upper(0, 0) == 1.0


class TestLatencyJudge:
    rng = np.random.default_rng(11)

    def test_shift_beyond_tolerance_is_a_regression(self) -> None:
        """A candidate 50 % slower at the median is a regression."""
        base = self.rng.normal(10, 0.5, 200)
        assert judge_latency("m", base, base * 1.5, **JUDGE).outcome is LatencyOutcome.REGRESSION

    def test_heavier_tail_alone_is_marginal(self) -> None:
        """Same median, but a candidate p99 about 1.3x the baseline's: MARGINAL on the p99 ratio."""
        base = np.linspace(9.0, 11.0, 1000)
        cand = base.copy()
        cand[-20:] *= 1.3
        judgement = judge_latency("m", base, cand, **JUDGE)
        assert judgement.outcome is LatencyOutcome.MARGINAL
        assert 1.2 < judgement.p99_ratio <= 1.5

    def test_much_heavier_tail_fails(self) -> None:
        """A candidate p99 twice the baseline's fails even with the same median."""
        base = np.linspace(9.0, 11.0, 1000)
        cand = base.copy()
        cand[-20:] *= 2.0
        assert judge_latency("m", base, cand, **JUDGE).outcome is LatencyOutcome.REGRESSION

    def test_faster_candidate_passes(self) -> None:
        """A candidate 100x faster passes (an improvement is no regression)."""
        base = self.rng.exponential(5.0, 300)
        assert judge_latency("m", base, base / 100, **JUDGE).outcome is LatencyOutcome.PASS

    def test_too_few_samples_abstain(self) -> None:
        """Fewer samples than min_samples on either side: INSUFFICIENT, saying how many."""
        judgement = judge_latency("m", [1.0] * 50, [1.0] * 9, **JUDGE)
        assert judgement.outcome is LatencyOutcome.INSUFFICIENT
        assert "9 candidate samples" in judgement.message


def test_two_samples_are_insufficient_even_when_the_cohort_asks_for_two() -> None:
    """min_latency_samples = 2 with 2 samples a side: INSUFFICIENT, not an internal error (the shift judge
    needs 3 values a side)."""
    judgement = judge_latency("end_to_end", [1.0, 2.0], [1.0, 2.0], **{**JUDGE, "min_samples": 2})
    assert judgement.outcome is LatencyOutcome.INSUFFICIENT
