"""The JSON Schema of ``shadow-trace/1``, generated from the model so it cannot drift.

The schema is built by walking :func:`corpora.codec.field_types` (the same type walk the codec decodes
with) and shipped as ``corpora/shadow-trace-1.schema.json`` for tools outside Python. A test asserts
the shipped file equals :func:`trace_schema`; regenerate it with::

    python -m corpora.schema > corpora/shadow-trace-1.schema.json

The schema checks shape and the range of every numeric field (:mod:`corpora.bounds`, as the codec
does; numbers inside params and outputs are left to the codec); graph rules such as "no cycles" live in
:mod:`corpora.validate`. Enum values are written in their canonical case; the codec also accepts
other cases when reading.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from enum import Enum
from functools import cache
from importlib import resources
from typing import Any, get_args, get_origin

from corpora.bounds import FIELD_BOUNDS, INT64, Bound
from corpora.codec import JSON_ANY, field_types
from corpora.model import FORMAT, Trace

__all__ = ["SCHEMA_FILE", "SCHEMA_ID", "render_schema", "schema_errors", "shipped_schema", "trace_schema"]

SCHEMA_FILE = "shadow-trace-1.schema.json"
SCHEMA_ID = "https://github.com/workflow-shadow/workflow-shadow/corpora/shadow-trace-1.schema.json"


def trace_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one trace line, generated from :mod:`corpora.model`."""
    defs: dict[str, Any] = {}
    _record_schema(Trace, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"{FORMAT} trace",
        "description": "One line of a workflow-shadow corpus (JSON Lines). Generated from corpora/model.py.",
        "$ref": "#/$defs/Trace",
        "$defs": dict(sorted(defs.items())),
    }


def _record_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    name = cls.__name__
    if name not in defs:
        defs[name] = {}  # placeholder first: records refer to themselves (Step -> Foreach -> Step)
        hints = field_types(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for f in dataclasses.fields(cls):
            prop = _type_schema(hints[f.name], defs, FIELD_BOUNDS.get((cls, f.name)))
            if cls is Trace and f.name == "format":
                prop = {"const": FORMAT}
            properties[f.name] = prop
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        entry: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if cls is Trace:
            required.insert(0, "format")
        if required:
            entry["required"] = required
        doc = (cls.__doc__ or "").strip()
        if doc and not doc.startswith(f"{name}("):
            entry = {"description": " ".join(doc.split()), **entry}
        defs[name] = entry
    return {"$ref": f"#/$defs/{name}"}


def _range(bound: Bound) -> dict[str, Any]:
    """``minimum`` / ``maximum`` (or the exclusive forms) of a numeric field, from :mod:`corpora.bounds`."""
    return {
        "exclusiveMinimum" if bound.lo_open else "minimum": bound.lo,
        "exclusiveMaximum" if bound.hi_open else "maximum": bound.hi,
    }


def _type_schema(tp: Any, defs: dict[str, Any], bound: Bound | None = None) -> dict[str, Any]:
    if tp is JSON_ANY or tp is Any:
        return {}
    origin = get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = [_type_schema(o, defs, bound) for o in get_args(tp)]
        return {"anyOf": options}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(get_args(tp)[0], defs)}
    if origin in (Mapping, dict):
        return {"type": "object", "additionalProperties": _type_schema(get_args(tp)[1], defs)}
    if tp is type(None):
        return {"type": "null"}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"enum": [m.value for m in tp]}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        if tp in (int, float):
            return {"type": simple[tp], **_range(bound or INT64)}
        return {"type": simple[tp]}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _record_schema(tp, defs)
    raise TypeError(f"no JSON Schema for model type {tp!r}")  # pragma: no cover - model bug


def shipped_schema() -> dict[str, Any]:
    """The schema file shipped inside the package."""
    text = resources.files("corpora").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return typing.cast(dict[str, Any], json.loads(text))


@cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(trace_schema())


def schema_errors(data: Any, limit: int = 5) -> list[str]:
    """Messages of up to ``limit`` JSON Schema violations of ``data`` (a second line of defence
    beside the codec, for traces written by other tools)."""
    out: list[str] = []
    for error in _validator().iter_errors(data):
        out.append(f"{error.json_path}: {error.message}")
        if len(out) >= limit:
            break
    return out


def render_schema() -> str:
    return json.dumps(trace_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.stdout.write(render_schema())
