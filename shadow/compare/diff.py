"""Compare two execution records of one trace and flatten every difference to a :class:`Divergence`.

The normalized records (see :mod:`shadow.compare.normalize`) are diffed with deepdiff; each
deepdiff change is mapped back to (run_id, step path, kind) by its position in the normal form.
Attempt additions/removals collapse to one ``attempt_count`` divergence per step. Causality is
checked on the other record against the trace's DAG; a violation the baseline shares is not a
divergence. The earliest differing step of each run in causal order is marked ``is_first``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from corpora.model import JsonValue, Trace
from engines.api import ExecutionRecord
from shadow.compare.causal import CausalOrder, check_causality
from shadow.compare.cause import cause_key
from shadow.compare.model import Divergence, DivergenceKind, signature_of
from shadow.compare.normalize import normalize_record

__all__ = ["compare_records", "engine_error_divergence"]

_FIELD_KINDS = {
    "status": DivergenceKind.STEP_STATUS,
    "outcome": DivergenceKind.STEP_STATUS,
    "unrecorded": DivergenceKind.UNRECORDED_ATTEMPT,
    "params": DivergenceKind.PARAMS,
    "outputs": DivergenceKind.OUTPUTS,
    "config": DivergenceKind.CONFIG,
    "step_id": DivergenceKind.CONFIG,
    "step_type": DivergenceKind.CONFIG,
}
_MISSING = object()
_ATTEMPT_FIELD = re.compile(
    r"^attempts\[([^\]]+)\]\.(\w+)"
)  # attempts[N].field...: the attempt key, the field


def _json(value: Any) -> JsonValue:
    if value is _MISSING or value is None:
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return str(value)


def _detail(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class _Flattener:
    def __init__(self, trace: Trace, base: dict[str, Any], other: dict[str, Any]) -> None:
        self.trace = trace
        self.base = base
        self.other = other
        self.rows: dict[tuple[str, str, str, str], tuple[JsonValue, JsonValue, str]] = {}

    def step_type(self, run_id: str, path: str) -> str:
        for side in (self.base, self.other):
            step = side.get(run_id, {}).get("steps", {}).get(path)
            if step:
                return str(step["step_type"])
        return ""

    def add(self, run_id: str, path: str, kind: DivergenceKind, detail: str, b: Any, o: Any) -> None:
        key = (run_id, path, kind.value, detail)
        if key not in self.rows:  # the cause is read off the raw sides: a missing key is not a null
            self.rows[key] = (_json(b), _json(o), cause_key(kind, detail, b, o, missing=_MISSING))

    def change(self, parts: list[Any], b: Any, o: Any) -> None:
        run_id = str(parts[0])
        if len(parts) == 1:
            self.add(
                run_id,
                "",
                DivergenceKind.FINAL_STATUS,
                "run",
                None if b is _MISSING else b.get("status"),
                None if o is _MISSING else o.get("status"),
            )
            return
        head = parts[1]
        if head == "status":
            self.add(run_id, "", DivergenceKind.FINAL_STATUS, "status", b, o)
        elif head == "stuck":
            self.add(run_id, "", DivergenceKind.STUCK_RUN, "stuck", b, o)
        elif head == "workflow_params":
            self.add(run_id, "", DivergenceKind.PARAMS, _detail(parts[1:]), b, o)
        elif head == "steps" and len(parts) == 2:
            return
        elif head == "steps":
            self._step_change(run_id, str(parts[2]), parts[3:], b, o)

    def _step_change(self, run_id: str, path: str, rest: list[Any], b: Any, o: Any) -> None:
        if not rest:
            if b is _MISSING:
                self.add(run_id, path, DivergenceKind.EXTRA_STEP, "", None, len(o["attempts"]))
                self._unrecorded(run_id, path, o["attempts"])
            else:
                self.add(run_id, path, DivergenceKind.MISSING_STEP, "", len(b["attempts"]), None)
            return
        if rest[0] != "attempts":
            self.add(run_id, path, DivergenceKind.CONFIG, _detail(rest), b, o)
            return
        if len(rest) == 2:
            base_n = len(self.base[run_id]["steps"][path]["attempts"])
            other_n = len(self.other[run_id]["steps"][path]["attempts"])
            self.add(run_id, path, DivergenceKind.ATTEMPT_COUNT, "attempts", base_n, other_n)
            if b is _MISSING:
                self._unrecorded(run_id, path, {rest[1]: o})
            return
        field = str(rest[2])
        kind = _FIELD_KINDS.get(field, DivergenceKind.CONFIG)
        self.add(run_id, path, kind, f"attempts[{rest[1]}]." + _detail(rest[2:]), b, o)

    def _unrecorded(self, run_id: str, path: str, attempts: dict[Any, Any]) -> None:
        for n, att in attempts.items():
            if att.get("unrecorded"):
                self.add(run_id, path, DivergenceKind.UNRECORDED_ATTEMPT, f"attempts[{n}]", None, True)


NormalForms = dict[int, tuple[ExecutionRecord, dict[str, Any]]]
"""A cache of records' normal forms by ``id(record)``, each beside its record (which keeps the id taken)."""


