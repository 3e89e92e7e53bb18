"""Maestro's YAML DSL -> the JSON workflow-request shape, where the two are the same model.

The DSL writes ``Workflow: {id, owner, run_strategy, <param>: value, '!<param>': expression,
jobs: [{job|foreach|subworkflow: {...}}]}`` with transitions as a list of ``target``,
``IF <cond> THEN <target>`` and ``OTHERWISE <target>`` (taken when no IF of that job holds).
Constructs that the JSON model of this project cannot express (``while`` loops, ``ranges``,
``dag: sequential`` ordering implied by list position) are rejected with a typed error, so nothing is
imported with a silently different meaning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from corpora.importers._common import fail

__all__ = ["dsl_to_request"]

_WORKFLOW_KEYS = {
    "id",
    "name",
    "description",
    "owner",
    "run_strategy",
    "workflow_concurrency",
    "step_concurrency",
    "tags",
    "timeout",
    "jobs",
    "criticality",
    "instance_step_concurrency",
}
_JOB_KEYS = {
    "id",
    "name",
    "description",
    "type",
    "sub_type",
    "type_version",
    "transition",
    "timeout",
    "retry_policy",
    "failure_mode",
    "tags",
    "jobs",
    "concurrency",
    "strict_ordering",
    "version",
    "explicit_params",
    "sync",
    "subworkflow_id",
    "params",
    "dag",
    "ranges",
    "condition",
}
_IF = re.compile(r"^\s*if\s+(.+?)\s+then\s+(\S+)\s*$", re.IGNORECASE)
_OTHERWISE = re.compile(r"^\s*otherwise\s+(\S+)\s*$", re.IGNORECASE)
_EXPR_KEY = re.compile(r"^!([A-Za-z_][A-Za-z0-9_]*)(?:<([A-Za-z_]+)>)?(?:\(([a-z_]+)\))?$")
_HINT = "use the JSON workflow form for this construct, or drop it from the DSL file"


def _params(block: dict[str, Any], reserved: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in block.items():
        key = str(key)
        if key in reserved:
            continue
        match = _EXPR_KEY.match(key)
        if match:
            out[match.group(1)] = {"expression": str(value), "type": (match.group(2) or "STRING").upper()}
        else:
            out[key] = {"value": value}
    if isinstance(block.get("params"), dict):
        for key, value in block["params"].items():
            out[str(key)] = (
                value
                if isinstance(value, dict) and ("value" in value or "expression" in value)
                else {"value": value}
            )
    return out


def _transitions(raw: Any, job_id: str, file: Path) -> dict[str, str]:
    if raw is None:
        return {}
    items = raw if isinstance(raw, list) else [raw]
    successors: dict[str, str] = {}
    conditions: list[str] = []
    for item in items:
        text = str(item)
        if (m := _IF.match(text)) is not None:
            successors[m.group(2)] = m.group(1)
            conditions.append(m.group(1))
        elif (m := _OTHERWISE.match(text)) is not None:
            successors[m.group(1)] = " && ".join(f"!({c})" for c in conditions) or "true"
        elif re.match(r"^\S+$", text):
            successors[text] = "true"
        else:
            raise fail(
                "unsupported",
                f"job {job_id!r}: cannot read transition {text!r}",
                file=file,
                json_path=f"$.jobs[{job_id}].transition",
                hint="write 'target', 'IF cond THEN target' or 'OTHERWISE target'",
            )
    return successors


def _job(entry: Any, file: Path) -> dict[str, Any]:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise fail(
            "schema",
            "each job must be one of job/foreach/subworkflow",
            file=file,
            json_path="$.jobs",
            hint=_HINT,
        )
    kind, body = next(iter(entry.items()))
    body = body or {}
    job_id = str(body.get("id", "?"))
    if kind not in ("job", "foreach", "subworkflow"):
        raise fail(
            "unsupported",
            f"{kind} {job_id!r} is not supported by shadow-trace/1",
            file=file,
            json_path=f"$.jobs[{job_id}]",
            hint=_HINT,
        )
    for key in ("ranges", "dag"):
        if key in body:
            raise fail(
                "unsupported",
                f"{kind} {job_id!r} uses {key!r}, which shadow-trace/1 cannot express",
                file=file,
                json_path=f"$.jobs[{job_id}].{key}",
                hint=_HINT,
            )
    out: dict[str, Any] = {
        k: body[k]
        for k in (
            "id",
            "timeout",
            "retry_policy",
            "failure_mode",
            "tags",
            "concurrency",
            "strict_ordering",
            "sync",
            "explicit_params",
        )
        if k in body
    }
    out["transition"] = {"successors": _transitions(body.get("transition"), job_id, file)}
    params = _params(body, _JOB_KEYS)
    if kind == "job":
        out["type"] = body.get("type", "NoOp")
        if body.get("sub_type"):
            out["sub_type"] = body["sub_type"]
        out["params"] = params
        return {"step": out}
    if kind == "foreach":
        loop = dict(params.items())
        out["params"] = {"loop_params": {"value": loop, "type": "MAP"}}
        out["steps"] = [_job(j, file) for j in body.get("jobs") or []]
        return {"foreach": out}
    params["subworkflow_id"] = {"value": body.get("subworkflow_id", job_id)}
    out["params"] = params
    return {"subworkflow": out}


def dsl_to_request(doc: dict[str, Any], file: Path) -> dict[str, Any]:
    """The JSON workflow-request form of a DSL document (raises TraceError for unsupported parts)."""
    block = doc.get("Workflow", doc.get("workflow"))
    if not isinstance(block, dict):
        raise fail(
            "schema", "no 'Workflow' block", file=file, hint="a Maestro DSL file starts with 'Workflow:'"
        )
    if "dag" in block:
        raise fail(
            "unsupported",
            "workflow uses 'dag', which shadow-trace/1 cannot express",
            file=file,
            json_path="$.Workflow.dag",
            hint=_HINT,
        )
    properties: dict[str, Any] = {"owner": block.get("owner", "unknown")}
    if "run_strategy" in block:
        properties["run_strategy"] = {
            "rule": block["run_strategy"],
            **(
                {"workflow_concurrency": block["workflow_concurrency"]}
                if "workflow_concurrency" in block
                else {}
            ),
        }
    if "step_concurrency" in block:
        properties["step_concurrency"] = block["step_concurrency"]
    workflow: dict[str, Any] = {
        "id": block.get("id"),
        "params": _params(block, _WORKFLOW_KEYS),
        "steps": [_job(j, file) for j in block.get("jobs") or []],
    }
    if "timeout" in block:
        workflow["timeout"] = block["timeout"]
    if "tags" in block:
        workflow["tags"] = block["tags"]
    return {"properties": properties, "workflow": workflow}
