"""``shadow gate`` end to end through the CLI: exit codes, artifacts, stored verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import jsonschema
import pytest

from shadow.cli import main
from shadow.gate.outputs import VERDICT_JSON_SCHEMA
from tests.shadow._gatedb import GateDb

COHORTS = """
[defaults]
divergence_budget = 0.1
min_traces = 30

[[cohort]]
name = "etl"
[cohort.select]
owner = "data-eng"
"""


@pytest.fixture
def cohorts(tmp_path: Path) -> Path:
    path = tmp_path / "cohorts.toml"
    path.write_text(COHORTS, encoding="utf-8")
    return path


def gate(db: Path, cohorts: Path, *extra: str) -> int:
    return main(["gate", str(db), "--cohorts", str(cohorts), "--as-of", "2026-11-28T12:00:00", *extra])


class TestExitCodes:
    @pytest.mark.parametrize(
        ("traces", "code"),
        [
            ({"n": 60}, 0),
            ({"n": 60, "divergent": 10}, 1),
            ({"n": 60, "errored": 1}, 2),
            ({"n": 10}, 3),
        ],
    )
    def test_each_verdict_has_its_exit_code(self, tmp_path: Path, cohorts: Path, traces: dict[str, int],
                                            code: int) -> None:  # fmt: skip
        """PASS 0, FAIL 1, MARGINAL 2, INSUFFICIENT_DATA 3."""
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(**traces)  # type: ignore[arg-type]
        assert gate(db.build(), cohorts) == code

    def test_missing_database_is_a_harness_error(self, tmp_path: Path, cohorts: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A database that does not exist exits 4, says so, and still writes a verdict JSON."""
        out = tmp_path / "verdict.json"
        assert gate(tmp_path / "absent.duckdb", cohorts, "--json", str(out)) == 4
        assert "no such results database" in capsys.readouterr().err
        document = json.loads(out.read_text())
        assert document["verdict"] == "HARNESS_ERROR"
        jsonschema.validate(document, VERDICT_JSON_SCHEMA)

    def test_database_without_the_tables_is_a_harness_error(self, tmp_path: Path, cohorts: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A DuckDB file that shadow run did not write exits 4 naming the missing table."""
        path = tmp_path / "other.duckdb"
        duckdb.connect(str(path)).close()
        assert gate(path, cohorts) == 4
        assert "table 'traces' is missing" in capsys.readouterr().err

    def test_database_held_by_another_process(self, tmp_path: Path, cohorts: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A database another process holds exits 4 and says to wait for that process."""
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(5)
        path = db.build()
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                "sys.stdin.read()",
                str(path),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "held"
            assert gate(path, cohorts) == 4
            assert "another process holds the database" in capsys.readouterr().err
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=30)
            holder.stdout.close()

    def test_bad_cohorts_file_is_a_harness_error(self, tmp_path: Path) -> None:
        """A cohorts file that is not TOML exits 4."""
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(5)
        bad = tmp_path / "c.toml"
        bad.write_text("nope = [", encoding="utf-8")
        assert gate(db.build(), bad) == 4

    def test_binary_cohorts_file_is_a_harness_error(self, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A cohorts file that is not UTF-8 (a binary passed by mistake) exits 4 saying so."""
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(5)
        bad = tmp_path / "c.toml"
        bad.write_bytes(b"\xa0\xff\x00binary")
        assert gate(db.build(), bad) == 4
        assert "not UTF-8 text" in capsys.readouterr().err


class TestArtifactsAndStorage:
    def test_artifacts_written_and_verdicts_stored(self, tmp_path: Path, cohorts: Path) -> None:
        """--json/--junit/--markdown land where asked and the verdict row lands in the database."""
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(60)
        path = db.build()
        out = tmp_path / "out"
        code = gate(path, cohorts, "--json", str(out / "v.json"), "--junit", str(out / "j.xml"),
                    "--markdown", str(out / "s.md"), "--mkdir")  # fmt: skip
        assert code == 0
        assert json.loads((out / "v.json").read_text())["cohorts"][0]["cohort"] == "etl"
        assert (out / "j.xml").read_text().startswith("<?xml")
        assert "## Shadow gate: PASS" in (out / "s.md").read_text()
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.execute(
                "SELECT cohort, verdict, n_traces, json_array_length(criteria) FROM verdicts"
            ).fetchall()
        assert rows == [("etl", "PASS", 60, 12)]

    def test_no_store_leaves_the_database_alone(self, tmp_path: Path, cohorts: Path) -> None:
        """--no-store judges without writing a verdict row."""
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(60)
        path = db.build()
        assert gate(path, cohorts, "--no-store") == 0
        with duckdb.connect(str(path), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM verdicts").fetchone() == (0,)


class TestStdoutAndBadPaths:
    def test_json_to_stdout_is_only_json(self, tmp_path: Path, cohorts: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """--json - prints the verdict document alone on stdout; the per-cohort lines go to stderr."""
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(60)
        assert gate(db.build(), cohorts, "--json", "-", "--no-store") == 0
        captured = capsys.readouterr()
        assert json.loads(captured.out)["cohorts"][0]["cohort"] == "etl"
        assert "gate: PASS" in captured.err

    def test_harness_error_with_json_to_stdout(self, tmp_path: Path, cohorts: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A harness error with --json - still prints a HARNESS_ERROR document on stdout."""
        assert gate(tmp_path / "absent.duckdb", cohorts, "--json", "-") == 4
        assert json.loads(capsys.readouterr().out)["verdict"] == "HARNESS_ERROR"

    @pytest.mark.parametrize("flag", ["--json", "--junit", "--markdown"])
    def test_unwritable_artifact_path_is_a_harness_error(self, tmp_path: Path, cohorts: Path, flag: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """An artifact path under a regular file exits 4 (not 1, not a traceback) naming the flag."""
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(60)
        blocker = tmp_path / "file"
        blocker.write_text("", encoding="utf-8")
        assert gate(db.build(), cohorts, flag, str(blocker / "out"), "--no-store") == 4
        assert f"cannot write {flag}" in capsys.readouterr().err

    def test_artifact_onto_the_database_is_refused(self, tmp_path: Path, cohorts: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """--json naming the results database exits 4 and does not replace it with JSON."""
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(60)
        path = db.build()
        assert gate(path, cohorts, "--json", str(path), "--no-store") == 4
        assert "refusing to overwrite it" in capsys.readouterr().err
        assert gate(path, cohorts, "--no-store") == 0


class TestIncompleteRun:
    @pytest.mark.parametrize(("status", "warned"), [("interrupted", True), ("finished", False)])
    def test_warns_when_the_last_session_did_not_finish(self, tmp_path: Path, cohorts: Path, status: str,
                                                        warned: bool,
                                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A gate on a database whose last shadow run was interrupted warns that it covers part of the corpus."""
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(60)
        path = db.build()
        with duckdb.connect(str(path)) as con:
            con.execute(
                "INSERT INTO provenance (session_id, started_at, status) VALUES ('s1', now(), ?)", [status]
            )
        assert gate(path, cohorts, "--no-store") == 0
        assert ("session on" in capsys.readouterr().err) is warned


class TestHandoffs:
    """The hand-off criterion: judged only where `shadow handoff` wrote rows for the cohort's traces; an
    outcome difference at a hand-off fails the cohort whatever the rest says (critical)."""

    def test_no_handoff_rows_no_criterion(self, tmp_path: Path, cohorts: Path) -> None:
        db = GateDb(tmp_path / "r.duckdb")
        db.add_traces(60)
        out = tmp_path / "v.json"
        assert gate(db.build(), cohorts, "--json", str(out)) == 0
        names = [c["name"] for c in json.loads(out.read_text())["cohorts"][0]["criteria"]]
        assert "handoff" not in names

    @pytest.mark.parametrize(("differing", "code"), [(0, 0), (1, 1)])
    def test_a_difference_at_a_handoff_is_critical(self, tmp_path: Path, cohorts: Path, differing: int,
                                                   code: int) -> None:  # fmt: skip
        db = GateDb(tmp_path / "r.duckdb")
        ids = db.add_traces(60)
        db.add_handoffs(ids, differing=differing)
        out = tmp_path / "v.json"
        assert gate(db.build(), cohorts, "--json", str(out)) == code
        criterion = next(
            c for c in json.loads(out.read_text())["cohorts"][0]["criteria"] if c["name"] == "handoff"
        )
        assert criterion["critical"] is True
        if differing:
            assert criterion["status"] == "fail"
            assert "1 of 180 in-flight hand-offs" in criterion["message"]
            assert ids[0] in criterion["message"]
        else:
            assert criterion["status"] == "pass"
            assert "all 180" in criterion["message"]
