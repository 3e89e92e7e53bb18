"""Render the results database as one self-contained HTML file.

Self-contained means: inline CSS, inline SVG, one inline script allowed by its SHA-256 hash in a
Content-Security-Policy that forbids every network request (``default-src 'none'``), and the
drill-down data in a JSON data island (``<script type="application/json">``) whose ``<``, ``>``,
``&`` and line separators are written as ``\\uXXXX`` escapes so no trace content can close the
element. jinja2 autoescaping covers every other text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from reports.charts import ENGINE_COLORS, CdfSeries, cdf_chart, speedup_chart
from reports.data import (
    CDF_PROBABILITIES,
    CauseGroup,
    ReportLimits,
    ResultsReader,
    SignatureGroup,
    schema_mismatch,
)
from reports.definitions import load_exemplar_traces
from reports.drilldown import Exemplar, build_exemplar, compact_json
from reports.exemplar_rows import fetch_exemplar_rows
from reports.text import finalize

__all__ = ["ReportOptions", "ReportStats", "json_island", "render_html", "script_hash", "write_report"]

METRIC_TITLES = {
    "start_overhead": "Per-step start overhead (ready → started)",
    "orchestration_overhead": "Per-run orchestration overhead (makespan − critical path)",
    "end_to_end": "End-to-end time per run (trigger → end)",
}


@dataclass(frozen=True, slots=True)
class ReportOptions:
    title: str = "workflow-shadow divergence report"
    limits: ReportLimits = field(default_factory=ReportLimits)
    # Where relative corpus paths of exemplar traces are looked up (for the real DAG); the results
    # database's folder and the working directory are always tried after these.
    corpus_roots: tuple[Path, ...] = ()
    # Whose results to show (id or unique prefix, see results.identity); None: the latest session's.
    identity: str | None = None


@dataclass(frozen=True, slots=True)
class ReportStats:
    """What was written: size in bytes, wall seconds to render, groups and exemplars shown."""

    path: Path
    bytes: int
    seconds: float
    groups: int
    exemplars: int


def json_island(data: Any) -> Markup:
    """JSON safe to place inside ``<script type="application/json">``: nothing in it can end the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    for ch, esc in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return Markup(text)


def _asset(name: str) -> str:
    return resources.files("reports").joinpath("templates", name).read_text(encoding="utf-8")


def script_hash(script: str) -> str:
    """The CSP source for an inline script or style block: ``'sha256-<base64>'`` over its exact text."""
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"
    )


