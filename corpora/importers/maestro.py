"""Netflix Maestro workflow definitions (JSON requests and the YAML DSL) -> traces with synthesized runs.

Maestro files hold definitions, not runs: the definition is mapped one to one (steps, transitions
with conditions, retry policies including ``"$param"`` strings, timeouts in seconds or duration
strings, failure modes, foreach with loop params, subworkflows resolved from the same folder,
params), and one run is synthesized by the seeded outcome model in :mod:`._maestro_runs`.

Step types: NoOp -> NOOP, Sleep -> SLEEP, Kubernetes -> KUBERNETES, Notebook -> NOTEBOOK (a notebook
job template with ``sub_type: shell`` -> SHELL), Titus -> TITUS, Http -> HTTP, Signal -> SIGNAL;
any other type (e.g. ``spark``) -> SHELL tagged ``maestro-type:<type>``. In replay every leaf type
replays its recorded outcome; steps with ``signal_dependencies`` are tagged ``signal-dependencies``
(we do not wait for signals). ``while`` loops and ``template`` steps have no shadow-trace/1 form and
are rejected with a typed error. A cyclic graph is rejected with the cycle named (networkx).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from corpora.errors import TraceError
from corpora.importers._common import ImportOptions, check_acyclic, discover_files, fail
from corpora.importers._maestro_dsl import dsl_to_request
from corpora.importers._maestro_params import ExpressionNotes, translate_condition, translate_params
from corpora.importers._maestro_runs import synthesize_run
from corpora.model import (
    Backoff,
    BackoffType,
    FailureMode,
    Foreach,
    RetryPolicy,
    RunStrategy,
    RunStrategyRule,
    Step,
    StepType,
    Subworkflow,
    Trace,
    TraceMetadata,
    Transition,
    WorkflowDefinition,
)

__all__ = ["MaestroImporter", "load_request"]

_HINT = "give a Maestro workflow request ({'properties', 'workflow': {'id', 'steps'}}) or a DSL file"
_TYPES = {
    "noop": StepType.NOOP,
    "sleep": StepType.SLEEP,
    "kubernetes": StepType.KUBERNETES,
    "notebook": StepType.NOTEBOOK,
    "titus": StepType.TITUS,
    "http": StepType.HTTP,
    "signal": StepType.SIGNAL,
}
_BACKOFF_FIELDS = {
    f"{c}_retry_{k}"
    for c in ("error", "platform", "timeout")
    for k in ("backoff_in_secs", "exponent", "limit_in_secs")
}


def load_request(path: Path) -> dict[str, Any]:
    """The workflow request in ``path`` (JSON, DSL YAML, or a workflow instance's runtime_workflow)."""
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise fail("malformed_json", f"cannot parse: {exc}", file=path, hint=_HINT) from None
    if not isinstance(doc, dict):
        raise fail("schema", "top level is not an object", file=path, hint=_HINT)
    if "Workflow" in doc or (isinstance(doc.get("workflow"), dict) and "jobs" in doc["workflow"]):
        return dsl_to_request(doc, path)
    if isinstance(doc.get("runtime_workflow"), dict):  # a finished workflow instance holds its definition
        return {
            "properties": {"owner": doc.get("owner", "unknown")},
            "workflow": doc["runtime_workflow"],
            "instance_status": doc.get("status"),
        }
    if isinstance(doc.get("workflow"), dict) and isinstance(doc["workflow"].get("steps"), list):
        return doc
    raise fail(
        "not_a_workflow",
        "no workflow definition here (a step or step instance alone is not a workflow)",
        file=path,
        hint=_HINT,
    )


def _retry_policy(raw: Any) -> RetryPolicy | None:
    if not isinstance(raw, dict):
        return None
    backoff = None
    if isinstance(raw.get("backoff"), dict):
        spec = raw["backoff"]
        kind = BackoffType(str(spec.get("type", "EXPONENTIAL_BACKOFF")).upper())
        backoff = Backoff(type=kind, **{k: v for k, v in spec.items() if k in _BACKOFF_FIELDS})
    return RetryPolicy(
        error_retry_limit=raw.get("error_retry_limit"),
        platform_retry_limit=raw.get("platform_retry_limit"),
        timeout_retry_limit=raw.get("timeout_retry_limit"),
        backoff=backoff,
    )


def _tags(raw: Any) -> tuple[str, ...]:
    out = []
    for tag in raw or []:
        out.append(str(tag.get("name")) if isinstance(tag, dict) else str(tag))
    return tuple(out)


class _Converter:
    """Converts one request (and the subworkflows it calls) into definitions."""

    def __init__(self, path: Path, notes: ExpressionNotes) -> None:
        self.path = path
        self.notes = notes
        self.subworkflows: dict[str, WorkflowDefinition] = {}
        self._index: dict[str, Path] | None = None

    def workflow(self, request: dict[str, Any], stack: tuple[str, ...] = ()) -> WorkflowDefinition:
        block = request["workflow"]
        wf_id = str(block.get("id") or self.path.stem)
        if wf_id in stack:
            raise fail(
                "cycle",
                f"subworkflows call each other: {' -> '.join((*stack, wf_id))}",
                file=self.path,
                hint="a subworkflow must not (transitively) call its parent",
            )
        props = request.get("properties") or {}
        strategy = props.get("run_strategy")
        if isinstance(strategy, str):
            run_strategy = RunStrategy(rule=RunStrategyRule(strategy.upper()))
        elif isinstance(strategy, dict):
            run_strategy = RunStrategy(
                rule=RunStrategyRule(str(strategy.get("rule", "SEQUENTIAL")).upper()),
                workflow_concurrency=strategy.get("workflow_concurrency"),
            )
        else:
            run_strategy = RunStrategy()
        limits = [
            v
            for v in (props.get("step_concurrency"), block.get("instance_step_concurrency"))
            if isinstance(v, int)
        ]
        params = translate_params(block.get("params"), f"{wf_id}.params", self.notes)
        steps = self.steps(block.get("steps") or [], wf_id, (*stack, wf_id))
        return WorkflowDefinition(
            id=wf_id,
            steps=steps,
            params=params,
            run_strategy=run_strategy,
            timeout=block.get("timeout"),
            step_concurrency=min(limits) if limits else None,
        )

    def steps(self, entries: list[Any], where: str, stack: tuple[str, ...]) -> tuple[Step, ...]:
        raw_params: dict[str, dict[str, Any]] = {}
        for entry in entries:
            body = next(iter(entry.values())) if isinstance(entry, dict) and entry else {}
            if isinstance(body, dict) and isinstance(body.get("params"), dict):
                raw_params[str(body.get("id"))] = {
                    k: v.get("value")
                    for k, v in body["params"].items()
                    if isinstance(v, dict) and "value" in v
                }
        steps = tuple(self.step(entry, where, raw_params, stack) for entry in entries)
        ids = [s.id for s in steps]
        edges = [(s.id, t.to) for s in steps for t in s.transitions]
        unknown = [(a, b) for a, b in edges if b not in ids]
        if unknown:
            raise fail(
                "missing_target",
                f"{where}: step {unknown[0][0]!r} transitions to unknown step {unknown[0][1]!r}",
                file=self.path,
                hint="every successor must be a step of the same workflow",
            )
        check_acyclic(ids, edges, where=f"workflow {where!r}", file=self.path)
        return steps

    def step(
        self, entry: Any, where: str, raw_params: dict[str, dict[str, Any]], stack: tuple[str, ...]
    ) -> Step:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise fail(
                "schema",
                f"{where}: a step entry must be one of step/foreach/subworkflow",
                file=self.path,
                hint=_HINT,
            )
        kind, body = next(iter(entry.items()))
        step_id = str(body.get("id", "?"))
        if kind not in ("step", "foreach", "subworkflow"):
            raise fail(
                "unsupported",
                f"{where}: {kind} step {step_id!r} has no shadow-trace/1 form",
                file=self.path,
                json_path=f"$.workflow.steps[{step_id}]",
                hint="remove the step or rewrite it as foreach/subworkflow",
            )
        successors = (body.get("transition") or {}).get("successors") or {}
        transitions = tuple(
            Transition(
                to=str(to),
                condition=translate_condition(str(cond), f"{where}.{step_id}->{to}", self.notes, raw_params),
            )
            for to, cond in successors.items()
        )
        common: dict[str, Any] = {
            "id": step_id,
            "transitions": transitions,
            "timeout": body.get("timeout"),
            "failure_mode": FailureMode(str(body["failure_mode"]).upper())
            if body.get("failure_mode")
            else None,
        }
        tags = list(_tags(body.get("tags")))
        if kind == "foreach":
            params = body.get("params") or {}
            loop = (params.get("loop_params") or {}).get("value") or {}
            own = translate_params(
                params, f"{where}.{step_id}.params", self.notes, raw_params, skip=("loop_params",)
            )
            inner = self.steps(body.get("steps") or [], f"{where}/{step_id}", stack)
            foreach = Foreach(
                loop_params=translate_params(loop, f"{where}.{step_id}.loop_params", self.notes),
                steps=inner,
                concurrency=body.get("concurrency"),
                strict_ordering=bool(body.get("strict_ordering", False)),
            )
            return Step(type=StepType.FOREACH, params=own, foreach=foreach, tags=tuple(tags), **common)
        if kind == "subworkflow":
            params = body.get("params") or {}
            target = str((params.get("subworkflow_id") or {}).get("value") or "")
            if not target:
                raise fail(
                    "schema",
                    f"subworkflow step {step_id!r} has no subworkflow_id",
                    file=self.path,
                    hint=_HINT,
                )
            self.resolve(target, stack)
            own = translate_params(
                params,
                f"{where}.{step_id}.params",
                self.notes,
                raw_params,
                skip=("subworkflow_id", "subworkflow_version"),
            )
            sub = Subworkflow(
                workflow_id=target,
                sync=body.get("sync", True) is not False,
                explicit_params=bool(body.get("explicit_params", False)),
            )
            return Step(type=StepType.SUBWORKFLOW, params=own, subworkflow=sub, tags=tuple(tags), **common)
        raw_type = str(body.get("type", "NoOp"))
        step_type = _TYPES.get(raw_type.lower())
        if step_type is StepType.NOTEBOOK and str(body.get("sub_type", "")).lower() == "shell":
            step_type = StepType.SHELL
        if step_type is None:
            step_type = StepType.SHELL
            tags.append(f"maestro-type:{raw_type}")
        if body.get("signal_dependencies"):
            tags.append("signal-dependencies")
        params = translate_params(body.get("params"), f"{where}.{step_id}.params", self.notes, raw_params)
        return Step(
            type=step_type,
            params=params,
            retry_policy=_retry_policy(body.get("retry_policy")),
            tags=tuple(tags),
            **common,
        )

    def resolve(self, workflow_id: str, stack: tuple[str, ...]) -> None:
        """Load subworkflow ``workflow_id`` from the same folder into ``self.subworkflows``."""
        if workflow_id in self.subworkflows:
            return
        if workflow_id in stack:
            raise fail(
                "cycle",
                f"subworkflows call each other: {' -> '.join((*stack, workflow_id))}",
                file=self.path,
                hint="a subworkflow must not (transitively) call its parent",
            )
        if self._index is None:
            self._index = {}
            for other in sorted(self.path.parent.iterdir()):
                if other.suffix.lower() not in (".json", ".yaml", ".yml") or not other.is_file():
                    continue
                try:
                    request = load_request(other)
                except TraceError:
                    continue
                self._index.setdefault(str(request["workflow"].get("id")), other)
        source = self._index.get(workflow_id)
        if source is None:
            raise fail(
                "unresolved_subworkflow",
                f"subworkflow {workflow_id!r} is not defined in {self.path.parent}",
                file=self.path,
                hint=f"put the definition of {workflow_id!r} in the same folder",
            )
        self.subworkflows[workflow_id] = WorkflowDefinition(id="", steps=())  # placeholder against re-entry
        definition = self.workflow(load_request(source), stack)
        self.subworkflows[workflow_id] = definition


class MaestroImporter:
    """``--from maestro``: one trace per workflow definition file, with one synthesized run."""

    name = "maestro"
    description = "Netflix Maestro workflow JSON / YAML DSL (definitions; runs synthesized by a seeded model)"

    def discover(self, paths: Sequence[Path]) -> list[Path]:
        return discover_files(paths, (".json", ".yaml", ".yml"))

    def import_unit(self, path: Path, options: ImportOptions) -> Iterator[Trace | TraceError]:
        request = load_request(path)
        notes = ExpressionNotes()
        converter = _Converter(path, notes)
        definition = converter.workflow(request)
        trace_id = f"maestro:{path.stem}"
        run, unmet = synthesize_run(definition, converter.subworkflows, options, trace_id)
        props = request.get("properties") or {}
        tags = [
            "imported",
            "maestro",
            "synthesized-runs",
            f"outcome-model:seed={options.seed},failure={options.failure_rate},retry={options.retry_rate}",
        ]
        if options.race_margin > 0:
            tags.append(f"race-margin:{options.race_margin:g}")
        tags += [f"race-margin-unmet:{p}" for p in unmet]
        tags += [f"sel-literal:{w}" for w in notes.replaced]
        tags += [f"workflow-tag:{t}" for t in _tags(request["workflow"].get("tags"))]
        yield Trace(
            trace_id=trace_id,
            definition=definition,
            runs=(run,),
            metadata=TraceMetadata(
                owner=str(props.get("owner", "unknown")),
                tags=tuple(tags),
                workflow_type=definition.id,
                source=f"maestro:{path.name}",
            ),
            subworkflows=dict(converter.subworkflows),
        )
