"""``shadow run --follow``: a growing file or folder of segments replayed into one session per process, the
durable position, the identity of a stream, the stop conditions, and what is refused."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from corpora.generator import GeneratorConfig, generate_corpus
from corpora.io import dump_trace
from shadow.cli import main
from shadow.sources import FollowPosition, FollowSource

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    """Eight small traces as JSON lines."""
    traces = generate_corpus(7, 8, GeneratorConfig(max_steps=8))
    return [dump_trace(t).encode() + b"\n" for t in traces]


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def _stored(db: Path) -> list[tuple[str, int]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT trace_id, count(*) FROM traces GROUP BY trace_id ORDER BY 1").fetchall()
    finally:
        con.close()


def _sessions(db: Path) -> list[tuple[str, str, int, dict[str, object] | None]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT identity, status, traces_done, follow_position FROM provenance ORDER BY started_at"
        ).fetchall()
    finally:
        con.close()
    return [(i, s, n, json.loads(p) if p else None) for i, s, n, p in rows]


def _ids(lines: list[bytes]) -> list[str]:
    return sorted(json.loads(line)["trace_id"] for line in lines)


def test_a_growing_file_is_replayed_across_sessions_each_trace_once(
    tmp_path: Path, lines: list[bytes]
) -> None:
    source, db = tmp_path / "traces.jsonl", tmp_path / "r.duckdb"
    _append(source, b"".join(lines[:3]) + lines[3][:40])  # the fourth line is still being written
    args = ["run", str(source), "--db", str(db), "--follow", "--workers", "1", "--no-progress"]
    assert main([*args, "--max-traces", "2"]) == 0
    assert main([*args, "--duration", "3", "--poll-interval", "0.1"]) == 0  # the third; not the partial line
    assert [n for _, n in _stored(db)] == [1, 1, 1]
    _append(
        source, lines[3][40:] + b"\n" + b"".join(lines[4:])
    )  # a blank line between, as a writer may leave
    assert main([*args, "--duration", "3", "--poll-interval", "0.1"]) == 0
    assert [t for t, _ in _stored(db)] == _ids(lines)
    assert all(n == 1 for _, n in _stored(db))
    sessions = _sessions(db)
    assert len({identity for identity, *_ in sessions}) == 1  # the stream keeps its identity as it grows
    assert [n for _, _, n, _ in sessions] == [2, 1, 5]
    assert sessions[-1][3] == {
        "source": str(source),
        "segment": "traces.jsonl",
        "offset": source.stat().st_size,
        "line": 9,
    }


def test_a_restart_reads_on_from_the_recorded_position(tmp_path: Path, lines: list[bytes]) -> None:
    """The position is what a restart uses: a line before it that is not stored is not read again."""
    source, db = tmp_path / "traces.jsonl", tmp_path / "r.duckdb"
    _append(source, b"".join(lines[:4]))
    args = ["run", str(source), "--db", str(db), "--follow", "--workers", "1", "--no-progress"]
    assert main([*args, "--max-traces", "2"]) == 0
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM traces WHERE trace_id = ?", [json.loads(lines[0])["trace_id"]])
    con.close()
    _append(source, lines[4])
    # three traces after the recorded position (lines 2-4); had it read from the start, line 0 would be one
    assert main([*args, "--max-traces", "3", "--duration", "60", "--poll-interval", "0.1"]) == 0
    assert [t for t, _ in _stored(db)] == _ids(lines[1:5])


def test_a_position_behind_the_stored_rows_skips_them(
    tmp_path: Path, lines: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """A kill after a flush committed its rows but before its position was written: the restart reads those
    lines again and skips the trace ids already stored (the resume of every run)."""
    source, db = tmp_path / "traces.jsonl", tmp_path / "r.duckdb"
    _append(source, b"".join(lines[:3]))
    args = ["run", str(source), "--db", str(db), "--follow", "--workers", "1", "--no-progress"]
    assert main([*args, "--max-traces", "3"]) == 0
    con = duckdb.connect(str(db))
    con.execute(
        "UPDATE provenance SET follow_position = ?",
        [json.dumps({"source": str(source), "segment": "traces.jsonl", "offset": len(lines[0]), "line": 1})],
    )
    con.close()
    _append(source, lines[3])
    capsys.readouterr()
    assert main([*args, "--max-traces", "1"]) == 0
    assert "1 traces replayed, 2 already stored" in " ".join(capsys.readouterr().err.split())
    assert [t for t, _ in _stored(db)] == _ids(lines[:4])
    assert all(n == 1 for _, n in _stored(db))


def test_a_rotating_folder_is_read_segment_after_segment_up_to_what_capture_committed(
    tmp_path: Path, lines: list[bytes]
) -> None:
    folder = tmp_path / "cap"
    folder.mkdir()
    (folder / "capture-000001.jsonl").write_bytes(b"".join(lines[:3]))
    second = b"".join(lines[3:6])
    (folder / "capture-000002.jsonl").write_bytes(second)
    committed = len(lines[3]) + len(
        lines[4]
    )  # capture wrote lines[5] but had not recorded it when it was killed
    (folder / "cursor.json").write_text(
        json.dumps({"format": "shadow-capture-state/1", "segment": 2, "offset": committed})
    )
    source = FollowSource(str(folder))
    polled = source.poll(source.start() or FollowPosition(""), 100)
    assert sorted(item.trace.trace_id for item, _ in polled if item.trace) == _ids(lines[:5])
    assert polled[-1][1] == FollowPosition("capture-000002.jsonl", committed, 2)
    assert source.poll(polled[-1][1], 100) == []
    # Capture restarts: cuts the segment back to its committed length and writes the trace again, then more.
    (folder / "capture-000002.jsonl").write_bytes(second[:committed] + lines[5] + lines[6])
    (folder / "cursor.json").write_text(
        json.dumps(
            {
                "format": "shadow-capture-state/1",
                "segment": 2,
                "offset": committed + len(lines[5]) + len(lines[6]),
            }
        )
    )
    rest = source.poll(polled[-1][1], 100)
    assert [item.trace.trace_id for item, _ in rest if item.trace] == [
        json.loads(x)["trace_id"] for x in lines[5:7]
    ]


def test_finished_segments_compressed_in_place_keep_the_stream_and_its_position(
    tmp_path: Path, lines: list[bytes]
) -> None:
    """LIVE.md tells operators to compress finished segments: the stream keeps its identity (its first line is
    read from the .gz) and a position inside a segment compressed since is continued there."""
    folder, db = tmp_path / "cap", tmp_path / "r.duckdb"
    folder.mkdir()
    first, second = folder / "capture-000001.jsonl", folder / "capture-000002.jsonl"
    first.write_bytes(b"".join(lines[:3]))
    args = ["run", f"{folder}/", "--db", str(db), "--follow", "--workers", "1", "--no-progress"]
    assert main([*args, "--max-traces", "2"]) == 0  # stops inside segment 1
    second.write_bytes(b"".join(lines[3:5]))
    with gzip.open(str(first) + ".gz", "wb") as packed:
        packed.write(first.read_bytes())
    first.unlink()
    assert main([*args, "--duration", "3", "--poll-interval", "0.1"]) == 0
    assert [t for t, _ in _stored(db)] == _ids(lines[:5])
    assert all(n == 1 for _, n in _stored(db))
    assert len({identity for identity, *_ in _sessions(db)}) == 1


def test_a_line_longer_than_the_limit_is_quarantined_once_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"x" * 300)  # a long line still being written
    source = FollowSource(str(path), max_line_bytes=100)
    begin = source.start() or FollowPosition("")
    assert source.poll(begin, 10) == []
    with open(path, "ab") as handle:
        handle.write(b"\n{}\n")
    items = source.poll(begin, 10)
    assert [(item.line, item.error is not None) for item, _ in items] == [(1, True), (2, True)]
    assert items[0][0].error is not None
    assert items[0][0].error.code == "line_too_long"
    assert items[-1][1] == FollowPosition("t.jsonl", 304, 2)


def test_bad_lines_are_quarantined_and_the_follow_goes_on(tmp_path: Path, lines: list[bytes]) -> None:
    source, db = tmp_path / "traces.jsonl", tmp_path / "r.duckdb"
    _append(source, lines[0] + b'{"format": "nonsense"}\n' + lines[1])
    assert (
        main(
            [
                "run",
                str(source),
                "--db",
                str(db),
                "--follow",
                "--workers",
                "1",
                "--no-progress",
                "--duration",
                "0.5",
                "--poll-interval",
                "0.1",
            ]
        )
        == 0
    )
    assert len(_stored(db)) == 2
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT file, line FROM quarantine").fetchall() == [(str(source), 2)]
    con.close()


def test_another_stream_is_another_identity(
    tmp_path: Path, lines: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    first, other, db = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "r.duckdb"
    _append(first, lines[0])
    _append(other, lines[1])
    args = ["--db", str(db), "--follow", "--workers", "1", "--no-progress", "--max-traces", "1"]
    assert main(["run", str(first), *args]) == 0
    assert main(["run", str(other), *args]) == 4
    assert "the followed stream whose first line has sha256" in capsys.readouterr().err
    assert main(["run", str(other), *args, "--new-session"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a.jsonl", "b.jsonl", "--follow"], "one growing source, not 2"),
        (["a.jsonl", "--follow", "--limit", "3"], "--max-traces"),
        (["a.jsonl", "--max-traces", "3"], "go with --follow"),
        (["a.jsonl", "--follow", "--executor", "dask"], "not on Dask"),
        (["nowhere/at/all.jsonl", "--follow"], "neither it nor its folder"),
        (["a.jsonl.gz", "--follow"], "not .gz"),
    ],
)
def test_bad_follow_flags_are_refused(
    tmp_path: Path,
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", *argv, "--db", "r.duckdb"]) == 4
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "r.duckdb").exists()


def test_nothing_arriving_within_the_duration_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "run",
                str(tmp_path / "later.jsonl"),
                "--db",
                str(tmp_path / "r.duckdb"),
                "--follow",
                "--duration",
                "0.3",
                "--poll-interval",
                "0.1",
            ]
        )
        == 0
    )
    assert "no trace arrived" in capsys.readouterr().err
    assert not (tmp_path / "r.duckdb").exists()


def test_sigterm_stores_what_is_replayed_and_marks_the_session_interrupted(
    tmp_path: Path, lines: list[bytes]
) -> None:
    source, db, log = tmp_path / "traces.jsonl", tmp_path / "r.duckdb", tmp_path / "run.log"
    _append(source, b"".join(lines[:3]))
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shadow.cli",
                "run",
                str(source),
                "--db",
                str(db),
                "--follow",
                "--workers",
                "1",
                "--poll-interval",
                "0.1",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=err,
        )
    try:
        end = time.monotonic() + 120
        while "+3" not in log.read_text() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)  # synchronisation: the three traces are stored, the follow is idle
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "rerun the same command to continue" in log.read_text()
    assert [n for _, n in _stored(db)] == [1, 1, 1]
    assert [s for _, s, _, _ in _sessions(db)] == ["interrupted"]