def _num(value: float | int | None, digits: int = 3) -> str:
    """Numbers for tables: integers with separators, 3 significant digits, no e-notation from 1,000 up."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    v = float(value)
    if math.isfinite(v) and abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2", "html.j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=finalize,
    )
    env.filters["pct"] = lambda v: "—" if v is None else f"{100 * float(v):.2f} %"
    env.filters["num"] = _num
    env.filters["cjson"] = compact_json
    return env


def _latency(reader: ResultsReader) -> dict[str, Any]:
    charts, speedups = {}, {}
    for metric, title in METRIC_TITLES.items():
        dists = reader.distributions(metric)
        if not dists:
            continue
        series = [
            CdfSeries(
                d.engine,
                ENGINE_COLORS.get(d.engine, "#333"),
                CDF_PROBABILITIES,
                d.quantiles,
                d.n,
                d.non_positive,
            )
            for d in dists
        ]
        charts[metric] = cdf_chart(series, title=title)
        by = {d.engine: d.quantiles for d in dists}
        if "baseline" in by and "candidate" in by:
            ratios = tuple(
                b / c if c > 0 else float("inf") for b, c in zip(by["baseline"], by["candidate"], strict=True)
            )
            speedups[metric] = (CDF_PROBABILITIES, ratios)
    return {
        "charts": charts,
        "speedup": speedup_chart(speedups, title="Speed-up by percentile (baseline ÷ candidate)")
        if speedups
        else None,
        "speedup_table": [
            (m, [(p, r[CDF_PROBABILITIES.index(p)]) for p in (0.5, 0.9, 0.95, 0.99)])
            for m, (_, r) in speedups.items()
        ],
        "summaries": reader.latency_summaries(),
        "tests": reader.latency_tests(),
    }


def _weight(ex: Exemplar) -> int:
    """Roughly the bytes an exemplar adds to the page (drawings, side-by-side rows, raw records)."""
    rows = sum(len(r.baseline) + len(r.candidate) + len(r.path) + 120 for r in ex.diff)
    raw = sum(len(json.dumps(r, ensure_ascii=False, default=str)) for r in ex.raw.values())
    return len(ex.dag) + len(ex.timeline) + rows + raw + 3000


def _baseline_diff(current: dict[str, str], previous: dict[str, str], limit: int) -> dict[str, Any]:
    new = sorted(set(current) - set(previous))
    recurring = sorted(set(current) & set(previous))
    resolved = sorted(set(previous) - set(current))

    def cap(items: list[str], statuses: dict[str, str]) -> dict[str, Any]:
        return {
            "rows": [(s, statuses.get(s, "")) for s in items[:limit]],
            "more": max(len(items) - limit, 0),
            "n": len(items),
        }

    return {
        "new": cap(new, current),
        "recurring": cap(recurring, current),
        "resolved": cap(resolved, previous),
    }


def build_context(
    reader: ResultsReader, options: ReportOptions, baseline: ResultsReader | None = None
) -> dict[str, Any]:
    """Everything the template shows, from SQL aggregates and a bounded number of exemplars."""
    limits = options.limits
    # The groups are causes (what changed); a database written before causes existed is grouped by
    # signature (where it showed) as it used to be. Signatures stay as the drill-down table either way.
    signatures, signatures_more = reader.signature_groups(limits.groups)
    by_cause = reader.cause_groups(limits.groups)
    groups: tuple[SignatureGroup | CauseGroup, ...] = signatures
    groups_more = signatures_more
    if by_cause is not None:
        groups, groups_more = by_cause
    exemplars: dict[str, list[Any]] = {}
    island: dict[str, Any] = {"exemplars": {}}
    drilled = groups[: limits.drilldown_groups]
    rows = fetch_exemplar_rows(
        reader, (t for g in drilled for t in g.exemplars[: limits.exemplars_per_group])
    )
    roots = (*options.corpus_roots, reader.path.resolve().parent, Path.cwd())
    traces = load_exemplar_traces(
        {t: (str(i.get("corpus_file") or ""), int(i.get("corpus_line") or 0)) for t, i in rows.info.items()},
        roots,
    )
    # Round-robin under a byte budget: every group gets its first exemplar before any gets a second.
    built: dict[tuple[int, int], Exemplar] = {}
    skipped: dict[str, list[str]] = {}
    spent = 0
    for ei in range(limits.exemplars_per_group):
        for gi, group in enumerate(drilled):
            if ei >= len(group.exemplars):
                continue
            trace_id = group.exemplars[ei]
            if spent >= limits.drilldown_bytes:
                skipped.setdefault(group.key, []).append(trace_id)
                continue
            ex = build_exemplar(rows, group, trace_id, f"g{gi}e{ei}", limits, traces.get(trace_id))
            spent += _weight(ex)
            built[(gi, ei)] = ex
    for gi, group in enumerate(drilled):
        items = [built[(gi, ei)] for ei in range(limits.exemplars_per_group) if (gi, ei) in built]
        for ex in items:
            island["exemplars"][ex.anchor] = {"trace_id": ex.trace_id, "records": ex.raw}
        exemplars[group.key] = items
    waivers, waivers_more = reader.waivers(limits.waivers)
    quarantine, quarantine_more = reader.quarantine(limits.quarantine)
    errors, errors_more = reader.trace_errors(limits.trace_errors)
    fidelity_traces, fidelity_more = reader.fidelity_traces(limits.fidelity_traces)
    handoff_traces, handoff_more = reader.handoff_traces(limits.handoff_traces)
    return {
        "title": options.title,
        "source": str(reader.path),
        "warning": schema_mismatch(reader),
        "headline": reader.headline(),
        "groups": groups,
        "groups_more": groups_more,
        "group_index": {g.key: f"g{i}" for i, g in enumerate(groups[: limits.drilldown_groups])},
        "by_cause": by_cause is not None,
        "signatures": signatures,
        "signatures_more": signatures_more,
        "exemplars": exemplars,
        "skipped_exemplars": skipped,
        "waivers": waivers,
        "waivers_more": waivers_more,
        "quarantine": quarantine,
        "quarantine_more": quarantine_more,
        "trace_errors": errors,
        "trace_errors_more": errors_more,
        "latency": _latency(reader),
        "fidelity": reader.fidelity_summary(),
        "faults": reader.fault_summary(),
        "coverage": reader.coverage(),
        "fidelity_traces": fidelity_traces,
        "fidelity_more": fidelity_more,
        "handoff": reader.handoff_summary(),
        "handoff_traces": handoff_traces,
        "handoff_more": handoff_more,
        "baseline": (
            {
                "path": str(baseline.path),
                **_baseline_diff(reader.all_signatures(), baseline.all_signatures(), limits.groups),
            }
            if baseline is not None
            else None
        ),
        "island": json_island(island),
        "n_exemplars": sum(len(v) for v in exemplars.values()),
    }


def render_html(
    results: str | Path, *, baseline: str | Path | None = None, options: ReportOptions | None = None
) -> str:
    """The report page for ``results`` (optionally compared with a previous ``baseline`` database)."""
    options = options or ReportOptions()
    script = _asset("report.js")
    with ResultsReader(results, options.identity) as reader:
        if baseline is not None:
            with ResultsReader(baseline) as prev:
                context = build_context(reader, options, prev)
        else:
            context = build_context(reader, options)
    css = _asset("report.css")
    # Both inline blocks are allowed by hash only: nothing injected could run or restyle the page.
    csp = (
        f"default-src 'none'; style-src {script_hash(css)}; img-src data:; "
        f"script-src {script_hash(script)}; base-uri 'none'; form-action 'none'"
    )
    template = _environment().get_template("report.html.j2")
    return template.render(**context, csp=csp, script=Markup(script), css=Markup(css))


def write_report(
    results: str | Path,
    out: str | Path,
    *,
    baseline: str | Path | None = None,
    options: ReportOptions | None = None,
) -> ReportStats:
    """Render and write the report; returns its size and how long it took."""
    began = time.perf_counter()
    html = render_html(results, baseline=baseline, options=options)
    target = Path(out)
    target.write_text(html, encoding="utf-8")
    n_groups = html.count('class="group-row"')
    n_ex = html.count('class="exemplar"')
    return ReportStats(target, target.stat().st_size, time.perf_counter() - began, n_groups, n_ex)
