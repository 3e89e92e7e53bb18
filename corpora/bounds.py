"""The range of every number in a ``shadow-trace/1`` trace.

A replay runs on a float second clock (epoch seconds), hands integers to runtimes as Java ``long``
values would be, and derives calendar dates from trigger times. So every number a trace carries is
bounded, and a value outside its range is a located :class:`~corpora.errors.TraceError` that
quarantines that one trace (the rest of the corpus goes on):

=====================================  ==========================================  ================
field                                  range                                       code
=====================================  ==========================================  ================
``trigger_time``, observed             0 <= t < 253,370,764,800 (1970-01-01 to     ``bad_duration``
``start_time`` / ``end_time``          9999-01-01 UTC, epoch seconds)
attempt ``duration``                   0 <= d <= 315,576,000 s (10 years)          ``bad_duration``
step / workflow ``timeout`` (number)   0 < t <= 315,576,000 s                      ``bad_duration``
backoff ``*_in_secs`` (number)         0 <= s <= 315,576,000 s                     ``bad_value``
backoff ``*_exponent`` (number)        0 <= e <= 2**63 - 1                         ``bad_value``
``*_retry_limit`` (number)             0 <= n <= 99 (Maestro's MAX_RETRY_LIMIT)    ``bad_value``
``*concurrency``                       1 <= n <= 2**63 - 1                         ``bad_value``
observed ``attempts``                  0 <= n <= 2**63 - 1                         ``out_of_range``
any other integer, also inside         -2**63 <= n <= 2**63 - 1 (int64)            ``out_of_range``
params and outputs
runs of one trace (validator)          each within 366 days of the first run       ``bad_duration``
expression, transition ``condition``   at most 4,096 characters (validator)        ``bad_param``
any float                              finite (no NaN, Infinity)                   ``schema`` /
                                                                                   ``bad_duration``
=====================================  ==========================================  ================

Timestamps stop a year short of the calendar's end so that date arithmetic on them (``RUN_DATE`` plus
a day, the Pacific time variants) stays inside Python's ``datetime``; at 2.5e11 s a float still
resolves 31 microseconds, well under the millisecond the engines use. Ten years bounds one attempt
or one timeout far above anything production runs (Maestro caps timeouts at 120 days; the engines
model a larger timeout as Maestro does, as a failed step) while keeping sums of many of them exact
to the millisecond.

The codec checks a bound on the raw JSON number *before* any float conversion, so an integer such
as ``10**400`` is an error at its JSON path and never an ``OverflowError``; integers too long for
Python to parse at all (more than 4,300 digits) are read as :class:`OversizedInt`. The validator
applies the same bounds to traces built in Python (which skip the codec). The JSON Schema
(:mod:`corpora.schema`) carries the same ranges as ``minimum`` / ``maximum``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from corpora import model
from corpora.durations import parse_duration_seconds
from corpora.errors import TraceError, TraceLocation

__all__ = [
    "CONCURRENCY",
    "DURATION",
    "DURATION_MAX_SECONDS",
    "FIELD_BOUNDS",
    "INT64",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_EXPRESSION_CHARS",
    "MAX_RETRY_LIMIT",
    "MAX_TRIGGER_SPAN_SECONDS",
    "RETRY_LIMIT",
    "TIMEOUT",
    "TIMESTAMP",
    "TIMESTAMP_MAX_SECONDS",
    "Bound",
    "OversizedInt",
    "describe_number",
    "is_number",
    "parse_int",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
DURATION_MAX_SECONDS = 315_576_000  # 10 years of 365.25 days
TIMESTAMP_MAX_SECONDS = 253_370_764_800  # 9999-01-01T00:00:00Z, exclusive
# All runs of one trace are triggered within a year: the actor engine simulates idle time between
# triggers (about 6 ms per idle day), so runs centuries apart would hang a replay for hours.
MAX_TRIGGER_SPAN_SECONDS = 366 * 86_400
# A param expression or transition condition is at most 4,096 characters: engines tokenize number
# literals with int(), which refuses more than 4,300 digits (a bare ValueError, found by the fuzz).
MAX_EXPRESSION_CHARS = 4096
# Maestro's Constants.MAX_RETRY_LIMIT: a definition with a larger literal limit is rejected.
MAX_RETRY_LIMIT = 99
_MAX_PARSED_DIGITS = 4300  # CPython's default int <-> str digit limit


class OversizedInt(int):
    """A JSON integer too long for ``int()`` to parse: ``±10**4300`` standing in for it, with its
    real number of ``digits``. Every bound rejects it, and :func:`describe_number` names its length."""

    digits: int

    def __new__(cls, text: str) -> OversizedInt:
        negative = text.startswith("-")
        obj = super().__new__(cls, (-1 if negative else 1) * 10**_MAX_PARSED_DIGITS)
        obj.digits = len(text) - negative
        return obj

    def __repr__(self) -> str:
        return describe_number(self)

    __str__ = __repr__


def parse_int(text: str) -> int:
    """``json.loads(..., parse_int=parse_int)``: ``int(text)``, or an :class:`OversizedInt` when
    ``text`` has more digits than Python converts."""
    if len(text) > _MAX_PARSED_DIGITS:
        return OversizedInt(text)
    return int(text)


def is_number(value: object) -> bool:
    """An int or float and not a bool (JSON ``true`` is not the number 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def describe_number(value: int | float) -> str:
    """A short, always-printable spelling: a 400-digit integer is shown by its first digits and length."""
    if isinstance(value, OversizedInt):
        return f"{'-' if value < 0 else ''}<integer of {value.digits} digits>"
    if isinstance(value, int) and value.bit_length() > 64:
        text = str(abs(value))
        return f"{'-' if value < 0 else ''}{text[:6]}...<{len(text)} digits>"
    return repr(value)


@dataclass(frozen=True, slots=True)
class Bound:
    """``lo <= value <= hi`` (``<`` on an ``*_open`` side) for a finite number; ``what`` names the value
    in messages, ``code`` is the :class:`TraceError` code, ``hint`` says what to do."""

    what: str
    lo: int | float
    hi: int | float
    code: str
    hint: str
    lo_open: bool = False
    hi_open: bool = False
    unit: str = ""

    def contains(self, value: int | float) -> bool:
        """Exact for any int (int/float comparisons never convert): never raises ``OverflowError``."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if value < self.lo or (self.lo_open and value == self.lo):
            return False
        return not (value > self.hi or (self.hi_open and value == self.hi))

    @property
    def range_text(self) -> str:
        low = f"{self.lo:,} <{'' if self.lo_open else '='}"
        high = f"<{'' if self.hi_open else '='} {self.hi:,}"
        return f"{low} x {high}{self.unit}"

    def error(self, value: int | float, path: str, trace_id: str | None = None) -> TraceError:
        shown = describe_number(value)
        problem = (
            "is not finite" if isinstance(value, float) and not math.isfinite(value) else "is out of range"
        )
        return TraceError(
            self.code,
            f"{self.what} {shown} {problem} (allowed: {self.range_text})",
            location=TraceLocation(json_path=path),
            hint=self.hint,
            trace_id=trace_id,
        )

    def check(self, value: object, path: str, trace_id: str | None = None) -> None:
        """Raise :meth:`error` when ``value`` is a number outside the bound; strings and None pass."""
        if is_number(value) and not self.contains(value):  # type: ignore[arg-type]
            raise self.error(value, path, trace_id)  # type: ignore[arg-type]

    def check_duration_text(self, value: object, path: str, trace_id: str | None = None) -> None:
        """For a literal duration string (``"2h"``, no ``$param``): the seconds it reads as must be in the bound.
        Text that is not a duration passes (the engines fail the step at run time, as Maestro does)."""
        if not isinstance(value, str) or "$" in value:
            return
        shown = repr(value if len(value) <= 40 else value[:37] + "...")
        try:
            seconds = parse_duration_seconds(value)
        except ValueError as exc:
            if "too large" not in str(exc):
                return
            problem = "is too large to be a number of seconds"
        else:
            if self.contains(seconds):
                return
            problem = f"reads as {describe_number(seconds)} s, out of range"
        raise TraceError(
            self.code,
            f"{self.what} {shown} {problem} (allowed: {self.range_text})",
            location=TraceLocation(json_path=path),
            hint=self.hint,
            trace_id=trace_id,
        )


TIMESTAMP = Bound(
    "timestamp",
    0,
    TIMESTAMP_MAX_SECONDS,
    "bad_duration",
    "use epoch seconds from 0 (1970-01-01) up to 9999-01-01 UTC",
    hi_open=True,
    unit=" s",
)
DURATION = Bound(
    "duration",
    0,
    DURATION_MAX_SECONDS,
    "bad_duration",
    "durations are non-negative finite seconds, at most 10 years",
    unit=" s",
)
TIMEOUT = Bound(
    "timeout",
    0,
    DURATION_MAX_SECONDS,
    "bad_duration",
    "use seconds > 0 and at most 10 years, a duration string like '2h', or leave it out",
    lo_open=True,
    unit=" s",
)
BACKOFF_SECONDS = Bound(
    "backoff seconds",
    0,
    DURATION_MAX_SECONDS,
    "bad_value",
    "backoff values are non-negative seconds, at most 10 years, or a '$param' / duration string",
    unit=" s",
)
BACKOFF_EXPONENT = Bound(
    "backoff exponent",
    0,
    INT64_MAX,
    "bad_value",
    "backoff values are non-negative int64 numbers",
)
RETRY_LIMIT = Bound(
    "retry limit",
    0,
    MAX_RETRY_LIMIT,
    "bad_value",
    f"use a limit between 0 and {MAX_RETRY_LIMIT} or a '$param' string",
)
CONCURRENCY = Bound(
    "concurrency",
    1,
    INT64_MAX,
    "bad_value",
    "use a positive int64 integer or leave it out",
)
COUNT = Bound("count", 0, INT64_MAX, "out_of_range", "counts are non-negative int64 integers")
INT64 = Bound(
    "integer",
    INT64_MIN,
    INT64_MAX,
    "out_of_range",
    "integers must fit in a signed 64-bit long (as in Maestro); write larger values as strings",
)

FIELD_BOUNDS: dict[tuple[type, str], Bound] = {
    (model.Run, "trigger_time"): TIMESTAMP,
    (model.ObservedRun, "start_time"): TIMESTAMP,
    (model.ObservedRun, "end_time"): TIMESTAMP,
    (model.ObservedStep, "start_time"): TIMESTAMP,
    (model.ObservedStep, "end_time"): TIMESTAMP,
    (model.ObservedStep, "attempts"): COUNT,
    (model.Redaction, "values"): COUNT,
    (model.RecordedAttempt, "duration"): DURATION,
    (model.RecordedAttempt, "attempt"): INT64,
    (model.Step, "timeout"): TIMEOUT,
    (model.WorkflowDefinition, "timeout"): TIMEOUT,
    (model.WorkflowDefinition, "step_concurrency"): CONCURRENCY,
    (model.RunStrategy, "workflow_concurrency"): CONCURRENCY,
    (model.Foreach, "concurrency"): CONCURRENCY,
    **{(model.RetryPolicy, f"{cls}_retry_limit"): RETRY_LIMIT for cls in ("error", "platform", "timeout")},
    **{
        (model.Backoff, f"{cls}_retry_backoff_in_secs"): BACKOFF_SECONDS
        for cls in ("error", "platform", "timeout")
    },
    **{
        (model.Backoff, f"{cls}_retry_limit_in_secs"): BACKOFF_SECONDS
        for cls in ("error", "platform", "timeout")
    },
    **{
        (model.Backoff, f"{cls}_retry_exponent"): BACKOFF_EXPONENT for cls in ("error", "platform", "timeout")
    },
}
"""The bound of every numeric field of the model (a test checks that none is missing)."""
