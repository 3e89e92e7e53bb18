"""The safe expression language: every operator, every call, and its typed errors."""

from __future__ import annotations

import pytest

from engines.core.errors import ExpressionError
from engines.core.expr import evaluate, format_value, parse

NAMES = {"i": 7, "s": "ab", "b": True, "f": 1.5, "xs": [1, 2, 3], "n": None, "job1__out": 4}


def ev(src: str) -> object:
    def resolve(name: str) -> object:
        if name not in NAMES:
            raise KeyError(name)
        return NAMES[name]

    return evaluate(src, resolve)  # type: ignore[arg-type]


class TestLiterals:
    @pytest.mark.parametrize(
        ("src", "value"),
        [
            ("42", 42), ("1.25", 1.25), ("'a b'", "a b"), ('"dq"', "dq"), ("true", True), ("false", False),
            ("null", None), ("[1, 'x', true]", [1, "x", True]), ("[]", []), ("'it\\'s'", "it's"), ("10L", 10),
        ],
    )  # fmt: skip
    def test_literal(self, src: str, value: object) -> None:
        """Literals evaluate to their Python value."""
        assert ev(src) == value

    def test_statement_form(self) -> None:
        """A leading 'return' and a trailing ';' are accepted (SEL statement form)."""
        assert ev("return i + 1;") == 8


class TestOperators:
    @pytest.mark.parametrize(
        ("src", "value"),
        [
            ("i + 1", 8), ("i - 10", -3), ("i * 2", 14), ("i / 2", 3), ("-7 / 2", -3), ("i % 3", 1), ("-7 % 3", -1),
            ("f * 2", 3.0), ("7.0 / 2", 3.5), ("s + i", "ab7"), ("s + b", "abtrue"), ("s + n", "abnull"),
            ("i == 7", True), ("i != 7", False), ("i < 8", True), ("i <= 7", True), ("i > 7", False), ("i >= 8", False),
            ("'a' < 'b'", True), ("s == 'ab'", True), ("b && i > 1", True), ("!b || i == 7", True),
            ("b ? 'y' : 'n'", "y"), ("!b ? 1 : i > 3 ? 2 : 3", 2), ("-(i + 1)", -8), ("(1 + 2) * 3", 9),
            ("1 + 2 * 3", 7), ("job1__out + 1", 5), ("1 == true", False),
        ],
    )  # fmt: skip
    def test_operator(self, src: str, value: object) -> None:
        """Each operator follows Java semantics (integer division truncates, % keeps the dividend's sign)."""
        assert ev(src) == value

    def test_short_circuit(self) -> None:
        """&& and || do not evaluate their right side when the left decides."""
        assert ev("false && unknown_name") is False
        assert ev("true || unknown_name") is True


class TestCalls:
    @pytest.mark.parametrize(
        ("src", "value"),
        [
            ("len(xs)", 3), ("len(s)", 2), ("min(3, i)", 3), ("max(3, i)", 7), ("abs(-4)", 4), ("abs(-1.5)", 1.5),
            ("range(0, 4)", [0, 1, 2, 3]), ("range(10, 0, -5)", [10, 5]),
            ("Util.dateIntsBetween(20200228, 20200302, 1)", [20200228, 20200229, 20200301]),
            ("Util.dateIntsBetween(20200101, 20200110, 4)", [20200101, 20200105, 20200109]),
        ],
    )  # fmt: skip
    def test_call(self, src: str, value: object) -> None:
        """Whitelisted calls compute their documented result."""
        assert ev(src) == value


class TestErrors:
    @pytest.mark.parametrize(
        ("src", "position"),
        [
            ("1 +", 3),
            ("foo(1)", 0),
            ("a.b", 0),
            ("1 2", 2),
            ("$x", 0),
            ("(1", 2),
            ("", 0),
            ("i ? 1", 5),
            ("x = 1", 2),
        ],
    )
    def test_parse_error_position(self, src: str, position: int) -> None:
        """Malformed expressions raise ExpressionError naming the position."""
        with pytest.raises(ExpressionError) as info:
            parse(src)
        assert info.value.position == position

    @pytest.mark.parametrize(
        "src",
        ["s - 1", "!i", "i && b", "b < 1", "-s", "i / 0", "i % 0", "len(i)", "range(0, 1, 0)", "min(s, 1)",
         "i ? 1 : 2", "Util.dateIntsBetween(20201301, 20201302, 1)", "range(1)", "missing + 1"],
    )  # fmt: skip
    def test_evaluation_error(self, src: str) -> None:
        """Type errors, division by zero, bad arguments and unknown names are ExpressionErrors or KeyErrors."""
        with pytest.raises((ExpressionError, KeyError)):
            ev(src)

    def test_no_eval(self) -> None:
        """Python syntax that is not in the subset is rejected, never executed."""
        for src in ["__import__('os')", "[x for x in xs]", "lambda: 1", "i ** 2", "xs[0]"]:
            with pytest.raises(ExpressionError):
                ev(src)


class TestParsing:
    def test_names_and_cache(self) -> None:
        """A parsed expression lists the names it reads, and parsing is cached per source."""
        e = parse("a + b * job__x")
        assert e.names == frozenset({"a", "b", "job__x"})
        assert parse("a + b * job__x") is e

    def test_format_value(self) -> None:
        """Values print like Java string concatenation."""
        assert [format_value(v) for v in (None, True, 2.0, 3, [1, "a"])] == [
            "null",
            "true",
            "2.0",
            "3",
            "[1, a]",
        ]