def compare_records(
    trace: Trace,
    baseline: ExecutionRecord,
    other: ExecutionRecord,
    order: CausalOrder | None = None,
    normalized: NormalForms | None = None,
    *,
    prune: bool = True,
) -> list[Divergence]:
    """Every difference between ``baseline`` and ``other`` (same trace), sorted in causal order.

    ``normalized`` is an optional cache of normal forms for a caller that compares one record with several
    (the trial: candidate and A/A; a fault campaign's or a hand-off's records against their reference). It
    holds each record beside its form, so an id is never reused by another record while cached. ``prune=False``
    hands deepdiff the whole normal forms (the reference the pruned diff is tested against)."""
    order = order or CausalOrder(trace)
    cache: NormalForms = normalized if normalized is not None else {}
    for rec in (baseline, other):
        if id(rec) not in cache:
            cache[id(rec)] = (rec, normalize_record(rec))
    base_n, other_n = cache[id(baseline)][1], cache[id(other)][1]
    flat = _Flattener(trace, base_n, other_n)
    # Most pairs are equal (A/A, a healthy candidate): skip deepdiff, which dominates the trial time.
    # Otherwise deepdiff only walks what differs: equal runs, steps and attempts are pruned from both
    # sides first (it reports nothing for a key equal on both sides, so the report is the same).
    if base_n != other_n:
        # Imported here: deepdiff imports pandas (~1.7 s and ~60 MB per process), and most trials never
        # reach this line.
        from deepdiff import DeepDiff
        from deepdiff.helper import notpresent

        pruned_base, pruned_other = _prune(base_n, other_n) if prune else (base_n, other_n)
        diff = DeepDiff(pruned_base, pruned_other, view="tree", verbose_level=2, threshold_to_diff_deeper=0)
        for report in diff.values():
            for level in report:
                parts = level.path(output_format="list")
                b = _MISSING if level.t1 is notpresent else level.t1
                o = _MISSING if level.t2 is notpresent else level.t2
                if parts:
                    flat.change(parts, b, o)
    base_runs = {r.run_id: r for r in baseline.runs}
    for run in other.runs:
        shared = set()
        if run.run_id in base_runs:
            shared = {(v.path, v.predecessor) for v in check_causality(base_runs[run.run_id], order)}
        for v in check_causality(run, order):
            if (v.path, v.predecessor) not in shared:
                flat.add(
                    run.run_id,
                    v.path,
                    DivergenceKind.CAUSALITY_VIOLATION,
                    f"after {v.predecessor}",
                    v.predecessor_ended_at,
                    v.started_at,
                )
    return _finish(trace, flat, order)


def _drop_equal(base: dict[str, Any], other: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copies of two mappings without the keys whose values are equal on both sides."""
    same = {k for k, v in base.items() if k in other and other[k] == v}
    return (
        {k: v for k, v in base.items() if k not in same},
        {k: v for k, v in other.items() if k not in same},
    )


def _prune(base: dict[str, Any], other: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The normal forms without the runs, steps and attempts equal on both sides (run- and step-level
    scalars stay: they are cheap, and the flattener reads a step's type from either side)."""
    runs_b, runs_o = _drop_equal(base, other)
    for run_id in runs_b.keys() & runs_o.keys():
        rb, ro = dict(runs_b[run_id]), dict(runs_o[run_id])
        steps_b, steps_o = _drop_equal(rb["steps"], ro["steps"])
        for path in steps_b.keys() & steps_o.keys():
            sb, so = dict(steps_b[path]), dict(steps_o[path])
            sb["attempts"], so["attempts"] = _drop_equal(sb["attempts"], so["attempts"])
            steps_b[path], steps_o[path] = sb, so
        rb["steps"], ro["steps"] = steps_b, steps_o
        runs_b[run_id], runs_o[run_id] = rb, ro
    return runs_b, runs_o


def _finish(trace: Trace, flat: _Flattener, order: CausalOrder) -> list[Divergence]:
    wtype = trace.metadata.workflow_type
    keys = sorted(flat.rows, key=lambda k: (k[0], order.key(k[1]), k[1], k[2], k[3]))
    first_path: dict[str, str] = {}
    for run_id, path, _, _ in keys:
        if path and run_id not in first_path:
            first_path[run_id] = path
    for run_id, path, _, _ in keys:  # a run with only run-level differences: those are the first point
        first_path.setdefault(run_id, path)
    # An attempt whose status differs differs in everything that follows from running (or not running) it:
    # its outcome, params, outputs and config are consequences of the status, not first divergences of their
    # own (an attempt that timed out before it started has no params). The status is the run's first point.
    status_of = {
        (run_id, m.group(1))
        for run_id, path, _, detail in keys
        if path == first_path.get(run_id) and (m := _ATTEMPT_FIELD.match(detail)) and m.group(2) == "status"
    }
    out: list[Divergence] = []
    for run_id, path, kind, detail in keys:
        b, o, cause = flat.rows[(run_id, path, kind, detail)]
        first = first_path.get(run_id) == path
        if first and status_of and (m := _ATTEMPT_FIELD.match(detail)) and m.group(2) != "status":
            first = (run_id, m.group(1)) not in status_of
        out.append(
            Divergence(
                run_id=run_id,
                path=path,
                kind=DivergenceKind(kind),
                detail=detail,
                baseline_value=b,
                other_value=o,
                signature=signature_of(wtype, flat.step_type(run_id, path), path, kind),
                is_first=first,
                cause=cause,
            )
        )
    return out


def engine_error_divergence(trace: Trace, role: str, message: str) -> Divergence:
    """The single divergence recorded when an engine raised (or reported an error) on a trace."""
    return Divergence(
        run_id="",
        path="",
        kind=DivergenceKind.ENGINE_ERROR,
        detail=role,
        baseline_value=None,
        other_value=message,
        signature=signature_of(trace.metadata.workflow_type, "", "", DivergenceKind.ENGINE_ERROR.value),
        is_first=True,
        cause=cause_key(DivergenceKind.ENGINE_ERROR, role, None, message),
    )
