"""reports.data: every number the page shows comes from SQL over the results database."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from _dbfactory import FactorySummary, build_results_db

from reports.data import CDF_PROBABILITIES, ReportDataError, ResultsReader, schema_mismatch


class TestOpening:
    def test_missing_file_is_a_typed_error(self, tmp_path: Path) -> None:
        """A path that does not exist raises ReportDataError naming the file and what to do."""
        with pytest.raises(ReportDataError, match=r"no such results database.*shadow run"):
            ResultsReader(tmp_path / "absent.duckdb")

    def test_foreign_database_is_rejected(self, tmp_path: Path) -> None:
        """A DuckDB file without the results tables is rejected, listing the missing tables."""
        path = tmp_path / "other.duckdb"
        duckdb.connect(str(path)).close()
        with pytest.raises(ReportDataError, match=r"missing tables divergences, runs, traces"):
            ResultsReader(path)

    def test_not_duckdb_at_all(self, tmp_path: Path) -> None:
        """A text file posing as a database is a ReportDataError, not a DuckDB traceback."""
        path = tmp_path / "fake.duckdb"
        path.write_text("hello")
        with pytest.raises(ReportDataError, match=r"cannot open.*pass a database written by 'shadow run'"):
            ResultsReader(path)

    def test_database_held_by_a_writer(self, tmp_path: Path) -> None:
        """A database another connection holds for writing is a ReportDataError, not a crash."""
        summary = build_results_db(tmp_path / "busy.duckdb", n_traces=2)
        writer = duckdb.connect(str(summary.path))
        try:
            with pytest.raises(ReportDataError, match="another process holds the database"):
                ResultsReader(summary.path)
        finally:
            writer.close()

    def test_current_schema_has_no_warning(self, plain_db: FactorySummary) -> None:
        """A database written with the current schema produces no schema warning."""
        with ResultsReader(plain_db.path) as reader:
            assert schema_mismatch(reader) is None


class TestHeadline:
    def test_counts_match_sql(self, plain_db: FactorySummary) -> None:
        """Headline counts equal direct SQL over the same file."""
        con = duckdb.connect(str(plain_db.path), read_only=True)
        try:
            sql_div = con.execute(
                "SELECT count(DISTINCT trace_id) FROM divergences WHERE comparison = 'candidate'"
            ).fetchone()
            sql_unexplained = con.execute("SELECT count(*) FROM traces WHERE unexplained > 0").fetchone()
        finally:
            con.close()
        with ResultsReader(plain_db.path) as reader:
            h = reader.headline()
        assert h.traces == plain_db.traces
        assert h.runs == plain_db.runs_per_role
        assert set(h.runs_by_engine) == {"baseline", "candidate", "baseline_aa"}
        assert h.divergent_traces == sql_div[0]  # type: ignore[index]
        assert h.unexplained_traces == sql_unexplained[0]  # type: ignore[index]
        assert h.quarantined == plain_db.quarantined

    def test_latest_verdict_per_cohort(self, plain_db: FactorySummary) -> None:
        """Only the newest verdict of a cohort is shown, with its criteria parsed."""
        with ResultsReader(plain_db.path) as reader:
            verdicts = reader.verdicts()
        assert [v.verdict for v in verdicts] == ["FAIL"]
        assert verdicts[0].criteria[0]["name"] == "divergence"

    def test_engines_come_from_records(self, plain_db: FactorySummary) -> None:
        """Engine names and versions per role are read from the records table."""
        with ResultsReader(plain_db.path) as reader:
            engines = {e.role: e.name for e in reader.engines()}
        assert engines == {"baseline": "legacy", "baseline_aa": "legacy", "candidate": "actor"}


class TestGroups:
    def test_groups_capped_with_remainder(self, plain_db: FactorySummary) -> None:
        """A cap on groups returns that many and counts the rest."""
        with ResultsReader(plain_db.path) as reader:
            all_groups, none_left = reader.signature_groups(1000)
            some, left = reader.signature_groups(2)
        assert none_left == 0
        assert len(some) == 2
        assert left == len(all_groups) - 2

    def test_unexplained_first(self, plain_db: FactorySummary) -> None:
        """Unexplained signatures are listed before noise and waived ones."""
        with ResultsReader(plain_db.path) as reader:
            groups, _ = reader.signature_groups(1000)
        statuses = [g.status == "unexplained" for g in groups]
        assert statuses == sorted(statuses, reverse=True)

    def test_fallback_aggregates_divergences(self, tmp_path: Path) -> None:
        """With an empty signatures table the groups are aggregated from divergences, nothing lost."""
        summary = build_results_db(tmp_path / "r.duckdb", n_traces=12)
        con = duckdb.connect(str(summary.path))
        expected = con.execute("SELECT count(DISTINCT signature) FROM divergences").fetchone()[0]  # type: ignore[index]
        con.execute("DELETE FROM signatures")
        con.close()
        with ResultsReader(summary.path) as reader:
            groups, left = reader.signature_groups(1000)
        assert len(groups) + left == expected
        assert all(g.exemplars for g in groups)


class TestLatency:
    def test_quantiles_match_duckdb(self, plain_db: FactorySummary) -> None:
        """The CDF median of start overhead equals quantile_cont over the steps table."""
        con = duckdb.connect(str(plain_db.path), read_only=True)
        median = con.execute(
            "SELECT quantile_cont(start_overhead, 0.5) FROM steps WHERE engine = 'candidate'"
        ).fetchone()[0]  # type: ignore[index]
        con.close()
        with ResultsReader(plain_db.path) as reader:
            dists = {d.engine: d for d in reader.distributions("start_overhead")}
        cand = dists["candidate"]
        assert len(cand.quantiles) == len(CDF_PROBABILITIES)
        assert cand.quantiles[CDF_PROBABILITIES.index(0.5)] == pytest.approx(median)
        assert list(cand.quantiles) == sorted(cand.quantiles)

    def test_empty_database(self, empty_db: Path) -> None:
        """An empty results database yields no distributions and zero counts, not errors."""
        with ResultsReader(empty_db) as reader:
            assert reader.distributions("end_to_end") == ()
            assert reader.headline().traces == 0
            assert reader.signature_groups(10) == ((), 0)
