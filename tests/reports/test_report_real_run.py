"""End to end: ``shadow run`` writes a real results database, ``shadow report`` renders it, and the
numbers on the page equal SQL over the same file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
from markupsafe import escape

from reports.render import METRIC_TITLES
from shadow.cli import main

DAG = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from corpora.io import TraceWriter
    from shadow.testing import build_trace

    root = tmp_path_factory.mktemp("real")
    corpus = root / "corpus.jsonl"
    with TraceWriter(str(corpus)) as writer:
        for i in range(10):
            retried = {"b": ["user_error", "succeeded"]} if i % 2 else None
            writer.write(
                build_trace(f"t{i:02d}", DAG, retried, runs=2, workflow_type="etl" if i % 3 else "report")
            )
    with corpus.open("a", encoding="utf-8") as f:
        f.write('{"format": "shadow-trace/1", "trace_id": "<script>bad</script>"}\n')
    db = root / "results.duckdb"
    code = main(
        [
            "run",
            str(corpus),
            "--db",
            str(db),
            "--workers",
            "1",
            "--no-progress",
            "--baseline",
            "shadow.testing:fake_engine",
            "--candidate",
            "shadow.testing:fake_engine_with_fault",
        ]
    )
    assert code in (0, 1), code
    out = root / "report.html"
    assert main(["report", str(db), "-o", str(out)]) == 0
    return db, out.read_text(encoding="utf-8")


def _sql(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


class TestRealResults:
    def test_headline_matches_sql(self, real_run: tuple[Path, str]) -> None:
        """Traces, runs, divergent traces and quarantined inputs on the page equal SQL counts."""
        db, page = real_run
        checks = {
            "n-traces": "SELECT count(*) FROM traces",
            "n-runs": "SELECT count(*) FROM runs WHERE engine = 'baseline'",
            "n-divergent": "SELECT count(DISTINCT trace_id) FROM divergences WHERE comparison = 'candidate'",
            "n-quarantined": "SELECT count(*) FROM quarantine",
        }
        for anchor, sql in checks.items():
            value = int(_sql(db, sql)[0][0])  # type: ignore[call-overload]
            assert f'id="{anchor}">{value:,}<' in page, anchor
        assert int(_sql(db, "SELECT count(*) FROM quarantine")[0][0]) == 1  # type: ignore[call-overload]

    def test_every_cause_and_signature_listed_with_counts(self, real_run: tuple[Path, str]) -> None:
        """Each root cause is a group row with its candidate trace count, the causes that follow from it are
        listed under it; each signature is a drill-down row; the exemplars are drawn per group."""
        db, page = real_run
        causes = _sql(
            db,
            "SELECT description, candidate_traces, len(exemplars) FROM causes WHERE consequence_of IS NULL",
        )
        consequences = _sql(db, "SELECT description FROM causes WHERE consequence_of IS NOT NULL")
        for (description,) in consequences:
            assert f"<li>{escape(str(description))} " in page
        rows = _sql(db, "SELECT signature, candidate_traces, len(exemplars) FROM signatures")
        assert rows, "the planted fault should produce divergences"
        assert 0 < len(causes) < len(rows)  # one planted bug shows at several places
        assert page.count('class="group-row"') == len(causes)
        assert page.count('class="sig-row"') == len(rows)
        for description, traces, _ in causes:
            assert escape(str(description)) in page
            assert f'data-v="{traces}"' in page
        for signature, traces, _ in rows:
            assert escape(str(signature)) in page
            assert f'data-v="{traces}"' in page
        assert page.count('class="exemplar"') == sum(min(int(n), 5) for _, _, n in causes)  # type: ignore[call-overload]

    def test_latency_tables_match(self, real_run: tuple[Path, str]) -> None:
        """The latency summary shows the stored p50 of each metric and engine, and each chart is drawn."""
        db, page = real_run
        for metric, engine, n, p50 in _sql(
            db, "SELECT metric, engine, n, p50 FROM latency WHERE p50 IS NOT NULL"
        ):
            assert f'<td>{metric}</td><td>{engine}</td><td class="n">{int(n):,}</td>' in page  # type: ignore[call-overload]
            assert f"{float(p50):.3g}" in page  # type: ignore[arg-type]
        metrics = {m for (m,) in _sql(db, "SELECT DISTINCT metric FROM latency")}
        for metric in metrics & set(METRIC_TITLES):
            assert escape(METRIC_TITLES[metric]) in page

    def test_quarantine_message_shown(self, real_run: tuple[Path, str]) -> None:
        """The quarantined line's message is on the page, escaped."""
        db, page = real_run
        (message,) = _sql(db, "SELECT message FROM quarantine")[0]
        assert escape(str(message)) in page
        assert "<script>bad" not in page

    def test_records_drilldown(self, real_run: tuple[Path, str]) -> None:
        """The data island carries both records of each exemplar, parseable as JSON."""
        _, page = real_run
        start = page.index('<script type="application/json" id="drilldown">') + len(
            '<script type="application/json" id="drilldown">'
        )
        island = json.loads(page[start : page.index("</script>", start)])
        assert island["exemplars"]
        for ex in island["exemplars"].values():
            assert set(ex["records"]) == {"baseline", "candidate"}
            assert ex["records"]["baseline"]["trace_id"] == ex["trace_id"]


