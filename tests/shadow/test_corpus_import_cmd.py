"""``shadow corpus import``: output file, summary and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.io import read_traces
from shadow.cli import main

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "importers"


class TestCorpusImportCommand:
    def test_clean_import_writes_lines_and_exits_0(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Importing good WfFormat files writes one JSON line per trace and exits 0."""
        out = tmp_path / "t.jsonl"
        code = main(
            [
                "corpus",
                "import",
                "--from",
                "wfformat",
                str(RESOURCES / "wfformat" / "diamond-1.5.json"),
                str(RESOURCES / "wfformat" / "chain-1.4.json"),
                "-o",
                str(out),
            ]
        )
        assert code == 0
        lines = out.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["format"] for line in lines] == ["shadow-trace/1", "shadow-trace/1"]
        assert "imported 2 trace(s)" in capsys.readouterr().err

    def test_quarantine_exits_1_and_lists_reasons(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A quarantined file makes the command exit 1 and name the error code; good traces are still written."""
        out = tmp_path / "t.jsonl.gz"
        code = main(
            [
                "corpus",
                "import",
                "--from",
                "maestro",
                str(RESOURCES / "maestro-bad"),
                str(RESOURCES / "maestro"),
                "-o",
                str(out),
                "--seed",
                "3",
            ]
        )
        err = capsys.readouterr().err
        assert code == 1
        assert "quarantined 2" in err
        assert "cycle: 1" in err
        assert "unresolved_subworkflow: 1" in err
        assert out.stat().st_size > 0

    def test_folder_without_inputs_is_a_harness_error(self, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A folder holding no file of the --from format exits 4 saying nothing was found."""
        empty = tmp_path / "nothing"
        empty.mkdir()
        assert main(["corpus", "import", "--from", "argo", str(empty), "-o", str(tmp_path / "o.jsonl")]) == 4
        assert "no argo input found" in capsys.readouterr().err

    def test_no_progress_output_when_piped(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Off a terminal, stderr holds only the summary: no progress bar residue or blank line."""
        assert (
            main(
                [
                    "corpus",
                    "import",
                    "--from",
                    "maestro",
                    str(RESOURCES / "maestro"),
                    "-o",
                    str(tmp_path / "o.jsonl"),
                ]
            )
            == 0
        )
        assert capsys.readouterr().err.startswith("imported ")

    def test_bad_rate_is_a_harness_error(self, tmp_path: Path) -> None:
        """A failure rate outside [0, 1] exits 4 before reading anything."""
        code = main(
            [
                "corpus",
                "import",
                "--from",
                "maestro",
                str(RESOURCES / "maestro"),
                "-o",
                str(tmp_path / "x"),
                "--failure-rate",
                "1.5",
            ]
        )
        assert code == 4

    @pytest.mark.parametrize("source", ["wfformat", "maestro", "argo", "nextflow", "alibaba"])
    def test_output_reads_back_with_the_corpus_reader(self, source: str, tmp_path: Path) -> None:
        """Every imported trace written by the command loads back through corpora.io without an error."""
        out = tmp_path / f"{source}.jsonl.gz"
        main(["corpus", "import", "--from", source, str(RESOURCES / source), "-o", str(out)])
        items = list(read_traces([out]))
        assert items
        assert [i.error for i in items if i.error is not None] == []
