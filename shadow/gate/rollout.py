"""The rollout lifecycle of each cohort, kept in the rollout state store (``shadow.gate.state``).

shadow -> canary (a percentage, raised step by step) -> cutover, and rolled_back from canary or
cutover. The state of a cohort is the last row of its history (no row: shadow). The history lives in
its own store (``--state``), not in the results database: results are throwaway CI artifacts, and a
fresh results file must neither reset a rollout nor carry a verdict that vouches for it.

Moving forward needs a verdict (read from a results database) that is all of:

- PASS, and not judged on a run still going (``gate --allow-partial``);
- judged with the very cohorts file given to ``advance`` (its sha256 is in the verdict);
- about the candidate the cohort runs (a canary advances only on verdicts about its own candidate
  identity: engine, version, factory options), recorded with every change;
- over traces captured after the cohort's last change: evidence that existed before the last step
  cannot vouch for the next one (re-judging unchanged data, with any cohorts file, proves nothing new);
- newer than the last change and not already cited by an earlier change of the cohort.

Rolling back needs no verdict: it must always be possible. Each refusal is one line saying why.
Timestamps are UTC wall-clock (harness time), from the clock handed in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from results.connection import connect
from results.errors import open_failure_hint
from shadow.gate.cohorts import Cohort
from shadow.gate.errors import ResultsDatabaseError, RolloutRefused
from shadow.gate.router import CohortRoute, RolloutPhase, Router
from shadow.gate.state import HistoryRow, StateStore, open_state

__all__ = ["CANARY_STEPS", "RolloutBook", "RolloutState", "StoredVerdict", "build_router", "read_verdict"]

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
    candidate_identity: str | None = None
    candidate_engine: str | None = None
    ci_job: str | None = None

    def describe(self) -> str:
        if self.phase is RolloutPhase.CANARY:
            return f"canary {self.percent:g} %"
        return str(self.phase)

    @classmethod
    def from_row(cls, row: HistoryRow) -> RolloutState:
        return cls(
            row.cohort,
            RolloutPhase(row.state),
            row.percent,
            _utc(row.changed_at),
            row.verdict_id,
            row.actor,
            row.note,
            row.candidate_identity,
            row.candidate_engine,
            row.ci_job,
        )


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    verdict_id: str
    created_at: dt.datetime
    cohort: str
    verdict: str
    reason: str
    identity: str | None = None
    candidate_identity: str | None = None
    candidate_engine: str | None = None
    cohorts_sha256: str | None = None
    captured_min: dt.datetime | None = None
    uncaptured: int = 0
    partial: bool = False
    n_traces: int = 0


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _when(value: dt.datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"


def read_verdict(database: str | Path, cohort: str, verdict_id: str | None = None) -> StoredVerdict | None:
    """The cohort's latest verdict in a results database (or the one ``verdict_id`` names), with what it
    was judged on; None when there is none. Read-only."""
    path = Path(database)
    if not path.is_file():
        raise ResultsDatabaseError(
            "no such results database",
            where=str(path),
            hint="pass --db the database 'shadow gate' stored its verdicts in",
        )
    try:
        con = connect(path, read_only=True)
    except duckdb.Error as exc:
        raise ResultsDatabaseError(
            f"cannot open ({exc})", where=str(path), hint=open_failure_hint(exc)
        ) from exc
    try:
        columns = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'verdicts'"
            ).fetchall()
        }
        if not columns:
            return None

        def col(name: str, kind: str = "VARCHAR") -> str:
            return f"v.{name}" if name in columns else f"CAST(NULL AS {kind})"

        engine = (
            "(SELECT arg_max(p.candidate_engine, p.started_at) FROM provenance p WHERE p.identity = v.identity)"
            if "identity" in columns
            else "CAST(NULL AS VARCHAR)"
        )
        try:
            con.execute("SELECT candidate_engine, identity, started_at FROM provenance LIMIT 0")
        except duckdb.Error:
            engine = "CAST(NULL AS VARCHAR)"
        where, params = (
            ("v.cohort = ?", [cohort]) if verdict_id is None else ("v.verdict_id = ?", [verdict_id])
        )
        row = con.execute(
            f"SELECT v.verdict_id, v.created_at, v.cohort, v.verdict, v.reason, {col('identity')}, "
            f"{col('candidate_identity')}, {engine}, {col('cohorts_sha256')}, {col('captured_min', 'TIMESTAMP')}, "
            f"{col('uncaptured', 'INTEGER')}, {col('partial', 'BOOLEAN')}, v.n_traces FROM verdicts v WHERE {where} "
            "ORDER BY v.created_at DESC, v.rowid DESC LIMIT 1",
            params,
        ).fetchone()
    except duckdb.Error as exc:
        raise ResultsDatabaseError(f"cannot read its verdicts ({exc})", where=str(path)) from exc
    finally:
        con.close()
    if row is None:
        return None
    (
        vid,
        created,
        name,
        verdict,
        reason,
        identity,
        candidate,
        engine_name,
        cohorts_hash,
        captured,
        uncaptured,
        partial,
        n_traces,
    ) = row
    return StoredVerdict(
        str(vid),
        _utc(created),
        str(name),
        str(verdict),
        str(reason or ""),
        identity or None,
        candidate or None,
        engine_name,
        cohorts_hash or None,
        _utc(captured) if captured is not None else None,
        int(uncaptured or 0),
        bool(partial),
        int(n_traces or 0),
    )


class RolloutBook:
    """Reads and changes rollout state in one rollout state store (a SQLite file or a PostgreSQL URL)."""

    def __init__(self, state: str | Path, *, clock: Callable[[], dt.datetime]) -> None:
        self.target = str(state)
        self._clock = clock
        open_state(self.target).close()  # refuses a foreign file (StateStoreError) before anything else

    def _open(self) -> StateStore:
        return open_state(self.target)

    def history(self, cohort: str | None = None) -> list[RolloutState]:
        """Every change, oldest first (all cohorts when ``cohort`` is None)."""
        with self._open() as store:
            return [RolloutState.from_row(r) for r in store.history(cohort)]

    def state(self, cohort: str) -> RolloutState:
        with self._open() as store:
            return self._state(store, cohort)

    @staticmethod
    def _state(store: StateStore, cohort: str) -> RolloutState:
        history = store.history(cohort)
        return (
            RolloutState.from_row(history[-1])
            if history
            else RolloutState(cohort, RolloutPhase.SHADOW, 0.0, None)
        )

    def states(self, cohorts: Sequence[str] = ()) -> list[RolloutState]:
        """The state of the given cohorts and of every cohort the store knows, in that order."""
        with self._open() as store:
            names = list(dict.fromkeys([*cohorts, *store.cohorts()]))
            return [self._state(store, n) for n in names]

    def _next(self, current: RolloutState, to: float | None) -> tuple[RolloutPhase, float]:
        name = current.cohort
        if current.phase is RolloutPhase.CUTOVER:
            raise RolloutRefused(f"cohort {name!r} is already cut over; there is nothing to advance to")
        if to is not None and not 0.0 < to <= 100.0:
            raise RolloutRefused(
                f"--to {to:g} is outside 0 < percent <= 100", hint="give a canary percentage"
            )
        floor = current.percent if current.phase is RolloutPhase.CANARY else 0.0
        if to is None:
            to = next((step for step in CANARY_STEPS if step > floor), 100.0)
        if to <= floor:
            raise RolloutRefused(
                f"cohort {name!r} is at canary {floor:g} %; advance only moves forward (asked for {to:g} %)",
                hint=f"use 'shadow rollout rollback {name}' to go back",
            )
        return (RolloutPhase.CUTOVER, 100.0) if to >= 100.0 else (RolloutPhase.CANARY, to)

    @staticmethod
    def _check(
        store: StateStore,
        current: RolloutState,
        verdict: StoredVerdict | None,
        cohorts_sha256: str,
        where: str,
    ) -> StoredVerdict:
        """Every condition an advance needs, in order; the first unmet one is the refusal (one line)."""
        name = current.cohort
        if verdict is None:
            raise RolloutRefused(
                f"cohort {name!r} has no verdict in {where}: run 'shadow gate --db {where} --cohorts "
                "FILE' on fresh traffic and advance on a PASS"
            )
        said = f"verdict {verdict.verdict_id[:8]} ({verdict.verdict}, {_when(verdict.created_at)})"
        if verdict.cohort != name:
            raise RolloutRefused(f"{said} is about cohort {verdict.cohort!r}, not {name!r}")
        if verdict.verdict != "PASS":
            raise RolloutRefused(
                f"the latest verdict for {name!r} is {verdict.verdict}, not PASS: {verdict.reason}"
            )
        if verdict.partial:
            raise RolloutRefused(
                f"{said} judged a run that was still going (--allow-partial); judge the finished "
                "run, then advance"
            )
        if not verdict.cohorts_sha256:
            raise RolloutRefused(
                f"{said} records no cohorts file hash (stored by an older gate); run 'shadow gate' "
                "again, then advance"
            )
        if verdict.cohorts_sha256 != cohorts_sha256:
            raise RolloutRefused(
                f"{said} was judged with another cohorts file (sha256 {verdict.cohorts_sha256[:12]}, "
                f"the one given is {cohorts_sha256[:12]}): judge with the cohorts file you route by"
            )
        if not verdict.candidate_identity:
            raise RolloutRefused(
                f"{said} records no candidate identity (results written before identities); "
                "replay with 'shadow run', judge, then advance"
            )
        if (
            current.phase is RolloutPhase.CANARY
            and current.candidate_identity
            and verdict.candidate_identity != current.candidate_identity
        ):
            raise RolloutRefused(
                f"{said} is about candidate {verdict.candidate_engine or '?'} ({verdict.candidate_identity[:12]}), "
                f"but the canary runs {current.candidate_engine or '?'} ({current.candidate_identity[:12]}): roll "
                "back before trying another candidate"
            )
        if any(r.verdict_id == verdict.verdict_id for r in store.history(name)):
            raise RolloutRefused(
                f"{said} was already used by an earlier change of {name!r}; a verdict vouches for "
                "one step only"
            )
        if current.changed_at is not None:
            last = f"its last change ({current.describe()}, {_when(current.changed_at)})"
            if verdict.created_at <= current.changed_at:
                raise RolloutRefused(
                    f"{said} is not newer than {last}: judge traffic captured since, then advance"
                )
            if verdict.uncaptured:
                raise RolloutRefused(
                    f"{said} covers {verdict.uncaptured} traces without a capture time, so nothing "
                    f"shows they were captured after {last}"
                )
            if verdict.captured_min is None or verdict.captured_min <= current.changed_at:
                first = _when(verdict.captured_min) if verdict.captured_min else "an unknown time"
                raise RolloutRefused(
                    f"{said} judged traces captured from {first}, not after {last}: replay traffic "
                    "captured since the last change, judge it, then advance"
                )
        return verdict

    def advance(
        self,
        cohort: str,
        *,
        verdict: StoredVerdict | None,
        cohorts_sha256: str,
        to: float | None = None,
        actor: str = "unknown",
        ci_job: str | None = None,
        note: str = "",
        results_database: str | None = None,
    ) -> RolloutState:
        """Move a cohort forward on ``verdict``; raises RolloutRefused (saying why in one line) unless every
        condition of the module docstring holds."""
        where = results_database or "the results database"
        with self._open() as store, store.write():
            current = self._state(store, cohort)
            phase, percent = self._next(current, to)
            used = self._check(store, current, verdict, cohorts_sha256, where)
            now = _utc(self._clock())
            store.append(
                {
                    "cohort": cohort,
                    "changed_at": now,
                    "state": str(phase),
                    "percent": percent,
                    "verdict_id": used.verdict_id,
                    "verdict_at": used.created_at.isoformat(),
                    "identity": used.identity,
                    "candidate_identity": used.candidate_identity,
                    "candidate_engine": used.candidate_engine,
                    "cohorts_sha256": used.cohorts_sha256,
                    "results_database": results_database,
                    "actor": actor,
                    "ci_job": ci_job,
                    "note": note or None,
                }
            )
            return RolloutState(
                cohort,
                phase,
                percent,
                now,
                used.verdict_id,
                actor,
                note or None,
                used.candidate_identity,
                used.candidate_engine,
                ci_job,
            )

    def rollback(
        self, cohort: str, *, actor: str = "unknown", ci_job: str | None = None, note: str = ""
    ) -> RolloutState:
        """Send a cohort back to legacy; always allowed from canary or cutover."""
        with self._open() as store, store.write():
            current = self._state(store, cohort)
            if current.phase in (RolloutPhase.SHADOW, RolloutPhase.ROLLED_BACK):
                raise RolloutRefused(
                    f"cohort {cohort!r} is in {current.phase}: no workflow runs on the candidate, nothing to roll back"
                )
            now = _utc(self._clock())
            store.append(
                {
                    "cohort": cohort,
                    "changed_at": now,
                    "state": str(RolloutPhase.ROLLED_BACK),
                    "percent": 0.0,
                    "candidate_identity": current.candidate_identity,
                    "candidate_engine": current.candidate_engine,
                    "actor": actor,
                    "ci_job": ci_job,
                    "note": note or None,
                }
            )
            return RolloutState(
                cohort,
                RolloutPhase.ROLLED_BACK,
                0.0,
                now,
                None,
                actor,
                note or None,
                current.candidate_identity,
                current.candidate_engine,
                ci_job,
            )


def build_router(book: RolloutBook, cohorts: Sequence[Cohort]) -> Router:
    """A router for the current rollout state of ``cohorts`` (first matching cohort wins)."""
    states = {s.cohort: s for s in book.states([c.name for c in cohorts])}
    return Router([
        CohortRoute(c.name, states[c.name].phase, states[c.name].percent, c.matches) for c in cohorts
    ])  # fmt: skip
