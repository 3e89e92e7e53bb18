"""Exemplar drill-down: for one trace of a divergence group, the two records side by side, the first
divergence point, the DAG and the timeline of the run where it diverged.

The rows come from :func:`reports.exemplar_rows.fetch_exemplar_rows` (one query per table for all
exemplars); the work here is pure Python over them, bounded by the caps in ``ReportLimits``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from deepdiff import DeepDiff
from markupsafe import Markup

from corpora.model import Trace
from reports.charts import GanttBar, gantt_chart
from reports.dag import dag_svg, released_by_graph
from reports.data import CauseGroup, ReportLimits, SignatureGroup
from reports.definitions import definition_graph
from reports.exemplar_rows import ExemplarRows
from reports.text import visible
from reports.why import Why, explain

__all__ = [
    "DiffRow",
    "Exemplar",
    "build_exemplar",
    "compact_json",
    "diff_records",
    "trimmed_record",
    "value_changes",
]

# Fields of an attempt that must agree between engines; timestamps are latency, not outcome.
COMPARED_FIELDS = ("status", "outcome", "unrecorded", "params", "outputs", "config")


def compact_json(value: Any, limit: int = 160) -> str:
    """A one-line JSON rendering for table cells, cut at ``limit`` characters."""
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One attempt (or a run-level line, ``attempt == 0``) as both engines recorded it."""

    run_id: str
    path: str
    attempt: int
    baseline: str
    candidate: str
    differing: tuple[str, ...]
    first: bool
    details: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Exemplar:
    anchor: str
    trace_id: str
    info: dict[str, Any]
    run_id: str
    divergences: tuple[dict[str, Any], ...]
    first: dict[str, Any] | None
    diff: tuple[DiffRow, ...]
    diff_hidden: int
    dag: Markup
    timeline: Markup
    raw: dict[str, Any]
    why: Why


def _attempt_index(record: Mapping[str, Any]) -> dict[tuple[str, str, int], Mapping[str, Any]]:
    out: dict[tuple[str, str, int], Mapping[str, Any]] = {}
    for run in record.get("runs") or ():
        for a in run.get("attempts") or ():
            out[(str(run.get("run_id", "")), str(a.get("path", "")), int(a.get("attempt") or 0))] = a
    return out


def _summary(a: Mapping[str, Any] | None) -> str:
    if a is None:
        return "— (absent)"
    bits = [str(a.get("status", "?"))]
    if a.get("outcome"):
        bits.append(str(a["outcome"]))
    if a.get("unrecorded"):
        bits.append("UNRECORDED")
    if a.get("params"):
        bits.append("params " + compact_json(a["params"], 120))
    return " · ".join(bits)


def value_changes(field_name: str, baseline: Any, candidate: Any, limit: int = 4) -> tuple[str, ...]:
    """What changed inside ``params`` / ``outputs`` / ``config``, as "field['key']: old → new" lines (deepdiff)."""
    diff = DeepDiff(baseline, candidate, verbose_level=2)
    lines: list[str] = []
    for change, items in diff.items():
        if not isinstance(items, Mapping):
            continue
        for path, value in items.items():
            where = field_name + str(path).removeprefix("root")
            if change == "values_changed" or change == "type_changes":
                lines.append(
                    f"{where}: {compact_json(value.get('old_value'), 60)} → {compact_json(value.get('new_value'), 60)}"
                )
            elif "added" in change:
                lines.append(f"{where}: only in candidate ({compact_json(value, 60)})")
            elif "removed" in change:
                lines.append(f"{where}: only in baseline ({compact_json(value, 60)})")
    lines.sort()
    return (*lines[:limit], f"… {len(lines) - limit} more") if len(lines) > limit else tuple(lines)


def diff_records(
    baseline: Mapping[str, Any], candidate: Mapping[str, Any], *, first: tuple[str, str] | None, limit: int
) -> tuple[list[DiffRow], int]:
    """Side-by-side rows in baseline order (candidate-only attempts after), divergent rows kept first
    when the table must be cut; returns the rows and how many were left out."""
    rows: list[DiffRow] = []
    b_runs = {str(r.get("run_id", "")): r for r in baseline.get("runs") or ()}
    c_runs = {str(r.get("run_id", "")): r for r in candidate.get("runs") or ()}
    for run_id in [*b_runs, *(r for r in c_runs if r not in b_runs)]:
        br, cr = b_runs.get(run_id, {}), c_runs.get(run_id, {})
        fields = tuple(f for f in ("status", "stuck") if br.get(f) != cr.get(f))
        rows.append(
            DiffRow(
                run_id,
                "(run)",
                0,
                f"{br.get('status', '—')}{' STUCK' if br.get('stuck') else ''}",
                f"{cr.get('status', '—')}{' STUCK' if cr.get('stuck') else ''}",
                fields,
                first is not None and first == (run_id, ""),
            )
        )
    b_idx, c_idx = _attempt_index(baseline), _attempt_index(candidate)
    for key in [*b_idx, *(k for k in c_idx if k not in b_idx)]:
        b, c = b_idx.get(key), c_idx.get(key)
        if b is None or c is None:
            differing: tuple[str, ...] = ("missing",)
        else:
            differing = tuple(f for f in COMPARED_FIELDS if b.get(f) != c.get(f))
        rows.append(
            DiffRow(
                key[0],
                key[1],
                key[2],
                _summary(b),
                _summary(c),
                differing,
                first is not None and first == (key[0], key[1]),
            )
        )
    kept = rows
    if len(rows) > limit:
        keep = {id(r) for r in rows if r.differing or r.first}
        for r in rows:
            if len(keep) >= limit:
                break
            keep.add(id(r))
        kept = [r for r in rows if id(r) in keep][:limit]

    # The first divergence point, then every differing row, then the equal ones (the page folds those).
    kept = sorted(kept, key=lambda r: (not r.first, not r.differing))

    def detailed(row: DiffRow) -> DiffRow:
        """Name what changed inside params / outputs / config (only for rows that are shown: deepdiff is slow)."""
        fields = [f for f in ("params", "outputs", "config") if f in row.differing]
        if not fields:
            return row
        b, c = b_idx[(row.run_id, row.path, row.attempt)], c_idx[(row.run_id, row.path, row.attempt)]
        details = tuple(line for f in fields for line in value_changes(f, b.get(f) or {}, c.get(f) or {}))
        return replace(row, details=details)

    return [detailed(r) for r in kept], len(rows) - len(kept)


