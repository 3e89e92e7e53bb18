"""SIGINT (Ctrl-C) and SIGTERM at any moment of ``shadow run``: no traceback, exit 130 / 143 with one line
saying what was kept and how to resume, stored traces kept, and a rerun resumes.

The original problem (issue 15, part 5): a Ctrl-C while the CLI or the worker processes were starting
printed tracebacks (the workers' too), and SIGTERM exited 130 like SIGINT. Signals are sent to the whole
process group, as a terminal's Ctrl-C and a CI runner's cancel do, so the workers receive them too. The
moments are reached deterministically: ``SHADOW_TEST_PAUSE_AT`` makes the process stop at a named
checkpoint (shadow.interrupts.checkpoint) and say so; mid-run waits for progress lines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shadow.test_shadow_runner import REPO, _progress, rows, write_corpus

N = 12
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _command(corpus: Path, db: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "shadow.cli",
        "run",
        str(corpus),
        "--db",
        str(db),
        "--workers",
        "2",
        "--baseline",
        "oracle",
        "--candidate",
        "shadow.testing:slow_engine",
        "--batch-size",
        "2",
        "--flush-every",
        "2",
    ]


def _interrupt(
    cmd: list[str], signum: signal.Signals, *, pause_at: str | None = None, progress: int = 0
) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SHADOW_PROGRESS_EVERY": "0"}
    if pause_at:
        env["SHADOW_TEST_PAUSE_AT"] = pause_at
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if (pause_at and line.startswith(f"paused at {pause_at}")) or (
                not pause_at and _progress(line) >= progress
            ):
                break
        os.killpg(proc.pid, signum)  # the whole group, like a terminal's Ctrl-C
        rest = proc.stderr.read()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()
    return proc.returncode, "".join(seen) + rest


def _resume(cmd: list[str], db: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    assert rows(db, "SELECT count(DISTINCT trace_id), count(*) FROM traces") == [(N, N)]


SLOW = pytest.mark.slow  # ~25 s each (a run, the signal, a rerun): one case stays in the fast subset


@pytest.mark.parametrize(
    ("moment", "signum"),
    [
        pytest.param("cli-start", signal.SIGTERM, marks=SLOW),
        pytest.param("worker-start", signal.SIGINT, marks=SLOW),
        ("worker-start", signal.SIGTERM),
        pytest.param("mid-run", signal.SIGINT, marks=SLOW),
        pytest.param("mid-run", signal.SIGTERM, marks=SLOW),
    ],
)
def test_interrupt_keeps_work_without_traceback(tmp_path: Path, moment: str, signum: signal.Signals) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", N)
    db = tmp_path / "r.duckdb"
    cmd = _command(corpus, db)
    code, err = _interrupt(cmd, signum, pause_at=None if moment == "mid-run" else moment, progress=4)
    assert "Traceback" not in err, err
    assert code == EXIT[signum], err
    last = err.strip().splitlines()[-1]
    name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
    assert f"interrupted by {name}" in last, err
    if moment == "cli-start":
        assert not db.exists()
    else:
        status, done = rows(db, "SELECT status, traces_done FROM provenance")[0]
        assert status == "interrupted"
        assert rows(db, "SELECT count(*) FROM traces") == [(done,)]
        assert f"{done} traces replayed this session are stored in {db}" in last
        assert "rerun the same command to resume" in last
        if moment == "mid-run":
            assert done >= 4, "what was reported replayed before the signal is stored"
    _resume(cmd, db)
