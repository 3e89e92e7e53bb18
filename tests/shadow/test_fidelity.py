"""Fidelity: a replay compared with what production observed (shadow/fidelity.py, the ``fidelity`` table)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from corpora.codec import encode
from corpora.model import ObservedRun, ObservedStep, Trace
from corpora.testing import DEFAULT_TRIGGER_TIME, chain_trace
from engines.api import ExecutionRecord, ReplayOptions
from engines.core.oracle import CoreOracle
from shadow.engines import resolve_engine
from shadow.fidelity import fidelity_row, status_class
from shadow.runner import RunSettings, run_shadow

T0 = DEFAULT_TRIGGER_TIME


def observed(trace: Trace, run: ObservedRun) -> Trace:
    return replace(trace, runs=tuple(replace(r, observed=run) for r in trace.runs))


def chain_observed(
    statuses: dict[str, str], *, run_status: str = "Succeeded", makespan: float = 60.0
) -> Trace:
    """s1 -> s2 -> s3, 10 s each, observed by production with the given step statuses; step i started at
    20 s x (i - 1) after the run (twice the replayed delay of the oracle: 10 s x (i - 1))."""
    steps = {
        path: ObservedStep(status, 1, T0 + 20.0 * (int(path[1]) - 1), None)
        for path, status in statuses.items()
    }
    return observed(chain_trace(3), ObservedRun(run_status, T0, T0 + makespan, steps))


def replay(trace: Trace) -> ExecutionRecord:
    return CoreOracle().replay(trace, ReplayOptions(seed=1))


class TestStatusClass:
    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            ("SUCCEEDED", "succeeded"),
            ("Succeeded", "succeeded"),
            ("COMPLETED", "succeeded"),
            ("CACHED", "succeeded"),
            ("Terminated", "succeeded"),
            ("Failed", "failed"),
            ("Error", "failed"),
            ("USER_FAILED", "failed"),
            ("COMPLETED_WITH_ERROR", "failed"),
            ("TIMED_OUT", "failed"),
            ("ABORTED", "stopped"),
            ("STOPPED", "stopped"),
            ("Omitted", "skipped"),
            ("UNSATISFIED", "skipped"),
            ("Running", "running"),
            ("IN_PROGRESS", "running"),
            ("what", "unknown"),
            ("", "unknown"),
            (None, "unknown"),
        ],
    )
    def test_every_source_vocabulary(self, status: str | None, cls: str) -> None:
        assert status_class(status) == cls


class TestFidelityRow:
    def test_full_agreement_and_ratios(self) -> None:
        trace = chain_observed({"s1": "Succeeded", "s2": "COMPLETED", "s3": "SUCCEEDED"})
        row = fidelity_row(trace, "baseline", replay(trace))
        assert row is not None
        assert (row["runs_observed"], row["runs_agree"], row["steps_observed"], row["steps_agree"]) == (
            1,
            1,
            3,
            3,
        )
        assert (row["steps_missing"], row["steps_extra"], row["attempts_agree"]) == (0, 0, 3)
        assert row["status_agreement"] == 1.0
        assert row["first_disagreement"] is None
        assert json.loads(row["disagreements"]) == []
        # The oracle runs the chain in 30 s (zero overhead); production took 60 s.
        assert row["replayed_makespan"] == pytest.approx(30.0)
        assert row["makespan_ratio"] == pytest.approx(0.5)
        # s2 and s3 started 10 / 20 s into the replay, 20 / 40 s into production (s1 has no delay: no ratio).
        assert row["start_delays"] == 2
        assert row["start_delay_ratio"] == pytest.approx(0.5)

    def test_status_disagreement_names_the_first_step(self) -> None:
        trace = chain_observed({"s1": "Succeeded", "s2": "Failed", "s3": "Failed"}, run_status="Failed")
        row = fidelity_row(trace, "candidate", replay(trace))
        assert row is not None
        assert (row["runs_agree"], row["steps_agree"]) == (0, 1)
        assert row["status_agreement"] == pytest.approx(1 / 4)
        assert row["first_disagreement"] == "s2"
        listed = json.loads(row["disagreements"])
        assert [(d["path"], d["observed"], d["replayed"]) for d in listed] == [
            ("s2", "Failed", "SUCCEEDED"),
            ("s3", "Failed", "SUCCEEDED"),
            ("", "Failed", "SUCCEEDED"),
        ]
        assert (row["observed_status"], row["replayed_status"]) == ("Failed", "SUCCEEDED")

    def test_missing_and_extra_steps(self) -> None:
        trace = chain_observed({"s1": "Succeeded"})
        trace = observed(
            trace,
            ObservedRun(
                "Succeeded",
                T0,
                T0 + 60.0,
                {
                    "s1": ObservedStep("Succeeded", 1),
                    "s2": ObservedStep("Succeeded", 2),
                    "ghost": ObservedStep("Failed", 1),
                },
            ),
        )
        row = fidelity_row(trace, "baseline", replay(trace))
        assert row is not None
        # ghost was never replayed (missing); s3 ran but production never observed it (extra); s2's attempts differ.
        assert (row["steps_observed"], row["steps_agree"], row["steps_missing"], row["steps_extra"]) == (
            3,
            2,
            1,
            1,
        )
        assert row["attempts_agree"] == 1
        assert row["status_agreement"] == pytest.approx(3 / 5)
        assert row["start_delays"] == 0
        assert row["start_delay_ratio"] is None

    def test_run_status_only_when_production_observed_no_steps(self) -> None:
        trace = observed(chain_trace(3), ObservedRun("SUCCEEDED", T0, T0 + 30.0))
        row = fidelity_row(trace, "baseline", replay(trace))
        assert row is not None
        assert (row["runs_observed"], row["steps_observed"], row["steps_extra"], row["status_agreement"]) == (
            1,
            0,
            0,
            1.0,
        )
        assert row["makespan_ratio"] == pytest.approx(1.0)

    def test_no_observation_no_row(self) -> None:
        trace = chain_trace(3)
        assert fidelity_row(trace, "baseline", replay(trace)) is None


def test_shadow_run_writes_the_fidelity_table(tmp_path: Path) -> None:
    """Observed traces get one row per (trace, baseline|candidate); a trace without observations gets none. On
    "disagree" only s1 agrees of run + s1 + s2 + s3 (replayed, never observed)."""
    traces = [
        replace(chain_observed({"s1": "Succeeded", "s2": "Succeeded", "s3": "Succeeded"}), trace_id="agree"),
        replace(
            chain_observed({"s1": "Succeeded", "s2": "Failed"}, run_status="Failed"), trace_id="disagree"
        ),
        replace(chain_trace(3), trace_id="unobserved"),
    ]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(encode(t)) + "\n" for t in traces), encoding="utf-8")
    db = tmp_path / "r.duckdb"
    run_shadow(
        RunSettings(
            corpus=(str(corpus),),
            db=str(db),
            baseline=resolve_engine("oracle"),
            candidate=resolve_engine("oracle"),
        )
    )
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = con.execute(
            "SELECT trace_id, engine, status_agreement, first_disagreement, identity <> '' "
            "FROM fidelity ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    assert got == [
        ("agree", "baseline", 1.0, None, True),
        ("agree", "candidate", 1.0, None, True),
        ("disagree", "baseline", pytest.approx(1 / 4), "s2", True),
        ("disagree", "candidate", pytest.approx(1 / 4), "s2", True),
    ]


def test_observations_still_running_are_not_compared() -> None:
    """Captured mid-run (Argo 'Running'): the run's and s3's final statuses are unknown, so not compared."""
    trace = chain_observed({"s1": "Succeeded", "s2": "Succeeded", "s3": "Running"}, run_status="Running")
    row = fidelity_row(trace, "baseline", replay(trace))
    assert row is not None
    assert (row["runs_observed"], row["steps_observed"], row["steps_extra"]) == (0, 2, 0)
    assert row["status_agreement"] == 1.0