class TestWithVerdicts:
    def test_latest_verdict_per_cohort_shown(self, real_run: tuple[Path, str], tmp_path: Path) -> None:
        """After 'shadow gate', each cohort's latest verdict from the verdicts table is on the page."""
        cohorts = Path(__file__).resolve().parents[2] / "examples" / "cohorts.toml"
        if not cohorts.is_file():
            pytest.skip(f"{cohorts} not present")
        db = tmp_path / "gated.duckdb"
        db.write_bytes(real_run[0].read_bytes())
        assert main(["gate", str(db), "--cohorts", str(cohorts)]) in (0, 1, 2, 3)
        out = tmp_path / "r.html"
        assert main(["report", str(db), "-o", str(out)]) == 0
        page = out.read_text(encoding="utf-8")
        latest = _sql(
            db,
            "SELECT cohort, verdict FROM verdicts QUALIFY row_number() OVER "
            "(PARTITION BY cohort ORDER BY created_at DESC) = 1",
        )
        assert latest
        for cohort, verdict in latest:
            assert (
                f'<tr><td>{escape(str(cohort))}</td><td><span class="badge {verdict}">{verdict}</span>'
                in page
            )


@pytest.mark.slow
class TestBuiltInCorpus:
    def test_generated_corpus_report_matches_sql(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """'shadow corpus generate' -> 'shadow run' (oracle vs a planted lost wake-up) -> the page's numbers equal SQL."""
        repo = Path(__file__).resolve().parents[2]
        if not (repo / "examples" / "planted_fault.py").is_file():
            pytest.skip("examples/planted_fault.py not present")
        monkeypatch.syspath_prepend(str(repo))
        corpus, db, out = tmp_path / "corpus.jsonl", tmp_path / "results.duckdb", tmp_path / "report.html"
        assert main(["corpus", "generate", "--seed", "1", "--count", "4", "-o", str(corpus), "--quiet"]) == 0
        assert main(
            [
                "run",
                str(corpus),
                "--db",
                str(db),
                "--workers",
                "1",
                "--no-progress",
                "--baseline",
                "oracle",
                "--candidate",
                "examples.planted_fault:oracle_lost_wakeup",
            ]
        ) in (0, 1)
        assert main(["report", str(db), "-o", str(out), "--corpus-root", str(tmp_path)]) == 0
        page = out.read_text(encoding="utf-8")
        for anchor, sql in {
            "n-traces": "SELECT count(*) FROM traces",
            "n-runs": "SELECT count(*) FROM runs WHERE engine = 'baseline'",
            "n-divergent": "SELECT count(DISTINCT trace_id) FROM divergences WHERE comparison = 'candidate'",
            "n-unexplained": "SELECT count(*) FROM traces WHERE unexplained > 0",
        }.items():
            assert f'id="{anchor}">{int(_sql(db, sql)[0][0]):,}<' in page, anchor  # type: ignore[call-overload]
        stuck = _sql(db, "SELECT count(*) FILTER (WHERE stuck) FROM runs WHERE engine = 'candidate'")[0][0]
        row = re.search(r'<tr><td>candidate</td>.*?<td class="n">([\d,]+)</td></tr>', page, re.S)
        assert row
        assert int(row.group(1).replace(",", "")) == stuck
        # The page's groups are the root causes (a cause that follows from another is folded under it).
        n_groups = int(
            _sql(
                db,
                "SELECT count(*) FROM causes WHERE consequence_of IS NULL OR consequence_of NOT IN "
                "(SELECT cause FROM causes)",
            )[0][0]
        )  # type: ignore[call-overload]
        assert page.count('class="group-row"') == min(n_groups, 100)
        assert "from the workflow definition in the corpus" in page
