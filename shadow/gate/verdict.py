"""Turn a cohort's evidence into a verdict a release manager can act on.

Each cohort is judged on a list of criteria, each pass / marginal / fail / insufficient:

- critical rules (fail outright, never waivable): a stuck run on the candidate, a step attempt the
  baseline ran that the candidate lost, an attempt the candidate ran twice, a causality violation,
  an expired known-divergence registry entry;
- ``min_traces``: enough traces replayed to judge at all;
- ``divergence_budget``: share of traces with an unexplained divergence. PASS when the Wilson upper
  bound is within budget (we are confident the true rate is); MARGINAL when the observed rate is
  within budget but the bound is not (too little evidence to be sure); FAIL when the observed rate is
  over budget;
- ``latency_start_overhead`` / ``latency_end_to_end``: the Mann-Whitney judge (statistics.py);
- ``replay_errors``: traces the harness could not replay make the verdict MARGINAL;
- ``faults`` (critical, only where a fault campaign ran, ``shadow run --faults``): a fired fault trial whose
  outcome differs from the candidate's own no-fault record fails the cohort, whatever the noise filter says;
  trials that all failed to fire (or to be placed) prove nothing: INSUFFICIENT_DATA, never PASS;
- ``handoff`` (critical, only when ``shadow handoff`` wrote rows for the cohort's traces into the same
  database): an in-flight hand-off from the legacy to the actor engine whose outcome differed from the
  legacy-only replay, or that started a runtime twice, fails the cohort (docs/HANDOFF.md);
- ``fidelity``: where the cohort's traces carry production's observations, the share of observed
  statuses the *baseline* replay agrees with must reach ``fidelity_min_status_agreement``; below it the
  legacy model is not a faithful reference for the cohort, so agreeing with it proves little and the
  criterion is insufficient (INSUFFICIENT_DATA, never PASS). No observations: not judged (pass, said so).

The verdict: FAIL if any criterion fails, else INSUFFICIENT_DATA if any could not be judged, else
MARGINAL if any is marginal, else PASS. Failures outrank missing data on purpose: one unexplained
divergence in three traces is a finding, not a lack of data. The score (0-100) is the share of
criteria met, marginal counting half and unjudged counting nothing; it ranks cohorts, the verdict decides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from results.exitcodes import EXIT_FAIL, EXIT_INSUFFICIENT_DATA, EXIT_MARGINAL, EXIT_OK
from shadow.gate.evidence import CohortEvidence, Finding
from shadow.gate.statistics import LatencyOutcome, judge_latency, wilson_upper

__all__ = [
    "CohortVerdict",
    "Criterion",
    "CriterionStatus",
    "Verdict",
    "exit_code",
    "judge_cohort",
    "worst",
]


class Verdict(StrEnum):
    PASS = "PASS"
    MARGINAL = "MARGINAL"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
    FAIL = "FAIL"


class CriterionStatus(StrEnum):
    PASS = "pass"
    MARGINAL = "marginal"
    INSUFFICIENT = "insufficient"
    FAIL = "fail"


# Worst last: FAIL blocks, INSUFFICIENT_DATA cannot be acted on, MARGINAL needs a sign-off.
_SEVERITY = {Verdict.PASS: 0, Verdict.MARGINAL: 1, Verdict.INSUFFICIENT_DATA: 2, Verdict.FAIL: 3}
_EXIT = {
    Verdict.PASS: EXIT_OK,
    Verdict.FAIL: EXIT_FAIL,
    Verdict.MARGINAL: EXIT_MARGINAL,
    Verdict.INSUFFICIENT_DATA: EXIT_INSUFFICIENT_DATA,
}


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    status: CriterionStatus
    value: float | None
    threshold: float | None
    message: str
    critical: bool = False


@dataclass(frozen=True, slots=True)
class CohortVerdict:
    cohort: str
    verdict: Verdict
    score: float
    reason: str
    n_traces: int
    criteria: tuple[Criterion, ...]
    # What the evidence was captured from (see CohortEvidence): the rollout's freshness check reads them.
    captured_min: dt.datetime | None = None
    uncaptured: int = 0


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The verdict that decides a gate over several cohorts (PASS when there are none)."""
    return max(verdicts, key=_SEVERITY.__getitem__, default=Verdict.PASS)


