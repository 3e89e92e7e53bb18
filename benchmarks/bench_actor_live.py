"""Benchmark the actor engine live, next to the legacy engine measured in the same run.

    .venv/bin/python benchmarks/bench_actor_live.py [--steps 20] [--width 5] [--sleep 0.1] [--runs 4] [--nodes 1]

One workflow of ``--steps`` SLEEP steps in layers of ``--width`` (every step of a layer feeds every
step of the next), ``--runs`` runs of it in parallel, each step sleeping ``--sleep`` seconds, on a
fresh SQLite file (WAL, real time, no simulated latency) per engine:

* the **actor** engine (:mod:`engines.actor.live`, ``--nodes`` nodes in this process): each step
  attempt is a job that sleeps its recorded duration;
* the **legacy** engine (:mod:`engines.legacy.live`, Maestro's legacy schedule: poll 100 ms,
  callbacks 1 s / 3 s): each attempt runs the live SLEEP runtime for the same seconds.

Reports, per engine, the per-step start overhead (ready -> started, real seconds: median, p99) and
the step throughput (attempts finished per second of makespan), then the ratios, as a table and as
one JSON line last (benchmarks/run_all.py convention). ``--skip-legacy`` measures the actor alone.

``--replay-corpus N`` instead replays the first N built-in corpus traces (``--corpus-seed``) on both
engines in virtual time, at their default settings, and reports the per-step start overhead
(virtual seconds) and store round trips per started attempt of each, and their ratios (the actor's
round trips split into the step path and the background: leases, sweeps, reconciliation, triggers;
the lease heartbeats, one batched renewal per node and interval, also on their own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from corpora.model import (
    Outcome,
    Param,
    RecordedAttempt,
    Run,
    RunStrategy,
    RunStrategyRule,
    Step,
    StepType,
    Trace,
    Transition,
    WorkflowDefinition,
)
from engines.actor.live import run_live as actor_run_live


def layered(steps: int, width: int, sleep: float) -> WorkflowDefinition:
    ids = [f"s{i:03d}" for i in range(steps)]
    layers = [ids[i : i + width] for i in range(0, steps, width)]
    out = []
    for li, layer in enumerate(layers):
        nxt = tuple(Transition(t) for t in layers[li + 1]) if li + 1 < len(layers) else ()
        for sid in layer:
            out.append(
                Step(sid, StepType.SLEEP, params={"sleep_seconds": Param(value=sleep)}, transitions=nxt)
            )
    return WorkflowDefinition(
        "bench-actor-live", tuple(out), run_strategy=RunStrategy(RunStrategyRule.PARALLEL, 100)
    )


def bench_trace(steps: int, width: int, sleep: float, runs: int) -> Trace:
    definition = layered(steps, width, sleep)
    now = time.time()
    attempts = tuple(RecordedAttempt(s.id, 1, Outcome.SUCCEEDED, sleep) for s in definition.steps)
    return Trace(
        trace_id="bench-actor-live", definition=definition,
        runs=tuple(Run(f"run-{i}", now, attempts=attempts) for i in range(1, runs + 1)),
    )  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _summary(name: str, overheads: list[float], attempts: int, makespan: float) -> dict[str, float | str]:
    return {
        "engine": name,
        "attempts": attempts,
        "start_overhead_median_s": statistics.median(overheads),
        "start_overhead_p99_s": _pct(overheads, 0.99),
        "makespan_s": makespan,
        "steps_per_s": attempts / makespan if makespan > 0 else float("inf"),
    }


def run_actor(trace: Trace, nodes: int, timeout: float) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        records, _ = asyncio.run(actor_run_live([trace], store_path=str(Path(tmp) / "actor.db"), nodes=nodes,
                                                timeout=timeout))  # fmt: skip
        makespan = time.monotonic() - started
    runs = records[0].runs
    if any(r.status != "SUCCEEDED" for r in runs):
        raise SystemExit(f"actor: not every run succeeded: {[r.status for r in runs]}")
    overheads = [a.started_at - a.ready_at for r in runs for a in r.attempts
                 if a.started_at is not None and a.ready_at is not None]  # fmt: skip
    return _summary("actor", overheads, sum(len(r.attempts) for r in runs), makespan)


def run_legacy(trace: Trace, timeout: float) -> dict[str, float | str]:
    from engines.legacy.live import run_live

    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        result = run_live([trace], store_path=Path(tmp) / "legacy.db", timeout=timeout)
        makespan = time.monotonic() - started
    if not result.finished or any(r.status != "SUCCEEDED" for r in result.runs):
        raise SystemExit(f"legacy: not every run succeeded: {[r.status for r in result.runs]}")
    return _summary("legacy", result.start_overheads(), sum(len(r.attempts) for r in result.runs), makespan)


def replay_corpus(count: int, seed: int) -> dict[str, object]:
    """Both engines on built-in corpus traces in virtual time: start overhead and round trips."""
    from corpora.generator import generate_corpus
    from engines.actor import ActorEngine
    from engines.api import ReplayOptions
    from engines.legacy import LegacyEngine

    over: dict[str, list[float]] = {"actor": [], "legacy": []}
    trips = {"actor": 0.0, "actor_step_path": 0.0, "actor_heartbeats": 0.0, "legacy": 0.0}
    started = {"actor": 0, "legacy": 0}
    for trace in generate_corpus(seed, count):
        options = ReplayOptions(seed=1)
        for name, engine in (("actor", ActorEngine()), ("legacy", LegacyEngine())):
            record = engine.replay(trace, options)
            trips[name] += record.counters["store_round_trips"]
            if name == "actor":
                trips["actor_step_path"] += record.counters["hot_round_trips"]
                trips["actor_heartbeats"] += record.counters.get("heartbeat_round_trips", 0.0)
            for run in record.runs:
                for a in run.attempts:
                    if a.started_at is not None and a.ready_at is not None:
                        over[name].append(a.started_at - a.ready_at)
                        started[name] += 1
    out: dict[str, object] = {"bench": "actor_replay_corpus", "traces": count, "corpus_seed": seed}
    for name in ("actor", "legacy"):
        out[f"{name}_start_overhead_median_s"] = statistics.median(over[name])
        out[f"{name}_start_overhead_p99_s"] = _pct(over[name], 0.99)
        out[f"{name}_round_trips_per_attempt"] = trips[name] / max(started[name], 1)
    out["actor_step_path_round_trips_per_attempt"] = trips["actor_step_path"] / max(started["actor"], 1)
    out["actor_heartbeat_round_trips_per_attempt"] = trips["actor_heartbeats"] / max(started["actor"], 1)
    out["start_overhead_median_ratio"] = statistics.median(over["actor"]) / statistics.median(over["legacy"])
    out["round_trips_ratio"] = trips["actor"] / trips["legacy"]
    out["step_path_round_trips_ratio"] = trips["actor_step_path"] / trips["legacy"]
    for k, v in out.items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--width", type=int, default=5)
    ap.add_argument("--sleep", type=float, default=0.1)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--skip-legacy", action="store_true")
    ap.add_argument(
        "--replay-corpus", type=int, default=0, metavar="N", help="replay N corpus traces instead"
    )
    ap.add_argument("--corpus-seed", type=int, default=21)
    args = ap.parse_args()
    if args.replay_corpus:
        print(json.dumps(replay_corpus(args.replay_corpus, args.corpus_seed)))
        return
    trace = bench_trace(args.steps, args.width, args.sleep, args.runs)
    rows = [run_actor(trace, args.nodes, args.timeout)]
    if not args.skip_legacy:
        rows.append(run_legacy(trace, args.timeout))
    for r in rows:
        print(f"{r['engine']:>7}: {r['attempts']} attempts, start overhead median {r['start_overhead_median_s']:.4f} s "
              f"p99 {r['start_overhead_p99_s']:.4f} s, makespan {r['makespan_s']:.2f} s, "
              f"{r['steps_per_s']:.1f} steps/s")  # fmt: skip
    out: dict[str, object] = {"bench": "actor_live", "steps": args.steps, "width": args.width, "sleep": args.sleep,
                              "runs": args.runs, "nodes": args.nodes, "engines": rows}  # fmt: skip
    if len(rows) == 2:
        actor, legacy = rows
        ratios = {
            "start_overhead_median_ratio": float(actor["start_overhead_median_s"])
            / max(float(legacy["start_overhead_median_s"]), 1e-12),
            "start_overhead_p99_ratio": float(actor["start_overhead_p99_s"])
            / max(float(legacy["start_overhead_p99_s"]), 1e-12),
            "throughput_ratio": float(actor["steps_per_s"]) / max(float(legacy["steps_per_s"]), 1e-12),
        }
        print("ratios (actor / legacy): " + ", ".join(f"{k} {v:.4f}" for k, v in ratios.items()))
        out.update(ratios)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
