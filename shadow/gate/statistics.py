"""The gate's statistics: a Wilson bound for divergence rates and a Mann-Whitney latency judge.

Written here with scipy.stats because the gate needs them per cohort (shadow's own latency tables are
per database). Both are pure functions of their inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["LatencyJudgement", "LatencyOutcome", "hodges_lehmann_interval", "judge_latency", "wilson_upper"]


def wilson_upper(failures: int, n: int, confidence: float = 0.95) -> float:
    """Upper end of the two-sided Wilson score interval for a proportion ``failures / n``.

    Wilson rather than the normal approximation: it behaves at 0 failures (the common case for a good
    candidate), where the normal interval collapses to [0, 0] and would pass anything.
    """
    if n <= 0:
        return 1.0
    if not 0 <= failures <= n:
        raise ValueError(f"failures {failures} outside 0..{n}")
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    p = failures / n
    denominator = 1 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + margin) / denominator)


def _count_differences_at_most(xs: np.ndarray, ys: np.ndarray, delta: float) -> int:
    """How many pairwise differences ``y - x`` are <= delta (xs sorted). O(len(ys) log len(xs))."""
    return int((len(xs) - np.searchsorted(xs, ys - delta, side="left")).sum())


def _kth_difference(xs: np.ndarray, ys: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) of the n*m differences ``y - x``, without building them all.

    Bisection on the value: the count of differences at or under a value is monotone in it. Cohorts
    hold tens of thousands of step samples, so the n*m matrix would not fit in memory.
    """
    lo = float(ys.min() - xs.max())
    hi = float(ys.max() - xs.min())
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if _count_differences_at_most(xs, ys, mid) >= k:
            hi = mid
        else:
            lo = mid
    return hi


def hodges_lehmann_interval(
    baseline: npt.ArrayLike, candidate: npt.ArrayLike, confidence: float
) -> tuple[float, float, float]:
    """Hodges-Lehmann shift (candidate - baseline) with its Mann-Whitney distribution-free interval.

    Returns (low, estimate, high). The interval's ends are order statistics of the pairwise
    differences at the Mann-Whitney critical rank (normal approximation, fine from ~10 samples).
    """
    xs = np.sort(np.asarray(baseline, dtype=float))
    ys = np.asarray(candidate, dtype=float)
    n, m = len(xs), len(ys)
    total = n * m
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    c = math.floor(total / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    c = max(1, min(c, total))
    low = _kth_difference(xs, ys, c)
    high = _kth_difference(xs, ys, total - c + 1)
    if total % 2:
        estimate = _kth_difference(xs, ys, total // 2 + 1)
    else:
        estimate = (_kth_difference(xs, ys, total // 2) + _kth_difference(xs, ys, total // 2 + 1)) / 2
    return low, estimate, high


class LatencyOutcome(StrEnum):
    PASS = "pass"
    MARGINAL = "marginal"
    REGRESSION = "regression"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True, slots=True)
class LatencyJudgement:
    """The judge's finding on one metric; seconds unless noted."""

    metric: str
    outcome: LatencyOutcome
    n_baseline: int
    n_candidate: int
    baseline_median: float
    candidate_median: float
    shift: float
    shift_low: float
    shift_high: float
    allowed_shift: float
    mann_whitney_p: float
    baseline_p99: float
    candidate_p99: float
    p99_ratio: float
    message: str


def _p99_ratio(baseline_p99: float, candidate_p99: float) -> float:
    if baseline_p99 > 0:
        return candidate_p99 / baseline_p99
    return 1.0 if candidate_p99 <= 0 else math.inf


def judge_latency(
    metric: str,
    baseline: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    tolerance: float,
    confidence: float,
    p99_warn: float,
    p99_max: float,
    min_samples: int,
) -> LatencyJudgement:
    """Kayenta-style judge: is the candidate slower than the baseline by more than ``tolerance``?

    allowed = tolerance x |baseline median|. With [low, high] the ``confidence`` interval of the
    candidate - baseline shift: REGRESSION when low > allowed (surely slower beyond tolerance) or
    the p99 ratio is above ``p99_max``; MARGINAL when the candidate is surely slower (low > 0) and
    might be beyond tolerance (high > allowed), or the p99 ratio is above ``p99_warn``; else PASS.
    """
    base = np.asarray(baseline, dtype=float)
    cand = np.asarray(candidate, dtype=float)
    if min(len(base), len(cand)) < min_samples:
        nan = math.nan
        return LatencyJudgement(
            metric, LatencyOutcome.INSUFFICIENT, len(base), len(cand), nan, nan, nan, nan, nan, nan, nan,
            nan, nan, nan,
            f"{metric}: {len(base)} baseline and {len(cand)} candidate samples, "
            f"fewer than the {min_samples} the judge needs",
        )  # fmt: skip
    low, shift, high = hodges_lehmann_interval(base, cand, confidence)
    b_med, c_med = float(np.median(base)), float(np.median(cand))
    allowed = tolerance * abs(b_med)
    p_value = float(stats.mannwhitneyu(cand, base, alternative="two-sided").pvalue)
    b99, c99 = float(np.percentile(base, 99)), float(np.percentile(cand, 99))
    ratio = _p99_ratio(b99, c99)
    head = (
        f"{metric}: median {b_med:.3g} s -> {c_med:.3g} s, shift {shift:+.3g} s "
        f"({confidence:.0%} CI {low:+.3g}..{high:+.3g}), allowed +{allowed:.3g} s; p99 ratio {ratio:.2f}"
    )
    if low > allowed:
        outcome, why = LatencyOutcome.REGRESSION, "the candidate is slower beyond the tolerance"
    elif ratio > p99_max:
        outcome, why = LatencyOutcome.REGRESSION, f"the p99 ratio is above {p99_max:g}"
    elif low > 0 and high > allowed:
        outcome, why = LatencyOutcome.MARGINAL, "the candidate is slower and may be beyond the tolerance"
    elif ratio > p99_warn:
        outcome, why = LatencyOutcome.MARGINAL, f"the p99 ratio is above the warning level {p99_warn:g}"
    else:
        outcome, why = LatencyOutcome.PASS, "no regression"
    return LatencyJudgement(
        metric, outcome, len(base), len(cand), b_med, c_med, shift, low, high, allowed, p_value,
        b99, c99, ratio, f"{head}: {why}",
    )  # fmt: skip
