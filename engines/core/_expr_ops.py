"""Operators and whitelisted calls of the expression language (see :mod:`engines.core.expr`).

Each builder returns a closure over already-built operand closures, so evaluation is one Python call
per node. Semantics follow Java: integer ``/`` truncates toward zero, ``%`` keeps the dividend's sign,
``+`` concatenates when either side is a string, comparisons need two numbers or two strings.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from typing import TypeAlias

from engines.core.errors import ExpressionError

__all__ = ["MAX_RANGE", "Node", "Resolver", "Value", "binary", "call", "format_value", "is_num", "type_name"]

Value: TypeAlias = "bool | int | float | str | list[Value] | dict[str, Value] | None"
Resolver: TypeAlias = Callable[[str], "Value"]
Node: TypeAlias = Callable[[Resolver], "Value"]
MAX_RANGE = 100_000


def type_name(v: Value) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "long", float: "double", str: "string", list: "list", dict: "map"}.get(
        type(v), type(v).__name__
    )


def is_num(v: Value) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def format_value(v: Value) -> str:
    """A value as Java's string concatenation shows it (``true``, ``null``, ``1.0``)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if v != int(v) or abs(v) >= 1e7 else f"{v:.1f}"
    if isinstance(v, list):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    return str(v)


def binary(op: str, left: Node, right: Node, src: str, pos: int) -> Node:
    def err(msg: str) -> ExpressionError:
        return ExpressionError(msg, source=src, position=pos)

    if op in ("&&", "||"):
        want = op == "||"

        def logical(r: Resolver) -> Value:
            a = left(r)
            if not isinstance(a, bool):
                raise err(f"{op!r} needs booleans, got {type_name(a)}")
            if a == want:
                return a
            b = right(r)
            if not isinstance(b, bool):
                raise err(f"{op!r} needs booleans, got {type_name(b)}")
            return b

        return logical
    if op in ("==", "!="):
        neg = op == "!="

        def equality(r: Resolver) -> Value:
            a, b = left(r), right(r)
            same = a == b and (isinstance(a, bool) == isinstance(b, bool))
            return same != neg

        return equality
    if op in ("<", "<=", ">", ">="):

        def compare(r: Resolver) -> Value:
            a, b = left(r), right(r)
            if not ((is_num(a) and is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
                raise err(f"cannot compare {type_name(a)} {op} {type_name(b)}")
            if op == "<":
                return a < b  # type: ignore[operator]
            if op == "<=":
                return a <= b  # type: ignore[operator]
            if op == ">":
                return a > b  # type: ignore[operator]
            return a >= b  # type: ignore[operator]

        return compare

    def arith(r: Resolver) -> Value:
        a, b = left(r), right(r)
        if op == "+" and (isinstance(a, str) or isinstance(b, str)):
            return format_value(a) + format_value(b)
        if not (is_num(a) and is_num(b)):
            raise err(f"cannot apply {op!r} to {type_name(a)} and {type_name(b)}")
        x, y = a, b
        assert isinstance(x, (int, float))
        assert isinstance(y, (int, float))
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if y == 0 and isinstance(x, int) and isinstance(y, int):
            raise err("division by zero")
        if op == "/":
            if isinstance(x, int) and isinstance(y, int):
                q = abs(x) // abs(y)
                return q if (x >= 0) == (y >= 0) else -q
            return x / y if y != 0 else (float("nan") if x == 0 else float("inf") * (1 if x > 0 else -1))
        # % : Java remainder takes the sign of the dividend
        if isinstance(x, int) and isinstance(y, int):
            m = abs(x) % abs(y)
            return m if x >= 0 else -m
        return math.fmod(x, y)

    return arith


def call(name: str, src: str, pos: int) -> Callable[[list[Value]], Value]:
    def err(msg: str) -> ExpressionError:
        return ExpressionError(f"{name}(): {msg}", source=src, position=pos)

    def ints(args: list[Value]) -> list[int]:
        out = []
        for a in args:
            if not isinstance(a, int) or isinstance(a, bool):
                raise err(f"expected integer arguments, got {type_name(a)}")
            out.append(a)
        return out

    if name == "len":

        def f_len(args: list[Value]) -> Value:
            v = args[0]
            if not isinstance(v, (str, list, dict)):
                raise err(f"expected a string, list or map, got {type_name(v)}")
            return len(v)

        return f_len
    if name in ("min", "max", "abs"):

        def f_num(args: list[Value]) -> Value:
            for a in args:
                if not is_num(a):
                    raise err(f"expected numbers, got {type_name(a)}")
            nums = [a for a in args if isinstance(a, (int, float))]
            if name == "abs":
                return abs(nums[0])
            return min(nums) if name == "min" else max(nums)

        return f_num
    if name == "range":

        def f_range(args: list[Value]) -> Value:
            a = ints(args)
            step = a[2] if len(a) == 3 else 1
            if step == 0:
                raise err("step must not be 0")
            out = list(range(a[0], a[1], step))
            if len(out) > MAX_RANGE:
                raise err(f"{len(out)} values exceed the limit of {MAX_RANGE}")
            return list(out)

        return f_range

    def f_dates(args: list[Value]) -> Value:
        a = ints(args)
        try:
            start = _dt.date(a[0] // 10000, a[0] // 100 % 100, a[0] % 100)
            end = _dt.date(a[1] // 10000, a[1] // 100 % 100, a[1] % 100)
        except ValueError as exc:
            raise err(f"not a yyyyMMdd date: {exc}") from exc
        if a[2] <= 0:
            raise err("step must be positive")
        out: list[Value] = []
        day = start
        while day < end:
            out.append(day.year * 10000 + day.month * 100 + day.day)
            if len(out) > MAX_RANGE:
                raise err(f"more than {MAX_RANGE} dates")
            day += _dt.timedelta(days=a[2])
        return out

    return f_dates
