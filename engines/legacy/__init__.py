"""The legacy polling engine: stateless workers polling a queue table, reloading the run at every poll.

Start at :class:`LegacyEngine` (replay, virtual time), :func:`run_live` (real clock, live runtimes,
a SQLite file) and :func:`capture_traces` (a live store as shadow-trace/1); docs/LEGACY.md explains
the schedule, the cycle and what the engine counts.
"""

from __future__ import annotations

from engines.legacy.capture import CaptureError, capture_traces
from engines.legacy.config import LegacyConfig
from engines.legacy.engine import COUNTERS, LegacyEngine
from engines.legacy.live import LiveResult, live_trace, run_live, run_live_async

__all__ = [
    "COUNTERS",
    "CaptureError",
    "LegacyConfig",
    "LegacyEngine",
    "LiveResult",
    "capture_traces",
    "live_trace",
    "run_live",
    "run_live_async",
]
