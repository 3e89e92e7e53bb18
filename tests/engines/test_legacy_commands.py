"""`shadow capture` and `shadow replay --engine legacy` on what live mode wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.io import read_traces
from engines.legacy.live import live_trace, run_live
from shadow.cli import main
from tests.engines.test_legacy_live import QUICK, shell_sleep_chain

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def live_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("legacy") / "legacy.db"
    result = run_live(
        [live_trace(shell_sleep_chain("cli-chain", 4), runs=2)], store_path=db, config=QUICK, timeout=60
    )
    assert result.finished
    return db


class TestCaptureCommand:
    def test_capture_writes_traces(
        self, live_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`shadow capture` exports the finished runs as readable shadow-trace/1 and exits 0."""
        out = tmp_path / "traces.jsonl"
        assert main(["capture", "--store", str(live_store), "-o", str(out)]) == 0
        items = list(read_traces([str(out)]))
        assert [i.error for i in items] == [None]
        trace = items[0].trace
        assert trace is not None
        assert len(trace.runs) == 2
        assert "captured 1 trace(s), 2 run(s)" in capsys.readouterr().err

    def test_missing_store_exits_4_without_output(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A store that does not exist is a harness error (4) and no output file is created."""
        out = tmp_path / "traces.jsonl"
        assert main(["capture", "--store", str(tmp_path / "nope.db"), "-o", str(out)]) == 4
        assert not out.exists()
        assert "no legacy store" in capsys.readouterr().err

    def test_replay_the_capture_on_legacy(
        self, live_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`shadow replay --engine legacy --json` reproduces the captured runs' outcome."""
        out = tmp_path / "traces.jsonl"
        assert main(["capture", "--store", str(live_store), "-o", str(out)]) == 0
        capsys.readouterr()
        code = main(["replay", str(out), "--engine", "legacy", "--seed", "3", "--json"])
        printed = capsys.readouterr().out
        assert code == 0, printed
        record = json.loads(printed)
        assert record["engine"] == "legacy"
        assert [r["status"] for r in record["runs"]] == ["SUCCEEDED", "SUCCEEDED"]
