"""``shadow capture --follow``: traces as runs finish, a durable cursor, SIGKILL and restart (each run exactly
once), and the bad inputs (a store that does not answer, an unknown schema version, foreign output)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from corpora.io import read_traces
from corpora.model import Param, Step, StepType, Transition, WorkflowDefinition
from engines.legacy.live import live_trace, run_live
from engines.store import SqliteConfig, SqliteStore
from shadow.cli import main
from tests.engines.test_legacy_live import QUICK

ROOT = Path(__file__).resolve().parents[2]
RUNS = 12

LIVE_SCRIPT = f"""
import sys, time
from corpora.model import Param, Run, RunStrategy, RunStrategyRule, Step, StepType, Trace, Transition, WorkflowDefinition
from engines.legacy import LegacyConfig
from engines.legacy.live import run_live
config = LegacyConfig(poll_interval=0.01, default_callback=0.02, status_callbacks={{}}, first_polling_window=1.0)
wf = WorkflowDefinition("follow-wf", (
    Step("a", StepType.SLEEP, params={{"sleep_seconds": Param(value=0.05)}}, transitions=(Transition("b"),)),
    Step("b", StepType.SHELL, params={{"command": Param(value="echo done")}}),
), run_strategy=RunStrategy(RunStrategyRule.PARALLEL))
now = time.time()  # runs triggered 0.25 s apart: the deployment keeps finishing runs while capture follows
runs = tuple(Run(run_id=f"run-{{i}}", trigger_time=now + 0.25 * i, params={{"i": i}}) for i in range(1, {RUNS} + 1))
result = run_live([Trace(trace_id="follow-wf", definition=wf, runs=runs)], store_path=sys.argv[1], config=config,
                  timeout=120)
sys.exit(0 if result.finished else 3)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _captured(state: Path) -> int:
    try:
        return int(json.loads(state.read_text())["captured"])
    except (OSError, ValueError, KeyError):
        return 0


