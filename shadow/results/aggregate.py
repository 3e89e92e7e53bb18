"""Whole-database aggregates recomputed after each session: signatures, latency, waivers.

They are derived only from the per-trace tables, so recomputing them is idempotent and a resumed
or repeated session ends with the same aggregates as one uninterrupted run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from results.rows import LatencyRow, LatencyTestRow, SignatureRow, WaiverRow
from shadow.latency import judge_shift, paired_test, ratio, summarize
from shadow.noise import NoiseConfig, Registry, classify_signature, count_hits
from shadow.results.store import ResultsStore

__all__ = ["LATENCY_METRICS", "refresh_aggregates"]

LATENCY_METRICS = ("start_overhead", "orchestration_overhead", "end_to_end")
_SOURCES = {
    "start_overhead": ("steps", "start_overhead"),
    "orchestration_overhead": ("runs", "orchestration_overhead"),
    "end_to_end": ("runs", "end_to_end"),
}


def refresh_aggregates(store: ResultsStore, registry: Registry, noise: NoiseConfig) -> None:
    """Recompute signatures (noise + registry status), waivers, per-trace unexplained and latency, over the
    rows of the writer's identity (``store.identity``; every row when it is None)."""
    _signatures(store, registry, noise)
    _latency(store)


def _mine(store: ResultsStore, table: str = "") -> tuple[str, list[str]]:
    """A predicate (and its parameters) selecting the writer's identity's rows (of ``table.`` if given)."""
    return (f"{table}identity = ?", [store.identity]) if store.identity is not None else ("TRUE", [])


def _signatures(store: ResultsStore, registry: Registry, noise: NoiseConfig) -> None:
    mine, ids = _mine(store)
    total = store.query(f"SELECT count(*) FROM traces WHERE {mine}", ids)[0][0]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"candidate": 0, "aa": 0})
    for signature, comparison, n in store.query(
            f"SELECT signature, comparison, count(DISTINCT trace_id) FROM divergences WHERE {mine} GROUP BY ALL", ids):
        counts[signature][comparison] = n
    exemplars: dict[str, list[str]] = defaultdict(list)
    for signature, trace_id in store.query(
            f"SELECT DISTINCT signature, trace_id FROM divergences WHERE comparison = 'candidate' AND {mine} "
            "ORDER BY ALL", ids):
        if len(exemplars[signature]) < 5:
            exemplars[signature].append(trace_id)
    firsts: dict[str, Counter[str]] = defaultdict(Counter)
    for signature, path, n in store.query(
            f"SELECT signature, path, count(*) FROM divergences WHERE comparison = 'candidate' AND is_first "
            f"AND {mine} GROUP BY ALL", ids):
        firsts[signature][path] = n
    rows: list[SignatureRow] = []
    statuses: dict[str, tuple[str, str | None]] = {}
    for signature in sorted(counts):
        c = counts[signature]
        status = classify_signature(signature, c["candidate"], c["aa"], total, noise, registry)
        statuses[signature] = (status.status, status.waived_by)
        parts = ([*signature.split("|"), "", "", "", ""])[:4]
        first = sorted(firsts[signature].items(), key=lambda kv: (-kv[1], kv[0]))
        rows.append(SignatureRow(
            signature=signature, workflow_type=parts[0], step_type=parts[1], path_pattern=parts[2],
            kind=parts[3], candidate_traces=c["candidate"], aa_traces=c["aa"],
            candidate_rate=c["candidate"] / total if total else None,
            aa_rate=c["aa"] / total if total else None, status=status.status,
            waived_by=status.waived_by, exemplars=exemplars.get(signature, []),
            first_divergence_path=first[0][0] if first else None,
        ))
    store.replace("signatures", rows)
    # Per divergence row: waived_by; per trace: candidate divergences whose signature is unexplained.
    store.con.begin()
    try:
        store.con.execute(f"UPDATE divergences SET waived_by = NULL WHERE waived_by IS NOT NULL AND {mine}", ids)
        store.con.execute(
            "UPDATE divergences SET waived_by = s.waived_by FROM signatures s "
            "WHERE divergences.signature = s.signature AND divergences.comparison = 'candidate' "
            "AND s.waived_by IS NOT NULL AND s.identity IS NOT DISTINCT FROM divergences.identity "
            f"AND {_mine(store, 'divergences.')[0]}", ids)
        store.con.execute(
            "UPDATE traces SET unexplained = coalesce((SELECT count(*) FROM divergences d JOIN signatures s "
            "ON d.signature = s.signature AND s.identity IS NOT DISTINCT FROM d.identity "
            "WHERE d.trace_id = traces.trace_id AND d.identity IS NOT DISTINCT FROM traces.identity "
            f"AND d.comparison = 'candidate' AND s.status = 'unexplained'), 0) WHERE {mine}", ids)
        store.con.commit()
    except BaseException:
        store.con.rollback()
        raise
    hits = count_hits(registry, store.query(
        f"SELECT signature, count(*) FROM divergences WHERE comparison = 'candidate' AND {mine} GROUP BY ALL "
        "ORDER BY ALL", ids))
    store.replace("waivers", [
        WaiverRow(entry_id=e.id, pattern=e.pattern, owner=e.owner, reason=e.reason, expires=e.expires,
                  hits=hits[e.id], expired=False)
        for e in registry.entries
    ])


