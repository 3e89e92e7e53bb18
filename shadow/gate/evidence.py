"""What the results database says about each cohort: counts, critical findings, latency samples.

The gate reads, never writes, the tables ``shadow run`` fills (traces, runs, steps, divergences,
waivers). Cohort membership is decided here in Python (globs and hash buckets) and handed to DuckDB
as a small Arrow table, so every other question is one SQL query per cohort.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from results.connection import connect
from results.errors import ResultsError, open_failure_hint
from results.identity import Identity, resolve, scope
from results.rows import DivergenceKind
from shadow.gate.cohorts import Cohort
from shadow.gate.errors import ResultsDatabaseError
from shadow.gate.router import RootWorkflow

__all__ = [
    "CohortEvidence",
    "ExpiredEntry",
    "Fidelity",
    "Finding",
    "collect_evidence",
    "judged_identity",
    "open_results",
    "workflows_in",
]

_REQUIRED = {
    "traces": ("trace_id", "workflow_id", "workflow_type", "owner", "tags", "unexplained", "error"),
    "runs": ("trace_id", "engine", "run_id", "stuck", "end_to_end"),
    "steps": ("trace_id", "engine", "run_id", "path", "attempt", "start_overhead"),
    "divergences": ("trace_id", "comparison", "run_id", "path", "kind", "waived_by"),
    "waivers": ("entry_id", "owner", "expires", "expired"),
}
_EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class Finding:
    """A critical finding: how many, and a few examples (``trace_id/run_id/path``)."""

    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExpiredEntry:
    entry_id: str
    owner: str
    expires: str


@dataclass(frozen=True, slots=True)
class Fidelity:
    """How the cohort's baseline replays compare with production's observations (the ``fidelity`` table):
    ``agree`` of ``checked`` observed statuses (runs and steps, extra steps counted as disagreements) over
    ``n_traces`` observed traces; ``examples`` are ``trace_id/first disagreeing path`` of the worst traces."""

    n_traces: int = 0
    checked: int = 0
    agree: int = 0
    examples: tuple[str, ...] = ()

    @property
    def agreement(self) -> float | None:
        return self.agree / self.checked if self.checked else None


@dataclass(frozen=True, slots=True)
class FaultEvidence:
    """The cohort's fault-campaign trials (the ``fault_trials`` table): how many, how many fired, were not
    placed, and the fired trials whose outcome changed (``trace/fault#trial: outcome`` examples)."""

    trials: int = 0
    fired: int = 0
    not_placed: int = 0
    changed: Finding = Finding(0, ())


@dataclass(frozen=True, slots=True)
class CohortEvidence:
    """Everything the verdict rules need about one cohort, read once from the database."""

    cohort: Cohort
    n_traces: int
    n_errored: int
    n_divergent: int
    stuck_runs: Finding
    lost_attempts: Finding
    duplicated_attempts: Finding
    causality_violations: Finding
    expired_entries: tuple[ExpiredEntry, ...]
    start_overhead: tuple[np.ndarray, np.ndarray]
    end_to_end: tuple[np.ndarray, np.ndarray]
    # When the judged traces were captured in production: the earliest capture time (UTC, None when none
    # is known) and how many judged traces carry none. The rollout needs evidence newer than its last change.
    captured_min: dt.datetime | None = None
    n_uncaptured: int = 0
    fidelity: Fidelity = Fidelity()
    # The coverage features (corpora.coverage) the cohort's judged traces exercise; None when the results
    # predate the ``traces.features`` column.
    features: frozenset[str] | None = None
    # The fault campaign's trials over the cohort's traces; None when no campaign ran (no fault_trials rows).
    faults: FaultEvidence | None = None
    # In-flight hand-offs of the cohort's traces (the ``handoffs`` table of ``shadow handoff``) whose outcome
    # differed from the legacy-only replay or that started a runtime twice; None when no hand-off of a
    # member trace was run (the table is absent or holds none of them).
    handoffs: Finding | None = None
    n_handoffs: int = 0
    # Rules of shadow.compare.invariants the candidate's own records break (run, path, rule).
    invariant_violations: Finding = Finding(0, ())

    @property
    def n_judged(self) -> int:
        """Traces that replayed without a harness error: the sample the rates are over."""
        return self.n_traces - self.n_errored


def open_results(path: str | Path, identity: Identity | None = None) -> duckdb.DuckDBPyConnection:
    """Open a results database read-only and check it has what the gate reads; with ``identity``, the
    connection shows that identity's rows only (:func:`results.identity.scope`)."""
    path = Path(path)
    if not path.is_file():
        raise ResultsDatabaseError(
            "no such results database", where=str(path), hint="run 'shadow run CORPUS --db FILE' first"
        )
    try:
        con = connect(path, read_only=True)
    except duckdb.Error as exc:
        raise ResultsDatabaseError(
            f"cannot open as DuckDB ({exc})", where=str(path), hint=open_failure_hint(exc)
        ) from exc
    present = _columns(con, "main")
    for table, columns in _REQUIRED.items():
        missing = [c for c in columns if c not in present.get(table, set())]
        if table not in present or missing:
            con.close()
            what = f"table {table!r} is missing" if table not in present else f"{table} lacks {missing}"
            raise ResultsDatabaseError(
                what, where=str(path), hint="the database predates this gate or was not written by shadow run"
            )
    if identity is not None:
        scope(con, identity)
    return con


def judged_identity(path: str | Path, requested: str | None) -> Identity | None:
    """The identity the gate judges: ``requested`` (id or unique prefix) or the latest in the file."""
    con = open_results(path)
    try:
        return resolve(con, requested, str(path))
    except ResultsError as exc:
        raise ResultsDatabaseError(
            str(exc).removeprefix(f"{path}: "),
            where=str(path),
            hint="'shadow summary' names the latest identity",
        ) from exc
    finally:
        con.close()


def _finding(rows: Sequence[tuple[Any, ...]]) -> Finding:
    return Finding(
        len(rows),
        tuple("/".join(str(part) for part in row if part not in (None, "")) for row in rows[:_EXAMPLES]),
    )


def _roots(con: duckdb.DuckDBPyConnection) -> list[tuple[str, RootWorkflow]]:
    rows = con.execute(
        "SELECT trace_id, workflow_id, coalesce(owner, 'unknown'), coalesce(tags, []), "
        "coalesce(workflow_type, 'generic') FROM traces ORDER BY trace_id"
    ).fetchall()
    return [(str(t), RootWorkflow(str(w), str(o), tuple(tags), str(wt))) for t, w, o, tags, wt in rows]


def workflows_in(database: str | Path) -> list[RootWorkflow]:
    """Every distinct root workflow the database holds traces of (for routing previews)."""
    con = open_results(database)
    try:
        return list(dict.fromkeys(root for _, root in _roots(con)))
    finally:
        con.close()


def _members(con: duckdb.DuckDBPyConnection, cohorts: Sequence[Cohort]) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {c.name: [] for c in cohorts}
    for trace_id, root in _roots(con):
        for cohort in cohorts:
            if cohort.matches(root):
                members[cohort.name].append(str(trace_id))
    return members


_STUCK = f"""
    SELECT DISTINCT trace_id, run_id FROM (
        SELECT r.trace_id, r.run_id FROM runs r JOIN member m USING (trace_id)
        WHERE r.engine = 'candidate' AND r.stuck
        UNION ALL
        SELECT d.trace_id, d.run_id FROM divergences d JOIN member m USING (trace_id)
        WHERE d.comparison = 'candidate' AND d.kind = '{DivergenceKind.STUCK_RUN}'
    ) ORDER BY ALL"""
# Lost: the baseline ran the attempt and the candidate did not. Not counted: attempts in a stuck
# candidate run (a stuck run loses everything after the stall; that is the stuck-run finding), and
# attempts the A/A replica did not run either (legacy itself is not sure of them: noise, not loss).
_LOST = """
    SELECT b.trace_id, b.run_id, b.path, b.attempt FROM steps b JOIN member m USING (trace_id)
    WHERE b.engine = 'baseline' AND NOT EXISTS (
        SELECT 1 FROM runs r WHERE r.engine = 'candidate' AND r.trace_id = b.trace_id
        AND r.run_id = b.run_id AND r.stuck)
    AND (NOT EXISTS (SELECT 1 FROM steps a WHERE a.engine = 'baseline_aa' AND a.trace_id = b.trace_id)
         OR EXISTS (SELECT 1 FROM steps a WHERE a.engine = 'baseline_aa' AND a.trace_id = b.trace_id
                    AND a.run_id = b.run_id AND a.path = b.path AND a.attempt = b.attempt))
    AND NOT EXISTS (
        SELECT 1 FROM steps c WHERE c.engine = 'candidate' AND c.trace_id = b.trace_id
        AND c.run_id = b.run_id AND c.path = b.path AND c.attempt = b.attempt)
    ORDER BY ALL"""
_DUPLICATED = """
    SELECT s.trace_id, s.run_id, s.path, s.attempt FROM steps s JOIN member m USING (trace_id)
    WHERE s.engine = 'candidate' GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL"""
_CAUSALITY = f"""
    SELECT DISTINCT d.trace_id, d.run_id, d.path FROM divergences d JOIN member m USING (trace_id)
    WHERE d.comparison = 'candidate' AND d.kind = '{DivergenceKind.CAUSALITY_VIOLATION}' ORDER BY ALL"""
_INVARIANTS = f"""
    SELECT DISTINCT d.trace_id, d.run_id, d.path, split_part(d.detail, ' ', 1) FROM divergences d
    JOIN member m USING (trace_id)
    WHERE d.comparison = 'candidate' AND d.kind = '{DivergenceKind.INVARIANT_VIOLATION}' ORDER BY ALL"""


def _samples(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[np.ndarray, np.ndarray]:
    columns = con.execute(sql).fetchnumpy()
    engines, values = np.asarray(columns["engine"]), np.asarray(columns["value"], dtype=float)
    return values[engines == "baseline"], values[engines == "candidate"]


def _expired(con: duckdb.DuckDBPyConnection, today: dt.date) -> tuple[ExpiredEntry, ...]:
    rows = con.execute(
        "SELECT DISTINCT entry_id, coalesce(owner, 'nobody'), CAST(expires AS VARCHAR) FROM waivers "
        "WHERE expired OR expires < ? ORDER BY entry_id",
        [today],
    ).fetchall()
    return tuple(ExpiredEntry(str(e), str(o), str(x)) for e, o, x in rows)


def _fidelity(con: duckdb.DuckDBPyConnection, present: bool) -> Fidelity:
    """The baseline's agreement with production over the member traces (none when the table is absent)."""
    if not present:
        return Fidelity()
    ((n, checked, agree),) = con.execute(
        "SELECT count(*), coalesce(sum(runs_observed + steps_observed + steps_extra), 0), "
        "coalesce(sum(runs_agree + steps_agree), 0) FROM fidelity f JOIN member m USING (trace_id) "
        "WHERE f.engine = 'baseline'"
    ).fetchall()
    worst = con.execute(
        "SELECT f.trace_id, f.first_disagreement FROM fidelity f JOIN member m USING (trace_id) "
        "WHERE f.engine = 'baseline' AND f.first_disagreement IS NOT NULL "
        f"ORDER BY f.status_agreement, f.trace_id LIMIT {_EXAMPLES}"
    ).fetchall()
    examples = tuple(f"{t}/{p}" if p else f"{t} (run status)" for t, p in worst)
    return Fidelity(int(n), int(checked), int(agree), examples)


def _faults(con: duckdb.DuckDBPyConnection, present: bool) -> FaultEvidence | None:
    """The campaign's trials over the member traces (None: no campaign ran on them)."""
    if not present:
        return None
    ((trials, fired, not_placed),) = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE f.fired), count(*) FILTER (WHERE f.outcome = 'not_placed') "
        "FROM fault_trials f JOIN member m USING (trace_id)"
    ).fetchall()
    if not trials:
        return None
    changed = con.execute(
        "SELECT f.trace_id, f.fault || '#' || f.trial || ': ' || f.outcome FROM fault_trials f "
        "JOIN member m USING (trace_id) WHERE f.fired AND f.outcome NOT IN ('equal', 'not_placed') "
        "ORDER BY f.trace_id, f.fault, f.trial"
    ).fetchall()
    return FaultEvidence(int(trials), int(fired), int(not_placed), _finding(changed))


