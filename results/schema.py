"""The results database schema: the contract between ``shadow`` (writes), ``reports`` and the gate (read).

One DuckDB file holds every session of ``shadow run`` against it. Tables are written in Arrow
batches. Times ending in ``_at`` are virtual seconds (epoch-based) unless the column is a TIMESTAMP;
durations are seconds. JSON columns hold canonical JSON text. docs/RESULTS.md documents each column
with example queries; keep the two in step (a test checks every table and column is documented).

Engines are named by role: ``baseline`` (the legacy engine), ``candidate`` (the engine under test,
the actor engine by default) and ``baseline_aa`` (the legacy engine replayed again with another
perturbation seed, to measure noise). Comparisons are ``candidate`` (baseline vs candidate) and
``aa`` (baseline vs baseline_aa).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ADDED_COLUMNS", "DDL", "FORMAT_NAME", "IDENTITY_TABLES", "SCHEMA_VERSION", "TABLES", "dumps"]

FORMAT_NAME = "workflow-shadow-results"
"""``meta.format``: the mark that says a DuckDB file is a results database this tool wrote."""

SCHEMA_VERSION = 3
"""1: the first release. 2: ``identity`` on every per-trace and aggregate table (one file may hold the
results of several identities, see ``results.identity``), ``meta.format``, ``provenance.exact``.
3: ``traces.captured_at``, ``provenance.heartbeat_at``, the verdict's evidence (``verdicts.cohorts_sha256``,
``candidate_identity``, ``captured_min``, ``uncaptured``, ``partial``); ``rollout_history`` left the results
database for the rollout state store (``shadow.gate.state``); ``divergences.cause`` and the ``causes`` table
(cause groups, :mod:`shadow.compare.cause`); the ``fidelity`` table (replays vs production's observations),
and the ``fault_trials`` table (a fault campaign's trials, :mod:`shadow.campaign`), added within schema 3: ``CREATE TABLE IF NOT EXISTS`` gives it to any file a writer opens, and readers treat a
file without it as one without observations."""

ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("traces", "captured_at", "TIMESTAMP"),
    ("provenance", "heartbeat_at", "TIMESTAMP"),
    ("verdicts", "cohorts_sha256", "VARCHAR"),
    ("verdicts", "candidate_identity", "VARCHAR"),
    ("verdicts", "captured_min", "TIMESTAMP"),
    ("verdicts", "uncaptured", "INTEGER"),
    ("verdicts", "partial", "BOOLEAN"),
    ("divergences", "cause", "VARCHAR"),
    ("traces", "features", "VARCHAR[]"),
    ("provenance", "follow_position", "JSON"),
    ("verdicts", "captured_since", "TIMESTAMP"),
)
"""Columns added after schema 2 (table, column, type): a v2 file gets them with ``ADD COLUMN IF NOT EXISTS``."""

IDENTITY_TABLES = (
    "provenance",
    "traces",
    "runs",
    "steps",
    "records",
    "divergences",
    "quarantine",
    "signatures",
    "causes",
    "latency",
    "latency_tests",
    "waivers",
    "verdicts",
    "fidelity",
    "fault_trials",
)
"""Tables whose rows carry the ``identity`` they belong to (readers see one identity at a time)."""

TABLES: dict[str, str] = {
    "meta": """
        CREATE TABLE IF NOT EXISTS meta (
            key VARCHAR PRIMARY KEY,
            value VARCHAR
        )""",
    # One row per `shadow run` invocation.
    "provenance": """
        CREATE TABLE IF NOT EXISTS provenance (
            session_id VARCHAR,           -- uuid of the shadow run invocation
            started_at TIMESTAMP,         -- wall clock (harness time)
            finished_at TIMESTAMP,
            command VARCHAR,              -- the command line
            git_sha VARCHAR,
            package_version VARCHAR,
            baseline_engine VARCHAR,      -- e.g. legacy 0.1.0
            candidate_engine VARCHAR,     -- e.g. actor 0.1.0, or module:factory
            config_hash VARCHAR,          -- sha256 of the effective harness + engine config
            config JSON,
            seeds JSON,                   -- {"baseline": s, "candidate": s, "baseline_aa": s}
            corpus_hash VARCHAR,          -- sha256 over the input files' bytes
            corpus_files JSON,
            traces_done INTEGER,
            status VARCHAR,               -- running | finished | interrupted | failed
            identity VARCHAR,             -- sha256 of identity_parts: what produced the results
            identity_parts JSON,          -- corpus content, engines (name, version, config hash), seeds, ...
            exact BOOLEAN,                -- --exact (tick by tick): same records by contract, not identity
            heartbeat_at TIMESTAMP,       -- wall clock of the running session's last flush (readers: still going?)
            follow_position JSON          -- shadow run --follow: {segment, offset, line} read and stored up to
        )""",
    # One row per trace replayed (written once all three replays and the comparison are done).
    "traces": """
        CREATE TABLE IF NOT EXISTS traces (
            trace_id VARCHAR,
            session_id VARCHAR,
            workflow_id VARCHAR,
            workflow_type VARCHAR,
            owner VARCHAR,
            tags VARCHAR[],
            source VARCHAR,
            corpus_file VARCHAR,
            corpus_line INTEGER,
            n_runs INTEGER,
            n_steps INTEGER,              -- steps in the definition, subworkflows and foreach bodies included
            n_recorded_attempts INTEGER,
            recorded_seconds DOUBLE,      -- production time covered: last run end - first trigger (recorded)
            candidate_divergences INTEGER,-- raw divergence count baseline vs candidate
            aa_divergences INTEGER,       -- raw divergence count baseline vs baseline_aa
            unexplained INTEGER,          -- candidate divergences that survive the noise filter and registry
            error VARCHAR,                -- harness or engine error for this trace, NULL when fine
            wall_seconds DOUBLE,          -- harness time spent on the trace
            identity VARCHAR NOT NULL DEFAULT '',
            captured_at TIMESTAMP,        -- when production captured the trace (metadata.captured_at, UTC)
            features VARCHAR[],           -- the situations the trace exercises (corpora.coverage.FEATURES)
            PRIMARY KEY (identity, trace_id)
        )""",
    # One row per (trace, engine role, run).
    "runs": """
        CREATE TABLE IF NOT EXISTS runs (
            trace_id VARCHAR,
            engine VARCHAR,               -- baseline | candidate | baseline_aa
            run_id VARCHAR,
            status VARCHAR,               -- final WorkflowStatus (last seen when stuck)
            stuck BOOLEAN,
            triggered_at DOUBLE,
            started_at DOUBLE,
            ended_at DOUBLE,
            end_to_end DOUBLE,            -- ended_at - triggered_at
            makespan DOUBLE,              -- ended_at - started_at
            critical_path DOUBLE,         -- longest path of recorded attempt durations (incl. backoffs)
            orchestration_overhead DOUBLE,-- makespan - critical_path
            identity VARCHAR
        )""",
    # One row per (trace, engine role, step attempt).
    "steps": """
        CREATE TABLE IF NOT EXISTS steps (
            trace_id VARCHAR,
            engine VARCHAR,
            run_id VARCHAR,
            path VARCHAR,
            step_id VARCHAR,
            step_type VARCHAR,
            attempt INTEGER,
            status VARCHAR,
            outcome VARCHAR,
            unrecorded BOOLEAN,
            created_at DOUBLE,
            ready_at DOUBLE,
            started_at DOUBLE,
            ended_at DOUBLE,
            start_overhead DOUBLE,        -- started_at - ready_at
            identity VARCHAR
        )""",
    # The full canonical ExecutionRecord per (trace, engine role), for drill-down and side-by-side diffs.
    "records": """
        CREATE TABLE IF NOT EXISTS records (
            trace_id VARCHAR,
            engine VARCHAR,
            engine_name VARCHAR,
            engine_version VARCHAR,
            seed BIGINT,
            record JSON,
            counters JSON,
            identity VARCHAR
        )""",
    # One row per flattened difference.
    "divergences": """
        CREATE TABLE IF NOT EXISTS divergences (
            trace_id VARCHAR,
            comparison VARCHAR,           -- candidate | aa
            run_id VARCHAR,
            path VARCHAR,                 -- step path, '' for run-level differences
            kind VARCHAR,                 -- final_status | step_status | attempt_count | params | outputs | config
                                          -- | missing_step | extra_step | unrecorded_attempt | stuck_run
                                          -- | causality_violation | invariant_violation | engine_error
            detail VARCHAR,               -- deepdiff path inside the record, when finer than the kind
            baseline_value JSON,
            other_value JSON,
            signature VARCHAR,
            is_first BOOLEAN,             -- the first divergence point of this run (causal order)
            waived_by VARCHAR,            -- registry entry id, NULL when not waived
            identity VARCHAR,
            cause VARCHAR                 -- kind|field|change: what changed, wherever (shadow.compare.cause)
        )""",
    # One row per (trace, campaign fault, trial) of `shadow run --faults CAMPAIGN.toml` (shadow.campaign): the
    # candidate engine replayed under one placed fault, compared with its own no-fault record of the trace.
    "fault_trials": """
        CREATE TABLE IF NOT EXISTS fault_trials (
            trace_id VARCHAR,
            fault VARCHAR,                -- the campaign entry's name
            trial INTEGER,                -- 1-based per (trace, fault)
            kind VARCHAR,                 -- the spec's first word: crash, pause, drop, dup, store-fail, stall-worker
            spec VARCHAR,                 -- the placed fault spec; NULL when it could not be placed
            fired BOOLEAN,                -- the engine counted the fault as taking effect (faults_fired > 0)
            outcome VARCHAR,              -- engine_error | stuck | lost_attempt | duplicated_attempt | wrong_status
                                          -- | changed_data | equal | not_placed (shadow.campaign.OUTCOMES)
            divergence_kinds VARCHAR[],   -- kinds of the differences from the engine's own no-fault record
            lost INTEGER,                 -- attempts of the no-fault record missing under the fault
            duplicated INTEGER,           -- attempts beyond it, plus runtime invocations beyond the attempts run
            stuck INTEGER,                -- runs that never ended under the fault (and did without it)
            latency_added DOUBLE,         -- max over runs of the end time's delay against the no-fault record (s)
            baseline_divergences INTEGER, -- differences of the faulted record from the baseline's
            detail VARCHAR,               -- the first difference, or why the fault was not placed
            wall_seconds DOUBLE,
            identity VARCHAR NOT NULL DEFAULT '',
            PRIMARY KEY (identity, trace_id, fault, trial)
        )""",
    # One row per (trace, engine role) for traces whose runs carry production's observations (Run.observed):
    # how the replay compares with what production saw (shadow.fidelity). Roles: baseline | candidate.
    "fidelity": """
        CREATE TABLE IF NOT EXISTS fidelity (
            trace_id VARCHAR,
            engine VARCHAR,               -- baseline (legacy-model fidelity) | candidate
            runs_observed INTEGER,        -- runs with an observation
            runs_agree INTEGER,           -- of those, runs whose final status class matches production's
            steps_observed INTEGER,       -- observed step paths (all runs)
            steps_agree INTEGER,          -- of those, steps whose final status class matches production's
            steps_missing INTEGER,        -- observed steps the replay never ran
            steps_extra INTEGER,          -- leaf steps the replay ran (not skipped) that production never observed
            attempts_agree INTEGER,       -- observed steps whose replayed attempt count equals production's
            status_agreement DOUBLE,      -- (runs_agree + steps_agree) / (runs_observed + steps_observed + steps_extra)
            observed_status VARCHAR,      -- first observed run: production's final status, as the source names it
            replayed_status VARCHAR,      -- the same run's final status in the replay (NULL: not replayed)
            observed_makespan DOUBLE,     -- median over runs of observed end_time - start_time (seconds)
            replayed_makespan DOUBLE,     -- median over the same runs of replayed ended_at - started_at
            makespan_ratio DOUBLE,        -- median over runs of replayed / observed makespan
            start_delay_ratio DOUBLE,     -- median over observed steps of replayed / observed delay run start -> step start
            start_delays INTEGER,         -- steps that gave a start-delay ratio (observed delay > 0)
            first_disagreement VARCHAR,   -- path of the first disagreeing step (observed start order); '' = the run's
                                          -- status only; NULL = full agreement
            disagreements JSON,           -- up to 20 [{run_id, path, observed, replayed}], NULL side = never seen there
            identity VARCHAR NOT NULL DEFAULT '',
            PRIMARY KEY (identity, trace_id, engine)
        )""",
    # One row per (trace, cut point, seed) of `shadow handoff` (docs/HANDOFF.md): the trace replayed on the legacy
    # engine up to the cut, the actor engine adopting the runs in flight; compared with the legacy-only replay.
    "handoffs": """
        CREATE TABLE IF NOT EXISTS handoffs (
            trace_id VARCHAR,
            workflow_type VARCHAR,
            cut_index INTEGER,            -- position of the cut point in the command's --at list (0-based)
            cut VARCHAR,                  -- the cut point as given: 90s | 50% | step:PATH | random
            seed INTEGER,
            cut_at DOUBLE,                -- virtual seconds after the first trigger at which legacy stopped; NULL: not reached
            legacy_makespan DOUBLE,       -- legacy-only replay: first trigger -> last run end (seconds)
            handoff_makespan DOUBLE,      -- the handed-off replay, the same measure (a latency figure only)
            runs_live INTEGER,            -- runs in progress at the cut, adopted by the actor engine
            runs_queued INTEGER,          -- runs waiting behind a run strategy at the cut
            runs_ended INTEGER,           -- runs already terminal at the cut
            runs_untriggered INTEGER,     -- runs whose trigger was still to come
            attempts_running INTEGER,     -- RUNNING attempts whose runtime was alive: attached, not restarted
            attempts_lost INTEGER,        -- RUNNING attempts the runtime did not know: started by the actor
            attempts_finished_unseen INTEGER, -- runtimes that had finished before the cut, unread by legacy
            retries_pending INTEGER,      -- steps in a retry backoff at the cut
            duplicate_starts INTEGER,     -- attempts whose runtime both engines started (must be 0)
            differences INTEGER,          -- outcome differences from the legacy-only record (statuses, attempts,
                                          -- params, outputs, configuration); NULL when the hand-off did not run
            runs_differing INTEGER,       -- runs with at least one difference
            first_difference VARCHAR,     -- kind path: detail of the causally first difference
            detail JSON,                  -- up to 20 [{run_id, path, kind, detail}]
            error VARCHAR,                -- why the hand-off could not run (engine error, cut never reached)
            PRIMARY KEY (trace_id, cut_index, seed)
        )""",
    # One row per cause group (what changed, whichever steps it touched), after each session. The noise
    # filter and the gate work on these; signatures (where it showed) are the drill-down.
    "causes": """
        CREATE TABLE IF NOT EXISTS causes (
            cause VARCHAR,                -- kind|field|change, e.g. outputs|outputs.region|added:str
            kind VARCHAR,
            field VARCHAR,                -- e.g. outputs.region, params.table, status ('' for whole steps)
            change VARCHAR,               -- added:str | removed:int | SUCCEEDED->FAILED | upper-cased | fewer ...
            description VARCHAR,          -- one line a person reads
            candidate_traces INTEGER,     -- traces where baseline vs candidate shows this cause
            aa_traces INTEGER,            -- traces where baseline vs baseline_aa shows it (noise)
            candidate_rate DOUBLE,
            aa_rate DOUBLE,
            status VARCHAR,               -- unexplained | noise | waived
            waived_by VARCHAR,            -- the registry entry when every candidate divergence of it is waived
            root_traces INTEGER,          -- traces where it is a run's first divergence point (a root cause)
            consequence_of VARCHAR,       -- for a cause never first: the cause most often first in its runs
            members JSON,                 -- {"workflow_types": {t: traces}, "step_types": {...}, "paths": {...}}
            divergences BIGINT,           -- candidate divergence rows
            exemplars VARCHAR[],          -- up to 5 trace ids
            first_divergence_path VARCHAR,-- most common first divergence point among its runs
            identity VARCHAR NOT NULL DEFAULT '',
            PRIMARY KEY (identity, cause)
        )""",
    # One row per signature, aggregated over the whole database after each session.
    "signatures": """
        CREATE TABLE IF NOT EXISTS signatures (
            signature VARCHAR,
            workflow_type VARCHAR,
            step_type VARCHAR,
            path_pattern VARCHAR,
            kind VARCHAR,
            candidate_traces INTEGER,     -- traces where baseline vs candidate shows this signature
            aa_traces INTEGER,            -- traces where baseline vs baseline_aa shows it (noise)
            candidate_rate DOUBLE,        -- candidate_traces / traces
            aa_rate DOUBLE,
            status VARCHAR,               -- unexplained | noise | waived
            waived_by VARCHAR,
            exemplars VARCHAR[],          -- up to 5 trace ids
            first_divergence_path VARCHAR,-- most common first divergence point
            identity VARCHAR NOT NULL DEFAULT '',
            PRIMARY KEY (identity, signature)
        )""",
    # Bad input that was set aside (the rest of the corpus went on).
    "quarantine": """
        CREATE TABLE IF NOT EXISTS quarantine (
            session_id VARCHAR,
            file VARCHAR,
            line INTEGER,
            trace_id VARCHAR,
            code VARCHAR,
            message VARCHAR,
            hint VARCHAR,
            json_path VARCHAR,
            identity VARCHAR
        )""",
    # Latency summary per metric and engine role, recomputed after each session.
    "latency": """
        CREATE TABLE IF NOT EXISTS latency (
            metric VARCHAR,               -- start_overhead | orchestration_overhead | end_to_end
            engine VARCHAR,
            n BIGINT,
            mean DOUBLE,
            p50 DOUBLE,
            p95 DOUBLE,
            p99 DOUBLE,
            max DOUBLE,
            identity VARCHAR
        )""",
    # Paired statistics baseline vs candidate per metric.
    "latency_tests": """
        CREATE TABLE IF NOT EXISTS latency_tests (
            metric VARCHAR,
            n_pairs BIGINT,
            median_ratio DOUBLE,          -- baseline / candidate (speed-up), medians
            p99_ratio DOUBLE,
            wilcoxon_statistic DOUBLE,
            wilcoxon_p DOUBLE,
            mw_ci_low DOUBLE,             -- Mann-Whitney / Hodges-Lehmann 98 % CI of the candidate-baseline shift
            mw_ci_high DOUBLE,
            judge VARCHAR,                -- pass | regression | improvement (Kayenta-style, tolerance 0.25)
            identity VARCHAR
        )""",
    # Registry hits per entry.
    "waivers": """
        CREATE TABLE IF NOT EXISTS waivers (
            entry_id VARCHAR,
            pattern VARCHAR,
            owner VARCHAR,
            reason VARCHAR,
            expires DATE,
            hits BIGINT,
            expired BOOLEAN,
            identity VARCHAR
        )""",
    # Gate verdicts (written by `shadow gate`).
    "verdicts": """
        CREATE TABLE IF NOT EXISTS verdicts (
            verdict_id VARCHAR,
            created_at TIMESTAMP,
            cohort VARCHAR,
            verdict VARCHAR,              -- PASS | MARGINAL | FAIL | INSUFFICIENT_DATA
            score DOUBLE,
            reason VARCHAR,
            n_traces INTEGER,
            criteria JSON,                -- [{name, status, value, threshold, message}]
            identity VARCHAR,
            cohorts_sha256 VARCHAR,       -- sha256 of the cohorts file's bytes the verdict judged with
            candidate_identity VARCHAR,   -- sha256 of the identity's candidate part (engine, version, config)
            captured_min TIMESTAMP,       -- earliest captured_at of the cohort's judged traces
            uncaptured INTEGER,           -- judged traces without a capture time
            partial BOOLEAN,              -- judged while the run was still going (gate --allow-partial)
            captured_since TIMESTAMP      -- gate --since: only traces captured at or after this were judged
        )""",
}

DDL = ";\n".join(TABLES.values()) + ";"


def dumps(value: Any) -> str:
    """Canonical JSON text for JSON columns."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
