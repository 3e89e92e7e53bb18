"""reports.charts and reports.dag: log axes, escaping, timelines and the inferred DAG."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from reports.charts import CdfSeries, GanttBar, LogAxis, cdf_chart, gantt_chart, speedup_chart
from reports.dag import dag_svg, released_by_graph
from reports.text import visible

EVIL = "<script>alert(1)</script>"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


class TestLogAxis:
    def test_spans_whole_decades(self) -> None:
        """The axis widens to whole decades around the data."""
        axis = LogAxis.spanning([0.03, 7.0], 100)
        assert (axis.lo, axis.hi) == (0.01, 10.0)
        assert axis.ticks() == [0.01, 0.1, 1.0, 10.0]

    def test_single_decade_not_widened(self) -> None:
        """Data between 1 and 1.5 spans exactly one decade, 1 to 10."""
        axis = LogAxis.spanning([1.0000001, 1.5], 100)
        assert (axis.lo, axis.hi) == (1.0, 10.0)

    def test_log_mapping(self) -> None:
        """Each decade takes the same length; values below the floor sit at the left edge."""
        axis = LogAxis(0.01, 100.0, 400)
        assert axis(0.1) == pytest.approx(100)
        assert axis(10) == pytest.approx(300)
        assert axis(0.0) == 0

    def test_zeros_only(self) -> None:
        """All-zero data still gives a finite axis."""
        axis = LogAxis.spanning([0.0, 0.0], 100)
        assert math.isfinite(axis(0.0))


class TestCharts:
    def test_cdf_is_valid_svg_with_escaped_label(self) -> None:
        """A series label holding markup is escaped text, not an element."""
        svg = cdf_chart([CdfSeries(EVIL, "#000", (0.5, 1.0), (1.0, 2.0), 2)], title="t")
        root = _parse(str(svg))
        assert not [e for e in root.iter() if e.tag.endswith("script")]
        assert EVIL in "".join(root.itertext())

    def test_cdf_counts_non_positive(self) -> None:
        """Values a log axis cannot place are counted in the legend, not hidden."""
        svg = str(
            cdf_chart([CdfSeries("baseline", "#000", (0.5, 1.0), (-1.0, 2.0), 9, non_positive=4)], title="t")
        )
        assert "n=9 (4 ≤ 0)" in svg

    def test_cdf_without_data_says_so(self) -> None:
        """No values renders a 'no data' chart instead of failing."""
        assert "no data" in cdf_chart([], title="t")

    def test_speedup_draws_each_metric(self) -> None:
        """One polyline per metric with a finite ratio."""
        svg = speedup_chart(
            {"a": ((0.5, 0.9), (2.0, 3.0)), "b": ((0.5, 0.9), (float("inf"), 0.5))}, title="s"
        )
        assert str(svg).count("<polyline") == 2

    def test_gantt_marks_divergent_and_caps_rows(self) -> None:
        """Divergent paths get a warning mark; rows past the cap are counted, not drawn."""
        bars = [
            GanttBar(e, f"s{i}", 1, "SUCCEEDED", float(i), i + 0.5, i + 2.0)
            for i in range(10)
            for e in ("baseline", "candidate")
        ]
        svg = str(
            gantt_chart(bars, engines=("baseline", "candidate"), divergent=frozenset({"s1"}), max_rows=4)
        )
        _parse(svg)
        assert "⚠ s1" in svg
        assert "6 more steps not drawn" in svg
        assert "s7" not in svg

    def test_bidi_controls_made_visible(self) -> None:
        """A right-to-left override in a path is shown as a marker, never emitted raw."""
        bars = [GanttBar("baseline", "a\u202eb", 1, "SUCCEEDED", 0.0, 1.0, 2.0)]
        svg = str(gantt_chart(bars, engines=("baseline",)))
        assert "\u202e" not in svg
        assert visible("a\u202eb") in svg


class TestDag:
    ATTEMPTS = (
        {"path": "a", "attempt": 1, "status": "SUCCEEDED", "ready_at": 0.0, "ended_at": 5.0},
        {"path": "b", "attempt": 1, "status": "SUCCEEDED", "ready_at": 5.0, "ended_at": 9.0},
        {"path": "c", "attempt": 1, "status": "SUCCEEDED", "ready_at": 5.0, "ended_at": 7.0},
        {"path": "d", "attempt": 1, "status": "USER_FAILED", "ready_at": 9.5, "ended_at": 12.0},
        {"path": "d", "attempt": 2, "status": "SUCCEEDED", "ready_at": 13.0, "ended_at": 14.0},
    )

    def test_released_by_edges(self) -> None:
        """A step hangs off the step whose end came last before it became ready."""
        graph = released_by_graph(self.ATTEMPTS)
        assert set(graph.edges()) == {("a", "b"), ("a", "c"), ("b", "d")}
        assert graph.nodes["d"]["node"].attempts == 2
        assert graph.nodes["d"]["node"].status == "SUCCEEDED"

    def test_svg_marks_divergent_and_escapes(self) -> None:
        """Divergent nodes are marked; names with markup stay text."""
        attempts = [
            *self.ATTEMPTS,
            {"path": EVIL, "attempt": 1, "status": "SUCCEEDED", "ready_at": 14.0, "ended_at": 15.0},
        ]
        svg = str(dag_svg(released_by_graph(attempts), divergent=frozenset({"c"})))
        root = _parse(svg)
        assert not [e for e in root.iter() if e.tag.endswith("script")]
        assert "⚠ c" in svg
        assert svg.count("<rect") == 5

    def test_node_cap(self) -> None:
        """A graph bigger than the cap is cut, and the cut is stated."""
        chain = [
            {"path": f"s{i}", "attempt": 1, "status": "SUCCEEDED", "ready_at": float(i), "ended_at": i + 1.0}
            for i in range(30)
        ]
        svg = str(dag_svg(released_by_graph(chain), max_nodes=10))
        assert "20 more steps not drawn" in svg
