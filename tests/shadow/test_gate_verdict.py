"""Verdict paths of the gate, on databases built to land on each boundary."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from shadow.gate.cohorts import parse_cohorts
from shadow.gate.evaluate import evaluate
from shadow.gate.verdict import CohortVerdict, CriterionStatus, Verdict, exit_code, worst
from tests.shadow._gatedb import GateDb

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def judge(db: GateDb, **budget: Any) -> CohortVerdict:
    """The single cohort 'all' (every trace) judged with the given budget."""
    cohorts = parse_cohorts({"cohort": [{"name": "all", "budget": {"min_traces": 30, **budget}}]})
    result = evaluate(db.build(), cohorts, now=NOW)
    return result.verdicts[0]


def status(verdict: CohortVerdict, name: str) -> CriterionStatus:
    return next(c.status for c in verdict.criteria if c.name == name)


@pytest.fixture
def db(tmp_path: Path) -> GateDb:
    return GateDb(tmp_path / "results.duckdb")


class TestDivergenceBudget:
    def test_clean_cohort_passes(self, db: GateDb) -> None:
        """200 traces without an unexplained divergence pass a 5 % budget with a full score."""
        db.add_traces(200)
        verdict = judge(db, divergence_budget=0.05)
        assert verdict.verdict is Verdict.PASS
        assert verdict.score == 100.0
        assert "0 of 200 traces diverged" in verdict.reason

    def test_budget_just_met_passes(self, db: GateDb) -> None:
        """3 divergent of 200: the Wilson upper bound (4.3 %) is within the 5 % budget, so PASS."""
        db.add_traces(200, divergent=3)
        verdict = judge(db, divergence_budget=0.05)
        assert verdict.verdict is Verdict.PASS
        assert status(verdict, "divergence_budget") is CriterionStatus.PASS

    def test_one_divergence_past_the_bound_is_marginal(self, db: GateDb) -> None:
        """4 divergent of 200: 2 % observed is within budget but the bound (5.03 %) is not, so MARGINAL."""
        db.add_traces(200, divergent=4)
        verdict = judge(db, divergence_budget=0.05)
        assert verdict.verdict is Verdict.MARGINAL
        assert "sign off" in verdict.reason

    def test_observed_rate_at_budget_is_marginal(self, db: GateDb) -> None:
        """2 of 40 (exactly the 5 % budget) is not over budget, only unproven: MARGINAL."""
        db.add_traces(40, divergent=2)
        assert judge(db, divergence_budget=0.05).verdict is Verdict.MARGINAL

    def test_one_divergence_too_many_fails(self, db: GateDb) -> None:
        """3 of 40 (7.5 %) is over the 5 % budget: FAIL, and the reason gives the count and the budget."""
        db.add_traces(40, divergent=3)
        verdict = judge(db, divergence_budget=0.05)
        assert verdict.verdict is Verdict.FAIL
        assert "3 of 40 traces diverged without explanation" in verdict.reason
        assert "over the 5 % budget" in verdict.reason


class TestMinimumTraces:
    def test_one_trace_short_is_insufficient(self, db: GateDb) -> None:
        """29 clean traces against a minimum of 30 give INSUFFICIENT_DATA, naming both numbers."""
        db.add_traces(29)
        verdict = judge(db)
        assert verdict.verdict is Verdict.INSUFFICIENT_DATA
        assert "only 29 traces replayed, 30 are needed" in verdict.reason

    def test_exactly_the_minimum_is_enough(self, db: GateDb) -> None:
        """30 clean traces against a minimum of 30 are judged (no INSUFFICIENT_DATA)."""
        db.add_traces(30)
        assert status(judge(db, divergence_budget=0.2), "min_traces") is CriterionStatus.PASS

    def test_failure_outranks_missing_data(self, db: GateDb) -> None:
        """A divergence in a too-small cohort is still a finding: FAIL, not INSUFFICIENT_DATA."""
        db.add_traces(5, divergent=1)
        assert judge(db).verdict is Verdict.FAIL

    def test_errored_traces_do_not_count_and_make_it_marginal(self, db: GateDb) -> None:
        """Traces the harness could not replay leave the sample and make a clean cohort MARGINAL."""
        db.add_traces(62, errored=2)
        verdict = judge(db, divergence_budget=0.1)
        assert verdict.verdict is Verdict.MARGINAL
        assert status(verdict, "replay_errors") is CriterionStatus.MARGINAL
        assert "2 of 62 traces could not be replayed" in verdict.reason


class TestCriticalRules:
    @pytest.mark.parametrize(
        ("finding", "criterion", "words"),
        [
            ("stuck", "stuck_runs", "never finished (stuck)"),
            ("lost", "lost_attempts", "never run by the candidate (lost)"),
            ("duplicated", "duplicated_attempts", "more than once on the candidate (duplicated)"),
            ("causality", "causality", "causality violations"),
            ("invariant", "invariants", "invariant violations"),
        ],
    )
    def test_a_single_critical_finding_fails(
        self, db: GateDb, finding: str, criterion: str, words: str
    ) -> None:
        """One stuck run, lost or duplicated attempt, causality or invariant violation among 200 clean traces fails."""
        db.add_traces(200, **{finding: 1})
        verdict = judge(db, divergence_budget=0.05)
        assert verdict.verdict is Verdict.FAIL
        assert status(verdict, criterion) is CriterionStatus.FAIL
        assert words in verdict.reason
        assert "wf-00001" in verdict.reason

    def test_expired_registry_entry_fails(self, db: GateDb) -> None:
        """A registry entry past its expiry date fails the cohort and names the entry and owner."""
        db.add_traces(100)
        db.add_waiver("flaky-outputs", owner="alice", expires=dt.date(2026, 11, 1), expired=False)
        verdict = judge(db, divergence_budget=0.1)
        assert verdict.verdict is Verdict.FAIL
        assert "flaky-outputs (owner alice" in verdict.reason

    def test_live_registry_entry_is_fine(self, db: GateDb) -> None:
        """A registry entry that expires next year does not affect the verdict."""
        db.add_traces(100)
        db.add_waiver("flaky-outputs", owner="alice", expires=dt.date(2027, 11, 1), expired=False)
        assert judge(db, divergence_budget=0.1).verdict is Verdict.PASS


class TestLatency:
    def test_slower_candidate_is_a_regression(self, db: GateDb) -> None:
        """A candidate that starts steps in 10 s instead of 5 s fails on start overhead."""
        db.add_traces(60, candidate_overhead=10.0)
        verdict = judge(db, divergence_budget=0.1)
        assert verdict.verdict is Verdict.FAIL
        assert status(verdict, "latency_start_overhead") is CriterionStatus.FAIL
        assert "start_overhead" in verdict.reason

    def test_faster_candidate_passes(self, db: GateDb) -> None:
        """The actor engine's 50 ms start against legacy's 5 s is no regression."""
        db.add_traces(60)
        verdict = judge(db, divergence_budget=0.1)
        assert status(verdict, "latency_start_overhead") is CriterionStatus.PASS
        assert status(verdict, "latency_end_to_end") is CriterionStatus.PASS

    def test_slowdown_within_tolerance_passes(self, db: GateDb) -> None:
        """A 10 % slower start (tolerance 25 %) is not a regression."""
        db.add_traces(60, baseline_overhead=5.0, candidate_overhead=5.5)
        verdict = judge(db, divergence_budget=0.1, p99_ratio_warn=1.5, p99_ratio_max=2.0)
        assert status(verdict, "latency_start_overhead") is CriterionStatus.PASS

    def test_too_few_latency_samples_abstain(self, db: GateDb) -> None:
        """With fewer samples than the judge needs, the latency criteria make the verdict INSUFFICIENT_DATA."""
        db.add_traces(30, steps=1)
        verdict = judge(db, divergence_budget=0.2, min_latency_samples=40)
        assert verdict.verdict is Verdict.INSUFFICIENT_DATA
        assert status(verdict, "latency_end_to_end") is CriterionStatus.INSUFFICIENT


class TestCombining:
    def test_worst_cohort_decides(self) -> None:
        """FAIL outranks INSUFFICIENT_DATA, which outranks MARGINAL, which outranks PASS."""
        assert worst([Verdict.PASS, Verdict.MARGINAL]) is Verdict.MARGINAL
        assert worst([Verdict.MARGINAL, Verdict.INSUFFICIENT_DATA]) is Verdict.INSUFFICIENT_DATA
        assert worst([Verdict.INSUFFICIENT_DATA, Verdict.FAIL, Verdict.PASS]) is Verdict.FAIL
        assert worst([]) is Verdict.PASS

    def test_exit_codes_follow_the_ci_contract(self) -> None:
        """PASS 0, FAIL 1, MARGINAL 2, INSUFFICIENT_DATA 3."""
        assert [exit_code(v) for v in (Verdict.PASS, Verdict.FAIL, Verdict.MARGINAL, Verdict.INSUFFICIENT_DATA)] == [
            0, 1, 2, 3,
        ]  # fmt: skip


class TestFindingsDoNotDoubleCount:
    def test_steps_missing_from_a_stuck_run_are_not_also_lost(self, db: GateDb) -> None:
        """A stuck run's unrun steps are the stuck-run finding, not lost attempts as well."""
        db.add_traces(100, stuck=1, lost=1)
        verdict = judge(db, divergence_budget=0.1)
        assert status(verdict, "stuck_runs") is CriterionStatus.FAIL
        assert status(verdict, "lost_attempts") is CriterionStatus.PASS

    def test_attempts_the_aa_replica_also_skipped_are_noise_not_loss(self, db: GateDb) -> None:
        """A step the A/A legacy replica did not run either is not a lost attempt of the candidate."""
        db.add_traces(100, noisy_lost=2)
        assert status(judge(db, divergence_budget=0.1), "lost_attempts") is CriterionStatus.PASS

    def test_attempts_the_aa_replica_ran_are_lost(self, db: GateDb) -> None:
        """The same skip with the A/A replica running the step is a lost attempt."""
        db.add_traces(100, lost=2)
        verdict = judge(db, divergence_budget=0.1)
        assert status(verdict, "lost_attempts") is CriterionStatus.FAIL
        assert "2 step attempts the baseline ran were never run by the candidate" in verdict.reason


