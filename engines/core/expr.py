"""The safe expression language: a parsed (never ``eval``'d) Java/SEL-like subset.

Maestro evaluates params and edge conditions with SEL, a sandboxed Java subset. Traces may only use
this subset (the cross-team contract): literals (integers, decimals, quoted strings, ``true``,
``false``, ``null``, ``[lists]``), names, parentheses, unary ``-`` and ``!``, ``* / %``, ``+ -``
(``+`` concatenates when either side is a string), comparisons, ``&&``, ``||``, ``c ? a : b`` and the
whitelisted calls ``len``, ``min``, ``max``, ``abs``, ``range`` and ``Util.dateIntsBetween``. A leading
``return`` and a trailing ``;`` are accepted (SEL statement form).

Parsing produces a tree of closures (one Python call per node at evaluation time), cached per source
string by :func:`parse`, so a condition evaluated at every step completion costs a few microseconds.
Arithmetic follows Java: integer ``/`` truncates toward zero, ``%`` takes the sign of the dividend,
integer overflow is not emulated. Any problem is an :class:`ExpressionError` naming the position.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

from engines.core.errors import ExpressionError

__all__ = ["Expression", "Resolver", "Value", "evaluate", "format_value", "parse"]

Value: TypeAlias = "bool | int | float | str | list[Value] | dict[str, Value] | None"
Resolver: TypeAlias = Callable[[str], "Value"]
_Node: TypeAlias = Callable[[Resolver], "Value"]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)(?P<suffix>[lLdDfF]?)
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:(),\[\];])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}
_KEYWORDS = {"true": True, "false": False, "null": None}
_CALLS = {"len", "min", "max", "abs", "range", "Util.dateIntsBetween"}
_MAX_RANGE = 100_000


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression: ``source``, the ``names`` it reads, and an evaluator over a resolver."""

    source: str
    names: frozenset[str]
    _root: _Node

    def evaluate(self, resolve: Resolver) -> Value:
        """Evaluate with ``resolve(name)`` giving each name's value (it raises for unknown names)."""
        try:
            return self._root(resolve)
        except ExpressionError:
            raise
        except (ZeroDivisionError, OverflowError, ValueError, TypeError, RecursionError) as exc:
            raise ExpressionError(f"evaluation failed: {exc}", source=self.source, position=0) from exc


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # num, str, name, op, end
    text: str
    pos: int
    value: Value = None


def _tokenize(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos, n = 0, len(src)
    while pos < n:
        if src[pos:].strip() == "":
            break
        m = _TOKEN.match(src, pos)
        if m is None or m.end() == pos:
            bad = pos + (len(src[pos:]) - len(src[pos:].lstrip()))
            raise ExpressionError(f"unexpected character {src[bad]!r}", source=src, position=bad)
        start = pos + (len(m.group(0)) - len(m.group(0).lstrip()))
        if m.group("num") is not None:
            text, suffix = m.group("num"), m.group("suffix")
            is_float = any(c in text for c in ".eE") or suffix in ("d", "D", "f", "F")
            toks.append(_Tok("num", text, start, float(text) if is_float else int(text)))
        elif m.group("str") is not None:
            raw = m.group("str")[1:-1]
            toks.append(
                _Tok("str", raw, start, re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), e.group(1)), raw))
            )
        elif m.group("name") is not None:
            toks.append(_Tok("name", m.group("name"), start))
        else:
            toks.append(_Tok("op", m.group("op"), start))
        pos = m.end()
    toks.append(_Tok("end", "", n))
    return toks


def _type_name(v: Value) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "long", float: "double", str: "string", list: "list", dict: "map"}.get(
        type(v), type(v).__name__
    )


def _is_num(v: Value) -> bool:
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