def exit_code(verdict: Verdict) -> int:
    """The CI contract: 0 PASS, 1 FAIL, 2 MARGINAL, 3 INSUFFICIENT_DATA."""
    return _EXIT[verdict]


def _critical(name: str, finding: Finding, what: str) -> Criterion:
    if finding.count == 0:
        return Criterion(name, CriterionStatus.PASS, 0, 0, f"no {what}", critical=True)
    examples = ", ".join(finding.examples)
    more = (
        "" if finding.count <= len(finding.examples) else f" and {finding.count - len(finding.examples)} more"
    )
    return Criterion(
        name,
        CriterionStatus.FAIL,
        finding.count,
        0,
        f"{finding.count} {what} (e.g. {examples}{more})",
        critical=True,
    )


def _faults(evidence: CohortEvidence) -> Criterion:
    faults = evidence.faults
    assert faults is not None
    head = f"{faults.fired} of {faults.trials} fault trials fired"
    if faults.not_placed:
        head += f" ({faults.not_placed} could not be placed)"
    if faults.changed.count:
        examples = ", ".join(faults.changed.examples)
        more = (
            ""
            if faults.changed.count <= len(faults.changed.examples)
            else f" and {faults.changed.count - len(faults.changed.examples)} more"
        )
        return Criterion(
            "faults",
            CriterionStatus.FAIL,
            faults.changed.count,
            0,
            f"{head}; {faults.changed.count} changed the candidate's outcome (e.g. {examples}{more})",
            critical=True,
        )
    if faults.fired == 0:
        return Criterion(
            "faults",
            CriterionStatus.INSUFFICIENT,
            0,
            1,
            f"{head}: a fault that never fired proves nothing; place the campaign's faults where the "
            "traces live (docs/FAULTS.md)",
            critical=True,
        )
    return Criterion(
        "faults",
        CriterionStatus.PASS,
        0,
        0,
        f"{head}, and none changed the candidate's outcome",
        critical=True,
    )


def _handoff(evidence: CohortEvidence) -> Criterion:
    """Critical: every in-flight hand-off of the cohort's traces must end as the legacy-only replay did."""
    finding = evidence.handoffs
    assert finding is not None
    n = evidence.n_handoffs
    if finding.count == 0:
        return Criterion(
            "handoff",
            CriterionStatus.PASS,
            0,
            0,
            f"all {n} in-flight hand-offs from the legacy to the actor engine ended as on legacy alone",
            critical=True,
        )
    examples = "; ".join(finding.examples)
    more = (
        "" if finding.count <= len(finding.examples) else f" and {finding.count - len(finding.examples)} more"
    )
    return Criterion(
        "handoff",
        CriterionStatus.FAIL,
        finding.count,
        0,
        f"{finding.count} of {n} in-flight hand-offs from the legacy to the actor engine changed an outcome or "
        f"started a runtime twice (e.g. {examples}{more}; 'shadow handoff', handoffs table)",
        critical=True,
    )


def _registry(evidence: CohortEvidence) -> Criterion:
    if not evidence.expired_entries:
        return Criterion(
            "registry_expiry", CriterionStatus.PASS, 0, 0, "no expired known-divergence entries", True
        )
    listed = "; ".join(
        f"{e.entry_id} (owner {e.owner}, expired {e.expires})" for e in evidence.expired_entries
    )
    return Criterion(
        "registry_expiry", CriterionStatus.FAIL, len(evidence.expired_entries), 0,
        f"known-divergence registry entries have expired: {listed}; the owner must fix the divergence, "
        "renew the entry with a new expiry, or delete it",
        critical=True,
    )  # fmt: skip


def _min_traces(evidence: CohortEvidence) -> Criterion:
    need, have = evidence.cohort.budget.min_traces, evidence.n_judged
    if have >= need:
        return Criterion(
            "min_traces", CriterionStatus.PASS, have, need, f"{have} traces replayed ({need} needed)"
        )
    return Criterion(
        "min_traces", CriterionStatus.INSUFFICIENT, have, need,
        f"only {have} traces replayed, {need} are needed for a verdict: capture more traffic or widen the cohort",
    )  # fmt: skip


def _pct(x: float) -> str:
    return f"{x * 100:.3g} %"