class TestFidelity:
    """The baseline against production's observations (the fidelity table): a baseline that disagrees with
    production beyond the budget cannot vouch for the candidate, so the cohort is INSUFFICIENT_DATA."""

    def test_no_observations_is_not_judged(self, db: GateDb) -> None:
        db.add_traces(200)
        verdict = judge(db, divergence_budget=0.05)
        assert verdict.verdict is Verdict.PASS
        assert status(verdict, "fidelity") is CriterionStatus.PASS
        assert "not measured" in next(c.message for c in verdict.criteria if c.name == "fidelity")

    def test_faithful_baseline_passes(self, db: GateDb) -> None:
        """2 of 200 traces with one disagreeing step: 798 of 800 statuses (99.75 %) meet the 0.9 default."""
        db.add_fidelity(db.add_traces(200), disagreeing=2)
        verdict = judge(db, divergence_budget=0.05)
        assert verdict.verdict is Verdict.PASS
        assert status(verdict, "fidelity") is CriterionStatus.PASS

    def test_unfaithful_baseline_is_insufficient_never_pass(self, db: GateDb) -> None:
        """Every trace disagrees on one step of three: 75 % agreement, under a 0.9 budget; a clean candidate
        comparison does not make it PASS."""
        ids = db.add_traces(200)
        db.add_fidelity(ids, disagreeing=200)
        verdict = judge(db, divergence_budget=0.05, fidelity_min_status_agreement=0.9)
        assert verdict.verdict is Verdict.INSUFFICIENT_DATA
        assert exit_code(verdict.verdict) == 3
        criterion = next(c for c in verdict.criteria if c.name == "fidelity")
        assert criterion.status is CriterionStatus.INSUFFICIENT
        assert criterion.value == pytest.approx(0.75)
        assert "600 of 800 observed statuses" in verdict.reason
        assert f"{ids[0]}/s1" in verdict.reason

    def test_budget_key_is_validated(self) -> None:
        from shadow.gate.errors import CohortFileError

        with pytest.raises(CohortFileError, match="fidelity_min_status_agreement"):
            parse_cohorts({"cohort": [{"name": "x", "budget": {"fidelity_min_status_agreement": 1.5}}]})

    def test_failures_still_outrank(self, db: GateDb) -> None:
        db.add_fidelity(db.add_traces(200, stuck=1), disagreeing=200)
        assert judge(db).verdict is Verdict.FAIL
