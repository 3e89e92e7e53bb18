"""WfCommons WfFormat 1.4 / 1.5 instances -> traces.

Mapping (see docs/IMPORTERS.md): every task is a SHELL step; the DAG comes from
``workflow.specification.tasks[].parents/children`` (1.5) or ``workflow.tasks[].parents/children``
(1.4); the one run records one succeeded attempt per task with ``runtimeInSeconds`` as duration; the
run's trigger time is ``execution.executedAt`` and the recorded makespan is kept as
``Run.observed`` (start = executedAt, end = start + makespanInSeconds), so replayed latency can be
compared with what the real system took, and every task is observed SUCCEEDED with one attempt (WfCommons
instances are successful executions), with its start time when the 1.5 instance records one
(``execution.tasks[].executedAt``, optional; none of the public samples has it). WfFormat records no
failures.

Schema validation: the WfFormat JSON schemas are LGPL-3.0 and are not copied into this repository.
When a schema folder is given (``ImportOptions.schema_dir``, holding ``wfcommons-schema-1.4.json`` /
``-1.5.json``), instances are validated against it with jsonschema; otherwise only the fields this
importer reads are checked structurally.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from corpora.errors import TraceError
from corpora.importers._common import (
    ImportOptions,
    SafeIds,
    build_dag_steps,
    check_acyclic,
    discover_files,
    fail,
    parse_timestamp,
)
from corpora.model import (
    ObservedRun,
    ObservedStep,
    Outcome,
    RecordedAttempt,
    Run,
    Step,
    StepType,
    Trace,
    TraceMetadata,
    Transition,
    WorkflowDefinition,
)

__all__ = ["WfFormatImporter", "WfTask", "read_wfformat_tasks"]

_HINT = "give a WfFormat 1.4 or 1.5 instance (https://github.com/wfcommons/WfFormat)"


@lru_cache(maxsize=4)
def _schema(schema_dir: Path, version: str) -> dict[str, Any] | None:
    path = schema_dir / f"wfcommons-schema-{version}.json"
    if not path.is_file():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


class WfTask:
    """One task as read from either layout: id, name, parents (ids) and recorded runtime."""

    __slots__ = ("executed_at", "id", "name", "parents", "runtime")

    def __init__(
        self, id: str, name: str, parents: list[str], runtime: float, executed_at: str | None = None
    ) -> None:
        self.id, self.name, self.parents, self.runtime = id, name, parents, runtime
        self.executed_at = executed_at  # the task's start (1.5 execution.tasks[].executedAt), when recorded


def _need(obj: Any, key: str, kind: type | tuple[type, ...], path: str, file: Path) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise fail("schema", f"missing field {key!r}", file=file, json_path=path, hint=_HINT)
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise fail(
            "schema",
            f"field {key!r} has the wrong type ({type(value).__name__})",
            file=file,
            json_path=f"{path}.{key}",
            hint=_HINT,
        )
    return value


def read_wfformat_tasks(doc: Any, file: Path) -> tuple[list[WfTask], dict[str, Any]]:
    """The tasks (with parents resolved to ids) and the execution block of a WfFormat document."""
    workflow = _need(doc, "workflow", dict, "$", file)
    version = str(doc.get("schemaVersion", ""))
    if "specification" in workflow:  # 1.5 layout
        spec_tasks = _need(
            _need(workflow, "specification", dict, "$.workflow", file),
            "tasks",
            list,
            "$.workflow.specification",
            file,
        )
        execution = _need(workflow, "execution", dict, "$.workflow", file)
        exec_tasks = _need(execution, "tasks", list, "$.workflow.execution", file)
        runtimes: dict[str, float] = {}
        starts: dict[str, str] = {}
        for i, task in enumerate(exec_tasks):
            where = f"$.workflow.execution.tasks[{i}]"
            task_id = str(_need(task, "id", str, where, file))
            runtimes[task_id] = float(_need(task, "runtimeInSeconds", (int, float), where, file))
            if isinstance(task.get("executedAt"), str) and task["executedAt"]:
                starts[task_id] = task["executedAt"]
        raw = [(t, f"$.workflow.specification.tasks[{i}]") for i, t in enumerate(spec_tasks)]
    elif "tasks" in workflow:  # 1.4 layout: runtime lives on the task itself
        execution = workflow
        raw = [
            (t, f"$.workflow.tasks[{i}]")
            for i, t in enumerate(_need(workflow, "tasks", list, "$.workflow", file))
        ]
        runtimes = {}
        starts = {}
        for task, where in raw:
            key = str(task.get("id") or _need(task, "name", str, where, file))
            runtimes[key] = float(_need(task, "runtimeInSeconds", (int, float), where, file))
    else:
        raise fail(
            "schema",
            f"neither workflow.specification nor workflow.tasks (schemaVersion {version!r})",
            file=file,
            json_path="$.workflow",
            hint=_HINT,
        )
    by_name: dict[str, str] = {}
    tasks: list[WfTask] = []
    for task, where in raw:
        name = str(_need(task, "name", str, where, file))
        task_id = str(task.get("id") or name)
        by_name.setdefault(name, task_id)
        if task_id not in runtimes:
            raise fail(
                "missing_runtime",
                f"task {task_id!r} has no recorded runtimeInSeconds",
                file=file,
                json_path=where,
                hint="every specified task needs an execution record",
            )
        if runtimes[task_id] < 0:
            raise fail(
                "bad_duration",
                f"task {task_id!r} has a negative runtime",
                file=file,
                json_path=where,
                hint="runtimes are non-negative seconds",
            )
        tasks.append(
            WfTask(
                task_id,
                name,
                [str(p) for p in task.get("parents", [])],
                runtimes[task_id],
                starts.get(task_id),
            )
        )
    ids = {t.id for t in tasks}
    for t in tasks:
        resolved = []
        for p in t.parents:
            target = p if p in ids else by_name.get(p)
            if target is None:
                raise fail(
                    "missing_target",
                    f"task {t.id!r} names unknown parent {p!r}",
                    file=file,
                    json_path="$.workflow",
                    hint="parents must name tasks of the same workflow",
                )
            resolved.append(target)
        t.parents = resolved
    return tasks, execution


class WfFormatImporter:
    """``--from wfformat``: one trace per WfFormat JSON file."""

    name = "wfformat"
    description = "WfCommons WfFormat 1.4/1.5 instances (DAG, recorded task runtimes, makespan)"

    def discover(self, paths: Sequence[Path]) -> list[Path]:
        return discover_files(paths, (".json",))

    def import_unit(self, path: Path, options: ImportOptions) -> Iterator[Trace | TraceError]:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise fail(
                "malformed_json", f"not JSON: {exc.msg} at line {exc.lineno}", file=path, hint=_HINT
            ) from None
        self._validate_schema(doc, path, options)
        yield self.to_trace(doc, path)

    def _validate_schema(self, doc: Any, path: Path, options: ImportOptions) -> None:
        if options.schema_dir is None or not isinstance(doc, dict):
            return
        schema = _schema(options.schema_dir, str(doc.get("schemaVersion", "")))
        if schema is None:
            return  # unknown version or no schema file: the structural checks still apply
        error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(doc))
        if error is not None:
            where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise fail(
                "schema",
                f"WfFormat schema violation: {error.message}",
                file=path,
                json_path=where,
                hint=_HINT,
            )

    def to_trace(self, doc: dict[str, Any], path: Path) -> Trace:
        tasks, execution = read_wfformat_tasks(doc, path)
        safe = SafeIds()
        ids = {t.id: safe(t.id) for t in tasks}
        order = [ids[t.id] for t in tasks]
        edges = sorted({(ids[p], ids[t.id]) for t in tasks for p in t.parents})
        check_acyclic(order, edges, where=f"workflow {doc.get('name', path.stem)!r}", file=path)

        def make(step_id: str, transitions: tuple[Transition, ...]) -> Step:
            return Step(id=step_id, type=StepType.SHELL, transitions=transitions)

        steps = build_dag_steps(order, edges, make)
        start = parse_timestamp(
            _need(execution, "executedAt", str, "$.workflow.execution", path),
            file=path,
            json_path="$.workflow.execution.executedAt",
        )
        makespan = float(_need(execution, "makespanInSeconds", (int, float), "$.workflow.execution", path))
        attempts = tuple(
            RecordedAttempt(path=ids[t.id], attempt=1, outcome=Outcome.SUCCEEDED, duration=t.runtime)
            for t in tasks
        )
        name = str(doc.get("name") or path.stem)
        runtime_system = doc.get("runtimeSystem") or doc.get("wms") or {}
        system = str(runtime_system.get("name", "unknown")) if isinstance(runtime_system, dict) else "unknown"
        # WfCommons instances are successful executions: every listed task ran once and succeeded. Task start
        # times are kept when the instance records them (execution.tasks[].executedAt, optional in 1.5).
        observed: dict[str, ObservedStep] = {}
        for t in tasks:
            began = (
                parse_timestamp(
                    t.executed_at, file=path, json_path=f"$.workflow.execution.tasks[id={t.id}].executedAt"
                )
                if t.executed_at
                else None
            )
            observed[ids[t.id]] = ObservedStep(
                status="SUCCEEDED",
                attempts=1,
                start_time=began,
                end_time=began + t.runtime if began is not None else None,
            )
        run = Run(
            run_id="1",
            trigger_time=start,
            initiator="manual",
            attempts=attempts,
            observed=ObservedRun(
                status="SUCCEEDED", start_time=start, end_time=start + makespan, steps=observed
            ),
        )
        return Trace(
            trace_id=f"wfformat:{path.stem}",
            definition=WorkflowDefinition(id=_workflow_id(name, path), steps=steps),
            runs=(run,),
            metadata=TraceMetadata(
                owner=str((doc.get("author") or {}).get("name", "unknown")),
                tags=(
                    "imported",
                    "wfformat",
                    f"wfformat-{doc.get('schemaVersion', '?')}",
                    f"system:{system.lower()}",
                ),
                workflow_type=name,
                source=f"wfformat:{path.name}",
                captured_at=str(doc.get("createdAt")) if doc.get("createdAt") else None,
            ),
        )


def _workflow_id(name: str, path: Path) -> str:
    return SafeIds()(f"{name}-{path.stem}" if name not in path.stem else path.stem)
