"""Replay speed (issue 13): does replay cost follow events, not replayed time?

    python benchmarks/bench_replay_speed.py [--seed 1] [--count 200] [--no-e2e] [--exact-sample N]

On the built-in corpus ``generate_corpus(seed, count)`` with no step cap, in one process, one after
the other (so every ratio compares figures measured side by side):

1. **each engine alone** -- the core oracle (the zero-overhead reference), the legacy engine and the
   actor engine, in their default (fast) mode -- over every trace: CPU seconds, attempts per
   CPU-second, the engine's CPU over the oracle's in total and per trace (the worst trace named), and
   the store round trips split into **hot** (per workflow: the legacy's claimed cycles, the actor's flow
   commits and triggers) and **upkeep** (per node or worker: empty polls, heartbeats, sweeps,
   reconciliation), upkeep also per node per virtual hour;
2. ``gen-<seed>-00037`` (the ~1,700-step trace that used to cost the legacy engine an hour) on the legacy
   engine alone;
3. with ``--exact-sample N``, the first N traces again in exact (tick-by-tick) mode, for the speed-up of
   the fast path (the equality of both modes' records is a test, not a benchmark:
   tests/engines/test_legacy_fast.py, tests/engines/test_actor_fast.py);
4. **end to end**: ``shadow run`` in this process (1 worker: legacy baseline, actor candidate, legacy A/A
   replica, comparison, DuckDB) over the same corpus: candidate attempts per CPU-second and replayed
   production time per CPU-second.

CPU seconds are ``time.process_time`` (the machine is shared; wall time would measure the neighbours).
Targets: end to end >= 5,000 candidate attempts per CPU-s and >= 10,000x production time; each engine
<= 5x the oracle in total and no trace over 20x; actor >= 20,000 attempts per CPU-s; legacy on
gen-1-00037 <= 10 CPU-s; actor hot round trips <= 10 % of legacy's. Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_replay import production_seconds  # benchmarks/ is a folder of scripts, not a package

from corpora.generator import generate_corpus
from corpora.io import write_traces
from corpora.model import Trace
from engines.api import Engine, ExecutionRecord, ReplayOptions
from shadow.engines import build_engine, resolve_engine
from shadow.runner import RunSettings, run_shadow

__all__ = ["engine_pass", "main"]

ENGINES = ("oracle", "legacy", "actor")


def _attempts(record: ExecutionRecord) -> int:
    return sum(len(r.attempts) for r in record.runs)


def engine_pass(engine: Engine, traces: Sequence[Trace], *, exact: bool = False) -> dict[str, Any]:
    """Replay every trace on ``engine``; per-trace CPU and the totals."""
    per_trace: dict[str, float] = {}
    attempts = 0
    production = 0.0
    counters: dict[str, float] = {}
    for trace in traces:
        began = time.process_time()
        record = engine.replay(trace, ReplayOptions(seed=0, exact=exact))
        per_trace[trace.trace_id] = time.process_time() - began
        attempts += _attempts(record)
        production += production_seconds(record)
        for key in ("store_round_trips", "hot_round_trips", "upkeep_round_trips", "virtual_seconds"):
            if key in record.counters:
                counters[key] = counters.get(key, 0.0) + float(record.counters[key])
    cpu = sum(per_trace.values())
    out: dict[str, Any] = {
        "traces": len(traces), "attempts": attempts, "cpu_s": round(cpu, 3),
        "attempts_per_cpu_s": round(attempts / cpu, 1) if cpu else None,
        "production_s": round(production, 1), "per_trace_cpu_s": per_trace, **counters,
    }  # fmt: skip
    if counters.get("virtual_seconds") and "upkeep_round_trips" in counters:
        out["upkeep_round_trips_per_virtual_hour"] = round(
            counters["upkeep_round_trips"] / (counters["virtual_seconds"] / 3600.0), 2
        )
    return out


def _vs_oracle(result: dict[str, Any], oracle: dict[str, Any]) -> None:
    """Total and per-trace CPU ratios against the oracle (per trace: floor the oracle at 1 ms, since a
    trace the oracle replays in 50 us would make any engine's fixed start-up cost look like 100x)."""
    result["cpu_over_oracle"] = round(result["cpu_s"] / oracle["cpu_s"], 2) if oracle["cpu_s"] else None
    ratios = {
        tid: cpu / max(oracle["per_trace_cpu_s"].get(tid, 0.0), 0.001)
        for tid, cpu in result["per_trace_cpu_s"].items()
    }
    worst = max(ratios, key=ratios.__getitem__) if ratios else None
    result["worst_trace"] = worst
    result["worst_trace_over_oracle"] = round(ratios[worst], 1) if worst else None
    result["traces_over_20x_oracle"] = sum(1 for r in ratios.values() if r > 20)


def end_to_end(traces: Sequence[Trace]) -> dict[str, Any]:
    """``shadow run`` inline (1 worker) over ``traces``: CPU of this process for the whole session."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        write_traces(str(corpus), traces)
        db = str(Path(tmp) / "results.duckdb")
        began_cpu, began_wall = time.process_time(), time.perf_counter()
        report = run_shadow(RunSettings(corpus=(str(corpus),), db=db, baseline=resolve_engine("legacy"),
                                        candidate=resolve_engine("actor"), workers=1))  # fmt: skip
        cpu, wall = time.process_time() - began_cpu, time.perf_counter() - began_wall
        import duckdb

        with duckdb.connect(db, read_only=True) as con:
            row = con.execute("SELECT count(*) FROM steps WHERE engine = 'candidate'").fetchone()
    return {"traces": report.traces_done, "candidate_attempts": int(row[0]) if row else 0, "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=40 if quick else 200)
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end shadow run")
    ap.add_argument(
        "--exact-sample", type=int, default=0, help="also replay the first N traces in exact mode"
    )
    args = ap.parse_args(argv)
    traces = list(generate_corpus(args.seed, args.count))
    out: dict[str, Any] = {"bench": "replay_speed", "seed": args.seed, "count": args.count,
                           "recorded_attempts": sum(len(r.attempts) for t in traces for r in t.runs)}  # fmt: skip
    engines: dict[str, dict[str, Any]] = {}
    for name in ENGINES:
        engine = build_engine(resolve_engine(name))
        engines[name] = engine_pass(engine, traces)
        print(f"{name:>7}: {engines[name]['attempts']:,} attempts in {engines[name]['cpu_s']:.2f} CPU-s "
              f"= {engines[name]['attempts_per_cpu_s'] or 0:,.0f}/CPU-s", flush=True)  # fmt: skip
    for name in ("legacy", "actor"):
        _vs_oracle(engines[name], engines["oracle"])
        e = engines[name]
        print(f"{name:>7}: {e['cpu_over_oracle']}x the oracle in total, worst trace {e['worst_trace']} "
              f"{e['worst_trace_over_oracle']}x, {e['traces_over_20x_oracle']} traces over 20x; round trips hot "
              f"{e.get('hot_round_trips', 0):,.0f} upkeep {e.get('upkeep_round_trips', 0):,.0f}", flush=True)  # fmt: skip
    hot_l, hot_a = engines["legacy"].get("hot_round_trips"), engines["actor"].get("hot_round_trips")
    if hot_l and hot_a is not None:
        out["hot_round_trips_actor_over_legacy"] = round(hot_a / hot_l, 4)
    big = next((t for t in traces if t.trace_id == f"gen-{args.seed}-00037"), None)
    if big is not None:
        began = time.process_time()
        build_engine(resolve_engine("legacy")).replay(big, ReplayOptions(seed=0))
        out["legacy_big_trace_cpu_s"] = round(time.process_time() - began, 2)
        out["legacy_big_trace"] = big.trace_id
        print(f" legacy: {big.trace_id} in {out['legacy_big_trace_cpu_s']} CPU-s", flush=True)
    if args.exact_sample:
        sample = [t for t in traces[: args.exact_sample] if t.trace_id != f"gen-{args.seed}-00037"]
        exact: dict[str, Any] = {}
        for name in ("legacy", "actor"):
            engine = build_engine(resolve_engine(name))
            slow = engine_pass(engine, sample, exact=True)
            fast_cpu = sum(engines[name]["per_trace_cpu_s"][t.trace_id] for t in sample)
            exact[name] = {"traces": len(sample), "exact_cpu_s": slow["cpu_s"], "fast_cpu_s": round(fast_cpu, 3),
                           "speedup": round(slow["cpu_s"] / fast_cpu, 1) if fast_cpu else None}  # fmt: skip
            print(f"{name:>7}: exact mode {slow['cpu_s']:.1f} CPU-s vs fast {fast_cpu:.2f} on {len(sample)} traces",
                  flush=True)  # fmt: skip
        out["exact_sample"] = exact
    for e in engines.values():
        e.pop("per_trace_cpu_s")
    out["engines"] = engines
    if not args.no_e2e:
        e2e = end_to_end(traces)
        e2e["candidate_attempts_per_cpu_s"] = round(e2e["candidate_attempts"] / e2e["cpu_s"], 1)
        e2e["production_over_cpu"] = round(engines["oracle"]["production_s"] / e2e["cpu_s"], 1)
        out["e2e"] = e2e
        print(f"    e2e: {e2e['candidate_attempts']:,} candidate attempts in {e2e['cpu_s']} CPU-s = "
              f"{e2e['candidate_attempts_per_cpu_s']:,.0f}/CPU-s; production time / CPU {e2e['production_over_cpu']:,.0f}x",
              flush=True)  # fmt: skip
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
