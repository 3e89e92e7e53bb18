"""Replayed vs recorded makespan of the real WfInstances traces, per engine.

    python benchmarks/bench_wfformat_makespan.py [--engines legacy,actor] [--cpu-budget 120] [--corpora DIR]

Each WfFormat instance in ``../shared/corpora/wfinstances`` is imported and replayed in its own child
process (a fresh interpreter; the child's CPU time is capped with RLIMIT_CPU at ``--cpu-budget``
seconds, so one huge trace on the legacy engine, which reloads the whole run at every poll, cannot
stall the benchmark). The ratio ``replayed makespan / recorded makespan`` (``Run.observed``) tells
how much of production's wall time the replay reproduces: the importer keeps task runtimes and the
DAG, not queueing, staging or the number of machines, so ratios below 1 are expected; orchestration
latency pushes them up. Prints one line per trace, then (last line) one JSON object: per engine the
number replayed, the traces over budget, CPU seconds, and min / p25 / median / p75 / max of the ratio.
Exit 0 even when traces are over budget (they are listed); 1 when the corpora are absent or a replay
ends non-terminal.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"}


def _engine(name: str) -> Any:
    if name == "legacy":
        from engines.legacy import LegacyEngine

        return LegacyEngine()
    if name == "actor":
        from engines.actor import ActorEngine

        return ActorEngine()
    if name == "oracle":
        from engines.core.oracle import CoreOracle

        return CoreOracle()
    raise SystemExit(f"unknown engine {name!r} (legacy, actor, oracle)")


def replay_one(path: Path, engine: str, seed: int) -> dict[str, Any]:
    """Import one WfFormat file and replay it: the child-process side."""
    from corpora.importers import IMPORTERS, ImportOptions, run_import
    from engines.api import ReplayOptions

    (item,) = run_import(IMPORTERS["wfformat"], [path], ImportOptions())
    if item.trace is None:
        return {"file": path.name, "error": str(item.error)}
    trace = item.trace
    observed = trace.runs[0].observed
    started = time.process_time()
    record = _engine(engine).replay(trace, ReplayOptions(seed=seed))
    cpu = time.process_time() - started
    run = record.runs[0]
    replayed = (
        (run.ended_at - run.started_at) if run.ended_at is not None and run.started_at is not None else None
    )
    recorded = (
        (observed.end_time - observed.start_time)
        if observed and observed.end_time and observed.start_time
        else None
    )
    return {
        "trace": trace.trace_id,
        "engine": engine,
        "tasks": len(trace.definition.steps),
        "status": run.status,
        "stuck": run.stuck,
        "unrecorded": sum(a.unrecorded for a in run.attempts),
        "cpu_s": round(cpu, 2),
        "replayed_s": replayed,
        "recorded_s": recorded,
        "ratio": replayed / recorded if replayed is not None and recorded else None,
        "cycles": record.counters.get("cycles"),
    }


def _distribution(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 3
    return {
        "min": round(ordered[0], 4),
        "p25": round(q[0], 4),
        "median": round(q[1], 4),
        "p75": round(q[2], 4),
        "max": round(ordered[-1], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="legacy,actor", help="comma-separated: legacy, actor, oracle")
    parser.add_argument("--cpu-budget", type=float, default=120.0, help="CPU seconds per trace and engine")
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--engine", default="legacy", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        budget = int(args.cpu_budget) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (budget, budget + 5))
        print(json.dumps(replay_one(args.one, args.engine, args.seed)))
        return 0
    folder = args.corpora / "wfinstances"
    if not folder.is_dir():
        print(json.dumps({"error": f"real corpora not found at {folder}"}))
        return 1
    from corpora.importers import IMPORTERS

    files = IMPORTERS["wfformat"].discover([folder])
    summary: dict[str, Any] = {"files": len(files), "cpu_budget_s": args.cpu_budget, "seed": args.seed}
    bad = False
    for engine in args.engines.split(","):
        ratios: list[float] = []
        over: list[str] = []
        cpu = 0.0
        for path in files:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                str(path),
                "--engine",
                engine,
                "--seed",
                str(args.seed),
                "--cpu-budget",
                str(args.cpu_budget),
            ]
            try:
                done = subprocess.run(
                    cmd, capture_output=True, text=True, cwd=ROOT, timeout=args.cpu_budget * 6 + 60
                )
            except subprocess.TimeoutExpired:
                over.append(path.stem)
                print(json.dumps({"file": path.name, "engine": engine, "over_budget": "wall"}), flush=True)
                continue
            if done.returncode != 0 or not done.stdout.strip():
                over.append(path.stem)
                print(
                    json.dumps(
                        {
                            "file": path.name,
                            "engine": engine,
                            "over_budget": "cpu",
                            "returncode": done.returncode,
                            "stderr": done.stderr[-300:],
                        }
                    ),
                    flush=True,
                )
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            if row.get("status") not in TERMINAL or row.get("stuck") or row.get("unrecorded"):
                bad = True
            cpu += row.get("cpu_s", 0.0)
            if row.get("ratio") is not None:
                ratios.append(row["ratio"])
        summary[engine] = {
            "replayed": len(ratios),
            "over_budget": over,
            "cpu_s": round(cpu, 1),
            "ratio": _distribution(ratios),
        }
    print(json.dumps(summary))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
