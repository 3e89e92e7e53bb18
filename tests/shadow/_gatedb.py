"""Build small results databases for the gate tests, shaped to land on each verdict boundary.

The schema comes from results/schema.py; rows are buffered in columns and written as Arrow
tables, like ``shadow run`` does. Latency samples are drawn from a seeded generator.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from results.identity import compute_identity
from results.schema import DDL, IDENTITY_TABLES

__all__ = ["GateDb"]


@dataclass
class GateDb:
    """Accumulates traces with the findings a test wants, then writes one DuckDB file."""

    path: Path
    seed: int = 7
    # A candidate engine name: the file records one identity (a provenance row, every row tagged), as
    # 'shadow run' writes it; None: no identity (a database written before identities).
    candidate: str | None = None
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _count: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def _add(self, table: str, **row: Any) -> None:
        self.rows.setdefault(table, []).append(row)

    def add_traces(
        self,
        n: int,
        *,
        prefix: str = "wf",
        owner: str = "data-eng",
        tags: tuple[str, ...] = ("etl",),
        workflow_type: str = "etl",
        divergent: int = 0,
        errored: int = 0,
        stuck: int = 0,
        lost: int = 0,
        duplicated: int = 0,
        causality: int = 0,
        invariant: int = 0,
        noisy_lost: int = 0,
        steps: int = 3,
        baseline_overhead: float = 5.0,
        candidate_overhead: float = 0.05,
        captured_at: dt.datetime | None = None,
    ) -> list[str]:
        """Add ``n`` one-run traces; the first ``divergent`` carry an unexplained divergence, and so on.

        Every trace has an A/A replica equal to the baseline, except the first ``noisy_lost``, where
        the candidate and the A/A replica both skip the last step (legacy noise, not a lost attempt).
        """
        ids = []
        for i in range(n):
            self._count += 1
            trace_id = f"{prefix}-{self._count:05d}"
            ids.append(trace_id)
            self._add(
                "traces", trace_id=trace_id, workflow_id=f"{prefix}.{self._count:05d}", workflow_type=workflow_type,
                owner=owner, tags=list(tags), n_runs=1, n_steps=steps,
                candidate_divergences=int(i < divergent), aa_divergences=0, unexplained=int(i < divergent),
                error="engine crashed" if i >= n - errored else None,
                captured_at=captured_at.astimezone(dt.UTC).replace(tzinfo=None) if captured_at else None,
            )  # fmt: skip
            if i < divergent:
                self._add("divergences", trace_id=trace_id, comparison="candidate", run_id="r1", path="s0",
                          kind="outputs", waived_by=None)  # fmt: skip
            roles = (
                ("baseline", baseline_overhead),
                ("candidate", candidate_overhead),
                ("baseline_aa", baseline_overhead),
            )
            for engine, overhead in roles:
                is_stuck = engine == "candidate" and i < stuck
                durations = self.rng.uniform(10, 60, steps)
                overheads = np.abs(self.rng.normal(overhead, overhead * 0.1, steps))
                end = 1000.0 + float(durations.sum() + overheads.sum())
                self._add("runs", trace_id=trace_id, engine=engine, run_id="r1",
                          status="IN_PROGRESS" if is_stuck else "SUCCEEDED", stuck=is_stuck,
                          triggered_at=1000.0, started_at=1000.0, ended_at=None if is_stuck else end,
                          end_to_end=None if is_stuck else end - 1000.0)  # fmt: skip
                n_steps = (
                    steps - 1
                    if (engine == "candidate" and i < lost) or (engine != "baseline" and i < noisy_lost)
                    else steps
                )
                for s in range(n_steps):
                    copies = 2 if engine == "candidate" and i < duplicated and s == 0 else 1
                    for _ in range(copies):
                        self._add("steps", trace_id=trace_id, engine=engine, run_id="r1", path=f"s{s}",
                                  step_id=f"s{s}", attempt=1, status="SUCCEEDED",
                                  start_overhead=float(overheads[s]))  # fmt: skip
            if i < causality:
                self._add("divergences", trace_id=trace_id, comparison="candidate", run_id="r1", path="s1",
                          kind="causality_violation", waived_by=None)  # fmt: skip
            if i < invariant:
                self._add("divergences", trace_id=trace_id, comparison="candidate", run_id="r1", path="s1",
                          kind="invariant_violation", detail="retry_started_early attempts[2]",
                          waived_by=None)  # fmt: skip
        return ids

    def add_fidelity(self, trace_ids: list[str], *, disagreeing: int = 0, steps: int = 3) -> None:
        """Production's observations for ``trace_ids`` (run + ``steps`` steps each): the baseline disagrees with
        production on one step of the first ``disagreeing`` traces; the candidate agrees everywhere."""
        for i, trace_id in enumerate(trace_ids):
            for engine in ("baseline", "candidate"):
                bad = engine == "baseline" and i < disagreeing
                self._add("fidelity", trace_id=trace_id, engine=engine, runs_observed=1, runs_agree=1,
                          steps_observed=steps, steps_agree=steps - int(bad), steps_missing=0, steps_extra=0,
                          attempts_agree=steps, status_agreement=(steps + 1 - int(bad)) / (steps + 1),
                          first_disagreement="s1" if bad else None, start_delays=0)  # fmt: skip

    def add_handoffs(self, trace_ids: list[str], *, differing: int = 0, cuts: int = 3) -> None:
        """``shadow handoff`` rows for ``trace_ids`` (``cuts`` cut points each); the first cut of the first
        ``differing`` traces changed an outcome."""
        for i, trace_id in enumerate(trace_ids):
            for cut in range(cuts):
                bad = cut == 0 and i < differing
                self._add("handoffs", trace_id=trace_id, cut_index=cut, cut=f"{25 * (cut + 1)}%", seed=0,
                          cut_at=10.0 * (cut + 1), runs_live=1, attempts_running=1, duplicate_starts=0,
                          differences=2 if bad else 0, runs_differing=int(bad),
                          first_difference="status s1: SUCCEEDED -> FAILED" if bad else None)  # fmt: skip

    def add_waiver(self, entry_id: str, *, owner: str, expires: dt.date, expired: bool) -> None:
        self._add("waivers", entry_id=entry_id, pattern="*", owner=owner, reason="test", expires=expires,
                  hits=1, expired=expired)  # fmt: skip

    def identity_parts(self) -> dict[str, Any]:
        return {
            "candidate": {"engine": self.candidate},
            "baseline": {"engine": "legacy 0.1.0"},
            "corpus": {"content_sha256": f"{self.path.name}-{self._count}"},
            "seeds": {"baseline": self.seed},
        }

    def build(self) -> Path:
        """Write every table (empty ones too) and return the database path."""
        if self.candidate is not None:
            parts = self.identity_parts()
            identity = compute_identity(parts)
            for table, rows in self.rows.items():
                if table in IDENTITY_TABLES:
                    for row in rows:
                        row["identity"] = identity
            self._add("provenance", session_id="s-1", started_at=dt.datetime(2026, 1, 1), status="finished",
                      candidate_engine=self.candidate, baseline_engine="legacy 0.1.0", identity=identity,
                      identity_parts=json.dumps(parts), traces_done=self._count)  # fmt: skip
        con = duckdb.connect(str(self.path))
        try:
            con.execute(DDL)
            for table, rows in self.rows.items():
                batch = pa.Table.from_pylist(rows)
                con.register("batch", batch)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch")
                con.unregister("batch")
        finally:
            con.close()
        return self.path
