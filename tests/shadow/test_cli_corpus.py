"""``shadow corpus generate|validate|stats`` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.io import dump_trace, write_traces
from corpora.testing import chain_trace, leaf, make_trace
from shadow.cli import main


def _bad_corpus(tmp_path: Path) -> Path:
    good = dump_trace(chain_trace(2, trace_id="good"))
    cyclic = dump_trace(make_trace([leaf("a", "b"), leaf("b", "a")], trace_id="cyclic"))
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([good, "{oops", cyclic]) + "\n", encoding="utf-8")
    return path


class TestGenerate:
    def test_generate_writes_valid_deterministic_corpus(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """generate twice with one seed gives identical files that validate with exit 0."""
        a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
        assert main(["corpus", "generate", "--seed", "5", "--count", "12", "-o", str(a)]) == 0
        assert main(["corpus", "generate", "--seed", "5", "--count", "12", "-o", str(b), "--quiet"]) == 0
        assert a.read_bytes() == b.read_bytes()
        assert "wrote 12 traces" in capsys.readouterr().err
        assert main(["corpus", "validate", str(a), "--quiet"]) == 0

    def test_max_steps_caps_every_workflow(self, tmp_path: Path) -> None:
        """--max-steps bounds the top-level steps of every generated workflow, the large one included."""
        out = tmp_path / "c.jsonl"
        assert (
            main(
                [
                    "corpus",
                    "generate",
                    "--seed",
                    "1",
                    "--count",
                    "40",
                    "--max-steps",
                    "30",
                    "-o",
                    str(out),
                    "--quiet",
                ]
            )
            == 0
        )
        sizes = [len(json.loads(line)["definition"]["steps"]) for line in out.read_text().splitlines()]
        assert len(sizes) == 40
        assert max(sizes) <= 30

    def test_bad_count_is_a_harness_error(self) -> None:
        """--count 0 is a usage error with exit code 4."""
        with pytest.raises(SystemExit) as info:
            main(["corpus", "generate", "--count", "0", "-o", "x.jsonl"])
        assert info.value.code == 4

    def test_unwritable_output(self, tmp_path: Path) -> None:
        """An output path that cannot be created is exit 4."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        assert main(["corpus", "generate", "--count", "1", "-o", str(blocker / "sub" / "c.jsonl")]) == 4

    def test_output_onto_a_results_database_is_refused(self, tmp_path: Path) -> None:
        """generate -o naming a DuckDB file exits 4 and leaves the file as it was."""
        import duckdb

        db = tmp_path / "r.duckdb"
        duckdb.connect(str(db)).close()
        before = db.read_bytes()
        assert main(["corpus", "generate", "--count", "1", "-o", str(db), "--quiet"]) == 4
        assert db.read_bytes() == before


class TestValidate:
    def test_bad_traces_listed_with_location_and_exit_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Quarantined traces are listed as file:line with code and hint; the exit code is 1."""
        path = _bad_corpus(tmp_path)
        assert main(["corpus", "validate", str(path)]) == 1
        err = capsys.readouterr().err
        assert f"{path}:2 at $: malformed_json" in err
        assert f"{path}:3 at $.definition.steps[0].transitions (trace cyclic): cycle" in err
        assert "a -> b -> a" in err

    def test_markup_like_names_are_printed_verbatim(self, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """A file name and trace id holding rich markup ('[/red]') are printed as-is, exit 1, no crash."""
        cyclic = dump_trace(make_trace([leaf("a", "b"), leaf("b", "a")], trace_id="evil[/red][/]"))
        path = tmp_path / "[red]x[bold].jsonl"
        path.write_text(cyclic + "\n", encoding="utf-8")
        assert main(["corpus", "validate", str(path), "--quiet"]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert f"{path}:1 at $.definition.steps[0].transitions (trace evil[/red][/]): cycle" in err

    def test_empty_file_says_no_traces(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An empty file validates (exit 0) but says no traces were found rather than 'all valid'."""
        empty = tmp_path / "empty.jsonl"
        empty.write_text("", encoding="utf-8")
        assert main(["corpus", "validate", str(empty), "--quiet"]) == 0
        err = capsys.readouterr().err
        assert "no traces found" in err
        assert "all traces are valid" not in err

    def test_json_output(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints per-file counts and every error with its location."""
        path = _bad_corpus(tmp_path)
        assert main(["corpus", "validate", str(path), "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["files"][str(path)] == {"valid": 1, "quarantined": 2}
        assert [(e["line"], e["code"]) for e in report["errors"]] == [(2, "malformed_json"), (3, "cycle")]

    def test_missing_file_is_harness_error(self, tmp_path: Path) -> None:
        """A path that does not exist is exit 4, not a quarantined trace."""
        assert main(["corpus", "validate", str(tmp_path / "missing.jsonl")]) == 4

    def test_limit(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--limit caps the listing and says how many more there are."""
        path = tmp_path / "bad.jsonl"
        path.write_text("x\n" * 5, encoding="utf-8")
        assert main(["corpus", "validate", str(path), "--limit", "2"]) == 1
        assert "... and 3 more" in capsys.readouterr().err


class TestStats:
    def test_stats_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """stats --json reports counts, depth, fan-out, rates and sources of the corpus."""
        path = tmp_path / "c.jsonl"
        write_traces(
            path,
            [
                chain_trace(3, trace_id="a", outcomes={"s2": ["user_error", "succeeded"]}),
                make_trace([leaf("x", "y", "z"), leaf("y"), leaf("z")], trace_id="b"),
            ],
        )
        assert main(["corpus", "stats", str(path), "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["traces"] == 2
        assert stats["steps"] == 6
        assert stats["depth"]["max"] == 3
        assert stats["fan_out"]["max"] == 2
        assert stats["retry_rate"] == round(1 / 6, 4)
        assert stats["attempt_failure_rate"] == round(1 / 7, 4)
        assert stats["sources"] == {"testing": 2}

    def test_stats_table(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Without --json a readable table is printed and quarantined lines are counted by code."""
        path = _bad_corpus(tmp_path)
        assert main(["corpus", "stats", str(path)]) == 0
        out = capsys.readouterr().out
        assert "traces" in out
        assert "quarantined by code: cycle 1, malformed_json 1" in out

    def test_help_explains_commands(self, capsys: pytest.CaptureFixture[str]) -> None:
        """corpus --help lists generate, validate and stats."""
        with pytest.raises(SystemExit):
            main(["corpus", "--help"])
        out = capsys.readouterr().out
        for command in ("generate", "validate", "stats"):
            assert command in out
