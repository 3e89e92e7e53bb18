"""Fault hooks for the store: make a chosen round trip fail the way SQLite really fails.

A hook is called before every round trip with ``(kind, operation)`` (kind is ``read``, ``write`` or
``commit``). It raises a real ``sqlite3`` exception, which the store translates into its typed errors
exactly as it would an organic failure, so tests exercise the real error path and the rollback.
Hooks are plain objects passed to the store: no global switches.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

__all__ = ["FailNthRoundTrip", "FaultHook"]


class FaultHook:
    """Base hook: never fails. Subclass and override ``before``."""

    def before(self, kind: str, operation: str) -> None:
        """Called before each round trip; raise a ``sqlite3.Error`` to inject a failure."""


DISK_FULL = "database or disk is full"
LOCKED = "database is locked"


@dataclass(slots=True)
class FailNthRoundTrip(FaultHook):
    """Raise ``sqlite3.OperationalError(message)`` on the ``n``-th round trip of ``kind`` (1-based),
    then (unless ``repeat``) never again. ``operations`` narrows it to named store methods."""

    n: int
    kind: str = "write"
    message: str = DISK_FULL
    repeat: bool = False
    operations: frozenset[str] = field(default_factory=frozenset)
    seen: int = 0
    fired: int = 0

    def before(self, kind: str, operation: str) -> None:
        if kind != self.kind or (self.operations and operation not in self.operations):
            return
        self.seen += 1
        if self.seen == self.n or (self.repeat and self.seen > self.n):
            self.fired += 1
            raise sqlite3.OperationalError(self.message)
