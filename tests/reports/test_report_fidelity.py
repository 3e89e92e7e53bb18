"""The report's "Against production" section reads the fidelity table (and is absent without it)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from _dbfactory import build_results_db

from reports.data import ResultsReader
from reports.render import render_html


def _add_fidelity(path: Path) -> None:
    con = duckdb.connect(str(path))
    try:
        identity = con.execute("SELECT coalesce(any_value(identity), '') FROM traces").fetchone()
        ident = identity[0] if identity else ""
        rows = [
            ("t-ok", "baseline", 1, 1, 3, 3, 0, 0, 3, 1.0, "SUCCEEDED", "SUCCEEDED", 0.25, None, "[]"),
            ("t-ok", "candidate", 1, 1, 3, 3, 0, 0, 3, 1.0, "SUCCEEDED", "SUCCEEDED", 0.125, None, "[]"),
            (
                "t-bad",
                "baseline",
                1,
                0,
                3,
                2,
                0,
                0,
                3,
                0.5,
                "Failed",
                "SUCCEEDED",
                0.75,
                "fit<x>",
                json.dumps(
                    [
                        {"run_id": "1", "path": "fit<x>", "observed": "Failed", "replayed": "SUCCEEDED"},
                        {"run_id": "1", "path": "", "observed": "Failed", "replayed": "SUCCEEDED"},
                    ]
                ),
            ),
        ]
        for r in rows:
            con.execute(
                "INSERT INTO fidelity (trace_id, engine, runs_observed, runs_agree, steps_observed, steps_agree, "
                "steps_missing, steps_extra, attempts_agree, status_agreement, observed_status, replayed_status, "
                "makespan_ratio, first_disagreement, disagreements, start_delays, identity) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                [*r, ident],
            )
    finally:
        con.close()


def test_section_summarises_each_engine_and_lists_disagreements(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    build_results_db(db, n_traces=4)
    _add_fidelity(db)
    with ResultsReader(db) as reader:
        summary = {f.engine: f for f in reader.fidelity_summary()}
        traces, more = reader.fidelity_traces(10)
    assert (summary["baseline"].agree, summary["baseline"].checked) == (6, 8)
    assert summary["baseline"].makespan_ratio_p50 == 0.5
    assert (summary["candidate"].agree, summary["candidate"].checked) == (4, 4)
    assert [(t.trace_id, t.first_disagreement) for t in traces] == [("t-bad", "fit<x>")]
    assert more == 0
    html = render_html(db)
    assert 'id="fidelity"' in html
    assert 'href="#fidelity"' in html
    assert "75.00 % (6 / 8)" in html
    assert "fit&lt;x&gt;" in html  # escaped
    assert "fit<x>" not in html


def test_no_fidelity_rows_no_section(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    build_results_db(db, n_traces=4)
    html = render_html(db)
    assert 'id="fidelity"' not in html
