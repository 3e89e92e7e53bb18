"""Shadow runs over real public traces (../shared/corpora, imported on the fly; skipped where absent)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from corpora.codec import encode
from corpora.importers import IMPORTERS, ImportOptions, run_import
from corpora.model import Trace
from shadow.engines import resolve_engine
from shadow.runner import RunSettings, run_shadow

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"  # ../shared/corpora
pytestmark = [
    pytest.mark.corpora,
    pytest.mark.skipif(
        not CORPORA.is_dir(), reason=f"real corpora not found at {CORPORA} (../shared/corpora)"
    ),
]


def imported(source: str, sub: str) -> list[Trace]:
    items = run_import(IMPORTERS[source], [CORPORA / sub], ImportOptions(seed=0))
    return [it.trace for it in items if it.trace is not None]


def write(path: Path, traces: list[Trace]) -> Path:
    path.write_text("".join(json.dumps(encode(t)) + "\n" for t in traces), encoding="utf-8")
    return path


class TestRealTraces:
    def test_oracle_against_itself_is_clean(self, tmp_path: Path) -> None:
        """Argo, Nextflow and Maestro traces (foreach, subworkflows, retries): no divergence, no false causality."""
        traces = imported("argo", "argo") + imported("nextflow", "nextflow") + imported("maestro", "maestro")
        assert len(traces) >= 10
        db = tmp_path / "r.duckdb"
        report = run_shadow(
            RunSettings(
                corpus=(str(write(tmp_path / "c.jsonl", traces)),),
                db=str(db),
                baseline=resolve_engine("oracle"),
                candidate=resolve_engine("oracle"),
            )
        )
        assert report.traces_done == len(traces)
        con = duckdb.connect(str(db), read_only=True)
        assert con.execute("SELECT count(*) FROM divergences").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM traces WHERE error IS NOT NULL").fetchone() == (0,)
        con.close()

    def test_lost_retry_on_real_nextflow(self, tmp_path: Path) -> None:
        """The Nextflow run's out-of-memory retries: losing one is flagged at that task as first divergence."""
        (trace,) = imported("nextflow", "nextflow")
        counts = Counter(a.path for a in trace.runs[0].attempts)
        retried = sorted(p for p, n in counts.items() if n >= 2)
        assert retried, "the Nextflow corpus records retried tasks"
        path = retried[0]
        db = tmp_path / "r.duckdb"
        run_shadow(
            RunSettings(
                corpus=(str(write(tmp_path / "c.jsonl", [trace])),),
                db=str(db),
                baseline=resolve_engine("oracle"),
                candidate=resolve_engine(
                    "shadow.testing:fake_engine_with_fault",
                    inner="oracle",
                    fault="one_retry_fewer",
                    path=path,
                ),
            )
        )
        con = duckdb.connect(str(db), read_only=True)
        firsts = {r[0] for r in con.execute("SELECT path FROM divergences WHERE is_first").fetchall()}
        kinds = {r[0] for r in con.execute("SELECT kind FROM divergences WHERE path = ?", [path]).fetchall()}
        con.close()
        assert firsts == {path}
        assert "attempt_count" in kinds