def _divergence(evidence: CohortEvidence) -> Criterion:
    budget = evidence.cohort.budget
    n, k = evidence.n_judged, evidence.n_divergent
    if n == 0:
        return Criterion("divergence_budget", CriterionStatus.INSUFFICIENT, None, budget.divergence_budget,
                         "no traces replayed, so no divergence rate")  # fmt: skip
    rate = k / n
    upper = wilson_upper(k, n, budget.confidence)
    head = f"{k} of {n} traces diverged without explanation ({_pct(rate)})"
    if rate > budget.divergence_budget:
        status = CriterionStatus.FAIL
        text = f"{head}, over the {_pct(budget.divergence_budget)} budget"
    elif upper <= budget.divergence_budget:
        status = CriterionStatus.PASS
        text = (f"{head}; with {budget.confidence:.0%} confidence the true rate is at most {_pct(upper)}, "
                f"within the {_pct(budget.divergence_budget)} budget")  # fmt: skip
    else:
        status = CriterionStatus.MARGINAL
        text = (f"{head}, within the {_pct(budget.divergence_budget)} budget, but with {n} traces the true rate "
                f"could be up to {_pct(upper)} ({budget.confidence:.0%} confidence): replay more traces or sign off")  # fmt: skip
    return Criterion("divergence_budget", status, upper, budget.divergence_budget, text)


def _errors(evidence: CohortEvidence) -> Criterion:
    if evidence.n_errored == 0:
        return Criterion(
            "replay_errors", CriterionStatus.PASS, 0, 0, "every trace replayed without a harness error"
        )
    return Criterion(
        "replay_errors", CriterionStatus.MARGINAL, evidence.n_errored, 0,
        f"{evidence.n_errored} of {evidence.n_traces} traces could not be replayed (see traces.error); "
        f"the verdict covers the other {evidence.n_judged}",
    )  # fmt: skip


def _fidelity(evidence: CohortEvidence) -> Criterion:
    need = evidence.cohort.budget.fidelity_min_status_agreement
    fid = evidence.fidelity
    agreement = fid.agreement
    if agreement is None:
        return Criterion(
            "fidelity",
            CriterionStatus.PASS,
            None,
            need,
            "no production observations in this cohort: the baseline's fidelity is not measured",
        )
    head = (
        f"the baseline agrees with production on {fid.agree} of {fid.checked} observed statuses "
        f"({_pct(agreement)}) in {fid.n_traces} traces"
    )
    if agreement >= need:
        return Criterion(
            "fidelity", CriterionStatus.PASS, agreement, need, f"{head}, at or above {_pct(need)}"
        )
    where = f" (first disagreements: {', '.join(fid.examples)})" if fid.examples else ""
    return Criterion(
        "fidelity", CriterionStatus.INSUFFICIENT, agreement, need,
        f"{head}, under the {_pct(need)} fidelity budget{where}: the legacy model is not a faithful baseline for "
        "this cohort, so agreeing with it proves little; fix the model or the import, or lower "
        "fidelity_min_status_agreement knowingly",
    )  # fmt: skip


def _coverage(evidence: CohortEvidence) -> Criterion:
    """The cohort's ``require`` list against what its traces exercise (only for cohorts that have one)."""
    need = evidence.cohort.require
    if evidence.features is None:
        return Criterion(
            "coverage",
            CriterionStatus.INSUFFICIENT,
            None,
            len(need),
            "the results predate coverage (no traces.features): rerun 'shadow run' to judge the "
            f"required features {', '.join(need)}",
        )
    missing = [f for f in need if f not in evidence.features]
    if not missing:
        return Criterion(
            "coverage",
            CriterionStatus.PASS,
            len(need),
            len(need),
            f"the traces exercise every required feature ({', '.join(need)})",
        )
    return Criterion(
        "coverage",
        CriterionStatus.INSUFFICIENT,
        len(need) - len(missing),
        len(need),
        f"no judged trace exercises {', '.join(missing)}: a clean result says nothing about them; capture traffic "
        "that does ('shadow corpus stats --coverage' lists what a corpus exercises)",
    )


_LATENCY_STATUS = {
    LatencyOutcome.PASS: CriterionStatus.PASS,
    LatencyOutcome.MARGINAL: CriterionStatus.MARGINAL,
    LatencyOutcome.REGRESSION: CriterionStatus.FAIL,
    LatencyOutcome.INSUFFICIENT: CriterionStatus.INSUFFICIENT,
}


