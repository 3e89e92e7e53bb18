"""Typed store errors: what failed, on which database, whether retrying may help, what to do.

All are :class:`engines.api.EngineError` so an engine can let them surface as a replay error.
``retryable`` follows the engine-wide meaning: True when running the same call again may succeed
(a locked database), False when it cannot (a corrupt file, a fenced-out writer).
"""

from __future__ import annotations

from engines.api import EngineError

__all__ = [
    "StaleGenerationError",
    "StoreConflictError",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreIntegrityError",
    "StoreLockedError",
    "StoreSchemaError",
]


class StoreError(EngineError):
    """Base of every store failure. ``database`` is the file path (or ``:memory:``)."""

    def __init__(self, message: str, *, database: str = ":memory:", retryable: bool = False) -> None:
        self.database = database
        super().__init__(f"store {database}: {message}", retryable=retryable)


class StoreLockedError(StoreError):
    """Another connection holds the write lock past the busy timeout. Retry after a short wait."""

    def __init__(self, message: str, *, database: str = ":memory:") -> None:
        super().__init__(message, database=database, retryable=True)


class StoreFullError(StoreError):
    """The disk (or the database's size limit) is full; the transaction was rolled back."""


class StoreCorruptError(StoreError):
    """The file is not a usable SQLite database (truncated, overwritten, not SQLite at all)."""


class StoreSchemaError(StoreError):
    """The database's schema version is unknown to this code (newer, or a broken migration)."""


class StoreIntegrityError(StoreError):
    """A write broke a key or constraint (e.g. creating a run key that already exists)."""


class StoreConflictError(StoreError):
    """An optimistic write lost: the row's version moved since it was read. Reload and redo."""

    def __init__(self, message: str, *, database: str = ":memory:") -> None:
        super().__init__(message, database=database, retryable=True)


class StaleGenerationError(StoreError):
    """A write carried a lease generation older than the group's current one (fencing).

    The writer lost its group lease to another node; it must stop acting for that group."""

    def __init__(self, group_id: int, held: int, current: int | None, *, database: str = ":memory:") -> None:
        self.group_id = group_id
        self.held = held
        self.current = current
        now = "no lease" if current is None else f"generation {current}"
        super().__init__(
            f"write fenced out: group {group_id} is at {now}, the writer holds generation {held}; "
            "the writer lost its lease and must stop acting for this group",
            database=database,
        )
