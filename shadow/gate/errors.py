"""Typed errors of the gate: every message says what was wrong, where, and what to do.

A ``GateError`` is a harness error (exit code 4): the gate could not judge at all, as opposed to a
verdict it reached. ``RolloutRefused`` is different: the request was understood and refused on purpose.
"""

from __future__ import annotations

__all__ = ["CohortFileError", "GateError", "ResultsDatabaseError", "RolloutRefused"]


class GateError(Exception):
    """The gate could not reach a verdict (bad input, unreadable database)."""

    def __init__(self, what: str, *, where: str = "", hint: str = "") -> None:
        self.what = what
        self.where = where
        self.hint = hint
        parts = [f"{where}: {what}" if where else what]
        if hint:
            parts.append(hint)
        super().__init__(" - ".join(parts))


class CohortFileError(GateError):
    """The cohorts TOML file is missing, not TOML, or does not follow the cohort format."""


class ResultsDatabaseError(GateError):
    """The results database is missing, unreadable, or lacks a table or column the gate reads."""


class RolloutRefused(GateError):
    """A rollout change was refused on purpose (no passing verdict, illegal transition)."""
