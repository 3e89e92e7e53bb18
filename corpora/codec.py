"""Typed records <-> plain JSON data, with errors that carry the JSON path of the bad value.

One generic codec walks the dataclass type hints of :mod:`corpora.model`, so the wire format, the
JSON Schema (:mod:`corpora.schema`) and the model cannot drift apart. Fields equal to their default
are left out when encoding, which keeps traces small and byte-stable.

Every number is bounded (:mod:`corpora.bounds`): a field's bound is checked on the raw JSON number
before it is converted, and any other integer (also inside params and outputs) must fit in int64.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from enum import Enum
from functools import cache
from typing import Any, TypeVar, get_args, get_origin

from corpora import model
from corpora.bounds import FIELD_BOUNDS, INT64, Bound, describe_number
from corpora.errors import TraceError, TraceLocation

__all__ = ["JSON_ANY", "decode", "encode", "field_types"]

T = TypeVar("T")


class JSON_ANY:  # a marker type, named like the wire concept
    """Marker for a field holding arbitrary JSON (``JsonValue`` in the model)."""


@cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of every field of a model dataclass (``JsonValue`` becomes :class:`JSON_ANY`)."""
    return typing.get_type_hints(cls, globalns=vars(model), localns={"JsonValue": JSON_ANY})


def _defaults(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@cache
def _encode_plan(cls: type) -> tuple[tuple[str, Any], ...] | None:
    """(field name, default or MISSING) per field of a record class, once per class; None for non-records."""
    if not dataclasses.is_dataclass(cls):
        return None
    defaults = _defaults(cls)
    return tuple(
        (f.name, dataclasses.MISSING if f.name == "format" else defaults.get(f.name, dataclasses.MISSING))
        for f in dataclasses.fields(cls)
    )


_PLAIN = frozenset({str, int, float, bool, type(None)})


def encode(obj: Any) -> Any:
    """Encode a model record (or any value inside one) as plain JSON data."""
    cls: type = type(obj)
    if cls in _PLAIN:
        return obj
    plan = _encode_plan(cls)
    if plan is not None:
        out: dict[str, Any] = {}
        for name, default in plan:
            value = getattr(obj, name)
            if default is not dataclasses.MISSING and value == default:
                continue
            out[name] = encode(value)
        if "format" in out:  # the format tag leads, so `head -c 40` tells what a file is
            out = {"format": out.pop("format"), **out}
        return out
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return [encode(v) for v in obj]
    return obj


def _fail(path: str, message: str, hint: str = "") -> TraceError:
    return TraceError("schema", message, location=TraceLocation(json_path=path), hint=hint)


def _type_name(tp: Any) -> str:
    if tp is JSON_ANY:
        return "any JSON value"
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return "one of " + ", ".join(repr(m.value) for m in tp)
        return {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}.get(
            tp.__name__, f"an object ({tp.__name__})"
        )
    return str(tp)


def _check_json(value: Any, path: str, depth: int = 0) -> Any:
    if depth > 64:
        raise _fail(path, "JSON value nested more than 64 levels deep", "flatten the value")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not INT64.contains(value):
            raise INT64.error(value, path)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(path, f"non-finite number {value!r}", "use a finite number or a string")
        return value
    if isinstance(value, list):
        return [_check_json(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _check_json(v, f"{path}.{k}", depth + 1) for k, v in value.items()}
    raise _fail(path, f"unsupported value of type {type(value).__name__}")


def decode(cls: type[T], data: Any, path: str = "$") -> T:
    """Decode plain JSON data into the model record ``cls``; raise :class:`TraceError` with the JSON path."""
    return typing.cast(T, _decode(cls, data, path))


@cache
def _decode_plan(tp: Any) -> tuple[str, Any]:
    """What kind of type ``tp`` is, worked out once per type (get_origin/get_args are slow)."""
    if tp is JSON_ANY or tp is Any:
        return "json", None
    origin = get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = get_args(tp)
        ordered = tuple(sorted((o for o in options if o is not type(None)), key=_union_rank))
        names = " or ".join(_type_name(o) for o in options if o is not type(None))
        return "union", (type(None) in options, ordered, names)
    if origin is tuple:
        return "tuple", get_args(tp)[0]
    if origin in (Mapping, dict, typing.Mapping):
        return "mapping", get_args(tp)[1]
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "enum", tp
    if tp in (bool, int, float, str):
        return tp.__name__, tp
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = field_types(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        required = tuple(
            name
            for name, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        bounds = {name: FIELD_BOUNDS[(tp, name)] for name in fields if (tp, name) in FIELD_BOUNDS}
        return "record", (tp, hints, fields, required, bounds)
    return "unknown", tp


def _decode(tp: Any, data: Any, path: str) -> Any:
    kind, arg = _decode_plan(tp)
    if kind == "json":
        return _check_json(data, path)
    if kind == "union":
        nullable, ordered, names = arg
        if data is None:
            if nullable:
                return None
            raise _fail(path, "null is not allowed here", "give a value or leave the field out")
        # Try exact primitive matches first so "3" stays a string and 3 stays an int.
        specific: TraceError | None = None
        for opt in ordered:
            try:
                return _decode(opt, data, path)
            except TraceError as exc:
                # An object that is the one record option, or a number out of its range: that error
                # (deeper path, real reason) says more than "expected X or Y".
                if specific is None and (
                    exc.code != "schema" or (isinstance(data, dict) and _is_record(opt))
                ):
                    specific = exc
                continue
        if specific is not None:
            raise specific
        raise _fail(path, f"expected {names}, got {_describe(data)}")
    if kind == "tuple":
        if not isinstance(data, list):
            raise _fail(path, f"expected a list, got {_describe(data)}")
        return tuple(_decode(arg, v, f"{path}[{i}]") for i, v in enumerate(data))
    if kind == "mapping":
        if not isinstance(data, dict):
            raise _fail(path, f"expected an object, got {_describe(data)}")
        return {str(k): _decode(arg, v, f"{path}.{k}") for k, v in data.items()}
    if kind == "enum":
        if isinstance(data, str):
            try:
                return arg(data)
            except ValueError:
                for m in arg:
                    if m.value.lower() == data.lower():
                        return m
        raise _fail(path, f"expected {_type_name(arg)}, got {_describe(data)}")
    if kind == "bool":
        if isinstance(data, bool):
            return data
        raise _fail(path, f"expected a boolean, got {_describe(data)}")
    if kind == "int":
        if isinstance(data, int) and not isinstance(data, bool):
            if not INT64.contains(data):
                raise INT64.error(data, path)
            return data
        raise _fail(path, f"expected an integer, got {_describe(data)}")
    if kind == "float":
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            if isinstance(data, int) and not INT64.contains(data):  # before float(), which overflows
                raise INT64.error(data, path)
            if not math.isfinite(data):
                raise _fail(path, f"non-finite number {data!r}", "use a finite number")
            return float(data)
        raise _fail(path, f"expected a number, got {_describe(data)}")
    if kind == "str":
        if isinstance(data, str):
            return data
        raise _fail(path, f"expected a string, got {_describe(data)}")
    if kind == "record":
        return _decode_record(arg, data, path)
    raise _fail(path, f"cannot decode type {tp!r}")  # pragma: no cover - model bug


def _is_record(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _union_rank(tp: Any) -> int:
    order = {bool: 0, int: 1, float: 2, str: 3}
    return order.get(tp, 4) if isinstance(tp, type) else 5


def _describe(data: Any) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return f"boolean {str(data).lower()}"
    if isinstance(data, (int, float)):
        return f"number {describe_number(data)}"
    if isinstance(data, str):
        shown = data if len(data) <= 40 else data[:37] + "..."
        return f"string {shown!r}"
    if isinstance(data, list):
        return "a list"
    if isinstance(data, dict):
        return "an object"
    return type(data).__name__


def _decode_record(
    plan: tuple[Any, dict[str, Any], dict[str, Any], tuple[str, ...], dict[str, Bound]], data: Any, path: str
) -> Any:
    cls, hints, fields, required, bounds = plan
    if not isinstance(data, dict):
        raise _fail(path, f"expected an object ({cls.__name__}), got {_describe(data)}")
    for key in data:
        if key not in fields:
            unknown = sorted(k for k in data if k not in fields)[0]
            raise _fail(
                f"{path}.{unknown}",
                f"unknown field {unknown!r} in {cls.__name__}",
                "known fields: " + ", ".join(sorted(fields)),
            )
    for name in required:
        if name not in data:
            raise _fail(f"{path}.{name}", f"missing required field {name!r} in {cls.__name__}")
    if bounds:
        for name, bound in bounds.items():  # on the raw number, before any conversion can overflow
            bound.check(data.get(name), f"{path}.{name}")
    kwargs = {name: _decode(hints[name], value, f"{path}.{name}") for name, value in data.items()}
    return cls(**kwargs)