_HANDOFFS_BAD = """
    SELECT h.trace_id, h.cut, h.first_difference FROM handoffs h JOIN member m USING (trace_id)
    WHERE h.differences > 0 OR h.duplicate_starts > 0 ORDER BY h.trace_id, h.cut_index, h.seed"""


def _handoffs(con: duckdb.DuckDBPyConnection, present: bool) -> tuple[Finding | None, int]:
    """Hand-offs of member traces that changed an outcome (None: no hand-off of a member was run)."""
    if not present:
        return None, 0
    ((n,),) = con.execute(
        "SELECT count(*) FROM handoffs h JOIN member m USING (trace_id) WHERE h.differences IS NOT NULL"
    ).fetchall()
    if not n:
        return None, 0
    return _finding(con.execute(_HANDOFFS_BAD).fetchall()), int(n)


def _columns(con: duckdb.DuckDBPyConnection, schema: str | None = None) -> dict[str, set[str]]:
    """Every table (or view) the connection sees, with its columns: what an older file lacks is absent."""
    where = "WHERE table_schema = ?" if schema else ""
    present: dict[str, set[str]] = {}
    for table, column in con.execute(
        f"SELECT table_name, column_name FROM information_schema.columns {where}", [schema] if schema else []
    ).fetchall():
        present.setdefault(str(table), set()).add(str(column))
    return present


