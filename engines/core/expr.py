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

import re
from dataclasses import dataclass
from functools import lru_cache

from engines.core._expr_ops import Node, Resolver, Value, binary, call, format_value, is_num, type_name
from engines.core.errors import ExpressionError

__all__ = ["Expression", "Resolver", "Value", "evaluate", "format_value", "parse"]


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


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression: ``source``, the ``names`` it reads, and an evaluator over a resolver."""

    source: str
    names: frozenset[str]
    _root: Node

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

    def program(self) -> Node:
        if self.peek().kind == "name" and self.peek().text == "return":
            self.take()
        node = self.ternary()
        if self.at_op(";"):
            self.take()
        if self.peek().kind != "end":
            raise self.fail(f"unexpected {self.peek().text!r} after the expression")
        return node

    def ternary(self) -> Node:
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
                    f"condition of ?: must be boolean, got {type_name(c)}", source=src, position=qtok.pos
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

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        ops = self._LEVELS[level]
        while self.at_op(*ops):
            tok = self.take()
            right = self.binary(level + 1)
            left = binary(tok.text, left, right, self.src, tok.pos)
        return left

    def unary(self) -> Node:
        if self.at_op("-", "!"):
            tok = self.take()
            operand = self.unary()
            src = self.src

            def node(r: Resolver) -> Value:
                v = operand(r)
                if tok.text == "-":
                    if not is_num(v):
                        raise ExpressionError(f"cannot negate a {type_name(v)}", source=src, position=tok.pos)
                    return -v  # type: ignore[operator]
                if not isinstance(v, bool):
                    raise ExpressionError(
                        f"'!' needs a boolean, got {type_name(v)}", source=src, position=tok.pos
                    )
                return not v

            return node
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind in ("num", "str"):
            value = tok.value
            return lambda r: value
        if tok.kind == "op" and tok.text == "(":
            inner = self.ternary()
            self.expect(")")
            return inner
        if tok.kind == "op" and tok.text == "[":
            items: list[Node] = []
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

    def call(self, fn: _Tok) -> Node:
        if fn.text not in _CALLS:
            raise self.fail(f"unknown function {fn.text!r}; allowed: {', '.join(sorted(_CALLS))}", fn)
        self.expect("(")
        args: list[Node] = []
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
        impl = call(fn.text, self.src, fn.pos)
        return lambda r: impl([a(r) for a in args])


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
