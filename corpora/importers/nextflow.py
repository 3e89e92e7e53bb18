"""Nextflow run reports (``execution_trace.txt`` / ``execution_report.html``) -> one trace per run folder.

Every row is one attempt of one task (``name`` = process plus tag, e.g. ``run_method (x:y)``). A task
becomes a SHELL step; its rows in ``attempt`` order become recorded attempts: COMPLETED -> succeeded,
FAILED -> user_error, ABORTED -> platform_error, CACHED -> succeeded with duration 0 (the work was
reused). Durations are ``complete - start`` (report JSON, epoch ms) or the ``realtime`` column
(trace TSV). Production's observations go into ``Run.observed``: per task the final row's status, the
number of attempts, the first attempt's start and the last one's completion (report JSON; the TSV has
no start column); the run's status is FAILED when a task's final row is FAILED or ABORTED, its end the
latest completion. A task's retry limit is the number of its failed attempts that Nextflow retried
(``error_action`` RETRY, or any non-final failure), so the replay makes the same attempts.

Edges: ``pipeline_dag.dot`` gives the *process* DAG (process nodes are the labelled ones; operator
and channel nodes in between are walked through). Task-level matching by tag is not derivable in
general, so each task depends on every task of its upstream processes (a barrier between processes):
this keeps the recorded order causal but over-constrains pipelined execution (documented loss).
Without a dot file, tasks are ordered by submit time in one chain per process (documented fallback).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import networkx as nx

from corpora.errors import TraceError
from corpora.importers._common import ImportOptions, SafeIds, build_dag_steps, check_acyclic, fail
from corpora.model import (
    ObservedRun,
    ObservedStep,
    Outcome,
    RecordedAttempt,
    RetryPolicy,
    Run,
    Step,
    StepType,
    Trace,
    TraceMetadata,
    Transition,
    WorkflowDefinition,
)

__all__ = ["NextflowImporter", "NextflowRow", "process_edges"]

_STATUS = {
    "COMPLETED": Outcome.SUCCEEDED,
    "CACHED": Outcome.SUCCEEDED,
    "FAILED": Outcome.USER_ERROR,
    "ABORTED": Outcome.PLATFORM_ERROR,
}
_HINT = "point at a Nextflow results folder holding execution_trace.txt and/or execution_report.html"
_DUR = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


@dataclass(frozen=True, slots=True)
class NextflowRow:
    """One attempt row, whichever file it came from."""

    task_id: int
    name: str
    process: str
    status: str
    attempt: int
    submit: float
    duration: float
    error_action: str
    start: float | None = None  # epoch seconds the task started running (report only; the TSV has no start)
    end: float | None = None  # epoch seconds it completed (report: complete; TSV: submit + duration column)


def _duration_text(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in _DUR.findall(text))


def _rows_from_report(path: Path) -> list[NextflowRow]:
    html = path.read_text(encoding="utf-8")
    start = html.find("window.data = ")
    if start < 0:
        raise fail("schema", "no 'window.data = ' block in the report", file=path, hint=_HINT)
    try:
        data, _ = json.JSONDecoder().raw_decode(html, start + len("window.data = "))
    except json.JSONDecodeError as exc:
        raise fail("malformed_json", f"window.data is not JSON: {exc.msg}", file=path, hint=_HINT) from None
    rows = []
    for i, rec in enumerate(data.get("trace") or []):
        try:
            begin = float(rec.get("start") or rec["submit"]) / 1000
            end = float(rec.get("complete") or begin * 1000) / 1000
            rows.append(
                NextflowRow(
                    int(rec["task_id"]),
                    str(rec["name"]),
                    str(rec.get("process") or rec["name"].split(" (")[0]),
                    str(rec["status"]),
                    int(rec.get("attempt") or 1),
                    float(rec["submit"]) / 1000,
                    max(0.0, end - begin),
                    str(rec.get("error_action") or "-"),
                    begin if rec.get("start") else None,
                    end if rec.get("complete") else None,
                )
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise fail(
                "schema",
                f"trace record {i} lacks a usable field ({exc})",
                file=path,
                json_path=f"window.data.trace[{i}]",
                hint=_HINT,
            ) from None
    return rows


def _submit_time(text: str, path: Path, line: int) -> float:
    """``2021-03-04 21:06:07.625`` -> epoch seconds. The trace file has no zone: read as UTC."""
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise fail(
        "bad_timestamp",
        f"row {line}: cannot read submit time {text!r}",
        file=path,
        json_path=f"line {line}",
        hint="expected yyyy-MM-dd HH:mm:ss.SSS",
    )


def _rows_from_trace(path: Path) -> list[NextflowRow]:
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for i, rec in enumerate(csv.DictReader(handle, delimiter="\t"), start=2):
            try:
                name = str(rec["name"])
                submit = rec.get("submit") or ""
                submitted = _submit_time(submit, path, i)
                total = rec.get("duration")  # submit -> complete, queueing included
                rows.append(
                    NextflowRow(
                        int(rec["task_id"]),
                        name,
                        str(rec.get("process") or name.split(" (")[0]),
                        str(rec["status"]),
                        int(rec.get("attempt") or 0),
                        submitted,
                        _duration_text(str(rec.get("realtime") or "0")),
                        str(rec.get("error_action") or "-"),
                        None,
                        submitted + _duration_text(str(total)) if total else None,
                    )
                )
            except (KeyError, ValueError) as exc:
                raise fail(
                    "schema",
                    f"row {i} lacks a usable field ({exc})",
                    file=path,
                    json_path=f"line {i}",
                    hint=_HINT,
                ) from None
    return rows


def process_edges(dot_text: str) -> set[tuple[str, str]]:
    """Process -> process edges of a Nextflow DAG, walking through unlabelled operator nodes."""
    labels = dict(re.findall(r'^(p\d+) \[label="([^"]+)"\];', dot_text, flags=re.MULTILINE))
    graph = nx.DiGraph()
    graph.add_edges_from(re.findall(r"^(p\d+) -> (p\d+)", dot_text, flags=re.MULTILINE))
    out: set[tuple[str, str]] = set()
    for node, label in labels.items():
        if node not in graph:
            continue
        stack, seen = list(graph.successors(node)), set()
        while stack:
            nxt = stack.pop()
            if nxt in seen:
                continue
            seen.add(nxt)
            if nxt in labels:
                out.add((label, labels[nxt]))
            else:
                stack.extend(graph.successors(nxt))
    return out


class NextflowImporter:
    """``--from nextflow``: one trace per results folder (or a single trace/report file)."""

    name = "nextflow"
    description = "Nextflow execution_trace.txt / execution_report.html (+ pipeline_dag.dot)"

    def discover(self, paths: Sequence[Path]) -> list[Path]:
        out: list[Path] = []
        for path in paths:
            if path.is_dir():
                found = sorted(
                    {p.parent for p in path.rglob("execution_trace*.txt")}
                    | {p.parent for p in path.rglob("execution_report*.html")}
                )
                out.extend(found or [path])
            else:
                out.append(path)
        return out

    def import_unit(self, path: Path, options: ImportOptions) -> Iterator[Trace | TraceError]:
        del options
        folder = path if path.is_dir() else path.parent
        report, table = folder / "execution_report.html", folder / "execution_trace.txt"
        if path.is_file():
            report, table = (path, folder / "-") if path.suffix == ".html" else (folder / "-", path)
        if report.is_file():
            rows = _rows_from_report(report)
        elif table.is_file():
            rows = _rows_from_trace(table)
        else:
            raise fail(
                "missing_input", "no execution_report.html or execution_trace.txt", file=path, hint=_HINT
            )
        if not rows:
            raise fail("schema", "the run records no task", file=path, hint=_HINT)
        dot = folder / "pipeline_dag.dot"
        yield self.to_trace(rows, dot.read_text(encoding="utf-8") if dot.is_file() else None, folder)

    def to_trace(self, rows: list[NextflowRow], dot_text: str | None, folder: Path) -> Trace:
        safe = SafeIds()
        by_task: dict[str, list[NextflowRow]] = {}
        for row in sorted(rows, key=lambda r: (r.submit, r.task_id)):
            by_task.setdefault(row.name, []).append(row)
        order = list(by_task)
        ids = {name: safe(name) for name in order}
        process_of = {name: by_task[name][0].process for name in order}
        edges: set[tuple[str, str]] = set()
        if dot_text is not None:
            flows = process_edges(dot_text)
            tasks_of: dict[str, list[str]] = {}
            for name in order:
                tasks_of.setdefault(process_of[name], []).append(ids[name])
            for up, down in flows:
                edges |= {(a, b) for a in tasks_of.get(up, []) for b in tasks_of.get(down, [])}
            lost = "edges:process-barrier"
        else:
            last: dict[str, str] = {}
            for name in order:
                if process_of[name] in last:
                    edges.add((last[process_of[name]], ids[name]))
                last[process_of[name]] = ids[name]
            lost = "edges:submit-order-fallback"
        check_acyclic(ids.values(), edges, where=f"nextflow run {folder.name!r}", file=folder)
        attempts: list[RecordedAttempt] = []
        limits: dict[str, int] = {}
        observed: dict[str, ObservedStep] = {}
        for name in order:
            tries = sorted(by_task[name], key=lambda r: (r.attempt, r.submit))
            limits[ids[name]] = sum(1 for r in tries[:-1] if r.status != "COMPLETED")
            observed[ids[name]] = ObservedStep(
                status=tries[-1].status,
                attempts=len(tries),
                start_time=tries[0].start,
                end_time=tries[-1].end,
            )
            for number, row in enumerate(tries, start=1):
                outcome = _STATUS.get(row.status)
                if outcome is None:
                    raise fail(
                        "schema",
                        f"task {name!r}: unknown status {row.status!r}",
                        file=folder,
                        hint="expected COMPLETED, FAILED, CACHED or ABORTED",
                    )
                duration = 0.0 if row.status == "CACHED" else row.duration
                attempts.append(
                    RecordedAttempt(path=ids[name], attempt=number, outcome=outcome, duration=duration)
                )

        def make(step_id: str, transitions: tuple[Transition, ...]) -> Step:
            return Step(
                id=step_id,
                type=StepType.SHELL,
                transitions=transitions,
                retry_policy=RetryPolicy(
                    error_retry_limit=limits[step_id], platform_retry_limit=limits[step_id]
                ),
                tags=(f"process:{process_of[next(n for n in order if ids[n] == step_id)]}",),
            )

        steps = build_dag_steps([ids[n] for n in order], sorted(edges), make)
        start = min(r.submit for r in rows)
        end = max(r.end if r.end is not None else r.submit + r.duration for r in rows)
        status = (
            "FAILED" if any(by_task[n][-1].status in ("FAILED", "ABORTED") for n in order) else "SUCCEEDED"
        )
        return Trace(
            trace_id=f"nextflow:{folder.name}",
            definition=WorkflowDefinition(id=SafeIds()(folder.name), steps=steps),
            runs=(
                Run(
                    run_id="1",
                    trigger_time=start,
                    attempts=tuple(attempts),
                    observed=ObservedRun(status=status, start_time=start, end_time=end, steps=observed),
                ),
            ),
            metadata=TraceMetadata(
                owner="nextflow",
                tags=("imported", "nextflow", lost),
                workflow_type="nextflow",
                source=f"nextflow:{folder.name}",
            ),
        )