def _latency(evidence: CohortEvidence, metric: str) -> Criterion:
    budget = evidence.cohort.budget
    baseline, candidate = evidence.start_overhead if metric == "start_overhead" else evidence.end_to_end
    judgement = judge_latency(
        metric, baseline, candidate,
        tolerance=budget.latency_tolerance, confidence=budget.latency_confidence,
        p99_warn=budget.p99_ratio_warn, p99_max=budget.p99_ratio_max, min_samples=budget.min_latency_samples,
    )  # fmt: skip
    value = None if judgement.outcome is LatencyOutcome.INSUFFICIENT else judgement.shift_low
    threshold = None if judgement.outcome is LatencyOutcome.INSUFFICIENT else judgement.allowed_shift
    return Criterion(
        f"latency_{metric}", _LATENCY_STATUS[judgement.outcome], value, threshold, judgement.message
    )


def _speed(evidence: CohortEvidence) -> str:
    """The latency headline a release manager wants: median step start, baseline vs candidate."""
    baseline, candidate = evidence.start_overhead
    if len(baseline) == 0 or len(candidate) == 0:
        return ""
    b, c = float(np.median(baseline)), float(np.median(candidate))
    return (
        f"; a step starts {c:.3g} s after it is ready on the candidate, {b:.3g} s on the baseline (medians)"
    )


def _decide(criteria: Iterable[Criterion]) -> Verdict:
    statuses = {c.status for c in criteria}
    if CriterionStatus.FAIL in statuses:
        return Verdict.FAIL
    if CriterionStatus.INSUFFICIENT in statuses:
        return Verdict.INSUFFICIENT_DATA
    if CriterionStatus.MARGINAL in statuses:
        return Verdict.MARGINAL
    return Verdict.PASS


def _reason(verdict: Verdict, criteria: tuple[Criterion, ...], evidence: CohortEvidence) -> str:
    def said(status: CriterionStatus) -> str:
        return "; ".join(c.message for c in criteria if c.status is status)

    name = evidence.cohort.name
    match verdict:
        case Verdict.FAIL:
            return f"{name} fails: {said(CriterionStatus.FAIL)}."
        case Verdict.INSUFFICIENT_DATA:
            return f"{name} cannot be judged yet: {said(CriterionStatus.INSUFFICIENT)}."
        case Verdict.MARGINAL:
            return f"{name} needs a sign-off: {said(CriterionStatus.MARGINAL)}."
        case Verdict.PASS:
            headline = next(c.message for c in criteria if c.name == "divergence_budget")
            return f"{name} passes all {len(criteria)} checks on {evidence.n_judged} traces: {headline}{_speed(evidence)}."


def judge_cohort(evidence: CohortEvidence) -> CohortVerdict:
    """The verdict on one cohort, with every criterion and a reason in plain words."""
    criteria = (
        _critical("stuck_runs", evidence.stuck_runs, "candidate runs never finished (stuck)"),
        _critical("lost_attempts", evidence.lost_attempts,
                  "step attempts the baseline ran were never run by the candidate (lost)"),
        _critical("duplicated_attempts", evidence.duplicated_attempts,
                  "step attempts ran more than once on the candidate (duplicated)"),
        _critical("causality", evidence.causality_violations,
                  "steps started before a step they depend on had finished (causality violations)"),
        *((_faults(evidence),) if evidence.faults is not None else ()),
        _critical("invariants", evidence.invariant_violations,
                  "broken rules in the candidate's own record (invariant violations: retry timing, retries "
                  "beyond the policy, steps outliving their timeout, foreach concurrency)"),
        _registry(evidence),
        _min_traces(evidence),
        _divergence(evidence),
        _errors(evidence),
        _fidelity(evidence),
        _latency(evidence, "start_overhead"),
        _latency(evidence, "end_to_end"),
        *((_coverage(evidence),) if evidence.cohort.require else ()),
        *((_handoff(evidence),) if evidence.handoffs is not None else ()),
    )  # fmt: skip
    verdict = _decide(criteria)
    points = {CriterionStatus.PASS: 1.0, CriterionStatus.MARGINAL: 0.5}
    score = round(100.0 * sum(points.get(c.status, 0.0) for c in criteria) / len(criteria), 1)
    return CohortVerdict(
        evidence.cohort.name,
        verdict,
        score,
        _reason(verdict, criteria, evidence),
        evidence.n_traces,
        criteria,
        evidence.captured_min,
        evidence.n_uncaptured,
    )