def collect_evidence(
    con: duckdb.DuckDBPyConnection, cohorts: Sequence[Cohort], *, today: dt.date
) -> list[CohortEvidence]:
    """One CohortEvidence per cohort, in cohort order. ``today`` decides registry expiry."""
    members = _members(con, cohorts)
    expired = _expired(con, today)
    present = _columns(con)
    has_captured = "captured_at" in present.get("traces", set())
    captured = "t.captured_at" if has_captured else "CAST(NULL AS TIMESTAMP)"
    has_fidelity, has_faults, has_handoffs = (
        "fidelity" in present,
        "fault_trials" in present,
        "handoffs" in present,
    )
    has_features = "features" in present.get("traces", set())
    evidence: list[CohortEvidence] = []
    for cohort in cohorts:
        con.register("member", pa.table({"trace_id": pa.array(members[cohort.name], type=pa.string())}))
        ((n_traces, n_errored, n_divergent, captured_min, n_uncaptured),) = con.execute(
            "SELECT count(*), count(t.error), count(*) FILTER (WHERE t.error IS NULL AND t.unexplained > 0), "
            f"min({captured}) FILTER (WHERE t.error IS NULL), "
            f"count(*) FILTER (WHERE t.error IS NULL AND {captured} IS NULL) "
            "FROM traces t JOIN member m USING (trace_id)"
        ).fetchall()
        handoffs, n_handoffs = _handoffs(con, has_handoffs)
        evidence.append(
            CohortEvidence(
                cohort=cohort,
                n_traces=int(n_traces),
                n_errored=int(n_errored),
                n_divergent=int(n_divergent),
                stuck_runs=_finding(con.execute(_STUCK).fetchall()),
                lost_attempts=_finding(con.execute(_LOST).fetchall()),
                duplicated_attempts=_finding(con.execute(_DUPLICATED).fetchall()),
                causality_violations=_finding(con.execute(_CAUSALITY).fetchall()),
                invariant_violations=_finding(con.execute(_INVARIANTS).fetchall()),
                expired_entries=expired,
                captured_min=captured_min.replace(tzinfo=dt.UTC) if captured_min is not None else None,
                n_uncaptured=int(n_uncaptured or 0),
                fidelity=_fidelity(con, has_fidelity),
                faults=_faults(con, has_faults),
                handoffs=handoffs,
                n_handoffs=n_handoffs,
                features=frozenset(
                    str(f)
                    for (f,) in con.execute(
                        "SELECT DISTINCT unnest(t.features) FROM traces t JOIN member m USING (trace_id) "
                        "WHERE t.error IS NULL"
                    ).fetchall()
                )
                if has_features
                else None,
                start_overhead=_samples(
                    con,
                    "SELECT s.engine, s.start_overhead AS value FROM steps s JOIN member m USING (trace_id) "
                    "WHERE s.engine IN ('baseline', 'candidate') AND s.start_overhead IS NOT NULL",
                ),
                end_to_end=_samples(
                    con,
                    "SELECT r.engine, r.end_to_end AS value FROM runs r JOIN member m USING (trace_id) "
                    "WHERE r.engine IN ('baseline', 'candidate') AND r.end_to_end IS NOT NULL "
                    "AND NOT coalesce(r.stuck, false)",
                ),
            )
        )
        con.unregister("member")
    return evidence
