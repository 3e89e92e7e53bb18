"""Live shadowing end to end: a live legacy deployment, ``shadow capture --follow`` tailing its store and
``shadow run --follow`` tailing the capture; SIGKILLs of the run at random points (each captured trace ends
in the results exactly once), and the demo of ``nox -s live_shadow`` with its gate verdict."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from corpora.io import read_traces

ROOT = Path(__file__).resolve().parents[2]
RUNS = 30


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _wait(predicate: object, what: str, limit: float = 120.0) -> None:
    """Wait for a condition (a synchronisation point, not an assertion on time); fail past ``limit``."""
    end = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def _store_ready(store: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
            return bool(conn.execute("SELECT count(*) FROM workflow_instances").fetchone()[0])
    except sqlite3.Error:
        return False


def _captured(folder: Path) -> int:
    try:
        return int(json.loads((folder / "cursor.json").read_text())["captured"])
    except (OSError, ValueError, KeyError):
        return 0


def _stored_this_session(log: Path, since: int) -> int:
    """The last "follow: N traces stored this session" count the run printed after byte ``since`` of its log."""
    found = re.findall(r"follow: (\d+) traces stored this session", log.read_text()[since:])
    return int(found[-1]) if found else 0


def _stored(db: Path) -> Counter[str]:
    con = duckdb.connect(str(db), read_only=True)  # only while no run holds the file
    try:
        return Counter(dict(con.execute("SELECT trace_id, count(*) FROM traces GROUP BY 1").fetchall()))
    finally:
        con.close()


@pytest.mark.live
@pytest.mark.slow
def test_sigkill_run_follow_at_random_points_each_captured_trace_stored_once(tmp_path: Path) -> None:
    rng = random.Random(20261203)
    store, traces, db, log = (
        tmp_path / "legacy.db",
        tmp_path / "traces",
        tmp_path / "r.duckdb",
        tmp_path / "run.log",
    )
    deployment = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "live_deployment.py"),
            str(store),
            "--runs",
            str(RUNS),
            "--spacing",
            "0.5",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    capture: subprocess.Popen[bytes] | None = None
    run: subprocess.Popen[bytes] | None = None
    run_cmd = [
        sys.executable,
        "-m",
        "shadow.cli",
        "run",
        f"{traces}/",
        "--db",
        str(db),
        "--follow",
        "--workers",
        "1",
        "--poll-interval",
        "0.1",
        "--batch-size",
        "1",
        "--flush-every",
        "1",
    ]  # a flush per trace
    kills = 0
    try:
        _wait(lambda: _store_ready(store), "the live store")
        capture = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shadow.cli",
                "capture",
                "--store",
                str(store),
                "--follow",
                "-o",
                f"{traces}/",
                "--rotate",
                "5",
                "--poll-interval",
                "0.1",
            ],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while kills < 3 and (kills == 0 or deployment.poll() is None):
            since = log.stat().st_size if log.exists() else 0
            with open(log, "ab") as err:
                run = subprocess.Popen(run_cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
            threshold = rng.randint(1, 4)
            _wait(
                lambda since=since, threshold=threshold, run=run: (
                    _stored_this_session(log, since) >= threshold
                    or run.poll() is not None
                    or _captured(traces) >= RUNS
                ),
                f"{threshold} traces stored",
            )
            assert run.poll() is None, log.read_text()
            time.sleep(
                rng.uniform(0.0, 0.5)
            )  # anywhere: mid-replay, mid-flush, between a flush and its position
            run.send_signal(signal.SIGKILL)
            run.wait()
            kills += 1
            assert all(n == 1 for n in _stored(db).values())
        _wait(lambda: _captured(traces) >= RUNS, "every run captured")
        assert deployment.wait(timeout=120) == 0
        remaining = RUNS - sum(_stored(db).values())
        if remaining:  # the restart after the last kill replays the rest, then stops by itself
            with open(log, "ab") as err:
                final = subprocess.run(
                    [*run_cmd, "--max-traces", str(remaining), "--duration", "240"],
                    cwd=ROOT,
                    env=_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    timeout=300,
                    check=False,
                )
            assert final.returncode == 0, log.read_text()
    finally:
        for proc in (run, capture, deployment):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    captured = Counter(
        item.trace.trace_id
        for item in read_traces(sorted(str(p) for p in traces.glob("*.jsonl")))
        if item.trace is not None
    )
    assert len(captured) == RUNS
    assert set(captured.values()) == {1}
    stored = _stored(db)
    assert stored == captured  # every captured trace, each exactly once
    con = duckdb.connect(str(db), read_only=True)
    statuses = [s for (s,) in con.execute("SELECT status FROM provenance ORDER BY started_at").fetchall()]
    identities = con.execute("SELECT count(DISTINCT identity) FROM provenance").fetchall()[0][0]
    con.close()
    # The killed sessions never finished (a kill before the first trace arrived leaves no session at all).
    assert statuses[-1:] == (["finished"] if remaining else ["running"])
    assert statuses.count("running") <= kills
    assert "interrupted" not in statuses
    assert identities == 1


@pytest.mark.live
@pytest.mark.slow
def test_the_live_shadow_demo_ends_with_the_gate_verdict(tmp_path: Path) -> None:
    """What ``nox -s live_shadow`` runs: deployment, capture --follow, run --follow, gate; exit = the gate's."""
    out = tmp_path / "live"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "live_shadow.py"),
            "--out",
            str(out),
            "--traces",
            "40",
            "--spacing",
            "0.2",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    verdict = json.loads((out / "verdict.json").read_text())
    assert done.returncode == verdict["exit_code"] == 0, done.stderr
    assert verdict["verdict"] == "PASS"
    assert [c["n_traces"] for c in verdict["cohorts"]] == [40]
    assert "judging identity" in done.stdout
    assert "corpus stream" in done.stdout
    assert (out / "report.html").is_file()
    captured = {
        item.trace.trace_id
        for item in read_traces(sorted(str(p) for p in (out / "traces").glob("*.jsonl")))
        if item.trace is not None
    }
    assert _stored(out / "results.duckdb") == Counter(dict.fromkeys(captured, 1))