def trimmed_record(record: Mapping[str, Any], max_chars: int) -> Any:
    """``record`` cut to about ``max_chars`` of JSON by dropping the tail of each run's attempts (said
    in place), with bidi controls made visible. The page pretty-prints it on demand."""
    text = json.dumps(record, ensure_ascii=False, default=str)  # compact: the fast C encoder
    if len(text) > max_chars and isinstance(record.get("runs"), list):
        keep_share = max_chars / len(text)
        runs = []
        for run in record["runs"]:
            attempts = list(run.get("attempts") or ())
            keep = max(1, int(len(attempts) * keep_share))
            cut = {**run, "attempts": attempts[:keep]}
            if keep < len(attempts):
                cut["attempts"].append(
                    {"…": f"{len(attempts) - keep} more attempts cut (full record in the database)"}
                )
            runs.append(cut)
        text = json.dumps({**record, "runs": runs}, ensure_ascii=False, default=str)
    if len(text) > max_chars * 2:  # one giant field: keep valid JSON by sending a cut string instead
        return visible(text[:max_chars]) + f"… cut at {max_chars:,} characters"
    return json.loads(visible(text))


def build_exemplar(
    rows: ExemplarRows,
    group: SignatureGroup | CauseGroup,
    trace_id: str,
    anchor: str,
    limits: ReportLimits,
    trace: Trace | None = None,
) -> Exemplar:
    """The drill-down of one exemplar trace of ``group``, from rows fetched for all exemplars at once."""
    divs = [d for d in rows.divergences.get(trace_id, ()) if group.matches(d)][:20]
    first = rows.first_divergence(trace_id)
    run_id = str((divs[0]["run_id"] if divs else None) or (first or {}).get("run_id") or "")
    records = rows.records.get(trace_id, {})
    baseline, candidate = records.get("baseline", {}), records.get("candidate", {})
    other_role = "candidate"
    if divs and all(d["comparison"] == "aa" for d in divs):
        other_role, candidate = "baseline_aa", records.get("baseline_aa", {})
    if not run_id:
        runs = baseline.get("runs") or []
        run_id = str(runs[0].get("run_id", "")) if runs else ""
    first_key = (str(first["run_id"] or ""), str(first["path"] or "")) if first else None
    diff, hidden = diff_records(baseline, candidate, first=first_key, limit=limits.diff_rows)
    divergent = rows.divergent_paths(trace_id, run_id)
    run_attempts: Sequence[Mapping[str, Any]] = next(
        (r.get("attempts") or () for r in baseline.get("runs") or () if str(r.get("run_id")) == run_id), ()
    )
    graph = definition_graph(trace, run_attempts) if trace is not None else None
    why = explain(trace, graph, first, divs)
    if graph is not None:
        dag = dag_svg(
            graph,
            divergent=divergent,
            max_nodes=limits.dag_nodes,
            note="from the workflow definition in the corpus; dashed: into and out of foreach / subworkflow",
        )
    else:
        dag = dag_svg(released_by_graph(run_attempts), divergent=divergent, max_nodes=limits.dag_nodes)
    engines = ("baseline", other_role)
    bars = [
        GanttBar(
            str(t["engine"]),
            str(t["path"]),
            int(t["attempt"] or 0),
            str(t["status"] or ""),
            t["ready_at"],
            t["started_at"],
            t["ended_at"],
        )
        for t in rows.timeline.get(trace_id, ())
        if t["run_id"] == run_id and t["engine"] in engines
    ]
    timeline = gantt_chart(bars, engines=engines, divergent=divergent, max_rows=limits.timeline_rows)
    raw = {
        role: trimmed_record(rec, limits.record_chars)
        for role, rec in (("baseline", baseline), (other_role, candidate))
    }
    return Exemplar(
        anchor,
        trace_id,
        rows.info.get(trace_id, {}),
        run_id,
        tuple(divs),
        first,
        tuple(diff),
        hidden,
        dag,
        timeline,
        raw,
        why,
    )
