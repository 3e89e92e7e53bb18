"""The legacy polling engine: stateless workers polling a queue table, reloading the run at every poll.

Start at :class:`LegacyEngine` (replay, virtual time) and :mod:`engines.legacy.live` (real clock,
live runtimes, a SQLite file); docs/LEGACY.md explains the schedule and what the engine counts.
"""

from __future__ import annotations

from engines.legacy.config import LegacyConfig
from engines.legacy.engine import LegacyEngine

__all__ = ["LegacyConfig", "LegacyEngine"]
