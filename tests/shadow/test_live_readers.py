"""``summary``, ``report`` and ``gate`` during a run: they read what has landed and say the run still goes.

The original problem (issue 15, part 6): the writer held the DuckDB file for the whole run, so every
reader failed with a lock error until it ended. Now the writer holds the file only while it commits a
flush (open, insert, commit, close), readers wait briefly on a lock, and a ``running`` provenance row
with a heartbeat lets them say "run still going (N traces so far)". The gate gives no verdict on a run
still going (exit 3, INSUFFICIENT_DATA) unless ``--allow-partial``, whose verdicts are stored as partial.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shadow.cli import main
from shadow.executors import InlineExecutor
from shadow.runner import run_shadow
from tests.shadow.test_shadow_runner import settings, write_corpus


class ReadingExecutor(InlineExecutor):
    """Replays in this process; before the third batch, runs the readers against the database."""

    def __init__(self, db: Path, cohorts: Path, capsys: pytest.CaptureFixture[str]) -> None:
        super().__init__()
        self.db, self.cohorts, self.capsys = db, cohorts, capsys
        self.batches = 0
        self.seen: dict[str, Any] = {}

    def run_batch(self, jobs, config):  # type: ignore[no-untyped-def]
        self.batches += 1
        if self.batches == 3:
            self.read_while_running()
        return super().run_batch(jobs, config)

    run_batches = None  # type: ignore[assignment]  # one run_batch per batch, so the reading happens mid-run

    def read_while_running(self) -> None:
        db, out = str(self.db), self.db.parent
        self.capsys.readouterr()
        self.seen["summary"] = main(["summary", db, "--json"])
        captured = self.capsys.readouterr()
        self.seen["summary_json"] = json.loads(captured.out) if self.seen["summary"] == 0 else captured.err
        self.seen["report"] = main(["report", db, "-o", str(out / "live.html")])
        self.seen["report_out"] = self.capsys.readouterr().out
        self.seen["gate"] = main(["gate", db, "--cohorts", str(self.cohorts), "--json", str(out / "v.json")])
        captured = self.capsys.readouterr()
        self.seen["gate_err"] = captured.err
        self.seen["gate_json"] = json.loads((out / "v.json").read_text(encoding="utf-8"))
        self.seen["partial"] = main(["gate", db, "--cohorts", str(self.cohorts), "--allow-partial"])
        self.seen["partial_err"] = self.capsys.readouterr().err


def test_readers_work_during_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", 8)
    db = tmp_path / "r.duckdb"
    cohorts = tmp_path / "c.toml"
    cohorts.write_text('[defaults]\nmin_traces = 1\n[[cohort]]\nname = "all"\n', encoding="utf-8")
    executor = ReadingExecutor(db, cohorts, capsys)
    report = run_shadow(settings(corpus, db, batch_size=2, flush_traces=1), executor=executor)
    assert report.status == "finished"
    seen = executor.seen
    # summary: the four traces of the first two batches, and the run still going
    assert seen["summary"] == 0, seen["summary_json"]
    assert seen["summary_json"]["traces"] == 4
    assert seen["summary_json"]["run_in_progress"].startswith("run still going (4 traces so far")
    # report: written, and says the run is still going
    assert seen["report"] == 0
    assert "run still going (4 traces so far" in seen["report_out"]
    # gate: no verdict on an incomplete run, unless --allow-partial
    assert seen["gate"] == 3, seen["gate_err"]
    assert "run still going (4 traces so far" in seen["gate_err"]
    assert seen["gate_json"]["verdict"] == "INSUFFICIENT_DATA"
    assert seen["gate_json"]["run_in_progress"] is True
    assert "partial" in seen["partial_err"]
    con = duckdb.connect(str(db), read_only=True)
    try:
        verdicts = con.execute("SELECT n_traces, partial FROM verdicts").fetchall()
        assert verdicts == [(4, True)]
        assert con.execute("SELECT count(*), any_value(status) FROM traces, provenance").fetchall()[0][0] == 8
    finally:
        con.close()
    # after the run: the summary no longer says it is going
    assert main(["summary", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_in_progress"] is None
