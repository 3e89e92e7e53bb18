"""The results of a shadow run as pandas DataFrames, for analysis in a notebook or a script.

    import shadow.results as results

    with results.open("out/results.duckdb") as r:
        print(r.identity)                                   # what produced these rows
        causes = r.causes()                                 # one row per cause group, most traces first
        mine = r.divergences(comparison="candidate", kind="params")
        slow = r.sql("SELECT trace_id, makespan FROM runs WHERE engine = 'candidate' ORDER BY makespan DESC")

The file is opened read-only and scoped to one identity (the latest session's unless ``identity`` names
another, by id or unique prefix), exactly as ``shadow summary``, ``report`` and ``gate`` see it. Tables
and columns are documented in docs/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from results.identity import Identity
from results.schema import TABLES
from shadow.results.reader import judged_identity, open_results

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Results", "open"]


class Results:
    """A read-only view of one identity's rows in a results database. Use as a context manager, or call
    :meth:`close`."""

    def __init__(self, path: str | Path, identity: str | None = None) -> None:
        self.path = Path(path)
        self.identity: Identity | None = judged_identity(path, identity)
        self._con = open_results(path, self.identity.id if self.identity else None)

    def __enter__(self) -> Results:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    def sql(self, query: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Any read-only query over the tables (one identity's rows) as a DataFrame."""
        return self._con.execute(query, params or []).df()

    def table(self, name: str) -> pd.DataFrame:
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
        return self.sql(f"SELECT * FROM {name}")

    def traces(self) -> pd.DataFrame:
        return self.sql("SELECT * FROM traces ORDER BY trace_id")

    def runs(self, engine: str | None = None) -> pd.DataFrame:
        return self._filtered("runs", {"engine": engine}, "trace_id, engine, run_id")

    def steps(self, engine: str | None = None) -> pd.DataFrame:
        return self._filtered("steps", {"engine": engine}, "trace_id, engine, run_id, path, attempt")

    def divergences(
        self, comparison: str | None = "candidate", kind: str | None = None, cause: str | None = None
    ) -> pd.DataFrame:
        """Divergence rows (baseline vs ``comparison``: 'candidate' or 'aa'; None for both), optionally of
        one ``kind`` or one ``cause`` key."""
        return self._filtered(
            "divergences",
            {"comparison": comparison, "kind": kind, "cause": cause},
            "trace_id, run_id, path, kind, detail",
        )

    def causes(self) -> pd.DataFrame:
        """One row per cause group (kind|field|change), the most traces first."""
        return self.sql("SELECT * FROM causes ORDER BY candidate_traces DESC, cause")

    def signatures(self) -> pd.DataFrame:
        """One row per signature (where a difference showed), the drill-down of the causes."""
        return self.sql("SELECT * FROM signatures ORDER BY candidate_traces DESC, signature")

    def latency(self) -> pd.DataFrame:
        return self.sql("SELECT * FROM latency ORDER BY metric, engine")

    def verdicts(self) -> pd.DataFrame:
        return self.sql("SELECT * FROM verdicts ORDER BY created_at, cohort")

    def _filtered(self, table: str, where: dict[str, str | None], order: str) -> pd.DataFrame:
        chosen = {k: v for k, v in where.items() if v is not None}
        clause = " AND ".join(f"{k} = ?" for k in chosen)
        return self.sql(
            f"SELECT * FROM {table}" + (f" WHERE {clause}" if clause else "") + f" ORDER BY {order}",
            list(chosen.values()),
        )


def open(path: str | Path, identity: str | None = None) -> Results:
    """Open a results database for analysis (read-only, one identity)."""
    return Results(path, identity)