class _Parser:
    """Precedence climbing over the token list; every node becomes a closure."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _tokenize(src)
        self.i = 0
        self.names: set[str] = set()

    def fail(self, msg: str, tok: _Tok | None = None) -> ExpressionError:
        t = tok or self.toks[self.i]
        return ExpressionError(msg, source=self.src, position=t.pos)

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, op: str) -> _Tok:
        t = self.take()
        if t.kind != "op" or t.text != op:
            raise self.fail(f"expected {op!r}, found {t.text or 'end of expression'!r}", t)
        return t

    def at_op(self, *ops: str) -> bool:
        t = self.toks[self.i]
        return t.kind == "op" and t.text in ops

    def program(self) -> _Node:
        if self.peek().kind == "name" and self.peek().text == "return":
            self.take()
        node = self.ternary()
        if self.at_op(";"):
            self.take()
        if self.peek().kind != "end":
            raise self.fail(f"unexpected {self.peek().text!r} after the expression")
        return node

    def ternary(self) -> _Node:
        cond = self.binary(0)
        if not self.at_op("?"):
            return cond
        qtok = self.take()
        then = self.ternary()
        self.expect(":")
        other = self.ternary()
        src = self.src

        def node(r: Resolver) -> Value:
            c = cond(r)
            if not isinstance(c, bool):
                raise ExpressionError(
                    f"condition of ?: must be boolean, got {_type_name(c)}", source=src, position=qtok.pos
                )
            return then(r) if c else other(r)

        return node

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("==", "!="),
        ("<", "<=", ">", ">="),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def binary(self, level: int) -> _Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        ops = self._LEVELS[level]
        while self.at_op(*ops):
            tok = self.take()
            right = self.binary(level + 1)
            left = _binary(tok.text, left, right, self.src, tok.pos)
        return left

    def unary(self) -> _Node:
        if self.at_op("-", "!"):
            tok = self.take()
            operand = self.unary()
            src = self.src

            def node(r: Resolver) -> Value:
                v = operand(r)
                if tok.text == "-":
                    if not _is_num(v):
                        raise ExpressionError(
                            f"cannot negate a {_type_name(v)}", source=src, position=tok.pos
                        )
                    return -v  # type: ignore[operator]
                if not isinstance(v, bool):
                    raise ExpressionError(
                        f"'!' needs a boolean, got {_type_name(v)}", source=src, position=tok.pos
                    )
                return not v

            return node
        return self.primary()

    def primary(self) -> _Node:
        tok = self.take()
        if tok.kind in ("num", "str"):
            value = tok.value
            return lambda r: value
        if tok.kind == "op" and tok.text == "(":
            inner = self.ternary()
            self.expect(")")
            return inner
        if tok.kind == "op" and tok.text == "[":
            items: list[_Node] = []
            if not self.at_op("]"):
                items.append(self.ternary())
                while self.at_op(","):
                    self.take()
                    items.append(self.ternary())
            self.expect("]")
            return lambda r: [item(r) for item in items]
        if tok.kind == "name":
            if tok.text in _KEYWORDS:
                kw = _KEYWORDS[tok.text]
                return lambda r: kw
            if self.at_op("("):
                return self.call(tok)
            if "." in tok.text:
                raise self.fail(
                    f"unknown name {tok.text!r} (dotted names are only allowed for whitelisted calls)", tok
                )
            name = tok.text
            self.names.add(name)
            return lambda r: r(name)
        raise self.fail(f"unexpected {tok.text or 'end of expression'!r}", tok)

    def call(self, fn: _Tok) -> _Node:
        if fn.text not in _CALLS:
            raise self.fail(f"unknown function {fn.text!r}; allowed: {', '.join(sorted(_CALLS))}", fn)
        self.expect("(")
        args: list[_Node] = []
        if not self.at_op(")"):
            args.append(self.ternary())
            while self.at_op(","):
                self.take()
                args.append(self.ternary())
        self.expect(")")
        arity = {
            "len": (1, 1),
            "abs": (1, 1),
            "min": (2, 2),
            "max": (2, 2),
            "range": (2, 3),
            "Util.dateIntsBetween": (3, 3),
        }
        lo, hi = arity[fn.text]
        if not lo <= len(args) <= hi:
            raise self.fail(
                f"{fn.text}() takes {lo if lo == hi else f'{lo} to {hi}'} arguments, got {len(args)}", fn
            )
        impl = _call_impl(fn.text, self.src, fn.pos)
        return lambda r: impl([a(r) for a in args])


def _binary(op: str, left: _Node, right: _Node, src: str, pos: int) -> _Node:
    def err(msg: str) -> ExpressionError:
        return ExpressionError(msg, source=src, position=pos)

    if op in ("&&", "||"):
        want = op == "||"

        def logical(r: Resolver) -> Value:
            a = left(r)
            if not isinstance(a, bool):
                raise err(f"{op!r} needs booleans, got {_type_name(a)}")
            if a == want:
                return a
            b = right(r)
            if not isinstance(b, bool):
                raise err(f"{op!r} needs booleans, got {_type_name(b)}")
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
            if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
                raise err(f"cannot compare {_type_name(a)} {op} {_type_name(b)}")
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
        if not (_is_num(a) and _is_num(b)):
            raise err(f"cannot apply {op!r} to {_type_name(a)} and {_type_name(b)}")
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


def _call_impl(name: str, src: str, pos: int) -> Callable[[list[Value]], Value]:
    def err(msg: str) -> ExpressionError:
        return ExpressionError(f"{name}(): {msg}", source=src, position=pos)

    def ints(args: list[Value]) -> list[int]:
        out = []
        for a in args:
            if not isinstance(a, int) or isinstance(a, bool):
                raise err(f"expected integer arguments, got {_type_name(a)}")
            out.append(a)
        return out

    if name == "len":

        def f_len(args: list[Value]) -> Value:
            v = args[0]
            if not isinstance(v, (str, list, dict)):
                raise err(f"expected a string, list or map, got {_type_name(v)}")
            return len(v)

        return f_len
    if name in ("min", "max", "abs"):

        def f_num(args: list[Value]) -> Value:
            for a in args:
                if not _is_num(a):
                    raise err(f"expected numbers, got {_type_name(a)}")
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
            if len(out) > _MAX_RANGE:
                raise err(f"{len(out)} values exceed the limit of {_MAX_RANGE}")
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
            if len(out) > _MAX_RANGE:
                raise err(f"more than {_MAX_RANGE} dates")
            day += _dt.timedelta(days=a[2])
        return out

    return f_dates


@lru_cache(maxsize=4096)
def parse(source: str) -> Expression:
    """Parse ``source`` (cached: definitions repeat the same few expressions across thousands of runs)."""
    if not isinstance(source, str):
        raise ExpressionError(
            f"an expression must be a string, got {type(source).__name__}", source=str(source), position=0
        )
    if source.strip() == "":
        raise ExpressionError("empty expression", source=source, position=0)
    p = _Parser(source)
    root = p.program()
    return Expression(source, frozenset(p.names), root)


def evaluate(source: str, resolve: Resolver) -> Value:
    """Parse (cached) and evaluate ``source`` in one call."""
    return parse(source).evaluate(resolve)
