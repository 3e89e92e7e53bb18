"""The benchmark page and the helpers behind the numbers (never timings: only how figures are derived)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import check_core_records  # noqa: E402
import results_page  # noqa: E402
from bench_replay import production_seconds  # noqa: E402

from engines.api import ExecutionRecord, RunExecution  # noqa: E402


def _doc(**results: dict[str, Any]) -> dict[str, Any]:
    return {
        "created_at": "2026-01-01T00:00:00+00:00",
        "machine": {
            "cpu": "test cpu",
            "cores": 2,
            "load_average": [1.0, 1.0, 1.0],
            "python": "3.11",
            "system": "x",
        },
        "benchmarks": [
            {"name": n, "status": "ok", "seconds": 1.0, "result": r, "tail": []} for n, r in results.items()
        ],
    }


class TestTargets:
    def test_verdicts_follow_the_measured_values(self) -> None:
        """A figure under its ceiling is met, over it MISSED; the legacy/actor ratio is inverted from actor/legacy."""
        doc = _doc(
            bench_actor_live={"engines": [{"engine": "actor", "start_overhead_median_s": 0.0004,
                                           "start_overhead_p99_s": 0.02}],
                              "start_overhead_median_ratio": 0.01},
            bench_scale={"max_peak_rss_mb": 300.0, "cpu_per_step_growth": 1.05},
        )  # fmt: skip
        verdicts = {name: (value, verdict) for name, value, _, verdict in results_page.targets(doc)}
        assert verdicts["step start p50, actor live (s)"][1] == "met"
        assert verdicts["step start p99, actor live (s)"][1] == "MISSED"
        assert verdicts["step start p50 legacy / actor"] == (100.0, "MISSED")
        assert verdicts["scale: max peak RSS (MB)"][1] == "met"
        assert verdicts["report for not measured runs per role (s)"] == (None, "not measured")

    def test_failed_benchmark_counts_as_not_measured(self) -> None:
        """A benchmark without a JSON result gives no figure rather than a wrong one."""
        doc = _doc()
        doc["benchmarks"].append(
            {"name": "bench_scale", "status": "failed", "seconds": 2.0, "result": None, "tail": ["boom"]}
        )
        verdicts = {name: verdict for name, _, _, verdict in results_page.targets(doc)}
        assert verdicts["scale: max peak RSS (MB)"] == "not measured"


class TestRender:
    def test_page_names_command_machine_and_every_figure(self, tmp_path: Path) -> None:
        """The page carries the command, the machine, a row per nested figure and the notes file."""
        notes = tmp_path / "NOTES.md"
        notes.write_text("## Notes\n\nprofiled.\n", encoding="utf-8")
        doc = _doc(bench_replay={"builtin": {"actor": {"steps_per_s": 1234.5}}})
        page = results_page.render(doc, "python benchmarks/run_all.py --quick", notes=notes)
        assert "`python benchmarks/run_all.py --quick`" in page
        assert "test cpu" in page
        assert "| builtin.actor.steps_per_s | 1,234 |" in page
        assert page.rstrip().endswith("profiled.")

    def test_failed_benchmark_shows_its_output_tail(self, tmp_path: Path) -> None:
        """A benchmark that printed no JSON shows the end of its output instead of figures."""
        doc = _doc()
        doc["benchmarks"].append({"name": "bench_x", "status": "failed", "seconds": 1.0, "result": None,
                                  "tail": ["Traceback", "ValueError: nope"]})  # fmt: skip
        page = results_page.render(doc, "cmd", notes=tmp_path / "absent.md")
        assert "ValueError: nope" in page
        assert "| bench_x | failed |" in page


class TestHelpers:
    def test_production_seconds_spans_first_trigger_to_last_end(self) -> None:
        """Replayed production time is last end minus first trigger across the record's runs."""
        runs = (
            RunExecution("r1", "SUCCEEDED", triggered_at=100.0, started_at=101.0, ended_at=150.0),
            RunExecution("r2", "SUCCEEDED", triggered_at=120.0, started_at=121.0, ended_at=400.0),
        )
        assert production_seconds(ExecutionRecord("t", "e", "1", 0, runs)) == 300.0

    def test_record_digests_are_reproducible(self) -> None:
        """Two computations of the record digests of the same traces agree (the guard has no noise)."""
        first = check_core_records.digests(7, 2, ["plain"])
        assert first == check_core_records.digests(7, 2, ["plain"])
        assert len(first) == 2