def _has_runs(store: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
            return bool(
                conn.execute("SELECT count(*) FROM workflow_instances WHERE parent_key IS NULL").fetchone()[0]
            )
    except sqlite3.Error:
        return False


def _wait(predicate: object, what: str, limit: float = 90.0) -> None:
    """Wait for a condition (a synchronisation point, not an assertion on time); fail past ``limit``."""
    end = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def _follow(store: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "shadow.cli", "capture", "--store", f"sqlite:///{store}", "-o", str(out),
             "--follow", "--poll-interval", "0.1"],
            cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip


@pytest.mark.live
def test_sigkill_and_restart_capture_each_run_exactly_once(tmp_path: Path) -> None:
    store = tmp_path / "legacy.db"
    out = tmp_path / "traces.jsonl"
    state = tmp_path / "traces.jsonl.cursor.json"
    log = tmp_path / "capture.log"
    live = subprocess.Popen([sys.executable, "-c", LIVE_SCRIPT, str(store)], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait(lambda: _has_runs(store), "the live store's first run")
        first = _follow(store, out, log)
        _wait(lambda: _captured(state) >= 3 or first.poll() is not None, "three captured runs")
        assert first.poll() is None, log.read_text()
        first.send_signal(signal.SIGKILL)  # mid-stream: maybe between a line and its state write
        first.wait()
        killed_at = _captured(state)
        assert live.poll() is None or killed_at < RUNS  # the deployment was still running when capture died
        second = _follow(store, out, log)
        assert live.wait(timeout=120) == 0
        _wait(lambda: _captured(state) >= RUNS or second.poll() is not None, "every run captured")
        second.send_signal(signal.SIGTERM)  # a clean stop: exit 0
        assert second.wait(timeout=30) == 0, log.read_text()
        assert f"({RUNS} in all)" in log.read_text()
    finally:
        for proc in (live,):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    items = list(read_traces([str(out)]))
    assert [i.error for i in items if i.error] == []
    captured = Counter(run.run_id for i in items if i.trace for run in i.trace.runs)
    with sqlite3.connect(store) as conn:
        finished = {r[0] for r in conn.execute(
            "SELECT run_id FROM workflow_instances WHERE parent_key IS NULL AND status IN ('SUCCEEDED', 'FAILED', "
            "'STOPPED', 'TIMED_OUT')")}  # fmt: skip
    assert len(finished) == RUNS
    assert set(captured) == finished
    assert max(captured.values()) == 1, captured
    assert {i.trace.trace_id for i in items if i.trace} == {f"follow-wf@run-{n}" for n in range(1, RUNS + 1)}


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("follow") / "legacy.db"
    wf = WorkflowDefinition("small", (Step("a", StepType.SHELL, params={"command": Param(value="echo hi")},
                                           transitions=(Transition("b"),)), Step("b")))  # fmt: skip
    assert run_live([live_trace(wf, runs=3)], store_path=db, config=QUICK, timeout=60).finished
    return db


@pytest.mark.live
class TestFollowSessions:
    def test_max_traces_then_continue_and_cut_back(
        self, small_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Two sessions of --max-traces continue from the cursor; a line written after the last state write
        (a crash between the two) is cut back and captured again, once."""
        out = tmp_path / "t.jsonl"
        args = ["capture", "--store", str(small_store), "-o", str(out), "--follow", "--poll-interval", "0.05"]
        assert main([*args, "--max-traces", "1"]) == 0
        with open(out, "ab") as handle:  # what a SIGKILL between the trace and the state write leaves
            handle.write(b'{"format":"shadow-trace/1","trace_id":"half')
        assert main([*args, "--max-traces", "2"]) == 0
        assert main([*args, "--duration", "0.3"]) == 0  # nothing left: ends after the duration
        ids = [i.trace.trace_id for i in read_traces([str(out)]) if i.trace]
        assert ids == ["small@run-1", "small@run-2", "small@run-3"]
        assert "captured 0 trace(s) this session (3 in all)" in capsys.readouterr().err

    def test_rotating_folder_and_redaction(
        self, small_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SHADOW_REDACT_KEY", "k")
        rules = tmp_path / "r.toml"
        rules.write_text('[[rule]]\noutput = "stdout"\naction = "hash"\n')
        folder = tmp_path / "segments"
        code = main(["capture", "--store", str(small_store), "-o", f"{folder}/", "--follow", "--rotate", "2",
                     "--max-traces", "3", "--redact", str(rules)])  # fmt: skip
        assert code == 0
        assert sorted(p.name for p in folder.iterdir()) == [
            "capture-000001.jsonl",
            "capture-000002.jsonl",
            "cursor.json",
        ]
        traces = [
            i.trace for i in read_traces(sorted(str(p) for p in folder.glob("capture-*.jsonl"))) if i.trace
        ]
        assert len(traces) == 3
        assert all(t.metadata.redactions for t in traces)
        assert "hi\\n" not in (folder / "capture-000001.jsonl").read_text()

    def test_since_skips_older_runs(self, small_store: Path, tmp_path: Path) -> None:
        out = tmp_path / "t.jsonl"
        assert main(["capture", "--store", str(small_store), "-o", str(out), "--follow", "--since",
                     "2999-01-01T00:00:00", "--duration", "0.2"]) == 0  # fmt: skip
        assert out.read_bytes() == b"" if out.exists() else True

    def test_foreign_output_and_other_store_are_refused(
        self, small_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "t.jsonl"
        out.write_text("somebody's lines\n")
        assert (
            main(["capture", "--store", str(small_store), "-o", str(out), "--follow", "--max-traces", "1"])
            == 4
        )
        assert "has no state file" in capsys.readouterr().err
        out.unlink()
        assert (
            main(["capture", "--store", str(small_store), "-o", str(out), "--follow", "--max-traces", "1"])
            == 0
        )
        other = tmp_path / "other.db"
        SqliteStore(SqliteConfig(path=str(other))).close()
        assert main(["capture", "--store", str(other), "-o", str(out), "--follow", "--max-traces", "1"]) == 4
        assert "not '" in capsys.readouterr().err


class TestBadStores:
    def test_unknown_schema_version_is_refused_with_both_versions(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        db = tmp_path / "future.db"
        SqliteStore(SqliteConfig(path=str(db))).close()
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', 'now')")
        for extra in ([], ["--follow", "--max-traces", "1"]):
            assert (
                main(["capture", "--store", f"sqlite:///{db}", "-o", str(tmp_path / "t.jsonl"), *extra]) == 4
            )
            err = capsys.readouterr().err
            assert "found 99, expected 2" in err, err

    def test_postgres_url_that_refuses(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        pytest.importorskip("psycopg")
        url = "postgresql://shadow:hunter2@127.0.0.1:1/prod"
        assert main(["capture", "--store", url, "-o", str(tmp_path / "t.jsonl"), "--follow"]) == 4
        err = capsys.readouterr().err
        assert "postgresql://shadow:***@127.0.0.1:1/prod" in err
        assert "hunter2" not in err

    @pytest.fixture
    def silent_server(self) -> Iterator[int]:
        """A TCP port that accepts connections and never says a word (a server that does not answer)."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        held: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        yield listener.getsockname()[1]
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()

    def test_postgres_url_that_does_not_answer(
        self, silent_server: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Bounded by the connect timeout (5 s), then exit 4 naming the URL."""
        pytest.importorskip("psycopg")
        url = f"postgresql://shadow@127.0.0.1:{silent_server}/prod"
        assert main(["capture", "--store", url, "-o", str(tmp_path / "t.jsonl"), "--follow"]) == 4
        assert url in capsys.readouterr().err

    def test_unknown_scheme(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["capture", "--store", "mysql://x/y", "-o", str(tmp_path / "t.jsonl")]) == 4
        assert "unknown store URL scheme 'mysql'" in capsys.readouterr().err