def _values(store: ResultsStore, metric: str, engine: str) -> list[float]:
    table, column = _SOURCES[metric]
    mine, ids = _mine(store)
    return [r[0] for r in store.query(
        f"SELECT {column} FROM {table} WHERE engine = ? AND {column} IS NOT NULL AND {mine} "
        f"ORDER BY trace_id, run_id{', path, attempt' if table == 'steps' else ''}", [engine, *ids])]


def _per_trace(store: ResultsStore, metric: str) -> tuple[list[float], list[float]]:
    table, column = _SOURCES[metric]
    mine, ids = _mine(store)
    rows = store.query(
        f"SELECT b.v, c.v FROM (SELECT trace_id, avg({column}) v FROM {table} WHERE engine = 'baseline' AND {mine} "
        f"GROUP BY trace_id) b JOIN (SELECT trace_id, avg({column}) v FROM {table} WHERE engine = 'candidate' "
        f"AND {mine} GROUP BY trace_id) c USING (trace_id) WHERE b.v IS NOT NULL AND c.v IS NOT NULL "
        "ORDER BY trace_id", [*ids, *ids])
    return [r[0] for r in rows], [r[1] for r in rows]


def _latency(store: ResultsStore) -> None:
    rows: list[LatencyRow] = []
    tests: list[LatencyTestRow] = []
    for metric in LATENCY_METRICS:
        by_engine: dict[str, Sequence[float]] = {}
        for engine in ("baseline", "candidate", "baseline_aa"):
            values = by_engine[engine] = _values(store, metric, engine)
            s = summarize(values)
            if s.n:
                rows.append(LatencyRow(metric=metric, engine=engine, n=s.n, mean=s.mean, p50=s.p50,
                                       p95=s.p95, p99=s.p99, max=s.max))
        b, c = summarize(by_engine["baseline"]), summarize(by_engine["candidate"])
        if not (b.n and c.n):
            continue
        pb, pc = _per_trace(store, metric)
        paired = paired_test(pb, pc)
        judge = judge_shift(by_engine["baseline"], by_engine["candidate"])
        tests.append(LatencyTestRow(
            metric=metric, n_pairs=paired.n_pairs, median_ratio=ratio(b.p50, c.p50),
            p99_ratio=ratio(b.p99, c.p99), wilcoxon_statistic=paired.statistic,
            wilcoxon_p=paired.p_value, mw_ci_low=judge.ci_low, mw_ci_high=judge.ci_high,
            judge=judge.verdict,
        ))
    store.replace("latency", rows)
    store.replace("latency_tests", tests)
