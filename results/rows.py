"""Typed rows of the tables ``shadow run`` writes, and the closed set of divergence kinds.

Each ``*Row`` is a :class:`~typing.TypedDict` whose keys are exactly the table's columns in
:data:`results.schema.TABLES` (``identity`` and ``session_id`` are filled by the writer when a row
leaves them out). Building a row through its class (``StepRow(trace_id=..., ...)``) makes a misspelled
column a type error under mypy --strict; at run time the writer refuses a row with a column its table
does not have (``ResultsStore.to_arrow``), where it used to write NULL. tests/results/test_contract.py
checks that every class here matches its table's DDL.

:class:`DivergenceKind` is the one list of divergence kinds: the comparison produces them, the writer
stores their values, the gate's SQL and the report read them. Adding a kind is a change here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import TypedDict

__all__ = [
    "ROW_TYPES",
    "CauseRow",
    "DivergenceKind",
    "DivergenceRow",
    "FidelityRow",
    "HandoffRow",
    "LatencyRow",
    "LatencyTestRow",
    "QuarantineRow",
    "RecordRow",
    "RunRow",
    "SignatureRow",
    "StepRow",
    "TraceRow",
    "WaiverRow",
    "check_columns",
]


class DivergenceKind(StrEnum):
    """What differs. The set is closed: the results schema, the noise filter, the registry, the gate and
    the report key on it."""

    FINAL_STATUS = "final_status"
    STEP_STATUS = "step_status"
    ATTEMPT_COUNT = "attempt_count"
    PARAMS = "params"
    OUTPUTS = "outputs"
    CONFIG = "config"
    MISSING_STEP = "missing_step"
    EXTRA_STEP = "extra_step"
    UNRECORDED_ATTEMPT = "unrecorded_attempt"
    STUCK_RUN = "stuck_run"
    CAUSALITY_VIOLATION = "causality_violation"
    INVARIANT_VIOLATION = "invariant_violation"  # the candidate's record breaks a rule on its own
    ENGINE_ERROR = "engine_error"


class _Identity(TypedDict, total=False):
    identity: str  # the writer's identity when absent


class TraceRow(_Identity):
    trace_id: str
    session_id: str | None
    workflow_id: str
    workflow_type: str
    owner: str | None
    tags: list[str]
    source: str | None
    corpus_file: str
    corpus_line: int
    n_runs: int
    n_steps: int
    n_recorded_attempts: int
    recorded_seconds: float | None
    candidate_divergences: int
    aa_divergences: int
    unexplained: int
    error: str | None
    wall_seconds: float
    captured_at: datetime | None  # metadata.captured_at as naive UTC
    features: list[str]  # corpora.coverage feature names the trace exercises


class RunRow(_Identity):
    trace_id: str
    engine: str
    run_id: str
    status: str
    stuck: bool
    triggered_at: float | None
    started_at: float | None
    ended_at: float | None
    end_to_end: float | None
    makespan: float | None
    critical_path: float | None
    orchestration_overhead: float | None


class StepRow(_Identity):
    trace_id: str
    engine: str
    run_id: str
    path: str
    step_id: str
    step_type: str
    attempt: int
    status: str
    outcome: str | None
    unrecorded: bool
    created_at: float | None
    ready_at: float | None
    started_at: float | None
    ended_at: float | None
    start_overhead: float | None


class RecordRow(_Identity):
    trace_id: str
    engine: str
    engine_name: str
    engine_version: str
    seed: int
    record: str  # canonical JSON
    counters: str  # canonical JSON


class DivergenceRow(_Identity):
    trace_id: str
    comparison: str  # candidate | aa
    run_id: str
    path: str
    kind: str  # a DivergenceKind value
    detail: str
    baseline_value: str  # canonical JSON
    other_value: str
    signature: str
    is_first: bool
    waived_by: str | None
    cause: str  # kind|field|change


class FidelityRow(_Identity):
    trace_id: str
    engine: str  # baseline | candidate
    runs_observed: int
    runs_agree: int
    steps_observed: int
    steps_agree: int
    steps_missing: int
    steps_extra: int
    attempts_agree: int
    status_agreement: float | None
    observed_status: str | None
    replayed_status: str | None
    observed_makespan: float | None
    replayed_makespan: float | None
    makespan_ratio: float | None
    start_delay_ratio: float | None
    start_delays: int
    first_disagreement: str | None
    disagreements: str  # canonical JSON


class FaultTrialRow(_Identity):
    trace_id: str
    fault: str  # the campaign entry's name
    trial: int  # 1-based, per (trace, fault)
    kind: str  # the spec's first word: crash, pause, drop, dup, store-fail, stall-worker, ...
    spec: str | None  # the placed spec; None when not placed
    fired: bool
    outcome: str  # shadow.campaign.OUTCOMES
    divergence_kinds: list[str]
    lost: int
    duplicated: int
    stuck: int
    latency_added: float | None
    baseline_divergences: int | None
    detail: str
    wall_seconds: float


class CauseRow(_Identity):
    cause: str
    kind: str
    field: str
    change: str
    description: str
    candidate_traces: int
    aa_traces: int
    candidate_rate: float | None
    aa_rate: float | None
    status: str
    waived_by: str | None
    root_traces: int
    consequence_of: str | None
    members: str  # canonical JSON
    divergences: int
    exemplars: list[str]
    first_divergence_path: str | None


class SignatureRow(_Identity):
    signature: str
    workflow_type: str
    step_type: str
    path_pattern: str
    kind: str
    candidate_traces: int
    aa_traces: int
    candidate_rate: float | None
    aa_rate: float | None
    status: str
    waived_by: str | None
    exemplars: list[str]
    first_divergence_path: str | None


class QuarantineRow(_Identity):
    session_id: str | None
    file: str
    line: int
    trace_id: str | None
    code: str
    message: str
    hint: str | None
    json_path: str | None


class LatencyRow(_Identity):
    metric: str
    engine: str
    n: int
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


class LatencyTestRow(_Identity):
    metric: str
    n_pairs: int
    median_ratio: float | None
    p99_ratio: float | None
    wilcoxon_statistic: float | None
    wilcoxon_p: float | None
    mw_ci_low: float | None
    mw_ci_high: float | None
    judge: str


class WaiverRow(_Identity):
    entry_id: str
    pattern: str
    owner: str
    reason: str
    expires: date | str | None
    hits: int
    expired: bool


class HandoffRow(TypedDict, total=False):
    trace_id: str
    workflow_type: str | None
    cut_index: int
    cut: str
    seed: int
    cut_at: float | None
    legacy_makespan: float | None
    handoff_makespan: float | None
    runs_live: int | None
    runs_queued: int | None
    runs_ended: int | None
    runs_untriggered: int | None
    attempts_running: int | None
    attempts_lost: int | None
    attempts_finished_unseen: int | None
    retries_pending: int | None
    duplicate_starts: int | None
    differences: int | None
    runs_differing: int | None
    first_difference: str | None
    detail: str | None  # JSON
    error: str | None


ROW_TYPES: dict[str, type] = {
    "traces": TraceRow,
    "runs": RunRow,
    "steps": StepRow,
    "records": RecordRow,
    "divergences": DivergenceRow,
    "fidelity": FidelityRow,
    "fault_trials": FaultTrialRow,
    "signatures": SignatureRow,
    "causes": CauseRow,
    "quarantine": QuarantineRow,
    "latency": LatencyRow,
    "latency_tests": LatencyTestRow,
    "waivers": WaiverRow,
    "handoffs": HandoffRow,
}
"""The row type of each table written through ``ResultsStore`` (provenance, meta, verdicts and the
rollout history are written by SQL or Arrow directly)."""


def check_columns(table: str, rows: Iterable[Mapping[str, object]], columns: Iterable[str]) -> None:
    """Raise ValueError naming the columns some row has and ``table`` has not: a misspelled key must not
    become a silent NULL column (the writer and the Arrow batches of remote executors both call this)."""
    names = set(columns)
    unknown = {key for row in rows for key in row} - names
    if unknown:
        raise ValueError(
            f"row for table {table!r} has column(s) the table does not have: "
            f"{', '.join(sorted(unknown))} (see results.rows)"
        )
