"""reports.drilldown and reports.exemplar_rows: side-by-side rows, first divergence, batched fetch."""

from __future__ import annotations

from typing import Any

from _dbfactory import FactorySummary

from reports.data import ReportLimits, ResultsReader
from reports.drilldown import build_exemplar, compact_json, diff_records
from reports.exemplar_rows import ExemplarRows, fetch_exemplar_rows


def _record(statuses: dict[str, str], run_status: str = "SUCCEEDED") -> dict[str, Any]:
    attempts = [
        {"path": p, "attempt": 1, "status": s, "outcome": "succeeded", "params": {"x": 1}}
        for p, s in statuses.items()
    ]
    return {"runs": [{"run_id": "r1", "status": run_status, "attempts": attempts}]}


class TestDiffRecords:
    def test_marks_differing_fields_and_missing(self) -> None:
        """A status difference names the field; an attempt only one engine ran is 'missing'."""
        rows, hidden = diff_records(
            _record({"a": "SUCCEEDED", "b": "SUCCEEDED"}),
            _record({"a": "USER_FAILED"}, "FAILED"),
            first=("r1", "a"),
            limit=100,
        )
        by_path = {r.path: r for r in rows}
        assert hidden == 0
        assert by_path["(run)"].differing == ("status",)
        assert by_path["a"].differing == ("status",)
        assert by_path["a"].first
        assert by_path["b"].differing == ("missing",)
        assert by_path["b"].candidate == "— (absent)"

    def test_param_changes_named(self) -> None:
        """A params difference names the key and both values."""
        base, cand = _record({"a": "SUCCEEDED"}), _record({"a": "SUCCEEDED"})
        cand["runs"][0]["attempts"][0]["params"] = {"x": 2, "extra": "y"}
        rows, _ = diff_records(base, cand, first=None, limit=100)
        row = next(r for r in rows if r.path == "a")
        assert row.differing == ("params",)
        assert "params['x']: 1 → 2" in row.details
        assert "params['extra']: only in candidate (y)" in row.details

    def test_cap_keeps_divergent_rows(self) -> None:
        """When rows must be cut, the divergent ones stay and the rest is counted."""
        base = {f"s{i:02d}": "SUCCEEDED" for i in range(50)}
        cand = dict(base, s49="USER_FAILED")
        rows, hidden = diff_records(_record(base), _record(cand), first=None, limit=10)
        assert len(rows) == 10
        assert hidden == 41
        assert any(r.path == "s49" and r.differing for r in rows)

    def test_compact_json_cuts(self) -> None:
        """Long values are cut with an ellipsis; strings pass through."""
        assert compact_json({"k": "v" * 500}, 20).endswith("…")
        assert len(compact_json({"k": "v" * 500}, 20)) == 20
        assert compact_json("plain") == "plain"


class TestExemplarRows:
    def test_first_divergence_prefers_is_first(self) -> None:
        """The is_first row wins over earlier paths; A/A rows are not the candidate's first divergence."""
        rows = ExemplarRows(
            divergences={
                "t": [
                    {"comparison": "aa", "run_id": "r0", "path": "a", "is_first": True},
                    {"comparison": "candidate", "run_id": "r1", "path": "a", "is_first": False},
                    {"comparison": "candidate", "run_id": "r1", "path": "z", "is_first": True},
                ]
            }
        )
        first = rows.first_divergence("t")
        assert first is not None
        assert first["path"] == "z"
        assert rows.first_divergence("none") is None

    def test_batched_fetch_covers_every_exemplar(self, plain_db: FactorySummary) -> None:
        """One fetch returns records, timeline and trace info for each exemplar id asked for."""
        with ResultsReader(plain_db.path) as reader:
            groups, _ = reader.signature_groups(100)
            ids = {t for g in groups for t in g.exemplars}
            rows = fetch_exemplar_rows(reader, ids)
            ex = build_exemplar(rows, groups[0], groups[0].exemplars[0], "a", ReportLimits())
        assert set(rows.records) == ids
        assert set(rows.info) == ids
        assert set(rows.timeline) == ids
        assert ex.divergences
        assert all(d["signature"] == groups[0].signature for d in ex.divergences)
        assert set(ex.raw) == {"baseline", "candidate"}
