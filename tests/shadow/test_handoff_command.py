"""``shadow handoff``: every trace cut over from legacy to actor at each cut point, rows in the handoffs table,
exit 1 when a hand-off changes an outcome, 4 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from corpora.codec import encode
from shadow.cli import main
from shadow.testing import build_trace


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "c.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for i in range(2):
            trace = build_trace(
                f"t{i}", {"a": ["b"], "b": ["c"], "c": []}, {"b": ["platform_error", "succeeded"]}
            )
            out.write(json.dumps(encode(trace)) + "\n")
    return path


def _rows(db: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT trace_id, cut_index, cut, cut_at, differences, duplicate_starts, runs_live + runs_ended, error "
            "FROM handoffs ORDER BY trace_id, cut_index"
        ).fetchall()
    finally:
        con.close()


def test_handoff_writes_one_row_per_trace_and_cut(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "h.duckdb"
    assert (
        main(
            [
                "handoff",
                str(corpus),
                "--db",
                str(db),
                "--at",
                "5s",
                "--at",
                "50%",
                "--at",
                "step:c",
                "--at",
                "step:nope",
            ]
        )
        == 0
    )
    rows = _rows(db)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (t, i, spec) for t in ("t0", "t1") for i, spec in enumerate(("5s", "50%", "step:c", "step:nope"))
    ]
    for trace_id, index, _, cut_at, differences, duplicates, adopted, error in rows:
        if index == 3:  # the step never started: no hand-off, said why
            assert cut_at is None
            assert differences is None
            assert "never reached" in str(error)
            continue
        assert error is None, (trace_id, error)
        assert differences == 0
        assert duplicates == 0
        assert adopted == 1
    assert rows[0][3] == pytest.approx(5.0)
    out = capsys.readouterr().out
    assert "6 hand-offs over 2 traces" in out
    assert "0 with outcome differences" in out
    # a rerun with the same seed replaces the rows
    assert main(["handoff", str(corpus), "--db", str(db), "--at", "5s"]) == 0
    assert [(r[0], r[1]) for r in _rows(db)] == [("t0", 0), ("t1", 0)]


def test_a_broken_adoption_is_a_finding(corpus: Path, tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    assert (
        main(
            [
                "handoff",
                str(corpus),
                "--db",
                str(db),
                "--at",
                "50%",
                "--target",
                "shadow.testing:handoff_with_fault",
            ]
        )
        == 1
    )
    con = duckdb.connect(str(db), read_only=True)
    try:
        first = con.execute(
            "SELECT differences, first_difference, detail FROM handoffs ORDER BY trace_id"
        ).fetchone()
    finally:
        con.close()
    assert first is not None
    assert first[0] > 0
    assert "b" in first[1]
    assert json.loads(first[2])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "soon"], "step:PATH"),
        (["--target", "oracle"], "cannot adopt runs in flight"),
        (["--source", "oracle"], "adopts runs from legacy"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_input_is_exit_4(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["handoff", str(corpus), "--db", str(tmp_path / "h.duckdb"), *args]) == 4
    assert message in capsys.readouterr().err


def test_report_and_gate_read_the_handoffs(corpus: Path, tmp_path: Path) -> None:
    """`shadow handoff` into the database of `shadow run`: the report shows a hand-off section listing the
    broken hand-offs, the gate fails the cohort on them (critical) although the run itself is clean."""
    db = tmp_path / "r.duckdb"
    assert (
        main(
            [
                "run",
                str(corpus),
                "--db",
                str(db),
                "--workers",
                "1",
                "--baseline",
                "oracle",
                "--candidate",
                "oracle",
                "--no-progress",
            ]
        )
        == 0
    )
    cohorts = tmp_path / "cohorts.toml"
    cohorts.write_text(
        '[defaults]\nmin_traces = 1\ndivergence_budget = 0.5\n\n[[cohort]]\nname = "all"\n', encoding="utf-8"
    )
    verdict = tmp_path / "v.json"
    clean = main(["gate", str(db), "--cohorts", str(cohorts), "--json", str(verdict)])
    names = [c["name"] for c in json.loads(verdict.read_text())["cohorts"][0]["criteria"]]
    assert "handoff" not in names
    assert (
        main(
            [
                "handoff",
                str(corpus),
                "--db",
                str(db),
                "--at",
                "50%",
                "--target",
                "shadow.testing:handoff_with_fault",
            ]
        )
        == 1
    )
    assert main(["gate", str(db), "--cohorts", str(cohorts), "--json", str(verdict)]) == 1 != clean
    criterion = next(
        c for c in json.loads(verdict.read_text())["cohorts"][0]["criteria"] if c["name"] == "handoff"
    )
    assert criterion["status"] == "fail"
    assert "2 of 2 in-flight hand-offs" in criterion["message"]
    html = tmp_path / "r.html"
    assert main(["report", str(db), "-o", str(html)]) == 0
    text = html.read_text(encoding="utf-8")
    assert 'id="handoff"' in text
    assert "Hand-offs that changed an outcome: 2" in text
    assert text.count('class="handoff-trace"') == 2
