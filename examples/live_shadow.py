"""The live-shadowing demo end to end (``nox -s live_shadow``; docs/LIVE.md): exits with the gate's code.

1. a live legacy deployment on SQLite runs shell/sleep workflows (examples/live_deployment.py);
2. ``shadow capture --follow`` tails its store into a rotating folder of traces as runs finish;
3. ``shadow run --follow`` tails that folder and replays each trace into the results database;
4. after ``--traces`` traces, ``shadow gate`` judges them (examples/live-cohorts.toml), then ``shadow report``.

All four run at the same time until the run has replayed ``--traces`` traces. Artifacts in ``--out``:
legacy.db, traces/ (capture-NNNNNN.jsonl and cursor.json), results.duckdb, verdict.json, junit.xml,
report.html. Exit code: the gate's (0 PASS, 1 FAIL, 2 MARGINAL, 3 INSUFFICIENT_DATA), 4 when a step failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXIT_HARNESS = 4


def _shadow(*args: str) -> list[str]:
    return [sys.executable, "-m", "shadow.cli", *args]


def _say(text: str) -> None:
    print(f"live_shadow: {text}", file=sys.stderr, flush=True)


def _store_ready(store: Path) -> bool:
    """The deployment has created its store (capture refuses a file without the store's schema)."""
    if not store.is_file():
        return False
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
            return bool(conn.execute("SELECT count(*) FROM workflow_instances").fetchone()[0])
    except sqlite3.Error:
        return False


def _stop(proc: subprocess.Popen[bytes], name: str) -> int:
    """Wait a little for ``proc`` to end on its own, then SIGTERM it (a follow stops cleanly on it)."""
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _say(f"stopping {name}")
        proc.terminate()
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", default="out/live", help="artifact folder (emptied first; default out/live)")
    parser.add_argument(
        "--traces", type=int, default=40, help="runs the deployment does and traces judged (40)"
    )
    parser.add_argument("--spacing", type=float, default=0.25, help="seconds between run triggers (0.25)")
    parser.add_argument("--cohorts", default=str(ROOT / "examples" / "live-cohorts.toml"))
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds (600)")
    parser.add_argument("--workers", default="1", help="shadow run --workers (default 1)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    store, traces, db = out / "legacy.db", out / "traces", out / "results.duckdb"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    n, poll = str(args.traces), "0.2"

    deployment_cmd = [
        sys.executable,
        str(ROOT / "examples" / "live_deployment.py"),
        str(store),
        "--runs",
        n,
        "--spacing",
        str(args.spacing),
        "--timeout",
        str(args.timeout),
    ]
    capture_cmd = _shadow(
        "capture",
        "--store",
        f"sqlite:///{store.resolve()}",
        "--follow",
        "-o",
        f"{traces}/",
        "--rotate",
        "10",
        "--poll-interval",
        poll,
        "--max-traces",
        n,
        "--duration",
        str(args.timeout),
    )
    run_cmd = _shadow(
        "run",
        f"{traces}/",
        "--db",
        str(db),
        "--follow",
        "--max-traces",
        n,
        "--poll-interval",
        poll,
        "--duration",
        str(args.timeout),
        "--workers",
        args.workers,
    )
    _say(" ".join(deployment_cmd[1:]))
    deployment = subprocess.Popen(deployment_cmd, env=env)
    capture: subprocess.Popen[bytes] | None = None
    try:
        end = time.monotonic() + args.timeout
        while not _store_ready(store):
            if deployment.poll() is not None or time.monotonic() > end:
                _say(f"the deployment never created its store (exit {deployment.poll()})")
                return EXIT_HARNESS
            time.sleep(0.1)
        _say(" ".join(capture_cmd[2:]))
        capture = subprocess.Popen(capture_cmd, env=env)
        _say(" ".join(run_cmd[2:]))
        code = subprocess.call(run_cmd, env=env)
        if code != 0:
            _say(f"shadow run --follow failed with exit code {code}")
            return EXIT_HARNESS
        for proc, name in ((capture, "capture"), (deployment, "the deployment")):
            if _stop(proc, name) not in (0, -15, 143):
                _say(f"{name} failed with exit code {proc.returncode}")
                return EXIT_HARNESS
    finally:
        for left in (capture, deployment):
            if left is not None and left.poll() is None:
                left.kill()
                left.wait()
    gate_cmd = _shadow(
        "gate",
        "--db",
        str(db),
        "--cohorts",
        args.cohorts,
        "--json",
        str(out / "verdict.json"),
        "--junit",
        str(out / "junit.xml"),
    )
    _say(" ".join(gate_cmd[2:]))
    gate = subprocess.call(gate_cmd, env=env)
    report_cmd = _shadow("report", "--db", str(db), "-o", str(out / "report.html"))
    _say(" ".join(report_cmd[2:]))
    if subprocess.call(report_cmd, env=env) != 0:
        _say("the report failed")
        return EXIT_HARNESS
    _say(f"gate exit code {gate} (0 PASS, 1 FAIL, 2 MARGINAL, 3 INSUFFICIENT_DATA, 4 harness error)")
    return gate


if __name__ == "__main__":
    raise SystemExit(main())
