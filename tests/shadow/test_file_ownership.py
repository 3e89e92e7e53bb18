"""Issue 15, part 3: workflow-shadow writes only into files it owns, and creates no folders unasked.

Before: ``shadow run --db`` on someone else's DuckDB file added our tables to it (and failed with an
internal BinderException when a table name clashed); ``-o /missing/dir/x`` created the folders.
Now: our results files carry a mark (``meta``: format name and version); a DuckDB file that is not
ours and not empty, or a file that is not DuckDB at all, is refused with exit 4 before anything is
written; a missing output folder is exit 4 unless ``--mkdir`` is given.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from corpora.codec import encode
from results.errors import ResultsError
from results.schema import FORMAT_NAME, SCHEMA_VERSION
from shadow.cli import main
from shadow.results.store import ResultsStore
from shadow.testing import build_trace

COHORTS = '[[cohort]]\nname = "all"\n[cohort.select]\nworkflow_type = ["*"]\n'


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "c.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for i in range(2):
            out.write(json.dumps(encode(build_trace(f"t{i}", {"a": ["b"], "b": []}, {}))) + "\n")
    return path


def run(corpus: Path, db: Path) -> int:
    return main(
        [
            "run",
            str(corpus),
            "--db",
            str(db),
            "--workers",
            "1",
            "--baseline",
            "oracle",
            "--candidate",
            "oracle",
            "--no-progress",
        ]
    )


def tables(db: Path) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        )
    finally:
        con.close()


def one_line(text: str) -> str:
    return " ".join(text.split())


class TestResultsFileOwnership:
    @pytest.mark.parametrize(
        "ddl",
        [
            "CREATE TABLE customers (id INTEGER, name VARCHAR)",
            # a clashing name: used to end in 'internal error: BinderException'
            "CREATE TABLE traces (id INTEGER, payload VARCHAR)",
        ],
    )
    def test_foreign_duckdb_file_is_refused_untouched(
        self, corpus: Path, tmp_path: Path, ddl: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        db = tmp_path / "theirs.duckdb"
        con = duckdb.connect(str(db))
        con.execute(ddl)
        con.close()
        before = tables(db)
        assert run(corpus, db) == 4
        err = one_line(capsys.readouterr().err)
        assert "not written by workflow-shadow" in err
        assert str(db.name) in err
        assert "internal error" not in err
        assert "--db" in err  # what to do: another file
        assert tables(db) == before

    def test_non_duckdb_file_is_refused_untouched(
        self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        db = tmp_path / "notes.txt"
        db.write_text("my notes, not a database\n", encoding="utf-8")
        assert run(corpus, db) == 4
        err = one_line(capsys.readouterr().err)
        assert "not a DuckDB database" in err
        assert "--db" in err
        assert db.read_text(encoding="utf-8") == "my notes, not a database\n"

    def test_store_raises_a_typed_error(self, tmp_path: Path) -> None:
        db = tmp_path / "theirs.duckdb"
        con = duckdb.connect(str(db))
        con.execute("CREATE TABLE customers (id INTEGER)")
        con.close()
        with pytest.raises(ResultsError, match="not written by workflow-shadow"):
            ResultsStore(db)
        assert tables(db) == ["customers"]

    def test_empty_duckdb_file_and_new_file_are_ours(self, corpus: Path, tmp_path: Path) -> None:
        """An empty DuckDB database may be initialized; our files carry the format mark."""
        empty = tmp_path / "empty.duckdb"
        duckdb.connect(str(empty)).close()
        assert run(corpus, empty) == 0
        assert run(corpus, tmp_path / "new.duckdb") == 0
        for db in (empty, tmp_path / "new.duckdb"):
            con = duckdb.connect(str(db), read_only=True)
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            con.close()
            assert meta["format"] == FORMAT_NAME
            assert meta["schema_version"] == str(SCHEMA_VERSION)
        assert run(corpus, empty) == 0  # ours: a rerun resumes


class TestMissingOutputFolders:
    def test_report(self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        db = tmp_path / "r.duckdb"
        assert run(corpus, db) == 0
        target = tmp_path / "missing" / "dir" / "report.html"
        capsys.readouterr()
        assert main(["report", str(db), "-o", str(target)]) == 4
        assert "--mkdir" in one_line(capsys.readouterr().err)
        assert not (tmp_path / "missing").exists()
        assert main(["report", str(db), "-o", str(target), "--mkdir"]) == 0
        assert target.is_file()

    def test_gate_outputs_checked_before_judging(
        self, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A missing folder for --json / --junit / --markdown is a harness error before anything is judged or
        stored; --mkdir creates them."""
        db = tmp_path / "r.duckdb"
        assert run(corpus, db) == 0
        cohorts = tmp_path / "cohorts.toml"
        cohorts.write_text(COHORTS, encoding="utf-8")
        for flag in ("--json", "--junit", "--markdown"):
            target = tmp_path / "missing" / flag.strip("-") / "out"
            capsys.readouterr()
            assert main(["gate", str(db), "--cohorts", str(cohorts), flag, str(target)]) == 4
            err = one_line(capsys.readouterr().err)
            assert flag in err
            assert "--mkdir" in err
            assert not (tmp_path / "missing").exists()
        con = duckdb.connect(str(db), read_only=True)
        assert con.execute("SELECT count(*) FROM verdicts").fetchall() == [(0,)]
        con.close()
        assert (
            main(
                [
                    "gate",
                    str(db),
                    "--cohorts",
                    str(cohorts),
                    "--mkdir",
                    "--json",
                    str(tmp_path / "a" / "v.json"),
                    "--junit",
                    str(tmp_path / "b" / "j.xml"),
                    "--markdown",
                    str(tmp_path / "c" / "s.md"),
                ]
            )
            == 3
        )
        assert all((tmp_path / d).is_dir() for d in "abc")

    def test_corpus_generate(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        target = tmp_path / "missing" / "c.jsonl"
        assert main(["corpus", "generate", "--count", "1", "-o", str(target), "--quiet"]) == 4
        assert "--mkdir" in one_line(capsys.readouterr().err)
        assert not target.parent.exists()
        assert main(["corpus", "generate", "--count", "1", "-o", str(target), "--quiet", "--mkdir"]) == 0
        assert target.is_file()

    def test_corpus_import_and_capture(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The other commands that write a trace file follow the same rule."""
        source = tmp_path / "wf.json"
        source.write_text("{}", encoding="utf-8")
        target = tmp_path / "missing" / "c.jsonl"
        assert main(["corpus", "import", "--from", "wfformat", str(source), "-o", str(target)]) == 4
        assert "--mkdir" in one_line(capsys.readouterr().err)
        assert main(["capture", "--store", str(tmp_path / "legacy.db"), "-o", str(target)]) == 4
        assert "--mkdir" in one_line(capsys.readouterr().err)
        assert not target.parent.exists()
