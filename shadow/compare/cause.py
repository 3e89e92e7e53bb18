"""The cause of a divergence: what changed, independent of where.

A signature (``workflow_type|step_type|path_pattern|kind``) says *where* a difference showed; one
candidate bug touches many steps and so makes many signatures (a new output field on every HTTP step
was 44 signatures of "1 trace" each). A cause key says *what* changed, so that one bug is one group:

    kind | field | change

- ``field``: where inside the record, without the step and the attempt number: ``outputs.region``,
  ``params.table``, ``config.timeout``, ``status``; nested keys are kept and list indices become ``[*]``.
- ``change``: the shape of the change: ``added:str`` / ``removed:int`` for a key only one side has,
  ``SUCCEEDED->USER_FAILED`` for a status, ``fewer`` / ``more`` for attempt counts, and for a changed
  value a pattern: ``upper-cased``, ``lower-cased``, ``suffix-added``, ``prefix-added``, ``truncated``,
  ``increased``, ``decreased``, ``true->false``, ``str->int`` (type change), ``text`` (other text),
  ``structure`` (lists and objects), ``value`` (anything else).

The workflow types, step types and paths a cause touched are its *members* (results table ``causes``).
"""

from __future__ import annotations

import re
from typing import Any

from results.rows import DivergenceKind

__all__ = ["cause_key", "describe_cause", "field_of", "split_cause"]

_ATTEMPT = re.compile(r"^attempts\[[^\]]*\]\.?")
_INDEX = re.compile(r"\[\d+\]")
_STATUS_KINDS = frozenset({DivergenceKind.FINAL_STATUS, DivergenceKind.STEP_STATUS})
_WHOLE = {  # kinds whose cause is the kind itself: nothing finer to say
    DivergenceKind.MISSING_STEP: "missing",
    DivergenceKind.EXTRA_STEP: "extra",
    DivergenceKind.UNRECORDED_ATTEMPT: "unrecorded",
    DivergenceKind.CAUSALITY_VIOLATION: "out-of-order",
}


def field_of(kind: DivergenceKind, detail: str) -> str:
    """The record field a divergence is about, without step and attempt: ``attempts[2].outputs.region``
    -> ``outputs.region``; run-level details (``status``, ``workflow_params.x``) are kept as they are."""
    if kind in _WHOLE or kind is DivergenceKind.ENGINE_ERROR:
        return ""
    if kind is DivergenceKind.ATTEMPT_COUNT:
        return "attempts"
    if kind is DivergenceKind.FINAL_STATUS:
        return "status"
    if kind is DivergenceKind.INVARIANT_VIOLATION:  # "retry_started_early attempts[2]": the rule
        return detail.split(" ", 1)[0]
    return _INDEX.sub("[*]", _ATTEMPT.sub("", detail))


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null"


def _pattern(b: Any, o: Any) -> str:
    """How a changed value changed, as a pattern that does not depend on the values themselves."""
    tb, to = _type(b), _type(o)
    if tb != to:
        return f"{tb}->{to}"
    if tb == "bool":
        return f"{str(b).lower()}->{str(o).lower()}"
    if tb == "number":
        return "increased" if o > b else "decreased"
    if tb == "str":
        if o == b.upper():
            return "upper-cased"
        if o == b.lower():
            return "lower-cased"
        if o.startswith(b):
            return "suffix-added"
        if o.endswith(b):
            return "prefix-added"
        if b.startswith(o) or b.endswith(o):
            return "truncated"
        return "text"
    if tb in ("list", "object"):
        return "structure"
    return "value"


def cause_key(kind: DivergenceKind, detail: str, baseline: Any, other: Any, *, missing: object = None) -> str:
    """``kind|field|change`` of one divergence. ``missing`` is the sentinel the caller uses for "this side
    has no such key" (distinct from a JSON null)."""
    field = field_of(kind, detail)
    if kind in _WHOLE:
        change = _WHOLE[kind]
    elif kind is DivergenceKind.ENGINE_ERROR:
        change = f"error:{detail}"  # which role raised
    elif kind is DivergenceKind.STUCK_RUN:
        change = "stuck" if other else "unstuck"
    elif kind is DivergenceKind.ATTEMPT_COUNT:
        change = "fewer" if (other or 0) < (baseline or 0) else "more"
    elif baseline is missing:
        change = f"added:{_type(other)}"
    elif other is missing:
        change = f"removed:{_type(baseline)}"
    elif kind in _STATUS_KINDS:
        change = f"{baseline}->{other}"
    else:
        change = _pattern(baseline, other)
    return f"{kind.value}|{field}|{change}"


def split_cause(key: str) -> tuple[str, str, str]:
    """``(kind, field, change)`` of a cause key."""
    kind, _, rest = key.partition("|")
    field, _, change = rest.partition("|")
    return kind, field, change


def describe_cause(key: str) -> str:
    """One line a person reads: ``outputs.region added (str)``, ``params.table upper-cased``,
    ``step status SUCCEEDED -> USER_FAILED``, ``fewer attempts``."""
    kind, field, change = split_cause(key)
    words = {"final_status": "run status", "step_status": f"step {field or 'status'}"}
    if kind in words:
        before, _, after = change.partition("->")
        return f"{words[kind]} {before} -> {after}"
    if kind == DivergenceKind.ATTEMPT_COUNT:
        return f"{change} attempts than the baseline"
    if kind == DivergenceKind.ENGINE_ERROR:
        return f"engine error ({change.removeprefix('error:')})"
    if kind == DivergenceKind.INVARIANT_VIOLATION:
        return f"invariant broken: {field.replace('_', ' ')} ({change})"
    if kind == DivergenceKind.STUCK_RUN:
        return (
            "run stuck (never finished)"
            if change == "stuck"
            else "run finished where the baseline's was stuck"
        )
    if kind in {k.value for k in _WHOLE}:
        return {
            "missing_step": "step never ran",
            "extra_step": "step ran that the baseline did not run",
            "unrecorded_attempt": "attempt the trace never recorded",
            "causality_violation": "step started before its predecessor ended",
        }[kind]
    what, _, of_type = change.partition(":")
    if what in ("added", "removed"):
        return f"{field} {what} ({of_type})"
    return f"{field} {change.replace('->', ' -> ')}"
