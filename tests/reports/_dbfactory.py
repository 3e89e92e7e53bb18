"""Build plausible results databases for the report tests, without running any engine.

The rows follow the contract in ``results/schema.py``: three engine roles per trace
(baseline, candidate, baseline_aa), a few step shapes per workflow type, legacy start overheads of
seconds and actor overheads of tens of milliseconds, a handful of divergence signatures (some noise,
some waived), quarantined input, provenance and verdicts. ``hostile=True`` puts markup, quotes,
``</script>``, RTL text and very long names into every free-text field the report shows.

Tables are written as Arrow tables (``INSERT ... BY NAME``), the same way the real writer does, so
the factory also stays valid when the writer adds columns.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from results.schema import DDL, SCHEMA_VERSION

__all__ = ["HOSTILE_NAMES", "FactorySummary", "build_results_db"]

HOSTILE_NAMES = (
    "<script>alert(1)</script>",
    "</script><script>alert('x')</script>",
    "\"quoted\" & 'single' <b>bold</b>",
    "שלום-עולם\u202eRTL",
    "ünïcödé-步骤-🚀",
    "x" * 300,
)

ROLES = ("baseline", "candidate", "baseline_aa")
_SHAPES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    # (path, step_type, upstream paths)
    "etl": (
        ("extract", "SHELL", ()),
        ("transform", "NOTEBOOK", ("extract",)),
        ("validate", "NOOP", ("extract",)),
        ("load", "KUBERNETES", ("transform", "validate")),
    ),
    "fanout": (
        ("plan", "NOOP", ()),
        ("fan[0]/work", "TITUS", ("plan",)),
        ("fan[1]/work", "TITUS", ("plan",)),
        ("fan[2]/work", "TITUS", ("plan",)),
        ("call/publish", "HTTP", ("fan[0]/work", "fan[1]/work", "fan[2]/work")),
    ),
}
_SIGNATURES = (
    # (kind, path, comparison weight for candidate, for aa, waived_by)
    ("step_status", "load", 0.08, 0.0, None),
    ("params", "transform", 0.05, 0.0, None),
    ("attempt_count", "fan[*]/work", 0.04, 0.03, None),
    ("unrecorded_attempt", "call/publish", 0.02, 0.0, "KNOWN-1"),
)


@dataclass(frozen=True, slots=True)
class FactorySummary:
    """What the factory wrote, so tests can check the report against it."""

    path: Path
    traces: int
    runs_per_role: int
    quarantined: int


def _name(base: str, i: int, hostile: bool) -> str:
    return f"{base}{HOSTILE_NAMES[i % len(HOSTILE_NAMES)]}" if hostile else base


def _insert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: dict[str, list[Any]],
    types: dict[str, pa.DataType] | None = None,
) -> None:
    if not columns or not next(iter(columns.values())):
        return
    types = types or {}
    arrays = {k: pa.array(v, type=types.get(k)) for k, v in columns.items()}
    arrow = pa.table(arrays)  # noqa: F841 - read by DuckDB through the replacement scan
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM arrow")


def build_results_db(
    path: Path,
    *,
    n_traces: int = 24,
    runs_per_trace: int = 2,
    seed: int = 7,
    hostile: bool = False,
    with_records: bool = True,
    signature_prefix: str = "",
    extra_steps: int = 0,
    extra_signatures: int = 0,
) -> FactorySummary:
    """Write a results database at ``path`` and say what is in it.

    ``extra_steps`` appends a chain of that many steps to every workflow (big records, big DAGs);
    ``extra_signatures`` adds that many more divergence signatures on those steps (many groups)."""
    rng = random.Random(seed)
    chain = tuple((f"s{i:03d}", "SHELL", (f"s{i - 1:03d}",) if i else ()) for i in range(extra_steps))
    signatures = _SIGNATURES + tuple(
        ("outputs", f"s{i % max(extra_steps, 1):03d}", 0.06, 0.0, None) for i in range(extra_signatures)
    )
    con = duckdb.connect(str(path))
    try:
        con.execute(DDL)
        cols: dict[str, dict[str, list[Any]]] = {
            t: {} for t in ("traces", "runs", "steps", "records", "divergences")
        }

        def add(table: str, **row: Any) -> None:
            for k, v in row.items():
                cols[table].setdefault(k, []).append(v)

        wtypes = list(_SHAPES)
        for t in range(n_traces):
            wtype = wtypes[t % len(wtypes)]
            shape = _SHAPES[wtype] + chain
            trace_id = f"trace-{t:06d}"
            step_names = {p: _name(p, t, hostile) for p, _, _ in shape}
            diverging = [s for s in signatures if rng.random() < s[2] * 4]
            noisy = [s for s in signatures if rng.random() < s[3] * 4]
            records: dict[str, list[dict[str, Any]]] = {r: [] for r in ROLES}
            for r in range(runs_per_trace):
                run_id = f"run-{r}"
                trigger = 1_700_000_000.0 + t * 600 + r * 3600
                for role in ROLES:
                    overhead_mean = 0.05 if role == "candidate" else 4.5
                    ends: dict[str, float] = {}
                    attempts: list[dict[str, Any]] = []
                    for p, stype, ups in shape:
                        ready = max((ends[u] for u in ups), default=trigger + 0.5)
                        start = ready + rng.expovariate(1 / overhead_mean)
                        duration = rng.lognormvariate(3.0, 1.0)
                        path_name = step_names[p]
                        status = "SUCCEEDED"
                        if (role == "candidate" and any(s[1] == p for s in diverging)) or (
                            role == "baseline_aa"
                            and any(s[1] == p and s[0] == "attempt_count" for s in noisy)
                        ):
                            status = "USER_FAILED" if rng.random() < 0.5 else "SUCCEEDED"
                        end = start + duration
                        ends[p] = end
                        add(
                            "steps",
                            trace_id=trace_id,
                            engine=role,
                            run_id=run_id,
                            path=path_name,
                            step_id=path_name.rsplit("/", 1)[-1],
                            step_type=stype,
                            attempt=1,
                            status=status,
                            outcome="succeeded",
                            unrecorded=False,
                            created_at=ready - 0.1,
                            ready_at=ready,
                            started_at=start,
                            ended_at=end,
                            start_overhead=start - ready,
                        )
                        attempts.append(
                            {
                                "path": path_name,
                                "step_id": path_name.rsplit("/", 1)[-1],
                                "step_type": stype,
                                "attempt": 1,
                                "status": status,
                                "outcome": "succeeded",
                                "unrecorded": False,
                                "params": {"name": path_name, "date": 20260101 + r},
                                "outputs": {},
                                "config": {},
                                "created_at": ready - 0.1,
                                "ready_at": ready,
                                "started_at": start,
                                "ended_at": end,
                            }
                        )
                    end = max(ends.values())
                    started = trigger + 0.5
                    critical = end - started - overhead_mean * rng.uniform(1.0, 4.0)
                    add(
                        "runs",
                        trace_id=trace_id,
                        engine=role,
                        run_id=run_id,
                        status="SUCCEEDED",
                        stuck=False,
                        triggered_at=trigger,
                        started_at=started,
                        ended_at=end,
                        end_to_end=end - trigger,
                        makespan=end - started,
                        critical_path=critical,
                        orchestration_overhead=end - started - critical,
                    )
                    records[role].append(
                        {
                            "run_id": run_id,
                            "status": "SUCCEEDED",
                            "stuck": False,
                            "workflow_params": {"owner": _name("team", t, hostile)},
                            "triggered_at": trigger,
                            "started_at": started,
                            "ended_at": end,
                            "attempts": attempts,
                        }
                    )
            if with_records:
                for role in ROLES:
                    rec = {
                        "trace_id": trace_id,
                        "engine": role,
                        "engine_version": "0.1.0",
                        "seed": 11,
                        "runs": records[role],
                        "counters": {"polls": 12},
                        "error": None,
                    }
                    add(
                        "records",
                        trace_id=trace_id,
                        engine=role,
                        engine_name="actor" if role == "candidate" else "legacy",
                        engine_version="0.1.0",
                        seed=11,
                        record=json.dumps(rec, ensure_ascii=False),
                        counters='{"polls": 12}',
                    )
            for comparison, sigs in (("candidate", diverging), ("aa", noisy)):
                for i, (kind, p, _, _, waived) in enumerate(sigs):
                    pattern = p if "[" not in p else "fan[*]/work"
                    signature = f"{signature_prefix}{wtype}|{ {q: s for q, s, _ in shape}.get(p, 'TITUS') }|{pattern}|{kind}"
                    add(
                        "divergences",
                        trace_id=trace_id,
                        comparison=comparison,
                        run_id="run-0",
                        path=step_names.get(p, _name("fan[1]/work", t, hostile)),
                        kind=kind,
                        detail=_name("root['status']", t, hostile),
                        baseline_value=json.dumps("SUCCEEDED"),
                        other_value=json.dumps(_name("USER_FAILED</script>", t, hostile), ensure_ascii=False),
                        signature=signature,
                        is_first=i == 0,
                        waived_by=waived,
                    )
            n_div = len(diverging)
            add(
                "traces",
                trace_id=trace_id,
                session_id="s-1",
                workflow_id=_name(f"wf-{t % 5}", t, hostile),
                workflow_type=wtype,
                owner=_name(f"team-{t % 3}", t, hostile),
                tags=["nightly"],
                source="generator",
                corpus_file="corpus.jsonl",
                corpus_line=t + 1,
                n_runs=runs_per_trace,
                n_steps=len(shape),
                n_recorded_attempts=len(shape) * runs_per_trace,
                recorded_seconds=3600.0,
                candidate_divergences=n_div,
                aa_divergences=len(noisy),
                unexplained=sum(1 for s in diverging if s[4] is None and s[3] == 0),
                error=None if t % 97 != 5 else _name("engine error: deadlock", t, hostile),
                wall_seconds=0.01,
            )

        _insert(con, "traces", cols["traces"], {"tags": pa.list_(pa.string())})
        _insert(con, "runs", cols["runs"])
        _insert(con, "steps", cols["steps"])
        _insert(con, "records", cols["records"])
        _insert(con, "divergences", cols["divergences"])
        _aggregate(con, n_traces)
        _metadata(con, hostile)
        quarantined = _quarantine(con, hostile)
        return FactorySummary(
            path=path, traces=n_traces, runs_per_role=n_traces * runs_per_trace, quarantined=quarantined
        )
    finally:
        con.close()


def _aggregate(con: duckdb.DuckDBPyConnection, n_traces: int) -> None:
    """Fill the summary tables from the raw ones, as the writer does after a session."""
    con.execute(f"""
        INSERT INTO signatures
        SELECT signature,
               split_part(signature, '|', 1), split_part(signature, '|', 2), split_part(signature, '|', 3),
               any_value(kind),
               count(DISTINCT trace_id) FILTER (WHERE comparison = 'candidate'),
               count(DISTINCT trace_id) FILTER (WHERE comparison = 'aa'),
               count(DISTINCT trace_id) FILTER (WHERE comparison = 'candidate') / {n_traces}::DOUBLE,
               count(DISTINCT trace_id) FILTER (WHERE comparison = 'aa') / {n_traces}::DOUBLE,
               CASE WHEN any_value(waived_by) IS NOT NULL THEN 'waived'
                    WHEN count(*) FILTER (WHERE comparison = 'aa') > 0 THEN 'noise' ELSE 'unexplained' END,
               any_value(waived_by),
               list(DISTINCT trace_id ORDER BY trace_id)[1:5],
               mode(path), ''
        FROM divergences GROUP BY signature""")
    con.execute("""
        INSERT INTO latency
        SELECT 'start_overhead', engine, count(*), avg(start_overhead), quantile_cont(start_overhead, 0.5),
               quantile_cont(start_overhead, 0.95), quantile_cont(start_overhead, 0.99), max(start_overhead), NULL
        FROM steps GROUP BY engine
        UNION ALL
        SELECT 'end_to_end', engine, count(*), avg(end_to_end), quantile_cont(end_to_end, 0.5),
               quantile_cont(end_to_end, 0.95), quantile_cont(end_to_end, 0.99), max(end_to_end), NULL
        FROM runs GROUP BY engine""")
    con.execute("""
        INSERT INTO latency_tests VALUES
        ('start_overhead', 1000, 90.0, 75.5, 12.0, 1e-12, -4.6, -4.3, 'improvement', NULL),
        ('end_to_end', 500, 1.4, 1.1, 800.0, 0.003, -9.1, -2.0, 'pass', NULL)""")


def _metadata(con: duckdb.DuckDBPyConnection, hostile: bool) -> None:
    now = dt.datetime(2026, 11, 28, 8, 0, 0)
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    con.execute(
        "INSERT INTO provenance VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL)",
        [
            "s-1",
            now,
            now + dt.timedelta(minutes=3),
            _name("shadow run corpus.jsonl", 0, hostile),
            "abc1234",
            "0.1.0",
            "legacy 0.1.0",
            "actor 0.1.0",
            "f" * 64,
            "{}",
            '{"baseline": 1, "candidate": 2, "baseline_aa": 3}',
            "e" * 64,
            '["corpus.jsonl"]',
            24,
            "finished",
        ],
    )
    con.execute(
        "INSERT INTO waivers VALUES ('KNOWN-1', ?, ?, ?, DATE '2027-01-01', 3, false, NULL)",
        [
            "*|call/publish|unrecorded_attempt",
            _name("platform-team", 1, hostile),
            _name("publish retried by design", 0, hostile),
        ],
    )
    con.execute(
        "INSERT INTO verdicts VALUES ('v-1', ?, ?, 'FAIL', 0.42, ?, 24, ?, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        [
            now,
            _name("etl-cohort", 0, hostile),
            _name("unexplained rate 8 % > budget 1 %", 0, hostile),
            json.dumps(
                [
                    {
                        "name": "divergence",
                        "status": "fail",
                        "value": 0.08,
                        "threshold": 0.01,
                        "message": _name("too many", 0, hostile),
                    }
                ],
                ensure_ascii=False,
            ),
        ],
    )


def _quarantine(con: duckdb.DuckDBPyConnection, hostile: bool) -> int:
    rows = [
        (
            "s-1",
            "corpus.jsonl",
            40 + i,
            _name(f"bad-{i}", i, hostile),
            "E_CYCLE",
            _name(f"cycle between a and b (line {40 + i})", i, hostile),
            "remove the transition b -> a",
            "$.definition.steps[1]",
        )
        for i in range(3)
    ]
    con.executemany("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)", rows)
    return len(rows)
