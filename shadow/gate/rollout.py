"""The rollout lifecycle of each cohort, kept with its history in the results database.

shadow -> canary (a percentage, raised step by step) -> cutover, and rolled_back from canary or
cutover. The state of a cohort is the last row of ``rollout_history`` for it (no row: shadow).
Every move forward needs a PASS verdict newer than the cohort's last change: evidence gathered
before the last step cannot vouch for the next one. Rolling back needs no verdict: it must always
be possible. Timestamps are UTC wall-clock (harness time), from the clock handed in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from results.errors import open_failure_hint
from results.schema import TABLES
from shadow.gate.cohorts import Cohort
from shadow.gate.errors import ResultsDatabaseError, RolloutRefused
from shadow.gate.router import CohortRoute, RolloutPhase, Router

__all__ = ["CANARY_STEPS", "RolloutBook", "RolloutState", "StoredVerdict", "build_router"]

CANARY_STEPS: tuple[float, ...] = (1.0, 5.0, 25.0, 50.0)
"""Where ``advance`` without ``--to`` goes next; past the last step comes cutover."""


@dataclass(frozen=True, slots=True)
class RolloutState:
    cohort: str
    phase: RolloutPhase
    percent: float
    changed_at: dt.datetime | None
    verdict_id: str | None = None
    actor: str | None = None
    note: str | None = None

    def describe(self) -> str:
        if self.phase is RolloutPhase.CANARY:
            return f"canary {self.percent:g} %"
        return str(self.phase)


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    verdict_id: str
    created_at: dt.datetime
    cohort: str
    verdict: str
    reason: str


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class RolloutBook:
    """Reads and changes rollout state in one results database. One process at a time (DuckDB's lock)."""

    def __init__(self, database: str | Path, *, clock: Callable[[], dt.datetime]) -> None:
        self.database = Path(database)
        self._clock = clock
        if not self.database.is_file():
            raise ResultsDatabaseError(
                "no such results database", where=str(self.database), hint="pass the database 'shadow gate' wrote"
            )

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            con = duckdb.connect(str(self.database))
            con.execute(TABLES["verdicts"])
            con.execute(TABLES["rollout_history"])
        except duckdb.Error as exc:
            raise ResultsDatabaseError(
                f"cannot open for the rollout ({exc})", where=str(self.database), hint=open_failure_hint(exc)
            ) from exc
        return con

    @staticmethod
    def _history(con: duckdb.DuckDBPyConnection, cohort: str | None) -> list[RolloutState]:
        rows = con.execute(
            "SELECT cohort, state, percent, changed_at, verdict_id, actor, note FROM rollout_history "
            "WHERE ? IS NULL OR cohort = ? ORDER BY changed_at, rowid",
            [cohort, cohort],
        ).fetchall()
        return [RolloutState(c, RolloutPhase(s), float(p or 0), _utc(t), v, a, n) for c, s, p, t, v, a, n in rows]

    @staticmethod
    def _latest_verdict(con: duckdb.DuckDBPyConnection, cohort: str) -> StoredVerdict | None:
        rows = con.execute(
            "SELECT verdict_id, created_at, cohort, verdict, reason FROM verdicts WHERE cohort = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            [cohort],
        ).fetchall()
        if not rows:
            return None
        verdict_id, created_at, name, verdict, reason = rows[0]
        return StoredVerdict(verdict_id, _utc(created_at), name, verdict, reason)

    def history(self, cohort: str | None = None) -> list[RolloutState]:
        """Every change, oldest first (all cohorts when ``cohort`` is None)."""
        with self._connect() as con:
            return self._history(con, cohort)

    def state(self, cohort: str) -> RolloutState:
        with self._connect() as con:
            return self._state(con, cohort)

    def _state(self, con: duckdb.DuckDBPyConnection, cohort: str) -> RolloutState:
        history = self._history(con, cohort)
        return history[-1] if history else RolloutState(cohort, RolloutPhase.SHADOW, 0.0, None)

    def states(self, cohorts: Sequence[str] = ()) -> list[tuple[RolloutState, StoredVerdict | None]]:
        """The state and latest verdict of the given cohorts and of every cohort the database knows."""
        with self._connect() as con:
            known = [r[0] for r in con.execute(
                "SELECT cohort FROM verdicts UNION SELECT cohort FROM rollout_history ORDER BY 1").fetchall()]  # fmt: skip
            names = list(dict.fromkeys([*cohorts, *known]))
            return [(self._state(con, n), self._latest_verdict(con, n)) for n in names]

    def _next(self, current: RolloutState, to: float | None) -> tuple[RolloutPhase, float]:
        name = current.cohort
        if current.phase is RolloutPhase.CUTOVER:
            raise RolloutRefused(f"cohort {name!r} is already cut over; there is nothing to advance to")
        if to is not None and not 0.0 < to <= 100.0:
            raise RolloutRefused(f"--to {to:g} is outside 0 < percent <= 100", hint="give a canary percentage")
        floor = current.percent if current.phase is RolloutPhase.CANARY else 0.0
        if to is None:
            to = next((step for step in CANARY_STEPS if step > floor), 100.0)
        if to <= floor:
            raise RolloutRefused(
                f"cohort {name!r} is at canary {floor:g} %; advance only moves forward (asked for {to:g} %)",
                hint=f"use 'shadow rollout rollback {name}' to go back",
            )
        return (RolloutPhase.CUTOVER, 100.0) if to >= 100.0 else (RolloutPhase.CANARY, to)

    def _require_pass(self, con: duckdb.DuckDBPyConnection, current: RolloutState) -> StoredVerdict:
        name = current.cohort
        verdict = self._latest_verdict(con, name)
        if verdict is None:
            raise RolloutRefused(
                f"cohort {name!r} has no verdict in {self.database}",
                hint=f"run 'shadow gate {self.database} --cohorts FILE' and advance on a PASS",
            )
        if current.changed_at is not None and verdict.created_at <= current.changed_at:
            raise RolloutRefused(
                f"the latest verdict for {name!r} ({verdict.verdict}, {verdict.created_at:%Y-%m-%d %H:%M:%S} UTC) "
                f"is not newer than the cohort's last change ({current.describe()}, "
                f"{current.changed_at:%Y-%m-%d %H:%M:%S} UTC)",
                hint="shadow-test traffic captured since the last change, run the gate again, then advance",
            )
        if verdict.verdict != "PASS":
            raise RolloutRefused(
                f"the latest verdict for {name!r} is {verdict.verdict}, not PASS: {verdict.reason}",
                hint="fix what the verdict names and run the gate again",
            )
        return verdict

    def _record(self, con: duckdb.DuckDBPyConnection, state: RolloutState) -> None:
        assert state.changed_at is not None
        batch = pa.table({
            "cohort": [state.cohort],
            "changed_at": pa.array([state.changed_at.astimezone(dt.UTC).replace(tzinfo=None)], type=pa.timestamp("us")),
            "state": [str(state.phase)],
            "percent": pa.array([state.percent], type=pa.float64()),
            "verdict_id": pa.array([state.verdict_id], type=pa.string()),
            "actor": pa.array([state.actor], type=pa.string()),
            "note": pa.array([state.note], type=pa.string()),
        })  # fmt: skip
        con.register("rollout_batch", batch)
        con.execute("INSERT INTO rollout_history BY NAME SELECT * FROM rollout_batch")
        con.unregister("rollout_batch")

    def advance(self, cohort: str, *, to: float | None = None, actor: str = "unknown", note: str = "") -> RolloutState:
        """Move a cohort forward; raises RolloutRefused (saying why) without a fresh PASS verdict."""
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            current = self._state(con, cohort)
            phase, percent = self._next(current, to)
            verdict = self._require_pass(con, current)
            state = RolloutState(cohort, phase, percent, _utc(self._clock()), verdict.verdict_id, actor, note or None)
            self._record(con, state)
            con.execute("COMMIT")
            return state

    def rollback(self, cohort: str, *, actor: str = "unknown", note: str = "") -> RolloutState:
        """Send a cohort back to legacy; always allowed from canary or cutover."""
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            current = self._state(con, cohort)
            if current.phase in (RolloutPhase.SHADOW, RolloutPhase.ROLLED_BACK):
                raise RolloutRefused(
                    f"cohort {cohort!r} is in {current.phase}: no workflow runs on the candidate, nothing to roll back"
                )
            state = RolloutState(cohort, RolloutPhase.ROLLED_BACK, 0.0, _utc(self._clock()), None, actor, note or None)
            self._record(con, state)
            con.execute("COMMIT")
            return state


def build_router(book: RolloutBook, cohorts: Sequence[Cohort]) -> Router:
    """A router for the current rollout state of ``cohorts`` (first matching cohort wins)."""
    states = {s.cohort: s for s, _ in book.states([c.name for c in cohorts])}
    return Router([
        CohortRoute(c.name, states[c.name].phase, states[c.name].percent, c.matches) for c in cohorts
    ])  # fmt: skip
