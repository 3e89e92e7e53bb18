"""``shadow gate --since T`` and ``shadow report --since T``: the traces captured at or after T, judged on a
copy whose aggregates are recomputed over the window alone (shadow.results.window)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import jsonschema
import pytest

from corpora.generator import GeneratorConfig, generate_corpus
from corpora.io import write_traces
from shadow.cli import main
from shadow.gate.outputs import VERDICT_JSON_SCHEMA
from shadow.results.window import parse_since, window_copy

COHORTS = """
[defaults]
min_traces = 1
divergence_budget = 1.0

[[cohort]]
name = "all"
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dt.datetime]]:
    """A real run of twelve generated traces (each with its metadata.captured_at)."""
    folder = tmp_path_factory.mktemp("window")
    traces = list(generate_corpus(3, 12, GeneratorConfig(max_steps=8)))
    corpus, db = folder / "c.jsonl", folder / "r.duckdb"
    write_traces(corpus, traces)
    assert main(["run", str(corpus), "--db", str(db), "--workers", "1", "--no-progress"]) == 0
    con = duckdb.connect(str(db), read_only=True)
    captured = sorted(t for (t,) in con.execute("SELECT captured_at FROM traces").fetchall())
    con.close()
    assert None not in captured
    assert len(set(captured)) == 12
    return db, captured


def test_the_gate_judges_the_window_and_stores_it_with_the_verdict(
    tmp_path: Path, results: tuple[Path, list[dt.datetime]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, captured = results
    cohorts = tmp_path / "cohorts.toml"
    cohorts.write_text(COHORTS)
    since = captured[7].isoformat()  # naive: UTC
    out = tmp_path / "verdict.json"
    code = main(["gate", str(db), "--cohorts", str(cohorts), "--since", since, "--json", str(out)])
    verdict = json.loads(out.read_text())
    jsonschema.validate(verdict, VERDICT_JSON_SCHEMA)
    assert code == verdict["exit_code"]
    assert [c["n_traces"] for c in verdict["cohorts"]] == [5]
    assert verdict["captured_since"] == captured[7].replace(tzinfo=dt.UTC).isoformat()
    assert verdict["database"] == str(db)
    assert "traces captured since" in capsys.readouterr().err
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("SELECT n_traces, captured_since FROM verdicts").fetchall()
    con.close()
    assert stored == [(5, captured[7])]
    # The whole identity without --since: every trace, and no window recorded.
    assert main(["gate", str(db), "--cohorts", str(cohorts), "--no-store", "--json", str(out)]) == 0
    assert [c["n_traces"] for c in json.loads(out.read_text())["cohorts"]] == [12]
    assert "captured_since" not in json.loads(out.read_text())


def test_the_window_copy_recomputes_the_aggregates_over_the_window(
    tmp_path: Path, results: tuple[Path, list[dt.datetime]]
) -> None:
    db, captured = results
    window = window_copy(db, None, captured[4].replace(tzinfo=dt.UTC), tmp_path)
    assert (window.traces, window.of) == (8, 12)
    con = duckdb.connect(str(window.path), read_only=True)
    src = duckdb.connect(str(db), read_only=True)
    try:
        ids = {t for (t,) in con.execute("SELECT trace_id FROM traces").fetchall()}
        assert ids == {
            t
            for (t,) in src.execute(
                "SELECT trace_id FROM traces WHERE captured_at >= ?", [captured[4]]
            ).fetchall()
        }
        for table in ("runs", "steps", "divergences"):
            outside = con.execute(
                f"SELECT count(*) FROM {table} WHERE trace_id NOT IN (SELECT trace_id FROM traces)"
            )
            assert outside.fetchall() == [(0,)]
        # Cause counts are the window's own, not the whole identity's.
        causes = dict(con.execute("SELECT cause, candidate_traces FROM causes").fetchall())
        for cause, n in causes.items():
            assert (
                n
                == con.execute(
                    "SELECT count(DISTINCT trace_id) FROM divergences WHERE comparison = 'candidate' "
                    "AND coalesce(cause, '') = ?",
                    [cause],
                ).fetchall()[0][0]
            )
        assert con.execute("SELECT count(*) FROM latency").fetchall()[0][0] > 0
    finally:
        con.close()
        src.close()


def test_the_report_of_a_window_says_so(tmp_path: Path, results: tuple[Path, list[dt.datetime]]) -> None:
    db, captured = results
    html = tmp_path / "w.html"
    assert main(["report", str(db), "--since", captured[10].isoformat() + "Z", "-o", str(html)]) == 0
    text = html.read_text()
    assert "traces captured since " + captured[10].isoformat() in text


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01"])
def test_a_bad_since_is_a_harness_error(
    tmp_path: Path, results: tuple[Path, list[dt.datetime]], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = results
    cohorts = tmp_path / "cohorts.toml"
    cohorts.write_text(COHORTS)
    assert main(["gate", str(db), "--cohorts", str(cohorts), "--since", text, "--no-store"]) == 4
    assert main(["report", str(db), "--since", text, "-o", str(tmp_path / "r.html")]) == 4
    assert "neither an ISO-8601 time" in capsys.readouterr().err


def test_since_reads_iso_with_a_zone_and_epoch_seconds() -> None:
    assert parse_since("2026-12-03T12:00:00+01:00") == dt.datetime(2026, 12, 3, 11, tzinfo=dt.UTC)
    assert parse_since("0") == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
