"""The gate's statistics: a Wilson bound for divergence rates and the latency judge per cohort.

The Mann-Whitney shift judge itself is shadow.latency.judge_shift (shared with ``shadow run``); the
gate adds what a verdict needs on top: a minimum sample, the p99 ratio bounds and a MARGINAL band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import stats

from shadow.latency import judge_shift

__all__ = ["CohortLatency", "LatencyOutcome", "judge_latency", "wilson_upper"]


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
    # max(p, ...): at p = 1 rounding would otherwise put the bound a hair under the observed rate.
    return max(p, min(1.0, (centre + margin) / denominator))


class LatencyOutcome(StrEnum):
    PASS = "pass"
    MARGINAL = "marginal"
    REGRESSION = "regression"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True, slots=True)
class CohortLatency:
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
    seed: int = 0,
) -> CohortLatency:
    """Is the candidate slower than the baseline by more than ``tolerance``, or in its tail?

    allowed = tolerance x |baseline median|. With [low, high] the ``confidence`` interval of the
    candidate - baseline shift (shadow.latency.judge_shift, which subsamples beyond 2000 values with
    ``seed``): REGRESSION when low > allowed (surely slower beyond tolerance) or
    the p99 ratio is above ``p99_max``; MARGINAL when the candidate is surely slower (low > 0) and
    might be beyond tolerance (high > allowed), or the p99 ratio is above ``p99_warn``; else PASS.
    """
    base = np.asarray(baseline, dtype=float)
    cand = np.asarray(candidate, dtype=float)
    # The shift judge needs 3 values a side whatever the cohort asks (min_latency_samples = 2 used to end in
    # an internal error on 2 samples instead of INSUFFICIENT_DATA).
    min_samples = max(min_samples, 3)
    if min(len(base), len(cand)) < min_samples:
        nan = math.nan
        return CohortLatency(
            metric, LatencyOutcome.INSUFFICIENT, len(base), len(cand), nan, nan, nan, nan, nan, nan, nan,
            nan, nan, nan,
            f"{metric}: {len(base)} baseline and {len(cand)} candidate samples, "
            f"fewer than the {min_samples} the judge needs",
        )  # fmt: skip
    shift_judge = judge_shift(
        base.tolist(), cand.tolist(), confidence=confidence, tolerance=tolerance, seed=seed
    )
    if shift_judge.shift is None or shift_judge.ci_low is None or shift_judge.ci_high is None:
        raise ValueError(f"{metric}: the shift judge found no interval on {len(base)}/{len(cand)} samples")
    low, shift, high = shift_judge.ci_low, shift_judge.shift, shift_judge.ci_high
    b_med, c_med = float(np.median(base)), float(np.median(cand))
    allowed = tolerance * abs(b_med)
    p_value = float("nan") if shift_judge.p_value is None else shift_judge.p_value
    b99, c99 = float(np.percentile(base, 99)), float(np.percentile(cand, 99))
    ratio = _p99_ratio(b99, c99)
    head = (
        f"{metric}: median {b_med:.3g} s -> {c_med:.3g} s, shift {shift:+.3g} s "
        f"({confidence:.0%} CI {low:+.3g}..{high:+.3g}), allowed +{allowed:.3g} s; p99 ratio {ratio:.2f}"
    )
    if shift_judge.verdict == "regression":
        outcome, why = LatencyOutcome.REGRESSION, "the candidate is slower beyond the tolerance"
    elif ratio > p99_max:
        outcome, why = LatencyOutcome.REGRESSION, f"the p99 ratio is above {p99_max:g}"
    elif low > 0 and high > allowed:
        outcome, why = LatencyOutcome.MARGINAL, "the candidate is slower and may be beyond the tolerance"
    elif ratio > p99_warn:
        outcome, why = LatencyOutcome.MARGINAL, f"the p99 ratio is above the warning level {p99_warn:g}"
    else:
        outcome, why = LatencyOutcome.PASS, "no regression"
    return CohortLatency(
        metric, outcome, len(base), len(cand), b_med, c_med, shift, low, high, allowed, p_value,
        b99, c99, ratio, f"{head}: {why}",
    )  # fmt: skip
