"""``shadow report``: exit codes and output."""

from __future__ import annotations

from pathlib import Path

import pytest
from _dbfactory import FactorySummary

from shadow.cli import main


class TestReportCommand:
    def test_writes_report(
        self, plain_db: FactorySummary, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A good database gives exit 0, the file and a one-line summary."""
        out = tmp_path / "report.html"
        assert main(["report", str(plain_db.path), "-o", str(out)]) == 0
        assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        assert "wrote" in capsys.readouterr().out

    def test_missing_database_is_harness_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A missing database exits 4 with a message naming it."""
        assert main(["report", str(tmp_path / "nope.duckdb"), "-o", str(tmp_path / "r.html")]) == 4
        assert "nope.duckdb" in capsys.readouterr().err

    def test_unwritable_output(
        self, plain_db: FactorySummary, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An output path in a missing directory exits 4 and says why."""
        assert main(["report", str(plain_db.path), "-o", str(tmp_path / "no" / "dir" / "r.html")]) == 4
        assert "cannot write" in capsys.readouterr().err

    def test_output_onto_the_database_is_refused(self, plain_db: FactorySummary,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """-o naming the results database itself exits 4 and leaves the database readable."""
        before = plain_db.path.read_bytes()
        assert main(["report", str(plain_db.path), "-o", str(plain_db.path)]) == 4
        assert "refusing to overwrite it" in capsys.readouterr().err
        assert plain_db.path.read_bytes() == before

    def test_missing_corpus_root_is_a_harness_error(self, plain_db: FactorySummary, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """--corpus-root naming a folder that does not exist exits 4 instead of being silently ignored."""
        assert (
            main(
                [
                    "report",
                    str(plain_db.path),
                    "-o",
                    str(tmp_path / "r.html"),
                    "--corpus-root",
                    str(tmp_path / "nowhere"),
                ]
            )
            == 4
        )
        assert "is not a folder" in capsys.readouterr().err

    def test_baseline_flag(self, plain_db: FactorySummary, tmp_path: Path) -> None:
        """--baseline adds the since-baseline section."""
        out = tmp_path / "r.html"
        assert main(["report", str(plain_db.path), "-o", str(out), "--baseline", str(plain_db.path)]) == 0
        assert 'id="baseline"' in out.read_text(encoding="utf-8")
