"""The rollout lifecycle: its own append-only state store, advancing needs a fresh PASS on new traffic
about the same candidate and cohorts file, rollback always works.

The original problem (issue 15, part 2): "a PASS newer than the cohort's last change" was met by
rerunning ``shadow gate`` on unchanged data with any lenient cohorts file, so a cohort went
rolled_back -> cutover (``--to 100``) on 10 traces and no new data; and the rollout state lived in
the results database, which CI throws away.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from shadow.cli import main
from shadow.gate.cohorts import cohorts_sha256, load_cohorts
from shadow.gate.errors import RolloutRefused
from shadow.gate.evaluate import evaluate, store_verdicts
from shadow.gate.rollout import RolloutBook, StoredVerdict, build_router, read_verdict
from shadow.gate.router import EngineChoice, RolloutPhase, RootWorkflow
from shadow.gate.state import APPLICATION_ID, STATE_VERSION, StateStoreError
from tests.shadow._gatedb import GateDb

T0 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
STRICT = '[defaults]\ndivergence_budget = 0.1\n[[cohort]]\nname = "etl"\n'
LENIENT = '[defaults]\ndivergence_budget = 0.5\nmin_traces = 5\n[[cohort]]\nname = "etl"\n'


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, minutes: int = 1) -> dt.datetime:
        self.now += dt.timedelta(minutes=minutes)
        return self.now


class World:
    """Results databases of fresh traffic, cohorts files, a state store, and the gate, on one clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.clock = Clock()
        self.state = tmp_path / "rollout.sqlite"
        self.strict = tmp_path / "strict.toml"
        self.strict.write_text(STRICT, encoding="utf-8")
        self.lenient = tmp_path / "lenient.toml"
        self.lenient.write_text(LENIENT, encoding="utf-8")
        self.n = 0
        self.book = RolloutBook(self.state, clock=self.clock)

    def traffic(
        self, n: int = 60, *, candidate: str = "actor 1", captured: dt.datetime | None = None, **findings: int
    ) -> Path:
        """A results database of ``n`` traces captured now (or at ``captured``) on ``candidate``."""
        self.n += 1
        builder = GateDb(self.tmp / f"r{self.n}.duckdb", candidate=candidate)
        builder.add_traces(n, captured_at=captured or self.clock.tick(), **findings)
        return builder.build()

    def gate(self, db: Path, cohorts: Path | None = None) -> StoredVerdict:
        cohorts = cohorts or self.strict
        result = evaluate(
            db, load_cohorts(cohorts), now=self.clock.tick(), cohorts_sha256=cohorts_sha256(cohorts)
        )
        store_verdicts(db, result)
        verdict = read_verdict(db, "etl")
        assert verdict is not None
        return verdict

    def advance(
        self,
        verdict: StoredVerdict | None,
        *,
        cohorts: Path | None = None,
        to: float | None = None,
        actor: str = "ann",
    ) -> str:
        self.clock.tick()
        state = self.book.advance(
            "etl", verdict=verdict, cohorts_sha256=cohorts_sha256(cohorts or self.strict), to=to, actor=actor
        )
        return state.describe()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


