"""Opening a results database while a ``shadow run`` may be writing it.

The writer holds the DuckDB file only while it commits a batch (open, insert, commit, close per flush), so
a reader that finds it locked waits a moment instead of failing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["LOCK_WAIT", "connect", "is_lock_error"]

LOCK_WAIT = 15.0
"""Seconds a reader (or the gate storing verdicts) waits for a running ``shadow run`` to finish committing a
batch. The writer holds the file only while it commits (open, insert, commit, close per flush), so a lock
is brief; ``SHADOW_LOCK_WAIT`` overrides."""


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and (
        "conflicting" in text or "could not set" in text or "database is locked" in text
    )


def connect(
    path: str | Path, *, read_only: bool, config: Mapping[str, Any] | None = None, wait: float | None = None
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` that waits (up to ``wait`` / ``LOCK_WAIT`` s) while another process holds the file's
    lock, as a running ``shadow run`` does for the moment of each commit; other errors raise at once."""
    if wait is None:
        try:
            wait = float(os.environ.get("SHADOW_LOCK_WAIT", LOCK_WAIT))
        except ValueError:
            wait = LOCK_WAIT
    deadline = time.monotonic() + max(0.0, wait)
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=dict(config or {}))
        except duckdb.Error as exc:
            if not is_lock_error(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
