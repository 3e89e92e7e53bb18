"""The gate on real ``shadow run`` databases: a clean candidate and a planted fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.generator import generate_corpus
from corpora.io import TraceWriter
from shadow.cli import main

COHORTS = """
[defaults]
min_traces = 6
divergence_budget = 0.5
min_latency_samples = 3

[[cohort]]
name = "everything"
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    with TraceWriter(root / "corpus.jsonl") as writer:
        for trace in generate_corpus(3, 6):
            writer.write(trace)
    (root / "cohorts.toml").write_text(COHORTS, encoding="utf-8")
    return root


def run_and_gate(root: Path, candidate: str, name: str) -> tuple[int, dict[str, object]]:
    db = root / f"{name}.duckdb"
    run = ["run", str(root / "corpus.jsonl"), "--db", str(db), "--baseline", "oracle", "--candidate", candidate,
           "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(run) in (0, 1)
    verdict = root / f"{name}.json"
    code = main(["gate", str(db), "--cohorts", str(root / "cohorts.toml"), "--json", str(verdict)])
    return code, json.loads(verdict.read_text())


@pytest.mark.slow
class TestOnShadowRunDatabases:
    def test_identical_engines_do_not_fail(self, corpus: Path) -> None:
        """The oracle against itself has no critical finding and no unexplained divergence."""
        code, verdict = run_and_gate(corpus, "oracle", "clean")
        assert code != 1, verdict
        (cohort,) = verdict["cohorts"]  # type: ignore[misc]
        failed = [c["name"] for c in cohort["criteria"] if c["status"] == "fail"]
        assert failed == []

    def test_planted_lost_wakeup_fails_naming_stuck_runs(self, corpus: Path) -> None:
        """A candidate that loses a wake-up exits 1 and the reason names the stuck runs."""
        code, verdict = run_and_gate(corpus, "examples.planted_fault:oracle_lost_wakeup", "fault")
        assert code == 1
        (cohort,) = verdict["cohorts"]  # type: ignore[misc]
        assert "never finished (stuck)" in cohort["reason"]
