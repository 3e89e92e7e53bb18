"""The rollout lifecycle: advancing needs a fresh PASS, rollback always works, history is kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shadow.cli import main
from shadow.gate.cohorts import parse_cohorts
from shadow.gate.errors import ResultsDatabaseError, RolloutRefused
from shadow.gate.evaluate import evaluate, store_verdicts
from shadow.gate.rollout import RolloutBook, build_router
from shadow.gate.router import EngineChoice, RolloutPhase, RootWorkflow
from tests.shadow._gatedb import GateDb

T0 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
COHORTS = parse_cohorts({"defaults": {"divergence_budget": 0.1}, "cohort": [{"name": "etl"}]})


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, minutes: int = 1) -> dt.datetime:
        self.now += dt.timedelta(minutes=minutes)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    builder = GateDb(tmp_path / "r.duckdb")
    builder.add_traces(60)
    return builder.build()


def gate_at(db: Path, when: dt.datetime) -> None:
    store_verdicts(db, evaluate(db, COHORTS, now=when))


class TestAdvance:
    def test_never_judged_cohort_is_refused(self, db: Path, clock: Clock) -> None:
        """Without any verdict, advance is refused and says to run the gate."""
        with pytest.raises(RolloutRefused, match="has no verdict"):
            RolloutBook(db, clock=clock).advance("etl")

    def test_pass_moves_shadow_to_the_first_canary_step(self, db: Path, clock: Clock) -> None:
        """A PASS verdict takes a cohort from shadow to canary 1 %, citing the verdict."""
        gate_at(db, clock.tick())
        book = RolloutBook(db, clock=clock)
        clock.tick()
        state = book.advance("etl", actor="ann")
        assert (state.phase, state.percent, state.actor) == (RolloutPhase.CANARY, 1.0, "ann")
        assert state.verdict_id is not None
        assert book.state("etl") == state

    def test_stale_verdict_is_refused(self, db: Path, clock: Clock) -> None:
        """A PASS from before the last change cannot vouch for the next step."""
        gate_at(db, clock.tick())
        book = RolloutBook(db, clock=clock)
        clock.tick()
        book.advance("etl")
        clock.tick()
        with pytest.raises(RolloutRefused, match="not newer than the cohort's last change"):
            book.advance("etl")

    def test_fresh_pass_advances_along_the_ladder_to_cutover(self, db: Path, clock: Clock) -> None:
        """Each fresh PASS moves one step: 1, 5, 25, 50 %, then cutover; then nothing further."""
        book = RolloutBook(db, clock=clock)
        seen = []
        for _ in range(5):
            gate_at(db, clock.tick())
            clock.tick()
            seen.append(book.advance("etl").describe())
        assert seen == ["canary 1 %", "canary 5 %", "canary 25 %", "canary 50 %", "cutover"]
        gate_at(db, clock.tick())
        with pytest.raises(RolloutRefused, match="already cut over"):
            book.advance("etl")
        assert len(book.history("etl")) == 5

    def test_failing_verdict_is_refused_with_its_reason(self, tmp_path: Path, clock: Clock) -> None:
        """A FAIL verdict blocks advance, and the refusal repeats the verdict's reason."""
        builder = GateDb(tmp_path / "f.duckdb")
        builder.add_traces(60, stuck=1)
        db = builder.build()
        gate_at(db, clock.tick())
        with pytest.raises(RolloutRefused, match="is FAIL, not PASS: etl fails: 1 candidate runs never finished"):
            RolloutBook(db, clock=clock).advance("etl")

    def test_to_jumps_and_backwards_is_refused(self, db: Path, clock: Clock) -> None:
        """--to picks the canary percentage; a lower one is refused in favour of rollback."""
        book = RolloutBook(db, clock=clock)
        gate_at(db, clock.tick())
        clock.tick()
        assert book.advance("etl", to=20).percent == 20.0
        gate_at(db, clock.tick())
        with pytest.raises(RolloutRefused, match="only moves forward"):
            book.advance("etl", to=10)


class TestRollback:
    def test_rollback_needs_no_verdict_and_routes_to_legacy(self, db: Path, clock: Clock) -> None:
        """From cutover, rollback is immediate and the router sends the cohort back to legacy."""
        book = RolloutBook(db, clock=clock)
        gate_at(db, clock.tick())
        clock.tick()
        book.advance("etl", to=100)
        assert build_router(book, COHORTS).route(RootWorkflow("w1")).engine is EngineChoice.ACTOR
        clock.tick()
        assert book.rollback("etl", note="pager").phase is RolloutPhase.ROLLED_BACK
        assert build_router(book, COHORTS).route(RootWorkflow("w1")).engine is EngineChoice.LEGACY

    def test_nothing_to_roll_back_in_shadow(self, db: Path, clock: Clock) -> None:
        """A cohort still in shadow has nothing on the candidate: rollback is refused."""
        with pytest.raises(RolloutRefused, match="nothing to roll back"):
            RolloutBook(db, clock=clock).rollback("etl")

    def test_missing_database_is_a_harness_error(self, tmp_path: Path, clock: Clock) -> None:
        """A database path that does not exist raises ResultsDatabaseError."""
        with pytest.raises(ResultsDatabaseError):
            RolloutBook(tmp_path / "nope.duckdb", clock=clock)


