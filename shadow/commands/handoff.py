"""``shadow handoff CORPUS --db DB [--at SPEC]... [--seed N]``: prove that runs in flight on the legacy engine
finish correctly on the actor engine after a cut-over (docs/HANDOFF.md).

For every trace: one legacy-only replay (the reference), then per cut point a hand-off -- the legacy engine
replayed up to the cut and stopped there, the actor engine adopting the runs from its store through its own
take-over path and finishing them -- compared with the reference (statuses, attempts, params, outputs). Rows go
to the ``handoffs`` table of the results database. The engines are reached through :mod:`engines.api` only:
the target must offer :class:`engines.api.HandsOff`.

Exit codes: 0 every hand-off finished with the legacy-only outcome; 1 at least one outcome difference or
duplicate runtime start (findings); 4 harness error (bad input, a cut point spec not understood, an engine
that cannot adopt).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

from corpora.model import Trace
from engines.api import DEFAULT_TIME_LIMIT, CutPoint, Engine, ExecutionRecord, HandsOff, ReplayOptions
from results.exitcodes import EXIT_FINDINGS, EXIT_HARNESS, EXIT_OK
from results.rows import HandoffRow
from shadow.cli import add_database_flag, finite_number

__all__ = ["DEFAULT_CUTS", "handoff_rows", "register"]

DEFAULT_CUTS = ("25%", "50%", "random")
"""Three cut points per trace unless ``--at`` says otherwise: a quarter and half of the legacy makespan, and
one drawn from the seed and the trace id."""

DETAIL_LIMIT = 20


def register(sub: Any, groups: dict[str, Any]) -> None:
    del groups
    p = sub.add_parser(
        "handoff", help="cut traces over from the legacy to the actor engine mid-run; compare outcomes"
    )
    p.add_argument("corpus", nargs="+", help="shadow-trace/1 JSON Lines file(s)")
    add_database_flag(p, help="results database to write the handoffs table to (created if missing)")
    p.add_argument(
        "--at",
        action="append",
        metavar="SPEC",
        default=None,
        help="cut point, repeatable: SECONDS after the first trigger (90 or 90s), PERCENT of the legacy "
        "makespan (50%%), step:PATH (just after that step's first attempt started on legacy), or "
        "random (a fraction drawn from --seed and the trace id); default: 25%%, 50%%, random",
    )
    p.add_argument("--seed", type=int, default=0, help="engine seed of both replays and of random cut points")
    p.add_argument("--trace", action="append", metavar="ID", help="only this trace id (repeatable)")
    p.add_argument("--limit", type=int, help="stop after this many traces")
    p.add_argument(
        "--time-limit",
        type=finite_number(positive=True),
        default=DEFAULT_TIME_LIMIT,
        help="virtual seconds after the last trigger at which an unfinished run is stuck (default 30 days)",
    )
    p.add_argument("--source", default="legacy", help="the engine runs are handed off from")
    p.add_argument(
        "--target", default="actor", help="the engine that adopts them (must offer engines.api.HandsOff)"
    )
    p.set_defaults(func=handoff_command)


def _makespan(record: ExecutionRecord, start: float) -> float | None:
    ends = [r.ended_at for r in record.runs if r.ended_at is not None]
    return max(ends) - start if ends else None


def handoff_rows(
    trace: Trace, cuts: Sequence[CutPoint], specs: Sequence[str], options: ReplayOptions, source: Engine,
    target: HandsOff, source_name: str,
) -> list[HandoffRow]:  # fmt: skip
    """Every hand-off of one trace as ``handoffs`` rows (an engine error becomes the row's ``error``)."""
    from shadow.compare import CausalOrder, NormalForms, compare_records

    base: HandoffRow = {"trace_id": trace.trace_id, "workflow_type": trace.metadata.workflow_type,
                        "seed": options.seed}  # fmt: skip
    if not trace.runs:
        return []
    start = min(r.trigger_time for r in trace.runs)
    try:
        legacy = source.replay(trace, options)
    except Exception as exc:
        return [HandoffRow(**base, cut_index=i, cut=specs[i], error=f"{source_name} replay: {_error(exc)}")
                for i in range(len(cuts))]  # fmt: skip
    order = CausalOrder(trace)
    normalized: NormalForms = {}
    rows: list[HandoffRow] = []
    legacy_makespan = _makespan(legacy, start)
    for i, cut in enumerate(cuts):
        row = HandoffRow(**base, cut_index=i, cut=specs[i], legacy_makespan=legacy_makespan)
        at = cut.resolve(legacy, start, seed=options.seed)
        if at is None:
            row["error"] = f"cut point {specs[i]} is never reached on {source_name}: " + (
                "the step never started" if cut.kind == "step" else "no run ended"
            )
            rows.append(row)
            continue
        try:
            result = target.handoff(trace, options, at, source=source_name)
        except Exception as exc:
            row["cut_at"] = at
            row["error"] = f"hand-off: {_error(exc)}"
            rows.append(row)
            continue
        found = compare_records(trace, legacy, result.record, order, normalized)
        row.update(HandoffRow(
            cut_at=result.cut_at, handoff_makespan=_makespan(result.record, start), runs_live=result.runs_live,
            runs_queued=result.runs_queued, runs_ended=result.runs_ended, runs_untriggered=result.runs_untriggered,
            attempts_running=result.attempts_running, attempts_lost=result.attempts_lost,
            attempts_finished_unseen=result.attempts_finished_unseen, retries_pending=result.retries_pending,
            duplicate_starts=result.duplicate_starts, differences=len(found),
            runs_differing=len({d.run_id for d in found}),
            first_difference=next((f"{d.kind.value} {d.path}: {d.detail}" for d in found if d.is_first),
                                  f"{found[0].kind.value} {found[0].path}: {found[0].detail}" if found else None),
            detail=json.dumps([{"run_id": d.run_id, "path": d.path, "kind": d.kind.value, "detail": d.detail}
                               for d in found[:DETAIL_LIMIT]]) if found else None,
        ))  # fmt: skip
        if result.record.error:
            row["error"] = result.record.error
        rows.append(row)
    return rows


def _error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def handoff_command(args: argparse.Namespace) -> int:
    from engines.api import EngineError
    from results.errors import ResultsError
    from shadow.engines import EngineSpecError, build_engine, resolve_engine
    from shadow.results.store import ResultsStore
    from shadow.sources import read_corpus

    err = sys.stderr
    specs = list(args.at or DEFAULT_CUTS)
    try:
        cuts = [CutPoint.parse(spec, index=i) for i, spec in enumerate(specs)]
    except ValueError as exc:
        err.write(f"error: --at: {exc}\n")
        return EXIT_HARNESS
    if args.limit is not None and args.limit < 1:
        err.write(f"error: --limit {args.limit}: give a number of traces >= 1\n")
        return EXIT_HARNESS
    try:
        source = build_engine(resolve_engine(args.source))
        target = build_engine(resolve_engine(args.target))
    except (EngineSpecError, EngineError) as exc:
        err.write(f"error: {exc}\n")
        return EXIT_HARNESS
    if not isinstance(target, HandsOff):
        err.write(
            f"error: engine {args.target!r} cannot adopt runs in flight (it does not offer "
            "engines.api.HandsOff); use --target actor\n"
        )
        return EXIT_HARNESS
    if args.source not in target.handoff_sources:
        err.write(
            f"error: engine {args.target!r} adopts runs from {', '.join(target.handoff_sources)}, "
            f"not from {args.source!r}\n"
        )
        return EXIT_HARNESS
    try:
        store = ResultsStore(args.db)
    except (ResultsError, OSError) as exc:
        err.write(f"error: {exc}\n")
        return EXIT_HARNESS
    options = ReplayOptions(seed=args.seed, time_limit=args.time_limit)
    wanted = set(args.trace or ())
    began = time.monotonic()
    traces = handoffs = differing = differences = errors = duplicates = 0
    running = lost = 0
    last_progress = began
    try:
        for item in read_corpus(list(args.corpus)):
            if item.error is not None:
                err.write(f"error: {item.error}\n")
                return EXIT_HARNESS
            trace = item.trace
            if trace is None or (wanted and trace.trace_id not in wanted):
                continue
            rows = handoff_rows(trace, cuts, specs, options, source, target, args.source)
            store.con.execute(
                "DELETE FROM handoffs WHERE trace_id = ? AND seed = ?", [trace.trace_id, args.seed]
            )
            store.insert({"handoffs": list(rows)})
            traces += 1
            for row in rows:
                if row.get("error"):
                    errors += 1
                if row.get("differences") is None:
                    continue
                handoffs += 1
                running += row.get("attempts_running") or 0
                lost += row.get("attempts_lost") or 0
                duplicates += row.get("duplicate_starts") or 0
                if row["differences"]:
                    differing += 1
                    differences += row["differences"]
            now = time.monotonic()
            if now - last_progress >= 3.0:
                last_progress = now
                err.write(
                    f"progress: {traces} traces, {handoffs} hand-offs in {now - began:.0f} s, "
                    f"{differing} with differences\n"
                )
            if args.limit is not None and traces >= args.limit:
                break
    finally:
        store.close()
    print(
        f"{handoffs} hand-offs over {traces} traces ({len(cuts)} cut points each, seed {args.seed}) -> {args.db}: "
        f"{differing} with outcome differences ({differences} differences), {duplicates} duplicate runtime starts; "
        f"{running} running attempts adopted, {lost} lost and started by the target; {errors} not run "
        f"(see handoffs.error) in {time.monotonic() - began:.0f} s"
    )
    return EXIT_FINDINGS if differing or duplicates else EXIT_OK
