"""The agreed expression subset, as importers need it: recognise it, and evaluate constants.

Importers must only emit expressions of the project's safe subset (see engines/core/expr.py, the
engines' own parser). This module is the importers' side of that contract: :func:`parse` accepts
exactly the subset (literals, names, parentheses, unary ``-``/``!``, ``* / %``, ``+ -``, comparisons,
``&&``, ``||``, ternary and the whitelisted calls ``len min max abs range Util.dateIntsBetween``, with
an optional leading ``return`` and trailing ``;``) and returns an evaluator, so the Maestro importer can
(a) keep an expression verbatim when it is in the subset and (b) evaluate loop params at import time
to enumerate foreach iterations. Nothing is ever ``eval``'d.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

__all__ = ["SelSyntaxError", "Unresolved", "evaluate", "in_subset", "parse"]

Evaluator = Callable[[Mapping[str, Any]], Any]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d+|\d+)|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<name>Util\.dateIntsBetween|[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:(),\[\]]))"
)


class SelSyntaxError(ValueError):
    """The text is not in the expression subset; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        self.position = position
        super().__init__(f"{message} at position {position}")


class Unresolved(LookupError):
    """Evaluation needed a name that the environment does not hold (a runtime value)."""


def _date_ints_between(start: Any, end: Any, step: Any = 1) -> list[int]:
    def to_date(v: Any) -> date:
        s = str(int(v))
        return date(int(s[:4]), int(s[4:6]), int(s[6:8]))

    out, current, last = [], to_date(start), to_date(end)
    while current < last:
        out.append(int(current.strftime("%Y%m%d")))
        current += timedelta(days=int(step))
    return out


_CALLS: dict[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "range": lambda *a: list(range(*(int(x) for x in a))),
    "Util.dateIntsBetween": _date_ints_between,
}


def _tokens(text: str) -> list[tuple[str, str, int]]:
    body = text.strip()
    if body.endswith(";"):
        body = body[:-1]
    body = re.sub(r"^\s*return\s+", "", body)
    out, pos = [], 0
    while pos < len(body):
        if body[pos:].strip() == "":
            break
        match = _TOKEN.match(body, pos)
        if match is None or match.end() == pos:
            raise SelSyntaxError(f"unexpected character {body[pos:].strip()[:1]!r}", pos)
        kind = match.lastgroup or "op"
        out.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    out.append(("end", "", len(body)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        tok = self.toks[self.i]
        if value is not None and tok[1] != value:
            raise SelSyntaxError(f"expected {value!r}, found {tok[1] or 'end'!r}", tok[2])
        self.i += 1
        return tok

    def expr(self) -> Evaluator:
        cond = self.binary(0)
        if self.peek()[1] == "?":
            self.take("?")
            yes = self.expr()
            self.take(":")
            no = self.expr()
            return lambda env: yes(env) if cond(env) else no(env)
        return cond

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("==", "!="),
        ("<", "<=", ">", ">="),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def binary(self, level: int) -> Evaluator:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek()[0] == "op" and self.peek()[1] in self._LEVELS[level]:
            op = self.take()[1]
            right = self.binary(level + 1)
            left = _binop(op, left, right)
        return left

    def unary(self) -> Evaluator:
        tok = self.peek()
        if tok[1] in ("-", "!") and tok[0] == "op":
            self.take()
            inner = self.unary()
            return (lambda env: -inner(env)) if tok[1] == "-" else (lambda env: not inner(env))
        return self.primary()

    def primary(self) -> Evaluator:
        kind, value, pos = self.take()
        if kind == "num":
            number: float | int = float(value) if "." in value else int(value)
            return lambda env: number
        if kind == "str":
            text = bytes(value[1:-1], "utf-8").decode("unicode_escape")
            return lambda env: text
        if kind == "op" and value == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if kind == "op" and value == "[":
            items = self.args("]")
            return lambda env: [item(env) for item in items]
        if kind == "name":
            if value in ("true", "false", "null"):
                constant = {"true": True, "false": False, "null": None}[value]
                return lambda env: constant
            if self.peek()[1] == "(":
                if value not in _CALLS:
                    raise SelSyntaxError(f"call of {value!r} is not in the expression subset", pos)
                self.take("(")
                args = self.args(")")
                fn = _CALLS[value]
                return lambda env: fn(*(a(env) for a in args))
            if value == "Util.dateIntsBetween":
                raise SelSyntaxError("Util.dateIntsBetween must be called", pos)
            return lambda env: _lookup(env, value)
        raise SelSyntaxError(f"unexpected {value or 'end'!r}", pos)

    def args(self, close: str) -> list[Evaluator]:
        items: list[Evaluator] = []
        if self.peek()[1] == close:
            self.take(close)
            return items
        while True:
            items.append(self.expr())
            if self.peek()[1] == ",":
                self.take(",")
                continue
            self.take(close)
            return items


def _lookup(env: Mapping[str, Any], name: str) -> Any:
    if name not in env:
        raise Unresolved(name)
    return env[name]


def _binop(op: str, left: Evaluator, right: Evaluator) -> Evaluator:
    def plus(a: Any, b: Any) -> Any:
        return f"{_text(a)}{_text(b)}" if isinstance(a, str) or isinstance(b, str) else a + b

    def divide(a: Any, b: Any) -> Any:
        return int(a / b) if isinstance(a, int) and isinstance(b, int) else a / b

    table: dict[str, Callable[[Any, Any], Any]] = {
        "+": plus,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": divide,
        "%": lambda a, b: a % b,
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    if op == "&&":
        return lambda env: bool(left(env)) and bool(right(env))
    if op == "||":
        return lambda env: bool(left(env)) or bool(right(env))
    fn = table[op]
    return lambda env: fn(left(env), right(env))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse(text: str) -> Evaluator:
    """An evaluator for ``text``; raises SelSyntaxError (with position) outside the subset."""
    parser = _Parser(text)
    if parser.peek()[0] == "end":
        raise SelSyntaxError("empty expression", 0)
    result = parser.expr()
    tail = parser.peek()
    if tail[0] != "end":
        raise SelSyntaxError(f"unexpected {tail[1]!r}", tail[2])
    return result


def in_subset(text: str) -> bool:
    try:
        parse(text)
    except SelSyntaxError:
        return False
    return True


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
    """Evaluate ``text`` against ``env``; raises SelSyntaxError or Unresolved."""
    try:
        return parse(text)(env)
    except (TypeError, ZeroDivisionError, ValueError) as exc:
        if isinstance(exc, SelSyntaxError):
            raise
        raise Unresolved(f"cannot evaluate {text!r}: {exc}") from None
