"""The gate's artifacts for CI: a verdict JSON, JUnit XML and a Markdown step summary.

JUnit: one ``testsuite`` per cohort, one ``testcase`` per criterion, so a CI system lists every
check by name. A failed criterion is a ``<failure type="FAIL">``, a marginal one a
``<failure type="MARGINAL">`` (it needs a human, so it must not look green), a criterion without
enough data a ``<skipped>``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from shadow.gate.evaluate import GateResult, verdict_id
from shadow.gate.verdict import CohortVerdict, Criterion, CriterionStatus

__all__ = [
    "VERDICT_JSON_SCHEMA",
    "VERDICT_SCHEMA",
    "dumps",
    "to_json",
    "to_junit",
    "to_markdown",
    "write_artifact",
]

VERDICT_SCHEMA = "shadow-verdict/1"

_NUMBER_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}
VERDICT_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": VERDICT_SCHEMA,
    "type": "object",
    "required": ["schema", "verdict", "exit_code", "cohorts"],
    "properties": {
        "schema": {"const": VERDICT_SCHEMA},
        "database": {"type": "string"},
        "created_at": {"type": "string"},
        "verdict": {"enum": ["PASS", "MARGINAL", "INSUFFICIENT_DATA", "FAIL", "HARNESS_ERROR"]},
        "exit_code": {"enum": [0, 1, 2, 3, 4]},
        "error": {"type": "string"},
        "identity": {
            "description": "the one identity of results judged (results.identity); null when the database "
            "records none",
            "type": ["object", "null"],
            "required": ["id", "candidate_engine", "baseline_engine", "parts"],
            "properties": {
                "id": {"type": "string"},
                "candidate_engine": {"type": "string"},
                "baseline_engine": {"type": "string"},
                "parts": {"type": "object"},
            },
        },
        "captured_since": {
            "description": "shadow gate --since: only the traces captured at or after this time (ISO-8601, UTC) "
            "were judged; absent when all were",
            "type": "string",
        },
        "cohorts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["verdict_id", "cohort", "verdict", "score", "n_traces", "reason", "criteria"],
                "properties": {
                    "verdict_id": {"type": "string"},
                    "cohort": {"type": "string"},
                    "verdict": {"enum": ["PASS", "MARGINAL", "INSUFFICIENT_DATA", "FAIL"]},
                    "score": {"type": "number", "minimum": 0, "maximum": 100},
                    "n_traces": {"type": "integer", "minimum": 0},
                    "reason": {"type": "string"},
                    "criteria": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "status", "critical", "value", "threshold", "message"],
                            "properties": {
                                "name": {"type": "string"},
                                "status": {"enum": ["pass", "marginal", "insufficient", "fail"]},
                                "critical": {"type": "boolean"},
                                "value": _NUMBER_OR_NULL,
                                "threshold": _NUMBER_OR_NULL,
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}
"""What ``--json`` writes, for CI consumers that validate before they parse."""

_MEANING = {
    "PASS": "the candidate may take this cohort",
    "MARGINAL": "needs a sign-off",
    "INSUFFICIENT_DATA": "not enough evidence yet",
    "FAIL": "blocked",
}


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _criterion(c: Criterion) -> dict[str, Any]:
    return {
        "name": c.name,
        "status": str(c.status),
        "critical": c.critical,
        "value": _number(c.value),
        "threshold": _number(c.threshold),
        "message": c.message,
    }


def to_json(result: GateResult) -> dict[str, Any]:
    """The verdict document (``shadow-verdict/1``); ``exit_code`` is what ``shadow gate`` returned."""
    return {
        "schema": VERDICT_SCHEMA,
        "database": result.database,
        "created_at": result.created_at.isoformat(),
        "verdict": str(result.overall),
        "exit_code": result.exit_code,
        "identity": result.identity.to_dict() if result.identity else None,
        **({"captured_since": result.captured_since.isoformat()} if result.captured_since else {}),
        "cohorts": [
            {
                "verdict_id": verdict_id(v.cohort, result.created_at),
                "cohort": v.cohort,
                "verdict": str(v.verdict),
                "score": v.score,
                "n_traces": v.n_traces,
                "reason": v.reason,
                "criteria": [_criterion(c) for c in v.criteria],
            }
            for v in result.verdicts
        ],
    }


def to_junit(result: GateResult) -> str:
    """JUnit XML text: a testsuite per cohort, a testcase per criterion."""
    suites = ET.Element(
        "testsuites", name="shadow gate", tests=str(sum(len(v.criteria) for v in result.verdicts))
    )
    for verdict in result.verdicts:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"cohort {verdict.cohort}",
            tests=str(len(verdict.criteria)),
            failures=str(
                sum(c.status in (CriterionStatus.FAIL, CriterionStatus.MARGINAL) for c in verdict.criteria)
            ),
            skipped=str(sum(c.status is CriterionStatus.INSUFFICIENT for c in verdict.criteria)),
            errors="0",
            timestamp=result.created_at.isoformat(),
        )
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="verdict", value=str(verdict.verdict))
        if result.identity is not None:
            ET.SubElement(properties, "property", name="identity", value=result.identity.id)
            ET.SubElement(
                properties, "property", name="candidate_engine", value=result.identity.engine("candidate")
            )
        for c in verdict.criteria:
            case = ET.SubElement(
                suite, "testcase", classname=f"shadow.gate.{verdict.cohort}", name=c.name, time="0"
            )
            if c.status is CriterionStatus.FAIL:
                ET.SubElement(case, "failure", type="FAIL", message=c.message).text = verdict.reason
            elif c.status is CriterionStatus.MARGINAL:
                ET.SubElement(
                    case, "failure", type="MARGINAL", message=c.message
                ).text = f"needs a sign-off: {c.message}"
            elif c.status is CriterionStatus.INSUFFICIENT:
                ET.SubElement(case, "skipped", message=c.message)
            else:
                ET.SubElement(case, "system-out").text = c.message
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _cohort_section(v: CohortVerdict) -> list[str]:
    lines = [f"### {v.cohort}: {v.verdict}", "", v.reason, "", "| Check | Status | Detail |", "|---|---|---|"]
    lines += [f"| {c.name} | {c.status} | {_cell(c.message)} |" for c in v.criteria]
    return [*lines, ""]


def to_markdown(result: GateResult) -> str:
    """A Markdown summary for a CI step summary ($GITHUB_STEP_SUMMARY) or a merge-request note."""
    overall = str(result.overall)
    lines = [
        f"## Shadow gate: {overall} ({_MEANING[overall]})",
        "",
        f"Database `{result.database}`, judged {result.created_at:%Y-%m-%d %H:%M} UTC; "
        f"exit code {result.exit_code}. The worst cohort decides.",
        "",
        f"Judged: {_cell(result.identity.describe()) if result.identity else 'all results (the database records no identity)'}.",
        "",
        "| Cohort | Verdict | Score | Traces | Reason |",
        "|---|---|---:|---:|---|",
    ]
    lines += [
        f"| {v.cohort} | **{v.verdict}** | {v.score:.0f} | {v.n_traces} | {_cell(v.reason)} |"
        for v in result.verdicts
    ]
    lines.append("")
    for v in result.verdicts:
        lines += _cohort_section(v)
    return "\n".join(lines)


def write_artifact(path: str | Path, text: str, *, mkdir: bool = False) -> None:
    """Write an artifact ('-' is stdout); its folder must exist unless ``mkdir`` (then it is created)."""
    if str(path) == "-":
        print(text)
        return
    target = Path(path)
    if mkdir:
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def dumps(result: GateResult) -> str:
    return json.dumps(to_json(result), indent=2, ensure_ascii=False) + "\n"
