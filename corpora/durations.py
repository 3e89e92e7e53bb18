"""Duration strings as Maestro reads them: ``"1d 2h"``, ``"5 min"``, ``"30s"``, ``"100ms"`` or a bare
integer (seconds), summed and truncated to whole seconds. The validator bounds literal ones
(:mod:`corpora.validate`); the engines read them through :mod:`engines.core.durations`, which adds
``$param`` interpolation.
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration_seconds"]

_UNIT_MS = {
    "ms": 1, "milli": 1, "millis": 1, "millisecond": 1, "milliseconds": 1,
    "s": 1000, "sec": 1000, "secs": 1000, "second": 1000, "seconds": 1000,
    "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
    "d": 86_400_000, "day": 86_400_000, "days": 86_400_000,
}  # fmt: skip
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*,?")


def parse_duration_seconds(text: str) -> int:
    """``"1d 2h"``, ``"5 min"``, ``"30s"``, ``"100ms"`` or a bare integer (seconds) -> whole seconds.

    Raises ValueError for text that is not a duration, or one too large to be a number of seconds."""
    stripped = text.strip()
    if re.fullmatch(r"[+-]?\d+", stripped):
        return int(stripped)
    total_ms = 0.0
    pos = 0
    if not stripped:
        raise ValueError("empty duration")
    while pos < len(stripped):
        m = _PART.match(stripped, pos)
        if m is None or m.group(2).lower() not in _UNIT_MS:
            raise ValueError(f"not a duration: {text!r} (use e.g. '30s', '5 min', '2h', '1d')")
        total_ms += float(m.group(1)) * _UNIT_MS[m.group(2).lower()]
        pos = m.end()
    if not math.isfinite(total_ms):
        raise ValueError(f"duration {text[:40]!r}... is too large to be a number of seconds")
    return int(total_ms // 1000)