class TestCommand:
    def test_cli_refuses_then_advances_then_reports(self, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """advance exits 1 with the reason before any gate, 0 after a PASS; status shows the canary."""
        assert main(["rollout", "advance", "etl", "--db", str(db)]) == 1
        assert "refused: " in capsys.readouterr().err
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        gate_at(db, past)
        assert main(["rollout", "advance", "etl", "--db", str(db), "--to", "5", "--actor", "ci"]) == 0
        assert main(["rollout", "status", "--db", str(db)]) == 0
        out = capsys.readouterr().out
        assert "etl: now canary 5 %" in out
        assert "canary 5 %" in out.splitlines()[-1]
        assert main(["rollout", "rollback", "etl", "--db", str(db)]) == 0

    @pytest.mark.parametrize("to", ["250", "0", "-5", "nan"])
    def test_cli_bad_percentage_is_a_usage_error(self, db: Path, to: str) -> None:
        """advance --to outside (0, 100] is a usage error (exit 4), not a refusal (exit 1)."""
        with pytest.raises(SystemExit) as info:
            main(["rollout", "advance", "etl", "--db", str(db), "--to", to])
        assert info.value.code == 4

    def test_cli_bad_database_exits_4(self, tmp_path: Path) -> None:
        """status on a missing database is a harness error (exit 4)."""
        assert main(["rollout", "status", "--db", str(tmp_path / "absent.duckdb")]) == 4


class TestLifecycleEdges:
    def test_marginal_verdict_is_refused(self, tmp_path: Path, clock: Clock) -> None:
        """A MARGINAL verdict is not a PASS: advance is refused and says MARGINAL."""
        builder = GateDb(tmp_path / "m.duckdb")
        builder.add_traces(62, errored=2)
        db = builder.build()
        gate_at(db, clock.tick())
        with pytest.raises(RolloutRefused, match="is MARGINAL, not PASS"):
            RolloutBook(db, clock=clock).advance("etl")

    def test_rolled_back_cohort_restarts_at_the_first_canary_step(self, db: Path, clock: Clock) -> None:
        """After a rollback, a fresh PASS starts the ladder again at canary 1 %."""
        book = RolloutBook(db, clock=clock)
        gate_at(db, clock.tick())
        clock.tick()
        book.advance("etl", to=50)
        clock.tick()
        book.rollback("etl")
        gate_at(db, clock.tick())
        clock.tick()
        assert book.advance("etl").describe() == "canary 1 %"
        assert [s.describe() for s in book.history("etl")] == ["canary 50 %", "rolled_back", "canary 1 %"]

    def test_status_lists_cohorts_never_moved(self, db: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """status --cohorts shows a cohort without verdict or history as shadow with no verdict."""
        cohorts = tmp_path / "c.toml"
        cohorts.write_text('[[cohort]]\nname = "fresh"\n', encoding="utf-8")
        assert main(["rollout", "status", "--db", str(db), "--cohorts", str(cohorts)]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("fresh"))
        assert "shadow" in line
        assert line.endswith("none")


class TestRouteCommand:
    def test_route_preview_follows_the_rollout(self, db: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """Before a change every workflow routes to legacy; after a cut-over, all of the cohort to actor."""
        cohorts = tmp_path / "c.toml"
        cohorts.write_text('[defaults]\ndivergence_budget = 0.1\n[[cohort]]\nname = "etl"\n', encoding="utf-8")
        assert main(["rollout", "route", "--db", str(db), "--cohorts", str(cohorts)]) == 0
        assert capsys.readouterr().out.splitlines()[1].split() == ["etl", "60", "0"]
        gate_at(db, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        assert main(["rollout", "advance", "etl", "--to", "100", "--db", str(db)]) == 0
        capsys.readouterr()
        assert main(["rollout", "route", "--db", str(db), "--cohorts", str(cohorts)]) == 0
        assert capsys.readouterr().out.splitlines()[1].split() == ["etl", "0", "60"]
        assert main(["rollout", "route", "wf.00001", "--db", str(db), "--cohorts", str(cohorts)]) == 0
        assert "wf.00001 -> actor (cohort 'etl' is cut over" in capsys.readouterr().out
