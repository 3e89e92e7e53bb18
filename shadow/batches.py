"""A batch of trials as Arrow tables: what a remote worker ships back instead of rows.

A worker that does not share the driver's memory (a Dask worker) replays a batch of traces and
returns its rows already converted to one Arrow table per results table (:class:`ArrowBatch`):
Arrow serializes without pickling a dict per row, and the driver inserts the tables as they are, in
the same one-transaction-per-flush as rows from the in-process executors. The columns the driver
owns are left null by the worker and filled at ingest: ``traces.session_id`` (by the runner) and
``identity`` (by :meth:`shadow.results.store.ResultsStore.insert`).

Grouping traces into batches by their recorded step attempts (:func:`group_by_steps`) keeps a
task's work roughly constant whatever the traces' sizes: one task per trace would drown the
scheduler in tiny tasks, and a fixed number of traces per task can hide one 2,000-step trace in a
task among 20-step ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pyarrow as pa

from results.rows import check_columns
from shadow.executors import job_cost
from shadow.trial import TraceJob, TraceOutcome

__all__ = ["TRIAL_TABLES", "ArrowBatch", "arrow_schemas", "group_by_steps", "outcomes_to_arrow"]

TRIAL_TABLES = ("traces", "runs", "steps", "records", "divergences", "fidelity", "fault_trials")
"""The results tables a trial writes (``shadow.trial.run_trace_with``)."""


@dataclass(frozen=True, slots=True)
class ArrowBatch:
    """The rows of several traces' trials, one Arrow table per results table.

    ``trace_ids`` are the traces it holds (every one complete: all its rows are here or none);
    ``step_rows`` the rows of ``steps`` (the runner flushes by it); ``cpu_seconds`` what the batch
    cost its worker thread; ``worker`` who ran it (logs and benchmarks only)."""

    trace_ids: tuple[str, ...]
    tables: Mapping[str, pa.Table] = field(default_factory=dict)
    candidate_divergences: int = 0
    step_rows: int = 0
    cpu_seconds: float = 0.0
    worker: str = ""

    def with_table(self, name: str, table: pa.Table) -> ArrowBatch:
        return ArrowBatch(
            self.trace_ids,
            {**self.tables, name: table},
            self.candidate_divergences,
            self.step_rows,
            self.cpu_seconds,
            self.worker,
        )


def group_by_steps(
    batches: Iterable[Sequence[TraceJob]], steps: int, max_traces: int, lookahead: int = 0
) -> Iterator[list[TraceJob]]:
    """Regroup a stream of job batches into batches of about ``steps`` recorded attempts each (a trace
    larger than that is a batch of its own), at most ``max_traces`` traces.

    ``lookahead`` > 0 reads that many traces ahead and hands each such window out largest first (order is
    kept otherwise): a 2,000-step trace met at the end of a corpus would otherwise start last and leave
    every other worker idle while it runs alone."""
    pool: list[TraceJob] = []
    for batch in batches:
        pool.extend(batch)
        if lookahead <= 0:  # stream: emit closed groups, keep the open one across batches
            *closed, pool = _split(pool, steps, max_traces)
            yield from closed
        elif len(pool) >= lookahead:
            pool.sort(key=lambda job: -job_cost(job))
            yield from (group for group in _split(pool, steps, max_traces) if group)
            pool = []
    if lookahead > 0:
        pool.sort(key=lambda job: -job_cost(job))
    yield from (group for group in _split(pool, steps, max_traces) if group)


def _split(jobs: list[TraceJob], steps: int, max_traces: int) -> list[list[TraceJob]]:
    """``jobs`` in groups closed at ``steps`` attempts or ``max_traces`` traces; the last one is the open
    group (possibly empty)."""
    groups: list[list[TraceJob]] = [[]]
    cost = 0
    for job in jobs:
        groups[-1].append(job)
        cost += max(1, job_cost(job))
        if cost >= steps or len(groups[-1]) >= max_traces:
            groups.append([])
            cost = 0
    return groups


@cache
def arrow_schemas() -> dict[str, pa.Schema]:
    """The Arrow schema of every results table, read from the DDL (an in-memory DuckDB, once per process)."""
    import duckdb

    from results.schema import DDL, TABLES
    from shadow.results.store import arrow_type

    con = duckdb.connect(":memory:")
    try:
        con.execute(DDL)
        return {
            name: pa.schema(
                [(col, arrow_type(str(kind))) for col, kind, *_ in con.execute(f"DESCRIBE {name}").fetchall()]
            )
            for name in TABLES
        }
    finally:
        con.close()


def outcomes_to_arrow(outcomes: Sequence[TraceOutcome]) -> ArrowBatch:
    """The outcomes' rows as one Arrow table per trial table (driver-owned columns left null)."""
    schemas = arrow_schemas()
    tables: dict[str, pa.Table] = {}
    for name in TRIAL_TABLES:
        rows: list[Mapping[str, Any]] = [row for outcome in outcomes for row in outcome.tables.get(name, ())]
        schema = schemas[name]
        check_columns(name, rows, schema.names)
        tables[name] = pa.Table.from_pydict(
            {f.name: [row.get(f.name) for row in rows] for f in schema}, schema=schema
        )
    return ArrowBatch(
        trace_ids=tuple(outcome.trace_id for outcome in outcomes),
        tables=tables,
        candidate_divergences=sum(outcome.candidate_divergences for outcome in outcomes),
        step_rows=tables["steps"].num_rows,
    )
