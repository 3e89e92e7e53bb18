"""The actor engine's fast mode against its exact mode and the core oracle, per trace, in one process.

    .venv/bin/python benchmarks/bench_actor_modes.py [--seed 1] [--count 40] [--exact-max-attempts 1000]
                                                     [--no-exact] [--profile 25]

For every trace of ``generate_corpus(seed, count)`` (no ``--max-steps``): CPU seconds
(``time.process_time``) of ``CoreOracle().replay``, of ``ActorEngine().replay`` in fast mode (the
default) and, for traces with at most ``--exact-max-attempts`` recorded attempts, in exact mode
(``ReplayOptions(exact=True)``), each replay alone, one after the other; whether the two actor
records are identical (``record.to_dict()``, counters included); the actor's attempts (started),
hot and upkeep round trips and the virtual seconds replayed. Totals: attempts per CPU-second of
the actor (target >= 20,000), actor/oracle CPU over the corpus (target <= 5) and the worst single
trace (target <= 20). ``--profile N`` also runs the fast pass under cProfile and prints the top N
functions by own time. ``BENCH_QUICK=1`` shrinks the corpus to 12 traces. Last stdout line: one
JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time
from typing import Any

from corpora.generator import generate_corpus
from corpora.model import Trace
from engines.actor import ActorEngine
from engines.api import ExecutionRecord, ReplayOptions
from engines.core.oracle import CoreOracle

__all__ = ["main", "measure"]


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def measure(trace: Trace, *, seed: int, exact: bool) -> dict[str, Any]:
    """One trace: oracle, actor fast and (if ``exact``) actor exact, CPU seconds and counters."""
    _, oracle = _timed(lambda: CoreOracle().replay(trace, ReplayOptions(seed=seed)))
    engine = ActorEngine()
    fast_record, fast = _timed(lambda: engine.replay(trace, ReplayOptions(seed=seed)))
    row: dict[str, Any] = {
        "trace": trace.trace_id,
        "recorded_attempts": sum(len(r.attempts) for r in trace.runs),
        "attempts": fast_record.counters.get("attempts", 0.0),
        "oracle_cpu": oracle,
        "fast_cpu": fast,
        "mode": engine.last_stats.get("mode"),
        "hot_round_trips": fast_record.counters.get("hot_round_trips", 0.0),
        "upkeep_round_trips": fast_record.counters.get("upkeep_round_trips", 0.0),
        "virtual_seconds": fast_record.counters.get("virtual_seconds", 0.0),
        "heartbeats": fast_record.counters.get("heartbeats", 0.0),
    }
    if exact:
        exact_record, exact_cpu = _timed(
            lambda: ActorEngine().replay(trace, ReplayOptions(seed=seed, exact=True))
        )
        row["exact_cpu"] = exact_cpu
        row["equal"] = _same(fast_record, exact_record)
    return row


def _same(a: ExecutionRecord, b: ExecutionRecord) -> bool:
    return a.to_dict() == b.to_dict()


def _profile(traces: list[Trace], seed: int, top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for trace in traces:
        ActorEngine().replay(trace, ReplayOptions(seed=seed))
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--count", type=int, default=12 if os.environ.get("BENCH_QUICK") else 40)
    parser.add_argument("--replay-seed", type=int, default=1)
    parser.add_argument(
        "--exact-max-attempts",
        type=int,
        default=1000,
        help="replay exact mode only for traces with at most this many recorded attempts",
    )
    parser.add_argument("--no-exact", action="store_true")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile the fast pass, top N")
    args = parser.parse_args(argv)  # fmt: skip

    traces = list(generate_corpus(args.seed, args.count))
    rows = []
    print(f"{'trace':<14}{'att':>6}{'oracle':>9}{'fast':>9}{'exact':>9}{'fast/or':>9}{'equal':>7}"
          f"{'hot rt':>9}{'upk rt':>9}{'virt h':>9}", flush=True)  # fmt: skip
    for trace in traces:
        recorded = sum(len(r.attempts) for r in trace.runs)
        row = measure(
            trace, seed=args.replay_seed, exact=not args.no_exact and recorded <= args.exact_max_attempts
        )
        rows.append(row)
        exact = f"{row['exact_cpu']:9.3f}" if "exact_cpu" in row else f"{'-':>9}"
        equal = ("yes" if row["equal"] else "NO") if "equal" in row else "-"
        print(f"{row['trace']:<14}{row['attempts']:6.0f}{row['oracle_cpu']:9.3f}{row['fast_cpu']:9.3f}{exact}"
              f"{row['fast_cpu'] / max(row['oracle_cpu'], 1e-9):9.1f}{equal:>7}{row['hot_round_trips']:9.0f}"
              f"{row['upkeep_round_trips']:9.0f}{row['virtual_seconds'] / 3600:9.1f}", flush=True)  # fmt: skip

    attempts = sum(r["attempts"] for r in rows)
    oracle = sum(r["oracle_cpu"] for r in rows)
    fast = sum(r["fast_cpu"] for r in rows)
    with_exact = [r for r in rows if "exact_cpu" in r]
    result: dict[str, Any] = {
        "corpus": f"generate_corpus({args.seed}, {args.count})",
        "traces": len(rows),
        "attempts": attempts,
        "oracle_cpu": oracle,
        "actor_fast_cpu": fast,
        "actor_fast_attempts_per_cpu_second": attempts / max(fast, 1e-9),
        "oracle_attempts_per_cpu_second": attempts / max(oracle, 1e-9),
        "actor_fast_over_oracle": fast / max(oracle, 1e-9),
        "worst_trace_over_oracle": max(
            (r["fast_cpu"] / max(r["oracle_cpu"], 1e-9), r["trace"]) for r in rows
        ),
        "exact_traces": len(with_exact),
        "exact_equal": sum(1 for r in with_exact if r["equal"]),
        "actor_exact_cpu_same_traces": sum(r["exact_cpu"] for r in with_exact),
        "actor_fast_cpu_same_traces": sum(r["fast_cpu"] for r in with_exact),
        "hot_round_trips": sum(r["hot_round_trips"] for r in rows),
        "upkeep_round_trips": sum(r["upkeep_round_trips"] for r in rows),
        "upkeep_round_trips_per_virtual_hour": sum(r["upkeep_round_trips"] for r in rows)
        / max(sum(r["virtual_seconds"] for r in rows) / 3600, 1e-9),
        "per_trace": {r["trace"]: {k: v for k, v in r.items() if k != "trace"} for r in rows},
    }
    print(
        f"\n{len(rows)} traces, {attempts:.0f} attempts: oracle {oracle:.2f} CPU-s, actor fast {fast:.2f} CPU-s "
        f"({result['actor_fast_attempts_per_cpu_second']:.0f} attempts/CPU-s, target >= 20,000), "
        f"actor/oracle {result['actor_fast_over_oracle']:.2f} (target <= 5), worst trace "
        f"{result['worst_trace_over_oracle'][0]:.1f}x {result['worst_trace_over_oracle'][1]} (target <= 20); "
        f"exact mode on {len(with_exact)} traces: {result['actor_exact_cpu_same_traces']:.2f} CPU-s vs fast "
        f"{result['actor_fast_cpu_same_traces']:.2f}, records equal {result['exact_equal']}/{len(with_exact)}",
        flush=True,
    )
    if args.profile:
        print(_profile(traces, args.replay_seed, args.profile), flush=True)
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
