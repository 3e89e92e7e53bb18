"""Fault campaigns (shadow/campaign.py, ``shadow run --faults``, the ``fault_trials`` table, gate and report)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pytest

from corpora.codec import encode
from corpora.testing import chain_trace
from engines.actor.engine import ActorEngine
from engines.api import AttemptRecord, ExecutionRecord, ReplayOptions, RunExecution
from shadow.campaign import (
    OUTCOMES,
    CampaignError,
    FaultEntry,
    check_campaign,
    classify,
    load_campaign,
    place,
)
from shadow.cli import main
from shadow.engines import resolve_engine

ACTOR_CAMPAIGN = """
seed = 3
engine = { nodes = 2 }

[[fault]]
name = "crash"
spec = "crash:*@{during}"
trials = 2

[[fault]]
name = "lost StartTask"
spec = "drop:StartTask#{occurrence:deliveries_StartTask}"

[[fault]]
name = "never"
spec = "drop:StopFlow#{occurrence:deliveries_StopFlow}"
"""


def write(tmp_path: Path, text: str, name: str = "campaign.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def corpus(tmp_path: Path, *traces: object) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(encode(t)) + "\n" for t in traces), encoding="utf-8")
    return path


class TestLoad:
    def test_reads_entries_seed_engine_and_hash(self, tmp_path: Path) -> None:
        campaign = load_campaign(write(tmp_path, ACTOR_CAMPAIGN))
        assert [f.name for f in campaign.faults] == ["crash", "lost StartTask", "never"]
        assert campaign.faults[0] == FaultEntry("crash", "crash:*@{during}", 2)
        assert campaign.faults[1].kind == "drop"
        assert (campaign.seed, dict(campaign.engine), campaign.trials_per_trace) == (3, {"nodes": 2}, 4)
        assert len(campaign.sha256) == 64

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ("seed = 1\n", "no faults"),
            ("[[fault]]\nname = 'x'\n", "spec is missing"),
            ("[[fault]]\nspec = 'crash:0@{when}'\n", "unknown placeholder {when}"),
            ("[[fault]]\nspec = 'crash:0@1'\ntrails = 2\n", "did you mean 'trials'"),
            ("sed = 1\n[[fault]]\nspec = 'crash:0@1'\n", "did you mean 'seed'"),
            ("[[fault]]\nspec = 'crash:0@1'\ntrials = 0\n", "trials must be an integer from 1 to 1000"),
            (
                "[[fault]]\nname = 'a'\nspec = 'crash:0@1'\n[[fault]]\nname = 'a'\nspec = 'crash:0@2'\n",
                "duplicate name",
            ),
            ("[[fault\n", "not a TOML file"),
        ],
    )
    def test_bad_files_are_located_errors(self, tmp_path: Path, text: str, says: str) -> None:
        with pytest.raises(CampaignError, match=r"campaign\.toml") as info:
            load_campaign(write(tmp_path, text))
        assert says in str(info.value)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(CampaignError, match="cannot read the fault campaign"):
            load_campaign(tmp_path / "nope.toml")

    def test_a_spec_the_engine_does_not_understand_is_refused_up_front(self, tmp_path: Path) -> None:
        campaign = load_campaign(write(tmp_path, "[[fault]]\nname = 'boom'\nspec = 'explode:{during}'\n"))
        with pytest.raises(
            CampaignError, match=r"'boom'.*not accepted by the candidate engine 'actor'.*--fault help"
        ):
            check_campaign(campaign, resolve_engine("actor"))
        check_campaign(load_campaign(write(tmp_path, ACTOR_CAMPAIGN)), resolve_engine("actor"))


def _record(runs: tuple[RunExecution, ...], **counters: float) -> ExecutionRecord:
    return ExecutionRecord("t", "actor", "1", 0, runs, counters)


def _run(
    *attempts: AttemptRecord,
    status: str = "SUCCEEDED",
    stuck: bool = False,
    end: float | None = 100.0,
    run_id: str = "1",
) -> RunExecution:
    return RunExecution(run_id, status, stuck, {}, 0.0, 0.0, end, attempts)


def _attempt(path: str, n: int = 1, status: str = "SUCCEEDED") -> AttemptRecord:
    return AttemptRecord(path, path, "SHELL", n, status, "succeeded", started_at=1.0, ended_at=2.0)


class TestPlace:
    def test_during_falls_inside_the_live_span_and_occurrence_inside_the_counter(self) -> None:
        ref = _record((_run(end=100.0),), deliveries_StartTask=7)
        for seed in range(50):
            spec, _ = place(FaultEntry("c", "crash:*@{during}"), ref, random.Random(seed))
            assert spec is not None
            assert 0.0 <= float(spec.split("@")[1]) < 100.0
            spec, _ = place(
                FaultEntry("d", "drop:StartTask#{occurrence:deliveries_StartTask}"), ref, random.Random(seed)
            )
            assert spec is not None
            assert 1 <= int(spec.split("#")[1]) <= 7

    def test_nothing_to_place_in_says_why(self) -> None:
        ref = _record((_run(end=100.0),), deliveries_StopFlow=0)
        spec, why = place(
            FaultEntry("d", "drop:StopFlow#{occurrence:deliveries_StopFlow}"), ref, random.Random(1)
        )
        assert spec is None
        assert "counts 0" in why
        spec, why = place(FaultEntry("d", "x#{occurrence:no_such}"), ref, random.Random(1))
        assert spec is None
        assert "no counter 'no_such'" in why
        spec, why = place(FaultEntry("c", "crash:*@{during}"), _record((_run(end=None),)), random.Random(1))
        assert spec is None
        assert "{during}" in why


class TestClassify:
    trace = chain_trace(2)

    def test_equal_stuck_lost_duplicated_status(self) -> None:
        a1, a2 = _attempt("s1"), _attempt("s2")
        ref = _record((_run(a1, a2),), runtime_starts=2)
        assert classify(self.trace, ref, ref)["outcome"] == "equal"
        stuck = classify(self.trace, ref, _record((_run(a1, status="RUNNING", stuck=True, end=None),)))
        assert (stuck["outcome"], stuck["stuck"], stuck["lost"]) == ("stuck", 1, 1)
        lost = classify(self.trace, ref, _record((_run(a1),), runtime_starts=1))
        assert (lost["outcome"], lost["lost"]) == ("lost_attempt", 1)
        twice = classify(self.trace, ref, _record((_run(a1, a2),), runtime_starts=3))
        assert (twice["outcome"], twice["duplicated"]) == ("duplicated_attempt", 1)
        extra = classify(self.trace, ref, _record((_run(a1, a2, _attempt("s2", 2)),), runtime_starts=3))
        assert extra["outcome"] == "duplicated_attempt"
        failed = _record((_run(a1, _attempt("s2", status="USER_FAILED"), status="FAILED"),), runtime_starts=2)
        wrong = classify(self.trace, ref, failed)
        assert wrong["outcome"] == "wrong_status"
        assert "final_status" in wrong["divergence_kinds"]
        late = classify(self.trace, ref, _record((_run(a1, a2, end=130.0),), runtime_starts=2))
        assert (late["outcome"], late["latency_added"]) == ("equal", 30.0)
        assert set(OUTCOMES) >= {c["outcome"] for c in (stuck, lost, twice, wrong, late)}


class TestRunWithCampaign:
    def test_trials_are_stored_deterministic_and_judged(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = corpus(tmp_path, chain_trace(3, trace_id="chain-3"), chain_trace(2, trace_id="two"))
        campaign = write(tmp_path, ACTOR_CAMPAIGN)
        rows = []
        for name in ("a.duckdb", "b.duckdb"):
            db = tmp_path / name
            assert (
                main(
                    [
                        "run",
                        str(path),
                        "--db",
                        str(db),
                        "--faults",
                        str(campaign),
                        "--workers",
                        "1",
                        "--no-progress",
                    ]
                )
                == 0
            )
            with duckdb.connect(str(db), read_only=True) as con:
                rows.append(
                    con.execute(
                        "SELECT trace_id, fault, trial, spec, fired, outcome, lost, duplicated, stuck "
                        "FROM fault_trials ORDER BY ALL"
                    ).fetchall()
                )
        assert rows[0] == rows[1]  # seeded placements, deterministic engines
        got = rows[0]
        assert len(got) == 2 * 4  # two traces, 2 + 1 + 1 trials each
        by_fault = {(t, f, n): (spec, fired, outcome) for t, f, n, spec, fired, outcome, *_ in got}
        assert all(
            fired and outcome == "equal"
            for spec, fired, outcome in (by_fault[k] for k in by_fault if k[1] != "never")
        )
        assert {by_fault[k] for k in by_fault if k[1] == "never"} == {(None, False, "not_placed")}
        assert main(
            [
                "gate",
                "--db",
                str(tmp_path / "a.duckdb"),
                "--cohorts",
                str(_cohorts(tmp_path)),
                "--no-store",
                "--json",
                str(tmp_path / "v.json"),
            ]
        ) in (0, 2, 3)
        faults = _criterion(tmp_path / "v.json", "faults")
        assert faults["status"] == "pass"
        assert "6 of 8 fault trials fired (2 could not be placed)" in faults["message"]
        assert main(["report", "--db", str(tmp_path / "a.duckdb"), "-o", str(tmp_path / "r.html")]) == 0
        html = (tmp_path / "r.html").read_text(encoding="utf-8")
        assert 'id="faults"' in html
        assert "lost StartTask" in html

    def test_a_fault_that_changes_the_outcome_fails_the_gate(self, tmp_path: Path) -> None:
        """One node and a crash: nobody takes the groups over, the run is stuck (a critical finding)."""
        path = corpus(tmp_path, chain_trace(3, trace_id="chain-3"))
        campaign = write(
            tmp_path, "engine = { nodes = 1 }\n[[fault]]\nname = 'lone crash'\nspec = 'crash:0@{during}'\n"
        )
        db = tmp_path / "r.duckdb"
        assert main(["run", str(path), "--db", str(db), "--faults", str(campaign), "--no-progress"]) == 0
        with duckdb.connect(str(db), read_only=True) as con:
            assert con.execute("SELECT fired, outcome, stuck FROM fault_trials").fetchall() == [
                (True, "stuck", 1)
            ]
        code = main(
            [
                "gate",
                "--db",
                str(db),
                "--cohorts",
                str(_cohorts(tmp_path)),
                "--no-store",
                "--json",
                str(tmp_path / "v.json"),
            ]
        )
        assert code == 1
        faults = _criterion(tmp_path / "v.json", "faults")
        assert faults["status"] == "fail"
        assert faults["critical"]
        assert "chain-3/lone crash#1: stuck" in faults["message"]

    def test_another_campaign_is_another_identity(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = corpus(tmp_path, chain_trace(2))
        db = tmp_path / "r.duckdb"
        one = write(
            tmp_path, "[[fault]]\nspec = 'dup:TaskUpdate#{occurrence:deliveries_TaskUpdate}'\n", "one.toml"
        )
        two = write(
            tmp_path, "[[fault]]\nspec = 'drop:TaskUpdate#{occurrence:deliveries_TaskUpdate}'\n", "two.toml"
        )
        assert main(["run", str(path), "--db", str(db), "--faults", str(one), "--no-progress"]) == 0
        capsys.readouterr()
        assert main(["run", str(path), "--db", str(db), "--faults", str(two), "--no-progress"]) == 4
        assert "fault campaign: --faults campaign sha256" in capsys.readouterr().err

    def test_bad_campaign_exits_4_before_the_database_exists(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = corpus(tmp_path, chain_trace(2))
        db = tmp_path / "r.duckdb"
        bad = write(tmp_path, "[[fault]]\nspec = 'crash:0@{sometime}'\n")
        assert main(["run", str(path), "--db", str(db), "--faults", str(bad)]) == 4
        assert "unknown placeholder {sometime}" in capsys.readouterr().err
        assert not db.exists()


def test_actor_counts_deliveries_and_every_fired_fault() -> None:
    """The counters a campaign places faults with: deliveries per message kind, and faults_fired counting
    crashes and store failures as well as message faults."""
    trace = chain_trace(3)
    clean = ActorEngine().replay(trace, ReplayOptions())
    assert clean.counters["deliveries_StartTask"] == 3
    assert clean.counters["faults_fired"] == 0
    crashed = ActorEngine(nodes=2).replay(trace, ReplayOptions(faults=("crash:0@5", "store-fail:commit#2")))
    assert crashed.counters["faults_fired"] == 2
    late = ActorEngine(nodes=2).replay(trace, ReplayOptions(faults=("crash:0@999999",)))
    assert late.counters["faults_fired"] == 0


def _cohorts(tmp_path: Path) -> Path:
    return write(tmp_path, '[[cohort]]\nname = "all"\n[cohort.budget]\nmin_traces = 1\n', "cohorts.toml")


def _criterion(verdict: Path, name: str) -> dict[str, object]:
    data = json.loads(verdict.read_text(encoding="utf-8"))
    return next(c for c in data["cohorts"][0]["criteria"] if c["name"] == name)


def test_legacy_campaign_stalls_a_worker_and_counts_it(tmp_path: Path) -> None:
    """The shipped legacy campaign: worker stalls on two workers, placed by the legacy engine's own counters;
    the stall fires (faults_fired = stalls) and the outcome is the legacy engine's own no-fault outcome."""
    path = corpus(tmp_path, chain_trace(3, trace_id="chain-3"))
    db = tmp_path / "r.duckdb"
    campaign = Path(__file__).resolve().parents[2] / "examples" / "campaign-legacy.toml"
    assert (
        main(
            [
                "run",
                str(path),
                "--db",
                str(db),
                "--candidate",
                "legacy",
                "--faults",
                str(campaign),
                "--no-progress",
            ]
        )
        == 0
    )
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT spec, fired, outcome FROM fault_trials ORDER BY fault").fetchall()
    assert len(rows) == 2
    assert all(spec.startswith("stall-worker:0:") for spec, _, _ in rows)
    assert [outcome for _, fired, outcome in rows if fired] == ["equal"] * sum(1 for _, f, _ in rows if f)
    assert any(fired for _, fired, _ in rows)


def test_a_window_keeps_the_campaign(tmp_path: Path) -> None:
    """`shadow gate --since T` judges the window's fault trials too (every table a trial writes is copied)."""
    from dataclasses import replace

    trace = chain_trace(3, trace_id="chain-3")
    trace = replace(trace, metadata=replace(trace.metadata, captured_at="2026-12-01T00:00:00Z"))
    path = corpus(tmp_path, trace)
    db = tmp_path / "r.duckdb"
    campaign = write(
        tmp_path, "engine = { nodes = 1 }\n[[fault]]\nname = 'lone crash'\nspec = 'crash:0@{during}'\n"
    )
    assert main(["run", str(path), "--db", str(db), "--faults", str(campaign), "--no-progress"]) == 0
    code = main(["gate", "--db", str(db), "--cohorts", str(_cohorts(tmp_path)), "--no-store",
                 "--since", "2026-11-01", "--json", str(tmp_path / "v.json")])  # fmt: skip
    assert code == 1
    assert _criterion(tmp_path / "v.json", "faults")["status"] == "fail"
