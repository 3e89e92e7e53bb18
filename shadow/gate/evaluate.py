"""One gate evaluation: read the database, judge every cohort, and store the verdicts back.

Reading is read-only; storing opens the database for writing only after every cohort is judged,
so a harness error never leaves half a gate's verdicts behind.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from results.connection import connect
from results.errors import open_failure_hint
from results.identity import Identity
from results.schema import TABLES
from shadow.gate.cohorts import Cohort
from shadow.gate.errors import ResultsDatabaseError
from shadow.gate.evidence import collect_evidence, judged_identity, open_results
from shadow.gate.verdict import CohortVerdict, Verdict, exit_code, judge_cohort, worst
from shadow.results.store import add_columns

__all__ = ["GateResult", "evaluate", "store_verdicts", "verdict_id"]


@dataclass(frozen=True, slots=True)
class GateResult:
    """The outcome of one ``shadow gate``: a verdict per cohort and the one that decides."""

    database: str
    created_at: dt.datetime
    verdicts: tuple[CohortVerdict, ...]
    # The one identity judged (None: the database records none, written before identities existed).
    identity: Identity | None = None
    # sha256 of the cohorts file judged with (None: cohorts built in code).
    cohorts_sha256: str | None = None
    # The judged identity's run was still going (only with --allow-partial; see shadow.results.progress).
    partial: bool = False
    # --since: only traces captured at or after this time were judged (shadow.results.window).
    captured_since: dt.datetime | None = None

    @property
    def overall(self) -> Verdict:
        return worst(v.verdict for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        return exit_code(self.overall)


def verdict_id(cohort: str, created_at: dt.datetime) -> str:
    """Deterministic id, so a rollout history row can cite the verdict it relied on."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"shadow-verdict:{cohort}:{created_at.isoformat()}"))


def evaluate(
    database: str | Path,
    cohorts: Sequence[Cohort],
    *,
    now: dt.datetime,
    identity: str | None = None,
    cohorts_sha256: str | None = None,
    partial: bool = False,
) -> GateResult:
    """Judge every cohort on the results in ``database`` as of ``now`` (UTC; decides registry expiry), on
    one identity's results: ``identity`` (id or unique prefix) or the latest."""
    judged = judged_identity(database, identity)
    con = open_results(database, judged)
    try:
        evidence = collect_evidence(con, cohorts, today=now.date())
    except duckdb.Error as exc:
        raise ResultsDatabaseError(
            f"query failed ({exc})",
            where=str(database),
            hint="the database may be corrupt or from another version",
        ) from exc
    finally:
        con.close()
    return GateResult(
        str(database), now, tuple(judge_cohort(e) for e in evidence), judged, cohorts_sha256, partial
    )


def store_verdicts(database: str | Path, result: GateResult) -> list[str]:
    """Append the verdicts to the ``verdicts`` table (one Arrow batch); returns their ids."""
    ids = [verdict_id(v.cohort, result.created_at) for v in result.verdicts]
    batch = pa.table(
        {
            "verdict_id": ids,
            "created_at": pa.array(
                [result.created_at.replace(tzinfo=None)] * len(ids), type=pa.timestamp("us")
            ),
            "cohort": [v.cohort for v in result.verdicts],
            "verdict": [str(v.verdict) for v in result.verdicts],
            "score": pa.array([v.score for v in result.verdicts], type=pa.float64()),
            "reason": [v.reason for v in result.verdicts],
            "n_traces": pa.array([v.n_traces for v in result.verdicts], type=pa.int32()),
            "criteria": [json.dumps([_jsonable(asdict(c)) for c in v.criteria]) for v in result.verdicts],
            "identity": pa.array(
                [result.identity.id if result.identity else ""] * len(ids), type=pa.string()
            ),
            "cohorts_sha256": pa.array([result.cohorts_sha256] * len(ids), type=pa.string()),
            "candidate_identity": pa.array(
                [result.identity.candidate_id if result.identity else None] * len(ids), type=pa.string()
            ),
            "captured_min": pa.array(
                [_naive(v.captured_min) for v in result.verdicts], type=pa.timestamp("us")
            ),
            "uncaptured": pa.array([v.uncaptured for v in result.verdicts], type=pa.int32()),
            "partial": pa.array([result.partial] * len(ids), type=pa.bool_()),
            "captured_since": pa.array([_naive(result.captured_since)] * len(ids), type=pa.timestamp("us")),
        }
    )
    try:
        con = connect(database, read_only=False)
    except duckdb.Error as exc:
        raise ResultsDatabaseError(
            f"cannot open for writing ({exc})", where=str(database), hint=open_failure_hint(exc)
        ) from exc
    try:
        con.execute(TABLES["verdicts"])
        con.execute("ALTER TABLE verdicts ADD COLUMN IF NOT EXISTS identity VARCHAR")  # a schema-1 file
        add_columns(con)  # a schema-2 file
        con.register("verdict_batch", batch)
        con.execute("INSERT INTO verdicts BY NAME SELECT * FROM verdict_batch")
    finally:
        con.close()
    return ids


def _naive(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.astimezone(dt.UTC).replace(tzinfo=None)


def _jsonable(criterion: dict[str, object]) -> dict[str, object]:
    """NaN and infinity are not JSON: store them as null."""
    out: dict[str, object] = {}
    for key, value in criterion.items():
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            value = None
        out[key] = str(value) if key == "status" else value
    return out
