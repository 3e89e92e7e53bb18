"""Alibaba cluster-trace-v2018 ``batch_task.csv`` -> one trace per job.

Columns (no header): ``time, job, task, duration, cpu, mem, instance_num``. The DAG is encoded in the
task name: ``M5_3_4`` is task 5, which depends on tasks 3 and 4 (the leading letters are the task
kind and do not matter); ``task_<base64>`` is an independent task. Parents that name a task absent
from the job are dropped and counted in the trace tags (``dangling-parents:N``), as the upstream
trace is known to hold such rows. The file has no status column: every task is one succeeded attempt
whose duration is the ``duration`` column. ``instance_num`` (parallelism inside a task) and resource
columns are kept only as tags-free loss: a step replays as one attempt of the task's duration.

Rows are grouped by job in memory per file (the upstream sample is ~6.6 k rows); a job whose rows are
malformed, or whose names form a cycle, is quarantined alone and the other jobs go on.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from corpora.errors import TraceError
from corpora.importers._common import (
    ImportOptions,
    SafeIds,
    build_dag_steps,
    check_acyclic,
    discover_files,
    fail,
)
from corpora.model import Outcome, RecordedAttempt, Run, Trace, TraceMetadata, WorkflowDefinition

__all__ = ["AlibabaImporter", "AlibabaTask", "parse_task_name"]

_NAMED = re.compile(r"^[A-Za-z]+(\d+)((?:_\d+)*)$")
_HINT = "rows must be: time,job,task,duration,cpu,mem,instance_num (Alibaba cluster-trace-v2018 batch_task)"


@dataclass(frozen=True, slots=True)
class AlibabaTask:
    """One task row: its name, its number in the job's DAG (None when independent) and parents."""

    name: str
    number: str | None
    parents: tuple[str, ...]
    time: float
    duration: float
    instances: int


def parse_task_name(name: str) -> tuple[str | None, tuple[str, ...]]:
    """``M5_3_4`` -> ("5", ("3", "4")); ``task_xyz`` or any other shape -> (None, ())."""
    match = _NAMED.match(name)
    if match is None:
        return None, ()
    deps = tuple(d for d in match.group(2).split("_") if d)
    return match.group(1), deps


def _row_task(row: list[str], file: Path, line: int) -> tuple[str, AlibabaTask]:
    if len(row) < 4:
        raise fail("schema", f"row {line} has {len(row)} columns, expected 7", file=file,
                   json_path=f"line {line}", hint=_HINT)
    try:
        time, duration = float(row[0]), float(row[3])
        instances = int(float(row[6])) if len(row) > 6 and row[6] else 1
    except ValueError:
        raise fail("schema", f"row {line} has a non-numeric time/duration/instance_num", file=file,
                   json_path=f"line {line}", hint=_HINT) from None
    if duration < 0:
        raise fail("bad_duration", f"row {line}: negative duration {duration}", file=file,
                   json_path=f"line {line}", hint="durations are non-negative seconds")
    number, parents = parse_task_name(row[2])
    return row[1], AlibabaTask(row[2], number, parents, time, duration, instances)


class AlibabaImporter:
    """``--from alibaba``: one trace per job of a batch_task CSV."""

    name = "alibaba"
    description = "Alibaba cluster-trace-v2018 batch_task.csv (one workflow per job, DAG from task names)"

    def discover(self, paths: Sequence[Path]) -> list[Path]:
        return discover_files(paths, (".csv",))

    def import_unit(self, path: Path, options: ImportOptions) -> Iterator[Trace | TraceError]:
        del options  # the file records everything we replay; nothing is synthesized
        jobs: dict[str, list[AlibabaTask]] = {}
        broken: dict[str, TraceError] = {}
        with path.open(newline="", encoding="utf-8") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                if not row or (line == 1 and row[0].strip().lower() == "time"):
                    continue
                try:
                    job, task = _row_task(row, path, line)
                except TraceError as exc:
                    job = row[1] if len(row) > 1 else f"line-{line}"
                    broken.setdefault(job, exc)
                    continue
                jobs.setdefault(job, []).append(task)
        for job, error in broken.items():
            jobs.pop(job, None)
            yield TraceError(error.code, f"job {job!r}: {error.message}", location=error.location,
                             hint=error.hint, trace_id=f"alibaba:{job}")
        for job, tasks in jobs.items():
            try:
                yield self.job_trace(job, tasks, path)
            except TraceError as exc:
                yield exc.at(trace_id=f"alibaba:{job}")

    def job_trace(self, job: str, tasks: list[AlibabaTask], path: Path) -> Trace:
        safe = SafeIds()
        ids = [safe(t.name) for t in tasks]
        by_number: dict[str, str] = {}
        for step_id, task in zip(ids, tasks, strict=True):
            if task.number is not None:
                if task.number in by_number:
                    raise fail("duplicate_id", f"job {job!r}: two tasks numbered {task.number}", file=path,
                               hint="task numbers must be unique inside a job")
                by_number[task.number] = step_id
        edges: set[tuple[str, str]] = set()
        dangling = 0
        for step_id, task in zip(ids, tasks, strict=True):
            for parent in task.parents:
                if parent in by_number:
                    edges.add((by_number[parent], step_id))
                else:
                    dangling += 1
        check_acyclic(ids, edges, where=f"job {job!r}", file=path)
        steps = build_dag_steps(ids, sorted(edges))
        start = min(t.time for t in tasks)
        attempts = tuple(
            RecordedAttempt(path=step_id, attempt=1, outcome=Outcome.SUCCEEDED, duration=task.duration)
            for step_id, task in zip(ids, tasks, strict=True)
        )
        tags = ["imported", "alibaba"]
        if dangling:
            tags.append(f"dangling-parents:{dangling}")
        if any(t.instances > 1 for t in tasks):
            tags.append("multi-instance-tasks")
        return Trace(
            trace_id=f"alibaba:{job}",
            definition=WorkflowDefinition(id=SafeIds()(job), steps=steps),
            runs=(Run(run_id="1", trigger_time=start, attempts=attempts),),
            metadata=TraceMetadata(owner="alibaba", tags=tuple(tags), workflow_type="alibaba-batch",
                                   source=f"alibaba:{path.name}"),
        )
