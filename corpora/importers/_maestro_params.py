"""Maestro params and SEL expressions -> the project's Param and the agreed expression subset.

Maestro evaluates params with SEL, a Java subset. We keep an expression verbatim when it is in the
agreed subset (after two safe rewrites: ``params.get('x')`` -> ``x`` and
``params.getFromStep('s', 'p')`` -> ``s__p`` or the literal value of that step param), evaluate what
we can at import time (``new DateTime(ms).withZone(DateTimeZone.forID('UTC')).monthOfYear().getAsText()``),
and otherwise keep the param with a typed placeholder literal and record the replacement in
``TraceMetadata.tags`` as ``sel-literal:<where>``, so no reader mistakes it for production's value.
``Util.intsBetween(a, b, s)`` is rewritten to ``range(a, b, s)`` (end exclusive, as Maestro's
``Util.dateIntsBetween``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from corpora.importers._sel import SelSyntaxError, Unresolved, evaluate, in_subset
from corpora.model import JsonValue, Param

__all__ = ["ExpressionNotes", "translate_condition", "translate_expression", "translate_params"]

_GET = re.compile(r"params\.get\(\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\)")
_FROM_STEP = re.compile(
    r"params\.getFromStep\(\s*['\"]([^'\"]+)['\"]\s*,\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\)"
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MONTH = re.compile(
    r"^\s*new\s+DateTime\((\d+)L?\)\.withZone\(DateTimeZone\.forID\(['\"]UTC['\"]\)\)\.monthOfYear\(\)\.getAsText\(\)\s*;?\s*$"
)
_PLACEHOLDER: dict[str, JsonValue] = {"LONG": 0, "DOUBLE": 0.0, "BOOLEAN": False, "STRING": ""}


@dataclass(slots=True)
class ExpressionNotes:
    """What the translation had to replace (mutable collector for one trace's import)."""

    replaced: list[str] = field(default_factory=list)


def _rewrite(text: str, step_params: Mapping[str, Mapping[str, Any]]) -> str:
    body = text.strip()
    body = _GET.sub(lambda m: m.group(1), body)

    def from_step(match: re.Match[str]) -> str:
        step, name = match.group(1), match.group(2)
        if _IDENT.match(step):
            return f"{step}__{name}"
        value = step_params.get(step, {}).get(name)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return match.group(0)  # leaves it outside the subset

    body = _FROM_STEP.sub(from_step, body)
    return body.replace("Util.intsBetween(", "range(")


def translate_expression(
    text: str,
    type_name: str,
    where: str,
    notes: ExpressionNotes,
    step_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> Param:
    """A Param for a Maestro expression: an in-subset expression, an evaluated literal, or a placeholder."""
    month = _MONTH.match(text)
    if month:
        moment = datetime.fromtimestamp(int(month.group(1)) / 1000, tz=UTC)
        return Param(value=moment.strftime("%B"))
    body = _rewrite(text, step_params or {})
    if in_subset(body):
        return Param(expression=body)
    notes.replaced.append(where)
    kind = type_name.upper()
    if kind.endswith("_ARRAY"):
        return Param(value=[])
    if kind.endswith("MAP"):
        return Param(value={})
    return Param(value=_PLACEHOLDER.get(kind, ""))


def translate_condition(
    text: str,
    where: str,
    notes: ExpressionNotes,
    step_params: Mapping[str, Mapping[str, Any]],
) -> str | None:
    """A transition condition in the subset (None = always); outside it, evaluate or take the edge."""
    body = _rewrite(text, step_params).strip().rstrip(";").strip()
    if body in ("", "true"):
        return None
    if in_subset(body):
        try:
            value = evaluate(body, {})
        except (Unresolved, SelSyntaxError):
            return body
        return None if value is True else body
    notes.replaced.append(where)
    return None


def _literal(value: Any) -> JsonValue:
    if isinstance(value, dict):
        return {str(k): _literal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_literal(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # dates from YAML and the like


def translate_params(
    raw: Any,
    where: str,
    notes: ExpressionNotes,
    step_params: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    skip: tuple[str, ...] = (),
) -> dict[str, Param]:
    """Maestro ``params`` (name -> {value|expression, type, ...}) -> name -> Param."""
    out: dict[str, Param] = {}
    if not isinstance(raw, dict):
        return out
    for name, spec in raw.items():
        if name in skip:
            continue
        if isinstance(spec, dict) and "expression" in spec:
            out[str(name)] = translate_expression(
                str(spec["expression"]),
                str(spec.get("type", "STRING")),
                f"{where}.{name}",
                notes,
                step_params,
            )
        elif isinstance(spec, dict) and "value" in spec:
            value = spec["value"]
            if str(spec.get("type", "")).upper() == "MAP" and isinstance(value, dict):
                value = {
                    k: (v.get("value") if isinstance(v, dict) and "value" in v else v)
                    for k, v in value.items()
                }
            out[str(name)] = Param(value=_literal(value))
        else:
            out[str(name)] = Param(value=_literal(spec))
    return out


def literal_values(params: Mapping[str, Param], env: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate params in order against ``env`` (values kept, expressions evaluated where possible)."""
    values = dict(env)
    for name, param in params.items():
        if param.expression is None:
            values[name] = param.value
            continue
        try:
            values[name] = evaluate(param.expression, values)
        except (Unresolved, SelSyntaxError):
            continue
    return values
