"""A cohort can require coverage (issue 20, part 4): a required situation no judged trace exercises makes it
INSUFFICIENT_DATA, naming what is missing; an unknown feature name is a located cohort-file error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.generator import GeneratorConfig, generate_corpus
from corpora.io import TraceWriter
from shadow import cli

COHORTS = """
[[cohort]]
name = "all"
require = {require}
[cohort.budget]
min_traces = 1
divergence_budget = 0.5
min_latency_samples = 3
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("coverage")
    corpus = folder / "c.jsonl"
    with TraceWriter(corpus) as writer:
        for trace in generate_corpus(1, 8, GeneratorConfig(max_steps=30)):
            writer.write(trace)
    db = folder / "r.duckdb"
    assert (
        cli.main(
            [
                "run",
                str(corpus),
                "--db",
                str(db),
                "--baseline",
                "oracle",
                "--candidate",
                "oracle",
                "--no-progress",
            ]
        )
        == cli.EXIT_OK
    )
    return db


def _gate(db: Path, tmp_path: Path, require: list[str]) -> tuple[int, dict[str, object]]:
    cohorts = tmp_path / "cohorts.toml"
    cohorts.write_text(COHORTS.format(require=json.dumps(require)), encoding="utf-8")
    out = tmp_path / "verdict.json"
    code = cli.main(["gate", "--db", str(db), "--cohorts", str(cohorts), "--json", str(out), "--no-store"])
    return code, json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}


def _criterion(verdict: dict[str, object]) -> dict[str, object]:
    (cohort,) = verdict["cohorts"]  # type: ignore[misc]
    return next(c for c in cohort["criteria"] if c["name"] == "coverage")  # type: ignore[index]


def test_a_missing_required_feature_is_insufficient_data_and_named(results: Path, tmp_path: Path) -> None:
    code, verdict = _gate(results, tmp_path, ["failure_top_level", "failure_in_foreach"])
    assert code == 3
    criterion = _criterion(verdict)
    assert criterion["status"] == "insufficient"
    assert "failure_in_foreach" in str(criterion["message"])
    assert "failure_top_level" not in str(criterion["message"])


def test_covered_requirements_pass(results: Path, tmp_path: Path) -> None:
    code, verdict = _gate(results, tmp_path, ["failure_top_level", "retry_after_platform_error"])
    assert _criterion(verdict)["status"] == "pass"
    assert code in (0, 2)  # the other checks decide (a small sample may be MARGINAL)


def test_an_unknown_feature_is_a_located_error(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _gate(results, tmp_path, ["failure_in_forech"])
    assert code == cli.EXIT_HARNESS
    err = " ".join(capsys.readouterr().err.split())
    assert "cohort[0].require" in err
    assert "did you mean 'failure_in_foreach'" in err
