"""Legacy engine: fast mode (default) vs exact (tick-by-tick) mode vs the core oracle, CPU seconds.

    .venv/bin/python benchmarks/bench_legacy_modes.py                 # the four named traces + corpus, fast
    .venv/bin/python benchmarks/bench_legacy_modes.py --exact         # also exact on 13, 23, 18 (~2 CPU-min)
    .venv/bin/python benchmarks/bench_legacy_modes.py --exact-corpus  # also exact on the whole corpus (~4 min)

Everything runs in this one process, side by side, measured with ``time.process_time`` (CPU, not wall:
the machine is shared). Where both modes ran, their records are compared (they must be identical).
Targets (issue 13): legacy <= 5x the oracle's CPU over the corpus, no trace > 20x, gen-1-00037 <= 10 s.
"""

from __future__ import annotations

import argparse
import time

from corpora.generator import generate_corpus
from corpora.model import Trace
from engines.api import ReplayOptions
from engines.core.oracle import CoreOracle
from engines.legacy import LegacyEngine

NAMED = (13, 23, 18, 37)


def _cpu(fn):  # type: ignore[no-untyped-def]
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def _legacy(trace: Trace, seed: int, exact: bool) -> tuple[dict, float, dict]:  # type: ignore[type-arg]
    engine = LegacyEngine()
    record, cpu = _cpu(lambda: engine.replay(trace, ReplayOptions(seed=seed, exact=exact)))
    return record.to_dict(), cpu, engine.last_stats


def _oracle(trace: Trace, seed: int) -> float:
    oracle = CoreOracle()
    oracle.replay(trace, ReplayOptions(seed=seed))  # warm: compiled definitions are cached per trace object
    return _cpu(lambda: oracle.replay(trace, ReplayOptions(seed=seed)))[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus-seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1, help="replay seed")
    ap.add_argument("--exact", action="store_true", help="also run the exact mode on the named traces but 37")
    ap.add_argument(
        "--exact-corpus", action="store_true", help="also run the exact mode on every corpus trace but 37"
    )
    args = ap.parse_args(argv)

    corpus = list(generate_corpus(args.corpus_seed, args.count))
    by_index = dict(enumerate(corpus))
    print(
        f"legacy fast vs exact vs oracle, corpus seed {args.corpus_seed}, replay seed {args.seed} (CPU seconds)"
    )
    print(f"{'trace':<14} {'attempts':>8} {'oracle':>8} {'fast':>8} {'x oracle':>8} {'exact':>8} {'speedup':>8}  "
          "fast-forwarded polls, reloads (incremental/full)")  # fmt: skip
    mismatches = 0
    for i in NAMED:
        if i not in by_index:
            continue
        trace = by_index[i]
        attempts = sum(len(r.attempts) for r in trace.runs)
        o = _oracle(trace, args.seed)
        fast, f_cpu, stats = _legacy(trace, args.seed, False)
        exact_cpu = ""
        speed = ""
        if args.exact and i != 37:
            exact, e_cpu, _ = _legacy(trace, args.seed, True)
            exact_cpu, speed = f"{e_cpu:8.2f}", f"{e_cpu / f_cpu:7.1f}x"
            if exact != fast:
                mismatches += 1
                speed += " DIFFERENT"
        ff = int(stats["fast_forwarded_polls"] + stats["fast_forwarded_empty_polls"])
        print(f"gen-{args.corpus_seed}-{i:05d}  {attempts:>8} {o:8.3f} {f_cpu:8.2f} {f_cpu / o:7.1f}x {exact_cpu:>8} "
              f"{speed:>8}  {ff:,} of {int(fast['counters']['polls']):,} polls; "
              f"{int(stats['incremental_reloads']):,}/{int(stats['full_reloads']):,}")  # fmt: skip

    tot_o = tot_f = tot_e = 0.0
    worst = (0.0, "")
    attempts = 0
    for i, trace in enumerate(corpus):
        attempts += sum(len(r.attempts) for r in trace.runs)
        o = _oracle(trace, args.seed)
        fast, f_cpu, _ = _legacy(trace, args.seed, False)
        tot_o += o
        tot_f += f_cpu
        ratio = f_cpu / o if o > 0 else float("inf")
        if ratio > worst[0]:
            worst = (ratio, f"{trace.trace_id} {f_cpu:.2f} s vs oracle {o:.3f} s")
        if args.exact_corpus and i != 37:
            exact, e_cpu, _ = _legacy(trace, args.seed, True)
            tot_e += e_cpu
            if exact != fast:
                mismatches += 1
                print(f"  {trace.trace_id}: fast and exact records DIFFER")
    print(
        f"\ncorpus generate_corpus({args.corpus_seed}, {args.count}): {len(corpus)} traces, {attempts:,} attempts"
    )
    print(f"  oracle {tot_o:.2f} s; legacy fast {tot_f:.2f} s = {tot_f / tot_o:.1f}x oracle "
          f"({attempts / tot_f:,.0f} attempts per CPU-second)")  # fmt: skip
    print(f"  worst trace: {worst[0]:.1f}x oracle ({worst[1]})")
    if args.exact_corpus:
        print(f"  legacy exact (all but index 37) {tot_e:.1f} s")
    if mismatches:
        print(f"{mismatches} fast/exact mismatches")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
