"""Duration strings and ``$param`` interpolation, as Maestro reads retry and timeout values (§1.2, §2.6).

A string value is first interpolated against workflow params (``$name``, ``${name}``, ``$$`` for a
literal ``$``), then read as an integer or, where a duration is allowed, as ``1d 2h 5 min 30s 100ms``
(summed, truncated to whole seconds, as Maestro reads milliseconds and truncates).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from corpora.durations import parse_duration_seconds
from engines.core.errors import ParamError
from engines.core.expr import Value, format_value

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "MAX_TIMEOUT_SECONDS",
    "interpolate",
    "parse_duration_seconds",
    "resolve_timeout_seconds",
]

DEFAULT_TIMEOUT_SECONDS = 10 * 24 * 3600.0
MAX_TIMEOUT_SECONDS = 120 * 24 * 3600.0

_INTERP = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(text: str, params: Mapping[str, Value]) -> str:
    """Substitute ``$name`` / ``${name}`` from ``params``; ``$$`` is a literal ``$``.

    Raises :class:`ParamError` for a name that is not defined (Maestro fails the evaluation too)."""
    if "$" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        if name not in params:
            raise ParamError(f"unknown param in {text!r}", param=name)
        return format_value(params[name])

    return _INTERP.sub(sub, text)


_CONST_TIMEOUTS: dict[str, float] = {}


def resolve_timeout_seconds(raw: int | float | str | None, params: Mapping[str, Value]) -> float:
    """A step or workflow ``timeout`` in seconds: a number is seconds; a string is interpolated with
    workflow params then read as seconds or a duration. Must be 0 < t <= 120 days; unset is 10 days.

    Raises :class:`ParamError` (the step becomes INTERNALLY_FAILED) for a bad value, as Maestro does."""
    if raw is None:
        return DEFAULT_TIMEOUT_SECONDS
    if isinstance(raw, bool):
        raise ParamError(f"timeout must be a number or a duration string, got {raw!r}", param="timeout")
    if isinstance(raw, str):
        if "$" not in raw:  # reads no param: parse once
            hit = _CONST_TIMEOUTS.get(raw)
            if hit is not None:
                return hit
        try:
            seconds: float = float(parse_duration_seconds(interpolate(raw, params)))
        except ValueError as exc:
            raise ParamError(str(exc), param="timeout") from exc
        if "$" not in raw and 0 < seconds <= MAX_TIMEOUT_SECONDS:
            if len(_CONST_TIMEOUTS) >= 4096:
                _CONST_TIMEOUTS.clear()
            _CONST_TIMEOUTS[raw] = seconds
    else:
        seconds = float(raw)
    if not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise ParamError(f"timeout {seconds:g} s is outside 0 < t <= 120 days", param="timeout")
    return seconds
