"""One trace's shadow trial: replay it on baseline, candidate and the A/A replica, compare, measure.

This is the unit of work a worker process runs. It takes engine *specs* (never engine objects) so
it can run anywhere, catches an engine's exception as that trace's ``engine_error`` (the corpus goes
on), and returns plain rows keyed by results-table column, ready to be buffered into Arrow batches
in the parent.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corpora.codec import encode
from corpora.coverage import trace_features
from corpora.model import Step, Trace
from engines.api import DEFAULT_TIME_LIMIT, Engine, ExecutionRecord, ReplayOptions
from results.rows import DivergenceRow, RecordRow, RunRow, StepRow, TraceRow
from shadow.campaign import Campaign, run_trials
from shadow.compare import CausalOrder, Divergence, NormalForms, compare_records, engine_error_divergence
from shadow.compare.invariants import invariant_divergences
from shadow.engines import EngineSpec, build_engine
from shadow.fidelity import FIDELITY_ROLES, fidelity_row
from shadow.latency import run_metrics

__all__ = ["ROLES", "TraceJob", "TraceOutcome", "TrialConfig", "count_steps", "run_trace", "run_trace_with"]

ROLES = ("baseline", "candidate", "baseline_aa")
Row = Mapping[str, Any]  # one of results.rows' typed rows


@dataclass(frozen=True, slots=True)
class TrialConfig:
    """Engines (by spec) and options for every trial of a session; picklable, sent once per batch."""

    engines: Mapping[str, EngineSpec]
    seeds: Mapping[str, int]
    time_limit: float = DEFAULT_TIME_LIMIT
    faults: tuple[str, ...] = ()
    exact: bool = False  # ReplayOptions.exact: tick-by-tick engines (same records, slower)
    # A fault campaign (shadow.campaign): each trace is also replayed on the candidate under each placed fault.
    # With engine options of its own, ``engines`` holds a "faults" role: the candidate built with them.
    campaign: Campaign | None = None


@dataclass(frozen=True, slots=True)
class TraceJob:
    trace: Trace
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class TraceOutcome:
    """All rows of one trace, per table. Written together with the rest of its batch, or not at all."""

    trace_id: str
    tables: Mapping[str, list[Row]] = field(default_factory=dict)
    candidate_divergences: int = 0


def count_steps(steps: Sequence[Step], trace: Trace, depth: int = 0) -> int:
    total = 0
    for step in steps:
        total += 1
        if step.foreach is not None:
            total += count_steps(step.foreach.steps, trace, depth + 1)
        elif step.subworkflow is not None and depth < 16:
            child = trace.subworkflows.get(step.subworkflow.workflow_id)
            total += count_steps(child.steps, trace, depth + 1) if child else 0
    return total


def _replay(
    engine: Engine, trace: Trace, options: ReplayOptions
) -> tuple[ExecutionRecord | None, str | None]:
    try:
        record = engine.replay(trace, options)
    except Exception as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
        return None, f"{type(exc).__name__}: {exc}{where}"
    return record, record.error


def run_trace(job: TraceJob, config: TrialConfig) -> TraceOutcome:
    """Build the engines from their specs and run one trial (convenience for single traces)."""
    engines = {role: build_engine(spec) for role, spec in config.engines.items()}
    return run_trace_with(job, config, engines)


def run_trace_with(job: TraceJob, config: TrialConfig, engines: Mapping[str, Engine]) -> TraceOutcome:
    """Replay on the three roles, compare baseline vs candidate and vs A/A, and build every row."""
    began = time.perf_counter()
    trace = job.trace
    records: dict[str, ExecutionRecord | None] = {}
    errors: dict[str, str] = {}
    for role in ROLES:
        options = ReplayOptions(
            seed=config.seeds[role], time_limit=config.time_limit, faults=config.faults, exact=config.exact
        )
        record, error = _replay(engines[role], trace, options)
        records[role] = record
        if error:
            errors[role] = error
    order = CausalOrder(trace)
    normalized: NormalForms = {}  # the baseline is normalized once for both comparisons
    divergences: dict[str, list[Divergence]] = {}
    for comparison, role in (("candidate", "candidate"), ("aa", "baseline_aa")):
        base, other = records["baseline"], records[role]
        if "baseline" in errors or role in errors or base is None or other is None:
            failed = "baseline" if "baseline" in errors else role
            divergences[comparison] = [
                engine_error_divergence(trace, failed, errors.get(failed, "no record"))
            ]
        else:
            divergences[comparison] = compare_records(trace, base, other, order, normalized)
    candidate = records["candidate"]
    if candidate is not None and "candidate" not in errors:
        # rules the candidate's record must satisfy on its own (shadow/compare/invariants.py)
        divergences["candidate"].extend(invariant_divergences(trace, candidate))
    tables: dict[str, list[Row]] = {
        name: [] for name in ("runs", "steps", "records", "divergences", "fidelity")
    }
    if config.campaign is not None:
        tables["fault_trials"] = list(_fault_trials(trace, config, engines, records, errors))
    for role in ROLES:
        record = records[role]
        if record is not None:
            _record_rows(trace, role, record, tables)
            if (
                role in FIDELITY_ROLES
                and role not in errors
                and (fid := fidelity_row(trace, role, record)) is not None
            ):
                tables["fidelity"].append(fid)
    for comparison, found in divergences.items():
        for d in found:
            tables["divergences"].append(
                DivergenceRow(
                    trace_id=trace.trace_id,
                    comparison=comparison,
                    run_id=d.run_id,
                    path=d.path,
                    kind=d.kind.value,
                    detail=d.detail,
                    baseline_value=_dumps(d.baseline_value),
                    other_value=_dumps(d.other_value),
                    signature=d.signature,
                    is_first=d.is_first,
                    waived_by=None,
                    cause=d.cause,
                )
            )
    recorded = [a for r in trace.runs for a in r.attempts]
    first = min((r.trigger_time for r in trace.runs), default=0.0)
    last_end = max(
        (r.observed.end_time for r in trace.runs if r.observed and r.observed.end_time), default=None
    )
    error = "; ".join(f"{role}: {msg}" for role, msg in sorted(errors.items())) or None
    tables["traces"] = [
        TraceRow(
            trace_id=trace.trace_id,
            session_id=None,
            workflow_id=trace.workflow_id,
            workflow_type=trace.metadata.workflow_type,
            owner=trace.metadata.owner,
            tags=list(trace.metadata.tags),
            source=trace.metadata.source,
            corpus_file=job.file,
            corpus_line=job.line,
            n_runs=len(trace.runs),
            n_steps=count_steps(trace.definition.steps, trace),
            n_recorded_attempts=len(recorded),
            recorded_seconds=(last_end - first) if last_end is not None else None,
            candidate_divergences=len(divergences["candidate"]),
            aa_divergences=len(divergences["aa"]),
            unexplained=len(divergences["candidate"]),
            error=error,
            wall_seconds=time.perf_counter() - began,
            captured_at=captured_at(trace.metadata.captured_at),
            features=sorted(trace_features(trace)),
        )
    ]
    return TraceOutcome(trace.trace_id, tables, len(divergences["candidate"]))


def _fault_trials(
    trace: Trace,
    config: TrialConfig,
    engines: Mapping[str, Engine],
    records: Mapping[str, ExecutionRecord | None],
    errors: Mapping[str, str],
) -> list[Row]:
    """The campaign's trials of this trace on the candidate (or its "faults" role when the campaign sets
    engine options), each compared with the same engine's no-fault record."""
    assert config.campaign is not None
    seed = config.seeds["candidate"]
    engine = engines.get("faults", engines["candidate"])
    if "faults" in engines:
        reference, error = _replay(
            engine, trace, ReplayOptions(seed=seed, time_limit=config.time_limit, exact=config.exact)
        )
        reference = None if error else reference
    else:
        reference = None if "candidate" in errors else records["candidate"]
    baseline = None if "baseline" in errors else records["baseline"]

    def replay(faults: tuple[str, ...]) -> tuple[ExecutionRecord | None, str | None]:
        return _replay(
            engine,
            trace,
            ReplayOptions(seed=seed, time_limit=config.time_limit, faults=faults, exact=config.exact),
        )

    return list(run_trials(trace, config.campaign, reference, replay, baseline))


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _record_rows(trace: Trace, role: str, record: ExecutionRecord, tables: dict[str, list[Row]]) -> None:
    tid = trace.trace_id
    tables["records"].append(
        RecordRow(
            trace_id=tid,
            engine=role,
            engine_name=record.engine,
            engine_version=record.engine_version,
            seed=record.seed,
            record=_dumps(encode(record)),
            counters=_dumps(dict(record.counters)),
        )
    )
    for run in record.runs:
        metrics = run_metrics(trace, run)
        tables["runs"].append(
            RunRow(
                trace_id=tid,
                engine=role,
                run_id=run.run_id,
                status=run.status,
                stuck=run.stuck,
                triggered_at=run.triggered_at,
                started_at=run.started_at,
                ended_at=run.ended_at,
                end_to_end=metrics["end_to_end"],
                makespan=metrics["makespan"],
                critical_path=metrics["critical_path"],
                orchestration_overhead=metrics["orchestration_overhead"],
            )
        )
        for att in sorted(run.attempts, key=lambda a: (a.path, a.attempt)):
            overhead = None
            if att.started_at is not None and att.ready_at is not None:
                overhead = att.started_at - att.ready_at
            tables["steps"].append(
                StepRow(
                    trace_id=tid,
                    engine=role,
                    run_id=run.run_id,
                    path=att.path,
                    step_id=att.step_id,
                    step_type=att.step_type,
                    attempt=att.attempt,
                    status=att.status,
                    outcome=att.outcome,
                    unrecorded=att.unrecorded,
                    created_at=att.created_at,
                    ready_at=att.ready_at,
                    started_at=att.started_at,
                    ended_at=att.ended_at,
                    start_overhead=overhead,
                )
            )


def captured_at(text: str | None) -> dt.datetime | None:
    """``metadata.captured_at`` (ISO 8601) as a naive UTC datetime for the ``traces.captured_at`` column;
    None when absent or not a date-time (a capture time nobody can read proves nothing)."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value
