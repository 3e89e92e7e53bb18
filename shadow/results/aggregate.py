"""Whole-database aggregates recomputed after each session: causes, signatures, latency, waivers.

They are derived only from the per-trace tables, so recomputing them is idempotent and a resumed
or repeated session ends with the same aggregates as one uninterrupted run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from results.rows import CauseRow, LatencyRow, LatencyTestRow, SignatureRow, WaiverRow
from results.schema import dumps
from shadow.compare.cause import describe_cause, split_cause
from shadow.latency import judge_shift, paired_test, ratio, summarize
from shadow.noise import NoiseConfig, Registry, SignatureStatus, classify_group
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
    _classify(store, registry, noise)
    _latency(store)


def _mine(store: ResultsStore, table: str = "") -> tuple[str, list[str]]:
    """A predicate (and its parameters) selecting the writer's identity's rows (of ``table.`` if given)."""
    return (f"{table}identity = ?", [store.identity]) if store.identity is not None else ("TRUE", [])


def _classify(store: ResultsStore, registry: Registry, noise: NoiseConfig) -> None:
    """Waivers per divergence, statuses per cause group, the causes and signatures tables, and per trace
    the count of unexplained candidate divergences (what the gate's budget counts).

    A candidate divergence is *unexplained* when its cause group exceeds A/A noise (candidate traces vs
    baseline_aa traces showing that cause, :func:`~shadow.noise.exceeds_noise`) and no registry entry
    waives it (entries match a signature glob and/or a cause glob). A cause is ``waived`` when every one
    of its candidate divergences is. A signature's status follows from its divergences (unexplained if any
    is, waived if all are, else noise): signatures are the drill-down, causes the groups."""
    mine, ids = _mine(store)
    total = store.query(f"SELECT count(*) FROM traces WHERE {mine}", ids)[0][0]
    # 1. Waivers, per distinct (signature, cause) of the candidate comparison.
    pairs = store.query(
        f"SELECT DISTINCT signature, coalesce(cause, '') FROM divergences "
        f"WHERE comparison = 'candidate' AND {mine}",
        ids,
    )
    waived = [(sig, cause, hit.id) for sig, cause in pairs if (hit := registry.match(sig, cause)) is not None]
    # 2. Cause counts (traces per comparison) and whether all of a cause is waived.
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"candidate": 0, "aa": 0})
    for cause, comparison, n in store.query(
        f"SELECT coalesce(cause, ''), comparison, count(DISTINCT trace_id) FROM divergences WHERE {mine} "
        "GROUP BY ALL",
        ids,
    ):
        counts[cause][comparison] = n
    waived_by = {(sig, cause): entry for sig, cause, entry in waived}
    cause_waiver: dict[str, str | None] = {}
    for sig, cause in pairs:
        waiver = waived_by.get((sig, cause))
        if cause not in cause_waiver:
            cause_waiver[cause] = waiver
        elif cause_waiver[cause] != waiver:
            cause_waiver[cause] = None  # partly waived (or by several entries): the rest still counts
    statuses = {
        cause: classify_group(c["candidate"], c["aa"], total, noise, cause_waiver.get(cause))
        for cause, c in counts.items()
    }
    store.con.begin()
    try:
        store.con.execute(
            f"UPDATE divergences SET waived_by = NULL WHERE waived_by IS NOT NULL AND {mine}", ids
        )
        if waived:
            store.con.execute(
                "CREATE OR REPLACE TEMP TABLE _waived (signature VARCHAR, cause VARCHAR, entry VARCHAR)"
            )
            store.con.executemany("INSERT INTO _waived VALUES (?, ?, ?)", waived)
            store.con.execute(
                "UPDATE divergences SET waived_by = w.entry FROM _waived w WHERE divergences.signature = w.signature "
                "AND coalesce(divergences.cause, '') = w.cause AND divergences.comparison = 'candidate' "
                f"AND {_mine(store, 'divergences.')[0]}",
                ids,
            )
        store.con.execute("CREATE OR REPLACE TEMP TABLE _unexplained (cause VARCHAR)")
        unexplained = [(c,) for c, st in statuses.items() if st.status == "unexplained"]
        if unexplained:
            store.con.executemany("INSERT INTO _unexplained VALUES (?)", unexplained)
        store.con.execute(
            "UPDATE traces SET unexplained = coalesce((SELECT count(*) FROM divergences d "
            "WHERE d.trace_id = traces.trace_id AND d.identity IS NOT DISTINCT FROM traces.identity "
            "AND d.comparison = 'candidate' AND d.waived_by IS NULL "
            f"AND coalesce(d.cause, '') IN (SELECT cause FROM _unexplained)), 0) WHERE {mine}",
            ids,
        )
        store.con.commit()
    except BaseException:
        store.con.rollback()
        raise
    _causes(store, counts, statuses, total)
    _signature_rows(store, total)
    hits: Counter[str] = Counter(
        dict(
            store.query(
                f"SELECT waived_by, count(*) FROM divergences WHERE waived_by IS NOT NULL AND {mine} GROUP BY ALL",
                ids,
            )
        )
    )
    store.replace(
        "waivers",
        [
            WaiverRow(
                entry_id=e.id,
                pattern=e.pattern or e.cause,
                owner=e.owner,
                reason=e.reason,
                expires=e.expires,
                hits=hits[e.id],
                expired=False,
            )
            for e in registry.entries
        ],
    )


def _causes(
    store: ResultsStore, counts: dict[str, dict[str, int]], statuses: dict[str, SignatureStatus], total: int
) -> None:
    mine, ids = _mine(store)
    cand = f"comparison = 'candidate' AND {mine}"
    members: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for member, part, empty in (
        ("workflow_types", 1, "(none)"),
        ("step_types", 2, "(run level)"),
        ("paths", 3, "(run level)"),
    ):
        for cause, value, n in store.query(
            f"SELECT coalesce(cause, ''), split_part(signature, '|', {part}), count(DISTINCT trace_id) "
            f"FROM divergences WHERE {cand} GROUP BY ALL",
            ids,
        ):
            members[cause][member][str(value) or empty] += n
    rows_n = dict(
        store.query(f"SELECT coalesce(cause, ''), count(*) FROM divergences WHERE {cand} GROUP BY ALL", ids)
    )
    roots = dict(
        store.query(
            f"SELECT coalesce(cause, ''), count(DISTINCT trace_id) FROM divergences "
            f"WHERE is_first AND {cand} GROUP BY ALL",
            ids,
        )
    )
    firsts: dict[str, Counter[str]] = defaultdict(Counter)
    for cause, path, n in store.query(
        f"SELECT coalesce(cause, ''), path, count(*) FROM divergences WHERE is_first AND {cand} GROUP BY ALL",
        ids,
    ):
        firsts[cause][path] = n
    # A cause that is never a run's first divergence follows from one that is: name the most frequent.
    parent: dict[str, Counter[str]] = defaultdict(Counter)
    dm, fm = _mine(store, "d.")[0], _mine(store, "f.")[0]
    for cause, first_cause, n in store.query(
        "SELECT coalesce(d.cause, ''), coalesce(f.cause, ''), count(*) FROM divergences d JOIN divergences f "
        "ON f.trace_id = d.trace_id AND f.run_id = d.run_id AND f.comparison = d.comparison AND f.is_first "
        "AND f.identity IS NOT DISTINCT FROM d.identity "
        f"WHERE d.comparison = 'candidate' AND NOT d.is_first AND {dm} AND {fm} GROUP BY ALL",
        ids + ids,
    ):
        if cause != first_cause:
            parent[cause][first_cause] = n
    exemplars: dict[str, list[str]] = defaultdict(list)
    for cause, trace_id in store.query(
        f"SELECT DISTINCT coalesce(cause, ''), trace_id FROM divergences WHERE {cand} ORDER BY ALL", ids
    ):
        if len(exemplars[cause]) < 5:
            exemplars[cause].append(trace_id)
    rows: list[CauseRow] = []
    for cause in sorted(counts):
        c, status = counts[cause], statuses[cause]
        kind, field, change = split_cause(cause)
        first = sorted(firsts[cause].items(), key=lambda kv: (-kv[1], kv[0]))
        up = sorted(parent[cause].items(), key=lambda kv: (-kv[1], kv[0]))
        rows.append(
            CauseRow(
                cause=cause,
                kind=kind,
                field=field,
                change=change,
                description=describe_cause(cause) if cause else "",
                candidate_traces=c["candidate"],
                aa_traces=c["aa"],
                candidate_rate=c["candidate"] / total if total else None,
                aa_rate=c["aa"] / total if total else None,
                status=status.status,
                waived_by=status.waived_by,
                root_traces=int(roots.get(cause, 0)),
                consequence_of=up[0][0] if up and not roots.get(cause) else None,
                members=dumps(
                    {
                        **{k: dict(v.most_common(50)) for k, v in members[cause].items()},
                        "totals": {k: len(v) for k, v in members[cause].items()},
                    }
                ),
                divergences=int(rows_n.get(cause, 0)),
                exemplars=exemplars.get(cause, []),
                first_divergence_path=first[0][0] if first else None,
            )
        )
    store.replace("causes", rows)


def _signature_rows(store: ResultsStore, total: int) -> None:
    mine, ids = _mine(store)
    unexplained = "(waived_by IS NULL AND coalesce(cause, '') IN (SELECT cause FROM _unexplained))"
    rows: list[SignatureRow] = []
    stats = store.query(
        f"SELECT signature, count(DISTINCT trace_id) FILTER (WHERE comparison = 'candidate'), "
        "count(DISTINCT trace_id) FILTER (WHERE comparison = 'aa'), "
        f"bool_or(comparison = 'candidate' AND {unexplained}), "
        "bool_and(waived_by IS NOT NULL) FILTER (WHERE comparison = 'candidate'), "
        "any_value(waived_by) FILTER (WHERE waived_by IS NOT NULL) "
        f"FROM divergences WHERE {mine} GROUP BY signature ORDER BY signature",
        ids,
    )
    exemplars: dict[str, list[str]] = defaultdict(list)
    for signature, trace_id in store.query(
        f"SELECT DISTINCT signature, trace_id FROM divergences WHERE comparison = 'candidate' AND {mine} "
        "ORDER BY ALL",
        ids,
    ):
        if len(exemplars[signature]) < 5:
            exemplars[signature].append(trace_id)
    firsts: dict[str, Counter[str]] = defaultdict(Counter)
    for signature, path, n in store.query(
        f"SELECT signature, path, count(*) FROM divergences WHERE comparison = 'candidate' AND is_first "
        f"AND {mine} GROUP BY ALL",
        ids,
    ):
        firsts[signature][path] = n
    for signature, cand, aa, any_unexplained, all_waived, waiver in stats:
        status = "unexplained" if any_unexplained else "waived" if all_waived else "noise"
        parts = ([*signature.split("|"), "", "", "", ""])[:4]
        first = sorted(firsts[signature].items(), key=lambda kv: (-kv[1], kv[0]))
        rows.append(
            SignatureRow(
                signature=signature,
                workflow_type=parts[0],
                step_type=parts[1],
                path_pattern=parts[2],
                kind=parts[3],
                candidate_traces=cand,
                aa_traces=aa,
                candidate_rate=cand / total if total else None,
                aa_rate=aa / total if total else None,
                status=status,
                waived_by=waiver if status == "waived" else None,
                exemplars=exemplars.get(signature, []),
                first_divergence_path=first[0][0] if first else None,
            )
        )
    store.replace("signatures", rows)


def _values(store: ResultsStore, metric: str, engine: str) -> list[float]:
    table, column = _SOURCES[metric]
    mine, ids = _mine(store)
    return [
        r[0]
        for r in store.query(
            f"SELECT {column} FROM {table} WHERE engine = ? AND {column} IS NOT NULL AND {mine} "
            f"ORDER BY trace_id, run_id{', path, attempt' if table == 'steps' else ''}",
            [engine, *ids],
        )
    ]


def _per_trace(store: ResultsStore, metric: str) -> tuple[list[float], list[float]]:
    table, column = _SOURCES[metric]
    mine, ids = _mine(store)
    rows = store.query(
        f"SELECT b.v, c.v FROM (SELECT trace_id, avg({column}) v FROM {table} WHERE engine = 'baseline' AND {mine} "
        f"GROUP BY trace_id) b JOIN (SELECT trace_id, avg({column}) v FROM {table} WHERE engine = 'candidate' "
        f"AND {mine} GROUP BY trace_id) c USING (trace_id) WHERE b.v IS NOT NULL AND c.v IS NOT NULL "
        "ORDER BY trace_id",
        [*ids, *ids],
    )
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
                rows.append(
                    LatencyRow(
                        metric=metric,
                        engine=engine,
                        n=s.n,
                        mean=s.mean,
                        p50=s.p50,
                        p95=s.p95,
                        p99=s.p99,
                        max=s.max,
                    )
                )
        b, c = summarize(by_engine["baseline"]), summarize(by_engine["candidate"])
        if not (b.n and c.n):
            continue
        pb, pc = _per_trace(store, metric)
        paired = paired_test(pb, pc)
        judge = judge_shift(by_engine["baseline"], by_engine["candidate"])
        tests.append(
            LatencyTestRow(
                metric=metric,
                n_pairs=paired.n_pairs,
                median_ratio=ratio(b.p50, c.p50),
                p99_ratio=ratio(b.p99, c.p99),
                wilcoxon_statistic=paired.statistic,
                wilcoxon_p=paired.p_value,
                mw_ci_low=judge.ci_low,
                mw_ci_high=judge.ci_high,
                judge=judge.verdict,
            )
        )
    store.replace("latency", rows)
    store.replace("latency_tests", tests)