class TestTheBypass:
    def test_rolled_back_cohort_cannot_cut_over_on_rejudged_old_data(self, world: World) -> None:
        """The reported bypass: rolled back, then the gate rerun on unchanged data with a lenient cohorts file
        passes, and ``--to 100`` was accepted. Now each way of reusing old evidence is refused."""
        old = world.traffic(10)
        assert world.gate(old, world.lenient).verdict == "PASS"  # 10 traces pass the lenient file
        assert world.advance(world.gate(world.traffic()), to=50) == "canary 50 %"
        world.clock.tick()
        world.book.rollback("etl", note="pager")
        # Unchanged data, re-judged after the rollback with the lenient file: a fresh PASS...
        rejudged = world.gate(old, world.lenient)
        assert rejudged.verdict == "PASS"
        assert rejudged.created_at > world.book.state("etl").changed_at
        # ...judged with another file than the one given to advance:
        with pytest.raises(RolloutRefused, match="another cohorts file"):
            world.advance(rejudged, to=100)
        # ...and, with that lenient file itself, over traces captured before the rollback:
        with pytest.raises(
            RolloutRefused,
            match=r"judged traces captured from .* not after its last change "
            r"\(rolled_back",
        ):
            world.advance(rejudged, cohorts=world.lenient, to=100)
        assert world.book.state("etl").phase is RolloutPhase.ROLLED_BACK
        # Traffic captured after the rollback, judged with the strict file, may move it again.
        assert world.advance(world.gate(world.traffic()), to=100) == "cutover"

    def test_refusals_are_one_line(self, world: World, capsys: pytest.CaptureFixture[str]) -> None:
        db = world.traffic(10)
        main(["gate", str(db), "--cohorts", str(world.lenient), "--no-store"])
        world.gate(db, world.lenient)
        capsys.readouterr()
        code = main(
            [
                "rollout",
                "advance",
                "etl",
                "--state",
                str(world.state),
                "--db",
                str(db),
                "--cohorts",
                str(world.strict),
            ]
        )
        err = capsys.readouterr().err
        assert code == 1
        assert err.startswith("refused: "), err
        assert len(err.strip().splitlines()) == 1, err


class TestAdvance:
    def test_never_judged_cohort_is_refused(self, world: World) -> None:
        with pytest.raises(RolloutRefused, match="has no verdict"):
            world.advance(None)

    def test_pass_moves_shadow_to_the_first_canary_step_and_records_who_and_what(self, world: World) -> None:
        verdict = world.gate(world.traffic())
        assert world.advance(verdict, actor="ann") == "canary 1 %"
        (state,) = world.book.history("etl")
        assert (state.phase, state.percent, state.actor, state.verdict_id) == (
            RolloutPhase.CANARY,
            1.0,
            "ann",
            verdict.verdict_id,
        )
        assert state.candidate_identity == verdict.candidate_identity
        assert state.candidate_engine == "actor 1"

    def test_the_same_verdict_cannot_vouch_twice(self, world: World) -> None:
        verdict = world.gate(world.traffic())
        world.advance(verdict)
        with pytest.raises(RolloutRefused, match="already used"):
            world.advance(verdict)

    def test_fresh_traffic_advances_along_the_ladder_to_cutover(self, world: World) -> None:
        seen = [world.advance(world.gate(world.traffic())) for _ in range(5)]
        assert seen == ["canary 1 %", "canary 5 %", "canary 25 %", "canary 50 %", "cutover"]
        with pytest.raises(RolloutRefused, match="already cut over"):
            world.advance(world.gate(world.traffic()))
        assert len(world.book.history("etl")) == 5

    def test_a_canary_advances_only_on_its_own_candidate(self, world: World) -> None:
        world.advance(world.gate(world.traffic(candidate="actor 1")))
        with pytest.raises(RolloutRefused, match=r"about candidate actor 2 .* but the canary runs actor 1"):
            world.advance(world.gate(world.traffic(candidate="actor 2")))
        assert world.advance(world.gate(world.traffic(candidate="actor 1"))) == "canary 5 %"

    def test_traces_without_a_capture_time_cannot_show_freshness(self, world: World) -> None:
        world.advance(world.gate(world.traffic()))
        builder = GateDb(world.tmp / "nocapture.duckdb", candidate="actor 1")
        builder.add_traces(60)
        with pytest.raises(RolloutRefused, match="60 traces without a capture time"):
            world.advance(world.gate(builder.build()))

    def test_a_verdict_without_identity_or_cohorts_hash_is_refused(self, world: World) -> None:
        builder = GateDb(world.tmp / "old.duckdb")  # no identity recorded
        builder.add_traces(60, captured_at=world.clock.tick())
        db = builder.build()
        with pytest.raises(RolloutRefused, match="no candidate identity"):
            world.advance(world.gate(db))
        store_verdicts(db, evaluate(db, load_cohorts(world.strict), now=world.clock.tick()))  # an older gate
        with pytest.raises(RolloutRefused, match="no cohorts file hash"):
            world.advance(read_verdict(db, "etl"))

    def test_failing_and_marginal_verdicts_are_refused_with_their_reason(self, world: World) -> None:
        with pytest.raises(
            RolloutRefused, match="is FAIL, not PASS: etl fails: 1 candidate runs never finished"
        ):
            world.advance(world.gate(world.traffic(stuck=1)))
        with pytest.raises(RolloutRefused, match="is MARGINAL, not PASS"):
            world.advance(world.gate(world.traffic(62, errored=2)))

    def test_a_partial_verdict_is_refused(self, world: World) -> None:
        """A verdict judged while the run was still going (gate --allow-partial) cannot move a cohort."""
        db = world.traffic()
        result = evaluate(
            db,
            load_cohorts(world.strict),
            now=world.clock.tick(),
            cohorts_sha256=cohorts_sha256(world.strict),
            partial=True,
        )
        store_verdicts(db, result)
        with pytest.raises(RolloutRefused, match="still going"):
            world.advance(read_verdict(db, "etl"))

    def test_to_jumps_and_backwards_is_refused(self, world: World) -> None:
        assert world.advance(world.gate(world.traffic()), to=20) == "canary 20 %"
        with pytest.raises(RolloutRefused, match="only moves forward"):
            world.advance(world.gate(world.traffic()), to=10)


