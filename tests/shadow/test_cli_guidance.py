"""The CLI explains itself (issue 19): an empty corpus is refused before a database exists, a --where that
matches nothing says so with the closest values, and --where lists its columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpora.generator import GeneratorConfig, generate_corpus
from corpora.io import TraceWriter
from shadow import cli
from shadow.sources import META_COLUMNS


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "c.jsonl"
    with TraceWriter(path) as writer:
        for trace in generate_corpus(1, 4, GeneratorConfig(max_steps=20)):
            writer.write(trace)
    return path


def test_an_empty_corpus_is_refused_before_a_database_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    db = tmp_path / "r.duckdb"
    assert (
        cli.main(
            [
                "run",
                str(empty),
                "--db",
                str(db),
                "--baseline",
                "oracle",
                "--candidate",
                "oracle",
                "--no-progress",
            ]
        )
        == cli.EXIT_HARNESS
    )
    assert "the corpus is empty" in " ".join(capsys.readouterr().err.split())
    assert not db.exists()


def test_a_where_matching_nothing_names_the_closest_values(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "run",
            str(corpus),
            "--db",
            str(tmp_path / "r.duckdb"),
            "--baseline",
            "oracle",
            "--candidate",
            "oracle",
            "--no-progress",
            "--where",
            "workflow_type = 'backfil'",
        ]
    )
    err = " ".join(capsys.readouterr().err.split())
    assert code == cli.EXIT_HARNESS
    assert "matched 0 of 4 traces" in err
    assert "workflow_type 'backfill'" in err


def test_where_help_lists_its_columns(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for column in META_COLUMNS:
        assert column in text


def test_an_unknown_cohort_is_named_with_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohorts = Path(__file__).resolve().parents[2] / "examples" / "cohorts.toml"
    code = cli.main(
        [
            "rollout",
            "advance",
            "everythin",
            "--state",
            str(tmp_path / "s.sqlite"),
            "--db",
            str(tmp_path / "r.duckdb"),
            "--cohorts",
            str(cohorts),
        ]
    )
    err = " ".join(capsys.readouterr().err.split())
    assert code == cli.EXIT_HARNESS
    assert "unknown cohort 'everythin' (did you mean 'everything'?)" in err
    assert "critical-sla" in err
