"""Arrow batches carry every table a trial writes (a table missing here would vanish from Dask runs only)."""

from __future__ import annotations

from corpora.testing import chain_trace
from shadow.batches import TRIAL_TABLES, outcomes_to_arrow
from shadow.engines import resolve_engine
from shadow.trial import TraceJob, TrialConfig, run_trace


def test_every_table_a_trial_writes_is_shipped() -> None:
    oracle = resolve_engine("oracle")
    config = TrialConfig(
        engines={"baseline": oracle, "candidate": oracle, "baseline_aa": oracle},
        seeds={"baseline": 0, "candidate": 0, "baseline_aa": 1},
    )
    outcome = run_trace(TraceJob(chain_trace(3), "c.jsonl", 1), config)
    assert set(outcome.tables) <= set(TRIAL_TABLES)
    batch = outcomes_to_arrow([outcome])
    assert {name: table.num_rows for name, table in batch.tables.items() if name in outcome.tables} == {
        name: len(rows) for name, rows in outcome.tables.items()
    }
