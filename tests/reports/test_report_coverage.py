"""The report's coverage section (traces.features) and its wording on a clean run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb

from corpora.codec import encode
from corpora.coverage import FEATURES
from corpora.testing import chain_trace, diamond_trace, foreach_trace
from shadow.cli import main


def test_coverage_section_lists_never_exercised_first_and_counts_match_sql(tmp_path: Path) -> None:
    corpus, db, out = tmp_path / "c.jsonl", tmp_path / "r.duckdb", tmp_path / "r.html"
    traces = [chain_trace(2, trace_id="a"), diamond_trace(trace_id="b"), foreach_trace(2, trace_id="c")]
    corpus.write_text("".join(json.dumps(encode(t)) + "\n" for t in traces), encoding="utf-8")
    assert main(["run", str(corpus), "--db", str(db), "--baseline", "oracle", "--candidate", "oracle",
                 "--no-progress"]) == 0  # fmt: skip
    assert main(["report", str(db), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert 'id="coverage"' in page
    with duckdb.connect(str(db), read_only=True) as con:
        counts = dict(con.execute(
            "SELECT f, count(DISTINCT trace_id) FROM (SELECT trace_id, unnest(features) AS f FROM traces) GROUP BY f"
        ).fetchall())  # fmt: skip
    assert counts["join"] == 1
    assert counts["foreach"] == 1
    rows = re.findall(
        r'<tr class="coverage-row"><td><code>(\w+)</code></td><td>.*?</td><td class="n[^"]*">([\d,]+)</td>',
        page,
    )
    assert len(rows) == len(FEATURES)
    assert {name: int(n) for name, n in rows} == {name: counts.get(name, 0) for name in FEATURES}
    assert [int(n) for _, n in rows] == sorted(int(n) for _, n in rows)  # never exercised first
    never = re.search(r"Never exercised \((\d+) of (\d+)\)", page)
    assert never is not None
    assert (int(never.group(1)), int(never.group(2))) == (
        sum(1 for f in FEATURES if f not in counts),
        len(FEATURES),
    )
    # no divergence at all: the groups section says so under cause groups, not that the file predates them
    assert "predates cause groups" not in page
    assert "No divergences" in page
