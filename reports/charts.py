"""Inline SVG charts drawn in Python: latency CDFs on a log axis, speed-up by percentile, Gantt timelines.

Why hand-drawn SVG: a page with a charting library inline weighs megabytes (plotly: 4.9 MB for 2,000
workflows) and vega-lite draws log-scale bars empty; these charts are a few kilobytes each, need no
script and no network, and print. Every text that reaches the SVG goes through ``markupsafe.escape``
(step paths come from production traces and may hold markup).

Log axes cannot show zero: values at or below the axis floor are drawn at the floor, and the chart
says so in its caption.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from reports.text import escape_visible as escape

__all__ = [
    "ENGINE_COLORS",
    "STATUS_COLORS",
    "CdfSeries",
    "GanttBar",
    "LogAxis",
    "cdf_chart",
    "gantt_chart",
    "speedup_chart",
]

ENGINE_COLORS: dict[str, str] = {"baseline": "#4e79a7", "candidate": "#e15759", "baseline_aa": "#9c9c9c"}
STATUS_COLORS: dict[str, str] = {
    "SUCCEEDED": "#59a14f",
    "COMPLETED_WITH_ERROR": "#8cd17d",
    "SKIPPED": "#bab0ac",
    "UNSATISFIED": "#bab0ac",
    "DISABLED": "#bab0ac",
    "STOPPED": "#b07aa1",
    "TIMED_OUT": "#f28e2b",
    "TIMEOUT_FAILED": "#f28e2b",
}
_FAILED = "#e15759"
_FONT = 'font-family="system-ui,sans-serif" font-size="11"'


def _fmt(v: float) -> str:
    """A short number for axis labels and tooltips."""
    if v == 0 or not math.isfinite(v):
        return str(v) if not math.isfinite(v) else "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def status_color(status: str) -> str:
    return STATUS_COLORS.get(status, _FAILED if "FAIL" in status else "#76b7b2")


@dataclass(frozen=True, slots=True)
class LogAxis:
    """Maps positive values onto [0, length] on a log10 scale between whole decades."""

    lo: float
    hi: float
    length: float

    @classmethod
    def spanning(cls, values: Sequence[float], length: float, floor: float = 1e-3) -> LogAxis:
        positive = [v for v in values if v > 0 and math.isfinite(v)]
        lo = 10.0 ** math.floor(math.log10(max(min(positive, default=floor), floor)))
        hi = 10.0 ** math.ceil(math.log10(max(max(positive, default=1.0), lo * 10)) - 1e-9)
        return cls(lo, hi, length)

    def __call__(self, value: float) -> float:
        v = min(max(value, self.lo), self.hi)
        return (
            (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo)) * self.length
        )

    def ticks(self) -> list[float]:
        start, stop = round(math.log10(self.lo)), round(math.log10(self.hi))
        return [10.0**e for e in range(start, stop + 1)]


@dataclass(frozen=True, slots=True)
class CdfSeries:
    """One line of a CDF: ``values[i]`` is the quantile at probability ``probabilities[i]``."""

    label: str
    color: str
    probabilities: tuple[float, ...]
    values: tuple[float, ...]
    n: int
    non_positive: int = 0


def _frame(width: int, height: int, title: str, body: list[str], role_label: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(role_label)}">'
    )
    if title:
        head += f'<text x="8" y="16" {_FONT} font-weight="600">{escape(title)}</text>'
    return Markup(head + "".join(body) + "</svg>")


def cdf_chart(
    series: Sequence[CdfSeries], *, title: str, unit: str = "s", width: int = 560, height: int = 300
) -> Markup:
    """Cumulative distributions of one metric per engine, x on a log axis (seconds)."""
    left, right, top, bottom = 52, 30, 28, 60
    pw, ph = width - left - right, height - top - bottom
    if not series or not any(s.values for s in series):
        return _frame(width, 60, title, [f'<text x="8" y="40" {_FONT}>no data</text>'], title)
    axis = LogAxis.spanning([v for s in series for v in s.values], pw)
    body = [
        f'<g transform="translate({left},{top})">',
        f'<rect width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for t in axis.ticks():
        x = axis(t)
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{ph}" stroke="#e3e3e3"/>'
            f'<text x="{x:.1f}" y="{ph + 14}" {_FONT} text-anchor="middle">{escape(_fmt(t))}</text>'
        )
    for p in (0.0, 0.25, 0.5, 0.75, 0.95, 1.0):
        y = ph * (1 - p)
        body.append(
            f'<line x1="0" x2="{pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>'
            f'<text x="-6" y="{y + 4:.1f}" {_FONT} text-anchor="end">{p:.2f}</text>'
        )
    for i, s in enumerate(series):
        pts = " ".join(
            f"{axis(v):.1f},{ph * (1 - p):.1f}" for p, v in zip(s.probabilities, s.values, strict=True)
        )
        body.append(
            f'<polyline fill="none" stroke="{escape(s.color)}" stroke-width="2" points="{pts}">'
            f"<title>{escape(s.label)} (n={s.n:,})</title></polyline>"
        )
        body.append(
            f'<rect x="{8 + i * 150}" y="{ph + 24}" width="10" height="10" fill="{escape(s.color)}"/>'
            f'<text x="{22 + i * 150}" y="{ph + 33}" {_FONT}>{escape(s.label)} n={s.n:,}'
            f"{escape(f' ({s.non_positive:,} ≤ 0)') if s.non_positive else ''}</text>"
        )
    body.append(
        f'<text x="8" y="{ph + 50}" {_FONT} fill="#666">'
        f"{escape(unit)}, log scale; values ≤ {escape(_fmt(axis.lo))} drawn at the left edge</text></g>"
    )
    return _frame(width, height, title, body, f"{title}: cumulative distribution per engine")


def speedup_chart(
    ratios: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]],
    *,
    title: str,
    width: int = 560,
    height: int = 300,
) -> Markup:
    """Baseline / candidate per percentile for each metric (> 1: the candidate is faster), y on a log axis."""
    left, right, top, bottom = 52, 16, 28, 60
    pw, ph = width - left - right, height - top - bottom
    finite = [r for _, rs in ratios.values() for r in rs if r > 0 and math.isfinite(r)]
    if not finite:
        return _frame(width, 60, title, [f'<text x="8" y="40" {_FONT}>no paired data</text>'], title)
    lo, hi = min(min(finite), 0.5), max(max(finite), 2.0)
    axis = LogAxis.spanning([lo, hi], ph, floor=1e-6)
    body = [
        f'<g transform="translate({left},{top})">',
        f'<rect width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for t in axis.ticks():
        y = ph - axis(t)
        strong = ' stroke-width="2" stroke="#888"' if t == 1 else ' stroke="#e3e3e3"'
        body.append(
            f'<line x1="0" x2="{pw}" y1="{y:.1f}" y2="{y:.1f}"{strong}/>'
            f'<text x="-6" y="{y + 4:.1f}" {_FONT} text-anchor="end">{escape(_fmt(t))}×</text>'
        )
    for p in (0, 25, 50, 75, 100):
        x = pw * p / 100
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{ph}" stroke="#e3e3e3"/>'
            f'<text x="{x:.1f}" y="{ph + 14}" {_FONT} text-anchor="middle">p{p}</text>'
        )
    palette = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1")
    for i, (metric, (probs, rs)) in enumerate(ratios.items()):
        color = palette[i % len(palette)]
        pts = " ".join(
            f"{pw * p:.1f},{ph - axis(r):.1f}"
            for p, r in zip(probs, rs, strict=True)
            if r > 0 and math.isfinite(r)
        )
        body.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}">'
            f"<title>{escape(metric)}</title></polyline>"
        )
        body.append(
            f'<rect x="{8 + i * 180}" y="{ph + 24}" width="10" height="10" fill="{color}"/>'
            f'<text x="{22 + i * 180}" y="{ph + 33}" {_FONT}>{escape(metric)}</text>'
        )
    body.append(
        f'<text x="8" y="{ph + 50}" {_FONT} fill="#666">baseline ÷ candidate, log scale; above 1× the candidate is faster</text></g>'
    )
    return _frame(width, height, title, body, f"{title}: speed-up per percentile")


@dataclass(frozen=True, slots=True)
class GanttBar:
    """One attempt of one step on one engine. ``ready_at`` draws the wait before the start as a thin bar."""

    engine: str
    path: str
    attempt: int
    status: str
    ready_at: float | None
    started_at: float | None
    ended_at: float | None


def gantt_chart(
    bars: Sequence[GanttBar],
    *,
    engines: Sequence[str],
    divergent: frozenset[str] = frozenset(),
    max_rows: int = 60,
    width: int = 1100,
) -> Markup:
    """Side-by-side timeline: one row per step path, one lane per engine, all on one time axis.

    Times are relative to the earliest time shown. Bars are coloured by status; the thin grey part
    is the wait between ready and started (the orchestration overhead); divergent paths are marked."""
    timed = [b for b in bars if b.started_at is not None or b.ready_at is not None]
    if not timed:
        return _frame(
            width, 40, "timeline", [f'<text x="8" y="32" {_FONT}>no timed attempts</text>'], "timeline"
        )
    paths: list[str] = []
    for b in sorted(
        timed, key=lambda b: (min(t for t in (b.ready_at, b.started_at) if t is not None), b.path)
    ):
        if b.path not in paths:
            paths.append(b.path)
    hidden = max(len(paths) - max_rows, 0)
    paths = paths[:max_rows]
    shown = [b for b in timed if b.path in set(paths)]
    t0 = min(t for b in shown for t in (b.ready_at, b.started_at) if t is not None)
    t1 = max((t for b in shown for t in (b.ended_at, b.started_at, b.ready_at) if t is not None), default=t0)
    span = max(t1 - t0, 1e-9)
    label_w, lane, gap, top = 260, 9, 6, 14
    pw = width - label_w - 20
    row_h = lane * len(engines) + gap
    height = top + row_h * len(paths) + 40

    def x(t: float) -> float:
        return label_w + (t - t0) / span * pw

    body = []
    for k in range(6):
        t = t0 + span * k / 5
        body.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top - 4}" y2="{height - 34}" stroke="#e3e3e3"/>'
            f'<text x="{x(t):.1f}" y="{height - 22}" {_FONT} text-anchor="middle">+{escape(_fmt(t - t0))} s</text>'
        )
    row_of = {p: i for i, p in enumerate(paths)}
    for p, i in row_of.items():
        y = top + i * row_h
        label = p if len(p) <= 34 else p[:33] + "…"
        mark = "⚠ " if p in divergent else ""
        fill = ' fill="#c0392b" font-weight="600"' if p in divergent else ""
        if i % 2 == 0:
            body.append(f'<rect x="0" y="{y - 2}" width="{width}" height="{row_h}" fill="#f6f6f6"/>')
        body.append(
            f'<text x="4" y="{y + lane + 2}" {_FONT}{fill}><title>{escape(p)}</title>{escape(mark + label)}</text>'
        )
        for j, engine in enumerate(engines):  # which lane is which, without reading the legend
            body.append(
                f'<text x="{label_w - 4}" y="{y + j * lane + lane - 1}" font-family="system-ui,sans-serif" '
                f'font-size="8" fill="{ENGINE_COLORS.get(engine, "#666")}" text-anchor="end">{escape(engine)}</text>'
            )
    lane_of = {e: j for j, e in enumerate(engines)}
    for b in shown:
        if b.engine not in lane_of:
            continue
        y = top + row_of[b.path] * row_h + lane_of[b.engine] * lane
        start = b.started_at if b.started_at is not None else b.ready_at
        assert start is not None
        end = b.ended_at if b.ended_at is not None else start
        tip = escape(
            f"{b.engine} {b.path} #{b.attempt} {b.status}: ready {_fmt((b.ready_at or start) - t0)} s, "
            f"start {_fmt(start - t0)} s, end {_fmt(end - t0)} s"
        )
        if b.ready_at is not None and b.started_at is not None and b.started_at > b.ready_at:
            body.append(
                f'<rect x="{x(b.ready_at):.1f}" y="{y + lane / 2 - 1:.1f}" '
                f'width="{max(x(b.started_at) - x(b.ready_at), 0.5):.1f}" height="2" fill="#999"/>'
            )
        body.append(
            f'<rect x="{x(start):.1f}" y="{y + 1}" width="{max(x(end) - x(start), 1.5):.1f}" height="{lane - 2}" '
            f'fill="{status_color(b.status)}" stroke="{ENGINE_COLORS.get(b.engine, "#333")}" stroke-width="1">'
            f"<title>{tip}</title></rect>"
        )
    legend = " · ".join(f"lane {j + 1}: {e}" for j, e in enumerate(engines))
    more = f" · {hidden} more steps not drawn" if hidden else ""
    body.append(
        f'<text x="4" y="{height - 6}" {_FONT} fill="#666">{escape(legend + more)} · grey line = wait from ready to start · ⚠ divergent</text>'
    )
    return _frame(width, height, "", body, "side-by-side timeline of both engines")
