"""Everything the report shows, aggregated in SQL over the results database.

The report never loads whole tables into Python: each section is one or two aggregate queries whose
result size depends on the caps in :class:`ReportLimits`, not on the number of runs, so a database
of 100,000 runs renders as fast as one of a hundred. Tables the writer has not filled (no gate run
yet, no A/A replica) simply come back empty; a file that is not a results database is a
:class:`ReportDataError` naming the file and what to do.

Only the schema contract (``results.schema``) is shared with the writer; nothing here imports
an engine.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from corpora.coverage import FEATURES
from reports.records import (
    CauseGroup,
    EngineInfo,
    FaultKindSummary,
    FidelitySummary,
    FidelityTrace,
    HandoffSummary,
    HandoffTrace,
    Headline,
    LatencyDistribution,
    Provenance,
    QuarantineEntry,
    SignatureGroup,
    Verdict,
    Waiver,
)
from results.connection import connect
from results.errors import ResultsError, open_failure_hint
from results.identity import resolve, scope
from results.rows import LatencyRow, LatencyTestRow
from results.schema import SCHEMA_VERSION, TABLES

__all__ = [
    "CDF_PROBABILITIES",
    "LATENCY_SOURCES",
    "CauseGroup",
    "EngineInfo",
    "Headline",
    "LatencyDistribution",
    "Provenance",
    "QuarantineEntry",
    "ReportDataError",
    "ReportLimits",
    "ResultsReader",
    "SignatureGroup",
    "Verdict",
    "Waiver",
    "schema_mismatch",
]

# Quantiles drawn for each distribution: dense in the tails, where regressions hide.
CDF_PROBABILITIES: tuple[float, ...] = tuple(
    sorted({*(i / 100 for i in range(1, 100)), 0.001, 0.005, 0.995, 0.999})
)


class ReportDataError(Exception):
    """The results database cannot be read as one: says which file, what is wrong and what to do."""


@dataclass(frozen=True, slots=True)
class ReportLimits:
    """Caps that keep the page small whatever the database size. Rows past a cap become an "N more" line."""

    groups: int = 100
    exemplars_per_group: int = 5
    drilldown_groups: int = 12
    quarantine: int = 200
    fidelity_traces: int = 50
    handoff_traces: int = 50
    trace_errors: int = 100
    waivers: int = 200
    diff_rows: int = 60
    timeline_rows: int = 60
    dag_nodes: int = 120
    record_chars: int = 20_000
    # Drill-downs stop (round-robin over groups) once they add about this many bytes to the page.
    drilldown_bytes: int = 3_000_000


# Where each latency metric lives: (table, column).
LATENCY_SOURCES: dict[str, tuple[str, str]] = {
    "start_overhead": ("steps", "start_overhead"),
    "orchestration_overhead": ("runs", "orchestration_overhead"),
    "end_to_end": ("runs", "end_to_end"),
}


def _json_dicts(raw: Any) -> tuple[dict[str, Any], ...]:
    """A JSON column holding a list of objects (``disagreements``, ``handoffs.detail``): its objects, or none
    when it is NULL or not readable (a report shows what it can)."""
    try:
        listed = json.loads(raw) if raw else []
    except (json.JSONDecodeError, TypeError):
        return ()
    return tuple(d for d in listed if isinstance(d, dict)) if isinstance(listed, list) else ()


def _s(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


class ResultsReader:
    """Read-only access to one results database; use as a context manager.

    Concurrency: one reader per thread; DuckDB's read-only mode lets it run beside other readers."""

    def __init__(self, path: str | Path, identity: str | None = None) -> None:
        """``identity``: whose results to read (id or unique prefix; default the latest session's)."""
        self.path = Path(path)
        if not self.path.is_file():
            raise ReportDataError(
                f"{self.path}: no such results database; run 'shadow run' first or check the path"
            )
        try:
            self._con = connect(self.path, read_only=True)
        except duckdb.Error as exc:
            raise ReportDataError(
                f"{self.path}: cannot open as a DuckDB results database ({exc}); {open_failure_hint(exc)}"
            ) from exc
        present = {
            r[0] for r in self._con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        missing = sorted({"traces", "runs", "divergences"} - present)
        if missing:
            self._con.close()
            raise ReportDataError(
                f"{self.path}: not a shadow results database (missing tables {', '.join(missing)}); "
                "pass the file written by 'shadow run'"
            )
        self._tables = present
        try:
            self.identity = resolve(self._con, identity, str(self.path))
            if self.identity is not None:
                scope(self._con, self.identity)
        except ResultsError as exc:
            self._con.close()
            raise ReportDataError(f"{exc}; 'shadow summary' names the latest identity") from exc

    def __enter__(self) -> ResultsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    # -- helpers -------------------------------------------------------------------------------

    def has(self, table: str) -> bool:
        return table in self._tables

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only query (for the drill-down module); results are plain tuples."""
        return self._con.execute(sql, list(params)).fetchall()

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._con.execute(sql, list(params)).fetchone()
        return None if row is None else row[0]

    def count(self, table: str, where: str = "TRUE", params: Sequence[Any] = ()) -> int:
        if not self.has(table):
            return 0
        return int(self._scalar(f"SELECT count(*) FROM {table} WHERE {where}", params) or 0)

    # -- headline ------------------------------------------------------------------------------

    def headline(self) -> Headline:
        by_engine = dict(self.query("SELECT engine, count(*) FROM runs GROUP BY engine ORDER BY engine"))
        steps = (
            dict(self.query("SELECT engine, count(*) FROM steps GROUP BY engine ORDER BY engine"))
            if self.has("steps")
            else {}
        )
        stuck = dict(
            self.query(
                "SELECT engine, count(*) FILTER (WHERE stuck) FROM runs GROUP BY engine ORDER BY engine"
            )
        )
        div = self.query(
            "SELECT count(DISTINCT trace_id) FILTER (WHERE comparison = 'candidate'), "
            "count(DISTINCT trace_id) FILTER (WHERE comparison = 'aa') FROM divergences"
        )[0]
        return Headline(
            traces=self.count("traces"),
            runs=int(by_engine.get("baseline", max(by_engine.values(), default=0))),
            runs_by_engine={str(k): int(v) for k, v in by_engine.items()},
            steps_by_engine={str(k): int(v) for k, v in steps.items()},
            divergent_traces=int(div[0] or 0),
            unexplained_traces=self.count("traces", "unexplained > 0"),
            aa_divergent_traces=int(div[1] or 0),
            trace_errors=self.count("traces", "error IS NOT NULL"),
            quarantined=self.count("quarantine"),
            stuck_runs_by_engine={str(k): int(v) for k, v in stuck.items()},
            engines=self.engines(),
            verdicts=self.verdicts(),
            provenance=self.provenance(),
            schema_version=self.schema_version(),
            identity=self.identity.describe() if self.identity else "",
        )

    def schema_version(self) -> str:
        if not self.has("meta"):
            return ""
        return _s(self._scalar("SELECT value FROM meta WHERE key = 'schema_version'"))

    def engines(self) -> tuple[EngineInfo, ...]:
        if not self.has("records"):
            return ()
        rows = self.query(
            "SELECT engine, any_value(engine_name), any_value(engine_version), count(*) FROM records "
            "GROUP BY engine ORDER BY engine"
        )
        return tuple(EngineInfo(_s(r[0]), _s(r[1]), _s(r[2]), int(r[3])) for r in rows)

    def verdicts(self) -> tuple[Verdict, ...]:
        """The latest verdict per cohort."""
        if not self.has("verdicts"):
            return ()
        rows = self.query(
            "SELECT cohort, verdict, score, reason, n_traces, created_at, criteria FROM verdicts "
            "QUALIFY row_number() OVER (PARTITION BY cohort ORDER BY created_at DESC) = 1 ORDER BY cohort"
        )
        out = []
        for r in rows:
            try:
                criteria = json.loads(r[6]) if r[6] else []
            except json.JSONDecodeError:
                criteria = [{"name": "criteria", "message": f"unreadable criteria JSON: {r[6]!r}"}]
            out.append(
                Verdict(
                    _s(r[0]),
                    _s(r[1]),
                    r[2],
                    _s(r[3]),
                    r[4],
                    _s(r[5]),
                    tuple(c for c in criteria if isinstance(c, dict)),
                )
            )
        return tuple(out)

    def provenance(self, limit: int = 10) -> tuple[Provenance, ...]:
        if not self.has("provenance"):
            return ()
        rows = self.query(
            "SELECT session_id, started_at, finished_at, command, git_sha, package_version, baseline_engine, "
            "candidate_engine, config_hash, corpus_hash, seeds, traces_done, status FROM provenance "
            "ORDER BY started_at DESC NULLS LAST LIMIT ?",
            [limit],
        )
        return tuple(
            Provenance(
                _s(r[0]),
                _s(r[1]),
                _s(r[2]),
                _s(r[3]),
                _s(r[4]),
                _s(r[5]),
                _s(r[6]),
                _s(r[7]),
                _s(r[8]),
                _s(r[9]),
                _s(r[10]),
                r[11],
                _s(r[12]),
            )
            for r in rows
        )

    # -- against production (fidelity) ----------------------------------------------------------

    def fidelity_summary(self) -> tuple[FidelitySummary, ...]:
        """Per engine role (baseline, candidate), the replays against production's observations; empty when
        no trace carries observations (or the file predates the ``fidelity`` table)."""
        if not self.has("fidelity"):
            return ()
        rows = self.query(
            "SELECT engine, count(*), sum(runs_observed + steps_observed + steps_extra), sum(runs_agree + steps_agree), "
            "sum(runs_observed), sum(runs_agree), sum(steps_observed), sum(steps_agree), sum(steps_missing), "
            "sum(steps_extra), sum(attempts_agree), median(makespan_ratio), min(makespan_ratio), max(makespan_ratio), "
            "count(makespan_ratio), median(start_delay_ratio), count(start_delay_ratio) "
            "FROM fidelity GROUP BY engine ORDER BY engine"
        )

        def n(v: Any) -> int:
            return int(v or 0)

        return tuple(
            FidelitySummary(
                engine=_s(r[0]),
                traces=n(r[1]),
                checked=n(r[2]),
                agree=n(r[3]),
                runs_observed=n(r[4]),
                runs_agree=n(r[5]),
                steps_observed=n(r[6]),
                steps_agree=n(r[7]),
                steps_missing=n(r[8]),
                steps_extra=n(r[9]),
                attempts_agree=n(r[10]),
                makespan_ratio_p50=r[11],
                makespan_ratio_min=r[12],
                makespan_ratio_max=r[13],
                makespan_traces=n(r[14]),
                start_delay_ratio_p50=r[15],
                start_delay_traces=n(r[16]),
            )
            for r in rows
        )

    def fidelity_traces(self, limit: int) -> tuple[tuple[FidelityTrace, ...], int]:
        """Traces where a replay disagrees with production, least agreement first (baseline before candidate)."""
        if not self.has("fidelity"):
            return (), 0
        where = "first_disagreement IS NOT NULL"
        total = self.count("fidelity", where)
        rows = self.query(
            "SELECT trace_id, engine, status_agreement, observed_status, replayed_status, first_disagreement, "
            f"disagreements, makespan_ratio FROM fidelity WHERE {where} "
            "ORDER BY status_agreement, engine, trace_id LIMIT ?",
            [limit],
        )
        out = []
        for r in rows:
            listed = _json_dicts(r[6])
            out.append(
                FidelityTrace(
                    _s(r[0]),
                    _s(r[1]),
                    r[2],
                    _s(r[3]),
                    _s(r[4]),
                    r[5],
                    listed,
                    r[7],
                )
            )
        return tuple(out), max(total - len(out), 0)

    # -- under faults (fault campaign) -------------------------------------------------------

    def fault_summary(self, exemplars: int = 3) -> tuple[FaultKindSummary, ...]:
        """Per campaign fault, what its trials did to the candidate; empty when no campaign ran (or the file
        predates the ``fault_trials`` table)."""
        if not self.has("fault_trials") or not self.count("fault_trials"):
            return ()
        order = (
            "engine_error",
            "stuck",
            "lost_attempt",
            "duplicated_attempt",
            "wrong_status",
            "changed_data",
        )
        rows = self.query(
            "SELECT fault, any_value(kind), count(*), count(*) FILTER (WHERE fired), "
            "count(*) FILTER (WHERE outcome = 'not_placed'), "
            "count(*) FILTER (WHERE fired AND outcome NOT IN ('equal', 'not_placed')), "
            "coalesce(sum(lost), 0), coalesce(sum(duplicated), 0), coalesce(sum(stuck), 0), "
            "median(latency_added) FILTER (WHERE fired), max(latency_added) FILTER (WHERE fired) "
            "FROM fault_trials GROUP BY fault ORDER BY fault"
        )
        out = []
        for r in rows:
            fault = _s(r[0])
            counts = dict(
                self.query(
                    "SELECT outcome, count(*) FROM fault_trials WHERE fault = ? AND fired GROUP BY outcome",
                    [fault],
                )
            )
            changed = self.query(
                "SELECT trace_id, coalesce(spec, ''), outcome, detail FROM fault_trials WHERE fault = ? AND fired "
                "AND outcome NOT IN ('equal', 'not_placed') ORDER BY trace_id, trial LIMIT ?",
                [fault, exemplars],
            )
            out.append(
                FaultKindSummary(
                    fault=fault,
                    kind=_s(r[1]),
                    trials=int(r[2]),
                    fired=int(r[3]),
                    not_placed=int(r[4]),
                    changed=int(r[5]),
                    lost=int(r[6]),
                    duplicated=int(r[7]),
                    stuck=int(r[8]),
                    latency_added_p50=r[9],
                    latency_added_max=r[10],
                    outcomes=tuple((o, int(counts[o])) for o in (*order, "equal") if counts.get(o)),
                    exemplars=tuple((_s(t), _s(sp), _s(o), _s(d)) for t, sp, o, d in changed),
                )
            )
        return tuple(out)

    # -- coverage: what the judged traces exercised -------------------------------------------------

    def coverage(self) -> tuple[tuple[str, str, int], ...] | None:
        """Per coverage feature (corpora.coverage.FEATURES, then any unknown to this version), its description
        and how many traces replayed without a harness error exercise it, never-exercised first; None for a
        database that predates ``traces.features``."""
        has_column = self._scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'traces' AND column_name = 'features'"
        )
        if not self.has("traces") or not has_column:
            return None
        counts = {
            str(f): int(n)
            for f, n in self.query(
                "SELECT f, count(DISTINCT trace_id) FROM (SELECT trace_id, unnest(features) AS f FROM traces "
                "WHERE error IS NULL) GROUP BY f"
            )
        }
        rows = [(name, text, counts.get(name, 0)) for name, text in FEATURES.items()]
        rows += [
            (name, "(not known to this version)", n) for name, n in counts.items() if name not in FEATURES
        ]
        return tuple(sorted(rows, key=lambda r: (r[2], r[0])))

    # -- in-flight hand-offs (shadow handoff) -----------------------------------------------------

    def handoff_summary(self) -> HandoffSummary | None:
        """The hand-offs ``shadow handoff`` wrote into this file; None when it wrote none."""
        if not self.has("handoffs"):
            return None
        rows = self.query(
            "SELECT count(*) FILTER (WHERE differences IS NOT NULL), count(DISTINCT trace_id), "
            "count(*) FILTER (WHERE differences IS NULL), count(*) FILTER (WHERE differences > 0), "
            "sum(differences), sum(duplicate_starts), sum(runs_live), sum(runs_queued), sum(attempts_running), "
            "sum(attempts_lost), sum(retries_pending), "
            "median(handoff_makespan / legacy_makespan) FILTER (WHERE legacy_makespan > 0) FROM handoffs"
        )
        r = rows[0]
        if not r[0] and not r[2]:
            return None

        def n(v: Any) -> int:
            return int(v or 0)

        return HandoffSummary(
            handoffs=n(r[0]),
            traces=n(r[1]),
            not_run=n(r[2]),
            differing=n(r[3]),
            differences=n(r[4]),
            duplicate_starts=n(r[5]),
            runs_live=n(r[6]),
            runs_queued=n(r[7]),
            attempts_running=n(r[8]),
            attempts_lost=n(r[9]),
            retries_pending=n(r[10]),
            makespan_ratio_p50=r[11],
        )

    def handoff_traces(self, limit: int) -> tuple[tuple[HandoffTrace, ...], int]:
        """Hand-offs whose outcome differed from the legacy-only replay, most differences first."""
        if not self.has("handoffs"):
            return (), 0
        where = "differences > 0 OR duplicate_starts > 0"
        total = self.count("handoffs", where)
        rows = self.query(
            "SELECT trace_id, cut, cut_at, differences, duplicate_starts, first_difference, detail FROM handoffs "
            f"WHERE {where} ORDER BY differences DESC, trace_id, cut_index LIMIT ?",
            [limit],
        )
        out = []
        for r in rows:
            listed = _json_dicts(r[6])
            out.append(
                HandoffTrace(
                    _s(r[0]),
                    _s(r[1]),
                    r[2],
                    int(r[3] or 0),
                    int(r[4] or 0),
                    r[5],
                    listed,
                )
            )
        return tuple(out), max(total - len(out), 0)

    # -- divergence groups ---------------------------------------------------------------------

    def signature_groups(self, limit: int) -> tuple[tuple[SignatureGroup, ...], int]:
        """Groups by signature, most traces first, and how many more there are past ``limit``.

        Reads the ``signatures`` table the writer aggregates; when it is empty (a session that died
        before aggregating) the groups are aggregated here from ``divergences`` so nothing is lost."""
        if self.count("signatures"):
            total = self.count("signatures")
            rows = self.query(
                "SELECT signature, workflow_type, step_type, path_pattern, kind, candidate_traces, aa_traces, "
                "candidate_rate, aa_rate, status, waived_by, exemplars, first_divergence_path FROM signatures "
                "ORDER BY (status = 'unexplained') DESC, candidate_traces DESC, signature LIMIT ?",
                [limit],
            )
        else:
            total = int(self._scalar("SELECT count(DISTINCT signature) FROM divergences") or 0)
            n = max(self.count("traces"), 1)
            rows = self.query(
                f"""SELECT signature, '', '', any_value(path), any_value(kind),
                       count(DISTINCT trace_id) FILTER (WHERE comparison = 'candidate') AS c,
                       count(DISTINCT trace_id) FILTER (WHERE comparison = 'aa'),
                       count(DISTINCT trace_id) FILTER (WHERE comparison = 'candidate') / {n}::DOUBLE,
                       count(DISTINCT trace_id) FILTER (WHERE comparison = 'aa') / {n}::DOUBLE,
                       CASE WHEN bool_and(waived_by IS NOT NULL) THEN 'waived' ELSE 'unaggregated' END,
                       any_value(waived_by),
                       list(DISTINCT trace_id ORDER BY trace_id)[1:5],
                       mode(path) FILTER (WHERE is_first)
                FROM divergences GROUP BY signature ORDER BY c DESC, signature LIMIT ?""",
                [limit],
            )
        groups = tuple(
            SignatureGroup(
                _s(r[0]),
                _s(r[1]),
                _s(r[2]),
                _s(r[3]),
                _s(r[4]),
                int(r[5] or 0),
                int(r[6] or 0),
                float(r[7] or 0.0),
                float(r[8] or 0.0),
                _s(r[9]),
                r[10],
                tuple(r[11] or ()),
                _s(r[12]),
            )
            for r in rows
        )
        return groups, max(total - len(groups), 0)

    def cause_groups(self, limit: int) -> tuple[tuple[CauseGroup, ...], int] | None:
        """Root causes (what changed first in the runs it touched), unexplained first, then most traces, each
        with the causes that follow from it; and how many more root causes there are past ``limit``. None for
        a database written before causes existed (the report then groups by signature)."""
        if not self.has("causes") or (not self.count("causes") and self.count("divergences")):
            return None  # written before causes existed (an empty table beside divergences: never aggregated)
        columns = (
            "cause, description, kind, field, change, candidate_traces, aa_traces, candidate_rate, aa_rate, "
            "status, waived_by, root_traces, consequence_of, members, divergences, exemplars, "
            "first_divergence_path"
        )
        # A cause is listed under its parent when the parent is itself a group (a chain is flattened to the root).
        parents = dict(
            self.query("SELECT cause, consequence_of FROM causes WHERE consequence_of IS NOT NULL")
        )
        known = {str(c) for (c,) in self.query("SELECT cause FROM causes")}

        def root_of(cause: str) -> str | None:
            seen = {cause}
            parent = parents.get(cause)
            while parent is not None and parent in known and parent in parents and parent not in seen:
                seen.add(parent)
                parent = parents[parent]
            return parent if parent is not None and parent in known else None

        under: dict[str, list[tuple[str, str, int]]] = {}
        for c, description, traces in self.query(
            "SELECT cause, description, candidate_traces FROM causes WHERE consequence_of IS NOT NULL "
            "ORDER BY candidate_traces DESC, cause"
        ):
            root = root_of(str(c))
            if root is not None:
                under.setdefault(root, []).append((_s(c), _s(description), int(traces or 0)))
        nested = {c for items in under.values() for c, _, _ in items}
        total = len(known - nested)
        rows = [
            r
            for r in self.query(
                f"SELECT {columns} FROM causes ORDER BY (status = 'unexplained') DESC, candidate_traces DESC, "
                "root_traces DESC, cause"
            )
            if str(r[0]) not in nested
        ][:limit]
        described = dict(self.query("SELECT cause, description FROM causes"))
        groups = tuple(
            CauseGroup(
                _s(r[0]),
                _s(r[1]),
                _s(r[2]),
                _s(r[3]),
                _s(r[4]),
                int(r[5] or 0),
                int(r[6] or 0),
                float(r[7] or 0.0),
                float(r[8] or 0.0),
                _s(r[9]),
                r[10],
                int(r[11] or 0),
                r[12],
                described.get(r[12]) if r[12] else None,
                _members(r[13]),
                int(r[14] or 0),
                tuple(r[15] or ()),
                _s(r[16]),
                tuple(under.get(str(r[0]), ())),
            )
            for r in rows
        )
        return groups, max(total - len(groups), 0)

    def all_signatures(self) -> dict[str, str]:
        """Every signature seen baseline vs candidate, with its status (for --baseline comparisons)."""
        if self.count("signatures"):
            rows = self.query("SELECT signature, status FROM signatures WHERE candidate_traces > 0")
        else:
            rows = self.query("SELECT DISTINCT signature, '' FROM divergences WHERE comparison = 'candidate'")
        return {_s(r[0]): _s(r[1]) for r in rows}

    def waivers(self, limit: int) -> tuple[tuple[Waiver, ...], int]:
        if not self.has("waivers"):
            return (), 0
        rows = self.query(
            "SELECT entry_id, pattern, owner, reason, expires, hits, expired FROM waivers "
            "ORDER BY expired DESC, hits DESC, entry_id LIMIT ?",
            [limit],
        )
        items = tuple(
            Waiver(_s(r[0]), _s(r[1]), _s(r[2]), _s(r[3]), _s(r[4]), int(r[5] or 0), bool(r[6])) for r in rows
        )
        return items, max(self.count("waivers") - len(items), 0)

    def quarantine(self, limit: int) -> tuple[tuple[QuarantineEntry, ...], int]:
        if not self.has("quarantine"):
            return (), 0
        rows = self.query(
            "SELECT file, line, trace_id, code, message, hint, json_path FROM quarantine ORDER BY file, line LIMIT ?",
            [limit],
        )
        items = tuple(
            QuarantineEntry(_s(r[0]), r[1], _s(r[2]), _s(r[3]), _s(r[4]), _s(r[5]), _s(r[6])) for r in rows
        )
        return items, max(self.count("quarantine") - len(items), 0)

    def trace_errors(self, limit: int) -> tuple[tuple[tuple[str, str], ...], int]:
        """Traces the harness or an engine could not finish, with the error (never hidden)."""
        rows = self.query(
            "SELECT trace_id, error FROM traces WHERE error IS NOT NULL ORDER BY trace_id LIMIT ?", [limit]
        )
        items = tuple((_s(r[0]), _s(r[1])) for r in rows)
        return items, max(self.count("traces", "error IS NOT NULL") - len(items), 0)

    # -- latency -------------------------------------------------------------------------------

    def latency_summaries(self) -> tuple[LatencyRow, ...]:
        if not self.count("latency"):
            return ()
        rows = self.query(
            "SELECT metric, engine, n, mean, p50, p95, p99, max FROM latency ORDER BY metric, engine"
        )
        return tuple(
            LatencyRow(
                metric=_s(r[0]),
                engine=_s(r[1]),
                n=int(r[2] or 0),
                mean=r[3],
                p50=r[4],
                p95=r[5],
                p99=r[6],
                max=r[7],
            )
            for r in rows
        )

    def latency_tests(self) -> tuple[LatencyTestRow, ...]:
        if not self.has("latency_tests"):
            return ()
        rows = self.query(
            "SELECT metric, n_pairs, median_ratio, p99_ratio, wilcoxon_statistic, wilcoxon_p, mw_ci_low, "
            "mw_ci_high, judge FROM latency_tests ORDER BY metric"
        )
        return tuple(
            LatencyTestRow(
                metric=_s(r[0]),
                n_pairs=int(r[1] or 0),
                median_ratio=r[2],
                p99_ratio=r[3],
                wilcoxon_statistic=r[4],
                wilcoxon_p=r[5],
                mw_ci_low=r[6],
                mw_ci_high=r[7],
                judge=_s(r[8]),
            )
            for r in rows
        )

    def distributions(self, metric: str) -> tuple[LatencyDistribution, ...]:
        """Quantiles per engine role of one metric, computed in DuckDB (one pass, no rows to Python)."""
        table, column = LATENCY_SOURCES[metric]
        if not self.has(table):
            return ()
        rows = self.query(
            f"SELECT engine, count({column}), quantile_cont({column}, ?::DOUBLE[]), "
            f"count(*) FILTER (WHERE {column} <= 0) FROM {table} "
            f"WHERE {column} IS NOT NULL AND isfinite({column}) GROUP BY engine ORDER BY engine",
            [list(CDF_PROBABILITIES)],
        )
        return tuple(
            LatencyDistribution(
                metric, _s(r[0]), int(r[1]), tuple(float(q) for q in (r[2] or ())), int(r[3] or 0)
            )
            for r in rows
            if r[1]
        )


def _members(text: Any) -> dict[str, dict[str, int]]:
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return {str(k): {str(m): int(n) for m, n in v.items()} for k, v in value.items() if isinstance(v, dict)}


def schema_mismatch(reader: ResultsReader) -> str | None:
    """A warning when the database was written with another schema version than this code reads."""
    version = reader.schema_version()
    if version and version != str(SCHEMA_VERSION):
        return f"database schema version {version}, this report reads version {SCHEMA_VERSION}"
    missing = sorted(set(TABLES) - {t for t in TABLES if reader.has(t)})
    return f"tables missing from the database: {', '.join(missing)}" if missing else None
