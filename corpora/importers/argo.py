"""Argo Workflow objects (spec + ``status.nodes``) -> traces with the recorded attempts.

Mapping (see docs/IMPORTERS.md):
- the entrypoint template is the workflow; a ``dag`` template's tasks become steps with edges from
  ``dependencies`` or the task names in ``depends`` (its ``.Succeeded``/``.Failed`` qualifiers are
  lost: every dependency is an unconditional edge); a ``steps`` template's groups run in order
  (every step of group k depends on every step of group k-1);
- a task whose template is itself a dag/steps template becomes a SUBWORKFLOW step on a definition
  named after that template; container/script/resource templates become SHELL leaf steps;
- ``retryStrategy.limit`` -> ``error_retry_limit`` (and ``platform_retry_limit`` only when
  ``retryPolicy`` is Always or OnError, as Argo's default OnFailure does not retry errors); a
  ``backoff`` becomes a FIXED (factor 1 or absent) or EXPONENTIAL backoff; no backoff -> FIXED 1 s,
  Maestro's smallest, since Argo retries at once; no retryStrategy -> no retries;
- ``dag.failFast: false`` -> FAIL_AFTER_RUNNING on the dag's steps; otherwise FAIL_IMMEDIATELY
  (Argo lets running tasks finish, Maestro stops them: the closest mode, documented loss);
- attempts: the node named ``<workflow>.<task>`` (or ``<workflow>[i].<step>`` in steps templates);
  a Retry node's Pod children are the attempts in order, a Pod node is one attempt. Phase Succeeded
  -> succeeded, Failed -> user_error, Error -> platform_error; pods still running have no outcome
  and are not recorded. Duration = finishedAt - startedAt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from corpora.errors import TraceError
from corpora.importers._common import (
    ImportOptions,
    check_acyclic,
    discover_files,
    fail,
    parse_timestamp,
)
from corpora.model import (
    Backoff,
    BackoffType,
    FailureMode,
    ObservedRun,
    ObservedStep,
    Outcome,
    RecordedAttempt,
    RetryPolicy,
    Run,
    Step,
    StepType,
    Subworkflow,
    Trace,
    TraceMetadata,
    Transition,
    WorkflowDefinition,
)

__all__ = ["ArgoImporter"]

_HINT = "give an Argo Workflow object (kind: Workflow) with spec.templates and status.nodes"
_PHASES = {"Succeeded": Outcome.SUCCEEDED, "Failed": Outcome.USER_ERROR, "Error": Outcome.PLATFORM_ERROR}
_DEPENDS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*(?:\.[A-Za-z]+)?")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def _seconds(value: Any) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(1, int(value))
    match = _DURATION.match(str(value))
    if match is None:
        return 1
    return max(
        1, int(float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)])
    )


def _retry_policy(template: dict[str, Any]) -> RetryPolicy:
    strategy = template.get("retryStrategy")
    if not isinstance(strategy, dict):
        return RetryPolicy(error_retry_limit=0, platform_retry_limit=0, timeout_retry_limit=0)
    raw_limit = strategy.get("limit", 0)
    limit: int | str = int(raw_limit) if str(raw_limit).isdigit() else str(raw_limit)
    policy = str(strategy.get("retryPolicy", "OnFailure"))
    backoff_spec = strategy.get("backoff")
    if isinstance(backoff_spec, dict) and "duration" in backoff_spec:
        base = _seconds(backoff_spec["duration"])
        factor = backoff_spec.get("factor", 1)
        if isinstance(factor, (int, float)) and factor > 1:
            cap = _seconds(backoff_spec.get("maxDuration", 3600))
            backoff = Backoff(
                type=BackoffType.EXPONENTIAL_BACKOFF,
                error_retry_backoff_in_secs=base,
                error_retry_exponent=int(factor),
                error_retry_limit_in_secs=cap,
                platform_retry_backoff_in_secs=base,
                platform_retry_exponent=int(factor),
                platform_retry_limit_in_secs=cap,
            )
        else:
            backoff = Backoff(
                type=BackoffType.FIXED_BACKOFF,
                error_retry_backoff_in_secs=base,
                platform_retry_backoff_in_secs=base,
            )
    else:
        backoff = Backoff(
            type=BackoffType.FIXED_BACKOFF, error_retry_backoff_in_secs=1, platform_retry_backoff_in_secs=1
        )
    return RetryPolicy(
        error_retry_limit=limit if policy in ("OnFailure", "Always", "OnTransientError") else 0,
        platform_retry_limit=limit if policy in ("Always", "OnError") else 0,
        timeout_retry_limit=0,
        backoff=backoff,
    )


class _ArgoWorkflow:
    """One Workflow object being translated; collects subworkflow definitions and attempts."""

    def __init__(self, doc: dict[str, Any], file: Path) -> None:
        self.file = file
        self.doc = doc
        spec = doc.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get("templates"), list):
            raise fail("schema", "missing spec.templates", file=file, json_path="$.spec", hint=_HINT)
        self.templates: dict[str, dict[str, Any]] = {
            str(t.get("name")): t for t in spec["templates"] if isinstance(t, dict)
        }
        self.name = str((doc.get("metadata") or {}).get("name") or file.stem)
        status = doc.get("status") or {}
        self.nodes: dict[str, dict[str, Any]] = {}
        for node_id, node in (status.get("nodes") or {}).items():
            if isinstance(node, dict):
                self.nodes[str(node.get("name", node_id))] = {**node, "id": node.get("id", node_id)}
        self.by_id = {str(n["id"]): n for n in self.nodes.values()}
        self.subworkflows: dict[str, WorkflowDefinition] = {}
        self.attempts: list[RecordedAttempt] = []
        self.observed: dict[str, ObservedStep] = {}

    def template(self, name: str, where: str) -> dict[str, Any]:
        found = self.templates.get(name)
        if found is None:
            raise fail(
                "missing_target",
                f"{where} uses unknown template {name!r}",
                file=self.file,
                json_path="$.spec.templates",
                hint="every task must name a template of this workflow",
            )
        return found

    def definition(
        self, template_name: str, node_prefix: str, path_prefix: str, stack: tuple[str, ...]
    ) -> WorkflowDefinition:
        """The definition for a dag/steps template, recording attempts of the nodes under ``node_prefix``."""
        if template_name in stack:
            raise fail(
                "cycle",
                f"templates call each other: {' -> '.join((*stack, template_name))}",
                file=self.file,
                json_path="$.spec.templates",
                hint="Argo templates must not recurse",
            )
        template = self.template(template_name, "entrypoint")
        entries: list[tuple[str, str, list[str], str]] = []  # (task, template, deps, node name)
        fail_fast = True
        if isinstance(template.get("dag"), dict):
            dag = template["dag"]
            fail_fast = dag.get("failFast", True) is not False
            for task in dag.get("tasks") or []:
                deps = [str(d) for d in task.get("dependencies") or []]
                if task.get("depends"):
                    deps += [m.split(".")[0] for m in _DEPENDS_NAME.findall(str(task["depends"]))]
                entries.append(
                    (
                        str(task["name"]),
                        str(task["template"]),
                        sorted(set(deps)),
                        f"{node_prefix}.{task['name']}",
                    )
                )
        elif isinstance(template.get("steps"), list):
            previous: list[str] = []
            for i, group in enumerate(template["steps"]):
                group = group if isinstance(group, list) else [group]
                names = [str(s["name"]) for s in group]
                for s in group:
                    entries.append(
                        (
                            str(s["name"]),
                            str(s["template"]),
                            list(previous),
                            f"{node_prefix}[{i}].{s['name']}",
                        )
                    )
                previous = names
        else:
            leaf = f"{node_prefix}"
            entries.append((template_name, template_name, [], leaf))
        known = {e[0] for e in entries}
        edges = []
        for task, _, deps, _ in entries:
            for dep in deps:
                if dep not in known:
                    raise fail(
                        "missing_target",
                        f"task {task!r} depends on unknown task {dep!r}",
                        file=self.file,
                        json_path=f"$.spec.templates[{template_name}]",
                        hint="fix the dependency name",
                    )
                edges.append((dep, task))
        check_acyclic(known, edges, where=f"template {template_name!r}", file=self.file)
        mode = FailureMode.FAIL_IMMEDIATELY if fail_fast else FailureMode.FAIL_AFTER_RUNNING
        steps = []
        for task, tname, _, node_name in entries:
            transitions = tuple(Transition(to=child) for parent, child in sorted(edges) if parent == task)
            target = self.template(tname, f"task {task!r}")
            if "dag" in target or "steps" in target:
                self.subworkflows[tname] = self.definition(
                    tname, node_name, f"{path_prefix}{task}/", (*stack, template_name)
                )
                steps.append(
                    Step(
                        id=task,
                        type=StepType.SUBWORKFLOW,
                        transitions=transitions,
                        failure_mode=mode,
                        subworkflow=Subworkflow(workflow_id=tname),
                    )
                )
                continue
            steps.append(
                Step(
                    id=task,
                    type=StepType.SHELL,
                    transitions=transitions,
                    failure_mode=mode,
                    retry_policy=_retry_policy(target),
                    tags=(f"argo-template:{tname}",),
                )
            )
            self._record(f"{path_prefix}{task}", node_name)
        return WorkflowDefinition(id=template_name, steps=tuple(steps))

    def _record(self, path: str, node_name: str) -> None:
        node = self.nodes.get(node_name)
        if node is None:
            return  # never started (e.g. downstream of a failure)
        pods = [node]
        if node.get("type") == "Retry":
            pods = [self.by_id[c] for c in node.get("children") or [] if c in self.by_id]
            pods.sort(
                key=lambda n: int(m.group(1)) if (m := re.search(r"\((\d+)\)$", str(n.get("name")))) else 0
            )
        number = 0
        for pod in pods:
            outcome = _PHASES.get(str(pod.get("phase")))
            if outcome is None or pod.get("finishedAt") is None or pod.get("startedAt") is None:
                continue
            where = f"$.status.nodes[{pod.get('id')}]"
            start = parse_timestamp(pod["startedAt"], file=self.file, json_path=f"{where}.startedAt")
            end = parse_timestamp(pod["finishedAt"], file=self.file, json_path=f"{where}.finishedAt")
            number += 1
            self.attempts.append(
                RecordedAttempt(path=path, attempt=number, outcome=outcome, duration=max(0.0, end - start))
            )
        if not number and str(node.get("phase")) in ("Skipped", "Omitted"):
            # Production decided not to run it (a `when` false, or upstream failed): observed, with no attempt.
            self.observed[path] = ObservedStep(status=str(node["phase"]), attempts=0)
        if number and node.get("startedAt") is not None:
            start = parse_timestamp(node["startedAt"], file=self.file, json_path="$.status.nodes")
            finished: float | None = (
                parse_timestamp(node["finishedAt"], file=self.file, json_path="$.status.nodes")
                if node.get("finishedAt") is not None
                else None
            )
            self.observed[path] = ObservedStep(
                status=str(node.get("phase", "Unknown")), attempts=number, start_time=start, end_time=finished
            )

    def trace(self) -> Trace:
        spec = self.doc["spec"]
        entry = str(spec.get("entrypoint") or "")
        if not entry:
            raise fail("schema", "missing spec.entrypoint", file=self.file, json_path="$.spec", hint=_HINT)
        definition = self.definition(entry, self.name, "", ())
        status = self.doc.get("status") or {}
        root = self.nodes.get(self.name, {})
        started = (
            status.get("startedAt")
            or root.get("startedAt")
            or (self.doc.get("metadata") or {}).get("creationTimestamp")
        )
        if started is None:
            raise fail(
                "schema",
                "no status.startedAt or creationTimestamp",
                file=self.file,
                json_path="$.status",
                hint=_HINT,
            )
        start = parse_timestamp(started, file=self.file, json_path="$.status.startedAt")
        finished = status.get("finishedAt") or root.get("finishedAt")
        end = parse_timestamp(finished, file=self.file, json_path="$.status.finishedAt") if finished else None
        phase = str(
            status.get("phase")
            or root.get("phase")
            or (self.doc.get("metadata") or {})
            .get("labels", {})
            .get("workflows.argoproj.io/phase", "Unknown")
        )
        run = Run(
            run_id="1",
            trigger_time=start,
            attempts=tuple(self.attempts),
            observed=ObservedRun(status=phase, start_time=start, end_time=end, steps=dict(self.observed)),
        )
        return Trace(
            trace_id=f"argo:{self.name}",
            definition=WorkflowDefinition(id=definition.id, steps=definition.steps),
            runs=(run,),
            metadata=TraceMetadata(
                owner=str((self.doc.get("metadata") or {}).get("namespace", "unknown")),
                tags=("imported", "argo", f"argo-phase:{phase}"),
                workflow_type=entry,
                source=f"argo:{self.file.name}",
            ),
            subworkflows=dict(self.subworkflows),
        )


def _is_workflow(doc: object) -> bool:
    """A Workflow object: ``kind: Workflow``, or no ``kind`` at all with ``spec.templates`` (Argo's own
    controller test data leaves ``apiVersion`` and ``kind`` out). Any other kind is refused."""
    if not isinstance(doc, dict):
        return False
    if "kind" in doc:
        return bool(doc["kind"] == "Workflow")
    spec = doc.get("spec")
    return isinstance(spec, dict) and isinstance(spec.get("templates"), list)


class ArgoImporter:
    """``--from argo``: one trace per Workflow document in YAML/JSON files."""

    name = "argo"
    description = "Argo Workflow objects with status.nodes (dag/steps templates, retries, failFast)"

    def discover(self, paths: Sequence[Path]) -> list[Path]:
        return discover_files(paths, (".yaml", ".yml", ".json"))

    def import_unit(self, path: Path, options: ImportOptions) -> Iterator[Trace | TraceError]:
        del options
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        except yaml.YAMLError as exc:
            raise fail("malformed_yaml", f"not YAML/JSON: {exc}", file=path, hint=_HINT) from None
        if not docs:
            raise fail("schema", "empty document", file=path, hint=_HINT)
        for doc in docs:
            if not _is_workflow(doc):
                yield fail(
                    "schema",
                    f"not an Argo Workflow (kind={doc.get('kind') if isinstance(doc, dict) else None!r})",
                    file=path,
                    hint=_HINT,
                )
                continue
            try:
                yield _ArgoWorkflow(doc, path).trace()
            except TraceError as exc:
                yield exc
