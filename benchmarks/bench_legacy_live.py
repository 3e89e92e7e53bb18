"""Benchmark the legacy engine live: per-step start overhead (ready -> started) in real time.

    .venv/bin/python benchmarks/bench_legacy_live.py [--steps 50] [--width 5] [--sleep 0.2] [--quick]

Runs one workflow of ``--steps`` steps, alternating SLEEP (``--sleep`` seconds) and SHELL (``echo``)
steps, in layers of ``--width`` parallel steps (``--width 1`` is a plain chain; a 50-step chain takes
about 5 minutes at the defaults), on a fresh SQLite file with the legacy engine's default schedule
(Maestro's: poll 100 ms, callbacks 1 s / 3 s, callback 0 for fresh steps). ``--quick`` uses 10 ms
polls and callbacks to show the engine's own floor. Prints a table, then a JSON line last
(benchmarks/run_all.py convention) with p50/p95/p99 of the start overhead, the run's makespan and the
orchestration overhead (makespan minus the critical path of runtime durations).

``--replay-corpus N`` instead replays built-in corpus traces (``shadow corpus generate --seed S``,
the first N whose replay needs at most ``--max-polls`` cycles) on the legacy engine in virtual time
and reports the distribution of the per-step start overhead in virtual seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from corpora.model import Param, Step, StepType, Transition, WorkflowDefinition
from engines.legacy import LegacyConfig
from engines.legacy.live import live_trace, run_live


def layered_definition(steps: int, width: int, sleep: float) -> WorkflowDefinition:
    """``steps`` steps in layers of ``width``; every step of a layer feeds every step of the next."""
    ids = [f"s{i:03d}" for i in range(steps)]
    layers = [ids[i : i + width] for i in range(0, steps, width)]
    out = []
    for li, layer in enumerate(layers):
        nxt = tuple(Transition(t) for t in layers[li + 1]) if li + 1 < len(layers) else ()
        for sid in layer:
            if int(sid[1:]) % 2:
                params = {"command": Param(value=f"echo {sid}")}
                out.append(Step(sid, StepType.SHELL, params=params, transitions=nxt))
            else:
                params = {"sleep_seconds": Param(value=sleep)}
                out.append(Step(sid, StepType.SLEEP, params=params, transitions=nxt))
    return WorkflowDefinition("bench-legacy-live", tuple(out))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def replay_corpus(count: int, seed: int, max_polls: float) -> None:
    """Start-overhead distribution of the legacy engine over built-in traces, in virtual time."""
    from corpora.generator import generate_corpus
    from engines.api import ReplayOptions
    from engines.legacy import LegacyEngine

    overheads: list[float] = []
    traces = cycles = 0
    started = time.perf_counter()
    for trace in generate_corpus(seed, 10 * count):
        if sum(a.duration / 3.0 + 5.0 for r in trace.runs for a in r.attempts) > max_polls:
            continue
        record = LegacyEngine().replay(trace, ReplayOptions(seed=1))
        cycles += int(record.counters["cycles"])
        overheads.extend(
            a.started_at - a.ready_at for r in record.runs for a in r.attempts
            if a.started_at is not None and a.ready_at is not None
        )  # fmt: skip
        traces += 1
        if traces == count:
            break
    wall = time.perf_counter() - started
    print(
        f"legacy replay: {traces} built-in traces (seed {seed}), {len(overheads)} started attempts, {cycles} cycles"
    )
    print(f"  start overhead (virtual s)  p50 {_pct(overheads, 0.5):.3f}  p95 {_pct(overheads, 0.95):.3f}  "
          f"p99 {_pct(overheads, 0.99):.3f}  min {min(overheads):.3f}  max {max(overheads):.3f}")  # fmt: skip
    print(f"  wall {wall:.1f} s ({wall / max(cycles, 1) * 1e3:.2f} ms per cycle)")
    print(json.dumps({
        "bench": "legacy_replay_corpus", "traces": traces, "attempts": len(overheads), "cycles": cycles,
        "start_overhead_p50": _pct(overheads, 0.5), "start_overhead_p95": _pct(overheads, 0.95),
        "start_overhead_p99": _pct(overheads, 0.99), "wall_s": wall,
    }))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--width", type=int, default=5, help="parallel steps per layer (1: a chain)")
    ap.add_argument("--sleep", type=float, default=0.2, help="seconds each SLEEP step sleeps")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="10 ms poll and callbacks instead of Maestro's")
    ap.add_argument("--synchronous", default="FULL", help="SQLite synchronous pragma (FULL: durable commits)")
    ap.add_argument(
        "--replay-corpus", type=int, default=0, metavar="N", help="replay N built-in traces instead"
    )
    ap.add_argument("--corpus-seed", type=int, default=7)
    ap.add_argument(
        "--max-polls", type=float, default=3000.0, help="skip traces needing more cycles (replay mode)"
    )
    args = ap.parse_args()
    if args.replay_corpus:
        replay_corpus(args.replay_corpus, args.corpus_seed, args.max_polls)
        return
    config = (
        LegacyConfig(workers=args.workers, poll_interval=0.01, default_callback=0.01, status_callbacks={})
        if args.quick
        else LegacyConfig(workers=args.workers)
    )
    definition = layered_definition(args.steps, args.width, args.sleep)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        cpu = time.process_time()
        result = run_live([live_trace(definition)], store_path=Path(tmp) / "legacy.db", config=config,
                          timeout=3600, synchronous=args.synchronous)  # fmt: skip
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
    (run,) = result.runs
    overheads = result.start_overheads()
    makespan = (run.ended_at or 0.0) - (run.started_at or 0.0)
    print(
        f"legacy live: {args.steps} steps (width {args.width}), status {run.status}, finished={result.finished}"
    )
    print(f"  start overhead  p50 {_pct(overheads, 0.5):.3f} s  p95 {_pct(overheads, 0.95):.3f} s  "
          f"p99 {_pct(overheads, 0.99):.3f} s  mean {statistics.fmean(overheads):.3f} s")  # fmt: skip
    print(f"  makespan {makespan:.1f} s, wall {wall:.1f} s, CPU {cpu:.2f} s, cycles {result.counters.get('cycles', 0):.0f}, "
          f"store commits {result.counters.get('store_commits', 0):.0f}")  # fmt: skip
    print(json.dumps({
        "bench": "legacy_live", "steps": args.steps, "width": args.width, "quick": args.quick,
        "status": run.status, "start_overhead_p50": _pct(overheads, 0.5), "start_overhead_p95": _pct(overheads, 0.95),
        "start_overhead_p99": _pct(overheads, 0.99), "makespan_s": makespan, "wall_s": wall, "cpu_s": cpu,
        "cycles": result.counters.get("cycles", 0), "store_commits": result.counters.get("store_commits", 0),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