class TestRollback:
    def test_rollback_needs_no_verdict_and_routes_to_legacy(self, world: World) -> None:
        world.advance(world.gate(world.traffic()), to=100)
        cohorts = load_cohorts(world.strict)
        assert build_router(world.book, cohorts).route(RootWorkflow("w1")).engine is EngineChoice.ACTOR
        world.clock.tick()
        assert world.book.rollback("etl", note="pager").phase is RolloutPhase.ROLLED_BACK
        assert build_router(world.book, cohorts).route(RootWorkflow("w1")).engine is EngineChoice.LEGACY

    def test_nothing_to_roll_back_in_shadow(self, world: World) -> None:
        with pytest.raises(RolloutRefused, match="nothing to roll back"):
            world.book.rollback("etl")

    def test_rolled_back_cohort_restarts_at_the_first_canary_step_with_any_candidate(
        self, world: World
    ) -> None:
        world.advance(world.gate(world.traffic()), to=50)
        world.clock.tick()
        world.book.rollback("etl")
        assert world.advance(world.gate(world.traffic(candidate="actor 2"))) == "canary 1 %"
        assert [s.describe() for s in world.book.history("etl")] == [
            "canary 50 %",
            "rolled_back",
            "canary 1 %",
        ]


class TestStateStore:
    def test_state_file_is_marked_and_append_only(self, world: World) -> None:
        world.advance(world.gate(world.traffic()))
        conn = sqlite3.connect(world.state)
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == STATE_VERSION
        for statement in ("UPDATE rollout_history SET state = 'cutover'", "DELETE FROM rollout_history"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(statement)
        conn.close()

    def test_state_survives_a_new_results_database(self, world: World) -> None:
        """CI throws the results database away; the rollout state does not go with it."""
        db = world.traffic()
        world.advance(world.gate(db))
        db.unlink()
        assert RolloutBook(world.state, clock=world.clock).state("etl").describe() == "canary 1 %"

    @pytest.mark.parametrize("kind", ["text", "foreign-sqlite", "other-app", "duckdb"])
    def test_foreign_file_is_refused_exit_4_before_any_write(
        self, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "state.db"
        if kind == "text":
            path.write_text("my notes\n", encoding="utf-8")
        elif kind == "duckdb":
            path = GateDb(tmp_path / "r.duckdb").build()
        else:
            conn = sqlite3.connect(path)
            conn.execute("CREATE TABLE notes (x)")
            if kind == "other-app":
                conn.execute("PRAGMA application_id = 42")
            conn.commit()
            conn.close()
        before = path.read_bytes()
        with pytest.raises(StateStoreError, match="refusing to write into it"):
            RolloutBook(path, clock=Clock())
        assert main(["rollout", "rollback", "etl", "--state", str(path)]) == 4
        assert main(["rollout", "status", "--state", str(path)]) == 4
        err = capsys.readouterr().err
        assert "harness error" in err
        assert "Traceback" not in err
        assert path.read_bytes() == before

    def test_empty_file_is_initialized(self, tmp_path: Path) -> None:
        path = tmp_path / "state.db"
        path.touch()  # mktemp
        assert RolloutBook(path, clock=Clock()).states() == []


class TestCommand:
    def test_cli_refuses_then_advances_then_reports(
        self, world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        db = world.traffic(captured=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        state = ["--state", str(world.state)]
        assert (
            main(["rollout", "advance", "etl", *state, "--db", str(db), "--cohorts", str(world.strict)]) == 1
        )
        assert "refused: cohort 'etl' has no verdict" in capsys.readouterr().err
        assert main(["gate", str(db), "--cohorts", str(world.strict)]) == 0
        monkeypatch.setenv("GITHUB_ACTOR", "octocat")
        monkeypatch.setenv("GITHUB_RUN_ID", "77")
        assert (
            main(
                [
                    "rollout",
                    "advance",
                    "etl",
                    *state,
                    "--db",
                    str(db),
                    "--cohorts",
                    str(world.strict),
                    "--to",
                    "5",
                ]
            )
            == 0
        )
        assert main(["rollout", "status", *state, "--db", str(db)]) == 0
        out = capsys.readouterr().out
        assert "etl: now canary 5 %" in out
        assert "candidate actor 1" in out
        assert "octocat" in out.splitlines()[-1]
        assert "canary 5 %" in out.splitlines()[-1]
        assert main(["rollout", "rollback", "etl", *state, "--note", "pager 4411"]) == 0
        assert main(["rollout", "history", *state]) == 0
        lines = capsys.readouterr().out.splitlines()[-2:]
        assert "etl -> canary 5 % by octocat (github" in lines[0]
        assert "actions/runs/77" in lines[0]
        assert "etl -> rolled_back by octocat" in lines[1]
        assert lines[1].endswith(": pager 4411")

    def test_state_from_the_environment(self, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SHADOW_ROLLOUT_STATE", str(world.state))
        assert main(["rollout", "status"]) == 0
        assert world.state.is_file()

    @pytest.mark.parametrize("to", ["250", "0", "-5", "nan"])
    def test_cli_bad_percentage_is_a_usage_error(self, world: World, to: str) -> None:
        with pytest.raises(SystemExit) as info:
            main(
                [
                    "rollout",
                    "advance",
                    "etl",
                    "--state",
                    str(world.state),
                    "--db",
                    "x",
                    "--cohorts",
                    "y",
                    "--to",
                    to,
                ]
            )
        assert info.value.code == 4

    def test_cli_bad_database_exits_4(self, world: World) -> None:
        assert (
            main(
                [
                    "rollout",
                    "advance",
                    "etl",
                    "--state",
                    str(world.state),
                    "--db",
                    str(world.tmp / "absent.duckdb"),
                    "--cohorts",
                    str(world.strict),
                ]
            )
            == 4
        )

    def test_status_lists_cohorts_never_moved(self, world: World, capsys: pytest.CaptureFixture[str]) -> None:
        cohorts = world.tmp / "c.toml"
        cohorts.write_text('[[cohort]]\nname = "fresh"\n', encoding="utf-8")
        db = world.traffic()
        assert (
            main(
                ["rollout", "status", "--state", str(world.state), "--db", str(db), "--cohorts", str(cohorts)]
            )
            == 0
        )
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("fresh"))
        assert "shadow" in line
        assert line.endswith("none")


class TestRouteCommand:
    def test_route_preview_follows_the_rollout(
        self, world: World, capsys: pytest.CaptureFixture[str]
    ) -> None:
        db = world.traffic(captured=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        common = ["--state", str(world.state), "--cohorts", str(world.strict)]
        assert main(["rollout", "route", *common, "--db", str(db)]) == 0
        assert capsys.readouterr().out.splitlines()[1].split() == ["etl", "60", "0"]
        assert main(["gate", str(db), "--cohorts", str(world.strict)]) == 0
        assert main(["rollout", "advance", "etl", "--to", "100", *common, "--db", str(db)]) == 0
        capsys.readouterr()
        assert main(["rollout", "route", *common, "--db", str(db)]) == 0
        assert capsys.readouterr().out.splitlines()[1].split() == ["etl", "0", "60"]
        assert main(["rollout", "route", "wf.00001", *common]) == 0
        assert "wf.00001 -> actor (cohort 'etl' is cut over" in capsys.readouterr().out
