"""Alibaba cluster-trace-v2018 ``batch_task.csv`` -> one trace per job.

Columns (no header): ``time, job, task, duration, cpu, mem, instance_num``. The DAG is encoded in the
task name: ``M5_3_4`` is task 5, which depends on tasks 3 and 4 (the leading letters are the task
kind and do not matter); ``task_<base64>`` is an independent task. Parents that name a task absent
from the job are dropped and counted in the trace tags (``dangling-parents:N``), as the upstream
trace is known to hold such rows. The file has no status column: every task is one succeeded attempt
whose duration is the ``duration`` column. ``instance_num`` (parallelism inside a task) and resource
columns are kept only as tags-free loss: a step replays as one attempt of the task's duration.

The upstream cluster-trace-v2018 file itself has another layout, also read here (detected per row by a
status word in the fifth column): ``task_name, instance_num, job_name, task_type, status, start_time,
end_time, plan_cpu, plan_mem``. It records what production observed: each task's ``status``
(``Terminated`` = done, ``Failed``, ``Running``, ``Waiting``, ``Cancelled``, ``Interrupted``, ``Ready``) and
its start and end (seconds from the trace start). A task's duration is ``end_time - start_time``; a
``Failed`` task is one user_error attempt (no retries: the file records none); tasks that never ended
(``Running``, ``Waiting``, ``Ready``, no end time) are not recorded as attempts. The observations go
into ``Run.observed``: per task its status and times, the run's status ``Terminated`` when every task
is, ``Failed`` when one failed, else the first other status seen.

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
from corpora.model import (
    ObservedRun,
    ObservedStep,
    Outcome,
    RecordedAttempt,
    Run,
    Trace,
    TraceMetadata,
    WorkflowDefinition,
)

__all__ = ["AlibabaImporter", "AlibabaTask", "parse_task_name"]

_STATUSES = frozenset({"Terminated", "Failed", "Running", "Waiting", "Cancelled", "Interrupted", "Ready"})
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
    status: str | None = None  # upstream v2018 layout only: what production observed
    end: float | None = None  # upstream v2018 layout only: end_time (None or 0 when it never ended)


def parse_task_name(name: str) -> tuple[str | None, tuple[str, ...]]:
    """``M5_3_4`` -> ("5", ("3", "4")); ``task_xyz`` or any other shape -> (None, ())."""
    match = _NAMED.match(name)
    if match is None:
        return None, ()
    deps = tuple(d for d in match.group(2).split("_") if d)
    return match.group(1), deps


def _upstream_task(row: list[str], file: Path, line: int) -> tuple[str, AlibabaTask]:
    """A row of the upstream v2018 layout (task_name, instance_num, job_name, task_type, status, start, end, ...)."""
    try:
        start = float(row[5]) if row[5] else 0.0
        end = float(row[6]) if len(row) > 6 and row[6] and float(row[6]) > 0 else None
        instances = int(float(row[1])) if row[1] else 1
    except ValueError:
        raise fail(
            "schema",
            f"row {line} has a non-numeric instance_num/start_time/end_time",
            file=file,
            json_path=f"line {line}",
            hint=_HINT,
        ) from None
    if end is not None and end < start:
        raise fail(
            "bad_duration",
            f"row {line}: end_time {end} before start_time {start}",
            file=file,
            json_path=f"line {line}",
            hint="durations are non-negative seconds",
        )
    number, parents = parse_task_name(row[0])
    duration = end - start if end is not None else 0.0
    return row[2], AlibabaTask(row[0], number, parents, start, duration, instances, row[4], end)


def _row_task(row: list[str], file: Path, line: int) -> tuple[str, AlibabaTask]:
    if len(row) >= 7 and row[4] in _STATUSES:
        return _upstream_task(row, file, line)
    if len(row) < 4:
        raise fail(
            "schema",
            f"row {line} has {len(row)} columns, expected 7",
            file=file,
            json_path=f"line {line}",
            hint=_HINT,
        )
    try:
        time, duration = float(row[0]), float(row[3])
        instances = int(float(row[6])) if len(row) > 6 and row[6] else 1
    except ValueError:
        raise fail(
            "schema",
            f"row {line} has a non-numeric time/duration/instance_num",
            file=file,
            json_path=f"line {line}",
            hint=_HINT,
        ) from None
    if duration < 0:
        raise fail(
            "bad_duration",
            f"row {line}: negative duration {duration}",
            file=file,
            json_path=f"line {line}",
            hint="durations are non-negative seconds",
        )
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
                if not row or (line == 1 and row[0].strip().lower() in ("time", "task_name")):
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
            yield TraceError(
                error.code,
                f"job {job!r}: {error.message}",
                location=error.location,
                hint=error.hint,
                trace_id=f"alibaba:{job}",
            )
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
                    raise fail(
                        "duplicate_id",
                        f"job {job!r}: two tasks numbered {task.number}",
                        file=path,
                        hint="task numbers must be unique inside a job",
                    )
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
            RecordedAttempt(
                path=step_id,
                attempt=1,
                outcome=Outcome.USER_ERROR if task.status == "Failed" else Outcome.SUCCEEDED,
                duration=task.duration,
            )
            for step_id, task in zip(ids, tasks, strict=True)
            if task.status is None or (task.status in ("Terminated", "Failed") and task.end is not None)
        )
        observed: ObservedRun | None = None
        if all(t.status is not None for t in tasks):
            statuses = [str(t.status) for t in tasks]
            run_status = (
                "Terminated"
                if all(x == "Terminated" for x in statuses)
                else "Failed"
                if "Failed" in statuses
                else next(x for x in statuses if x != "Terminated")
            )
            ends = [t.end for t in tasks if t.end is not None]
            observed = ObservedRun(
                status=run_status,
                start_time=start,
                end_time=max(ends) if len(ends) == len(tasks) else None,
                steps={
                    step_id: ObservedStep(
                        status=str(t.status),
                        attempts=1 if t.end is not None else 0,
                        start_time=t.time,
                        end_time=t.end,
                    )
                    for step_id, t in zip(ids, tasks, strict=True)
                },
            )
        tags = ["imported", "alibaba"]
        if dangling:
            tags.append(f"dangling-parents:{dangling}")
        if any(t.instances > 1 for t in tasks):
            tags.append("multi-instance-tasks")
        return Trace(
            trace_id=f"alibaba:{job}",
            definition=WorkflowDefinition(id=SafeIds()(job), steps=steps),
            runs=(Run(run_id="1", trigger_time=start, attempts=attempts, observed=observed),),
            metadata=TraceMetadata(
                owner="alibaba",
                tags=tuple(tags),
                workflow_type="alibaba-batch",
                source=f"alibaba:{path.name}",
            ),
        )
