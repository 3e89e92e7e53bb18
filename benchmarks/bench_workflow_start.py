"""Workflow-start overhead live, both engines in the same run: trigger -> run started.

    .venv/bin/python benchmarks/bench_workflow_start.py [--runs 20] [--timeout 120]

``--runs`` runs of a one-step workflow (a zero-second SLEEP), all triggered now, on a fresh SQLite
file per engine (WAL, ``synchronous=NORMAL``, real clock): the **legacy** engine with Maestro's legacy
schedule (:class:`engines.legacy.LegacyConfig` defaults) and the **actor** engine with its live
settings. The overhead of a run is ``started_at - triggered_at`` from the engine's own record (the
seed's headline: 200 ms legacy, 50 ms actor). Prints p50 / p99 per engine and the ratio legacy /
actor, then one JSON line last. The step-start overhead is bench_actor_live.py's (not repeated here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from corpora.model import Param, RunStrategy, RunStrategyRule, Step, StepType, WorkflowDefinition
from engines.api import RunExecution
from engines.legacy.live import live_trace
from engines.legacy.live import run_live as legacy_run_live

__all__ = ["main", "start_overheads"]


def definition() -> WorkflowDefinition:
    step = Step("only", StepType.SLEEP, params={"sleep_seconds": Param(value=0)})
    return WorkflowDefinition(
        "bench-workflow-start", (step,), run_strategy=RunStrategy(RunStrategyRule.PARALLEL, 1000)
    )


def start_overheads(runs: tuple[RunExecution, ...] | list[RunExecution]) -> list[float]:
    """started_at - triggered_at of every run that started."""
    return [
        r.started_at - r.triggered_at for r in runs if r.started_at is not None and r.triggered_at is not None
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def legacy(runs: int, directory: str, timeout: float) -> list[float]:
    trace = live_trace(definition(), trace_id="wf-start-legacy", runs=runs)
    result = legacy_run_live([trace], store_path=Path(directory) / "legacy.db", timeout=timeout)
    if not result.finished:
        raise SystemExit("legacy: runs did not finish before the timeout")
    return start_overheads(result.runs)


def actor(runs: int, directory: str, timeout: float) -> list[float]:
    from engines.actor.live import run_live

    trace = live_trace(definition(), trace_id="wf-start-actor", runs=runs)
    records, _ = asyncio.run(run_live([trace], store_path=str(Path(directory) / "actor.db"), timeout=timeout))
    return start_overheads(records[0].runs)


def main(argv: list[str] | None = None) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10 if quick else 20)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    out: dict[str, object] = {"bench": "workflow_start", "runs": args.runs}
    medians = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("legacy", legacy), ("actor", actor)):
            began = time.perf_counter()
            values = fn(args.runs, tmp, args.timeout)
            if len(values) != args.runs:
                raise SystemExit(f"{name}: {len(values)} of {args.runs} runs started")
            medians[name] = statistics.median(values)
            out[f"{name}_p50_s"] = medians[name]
            out[f"{name}_p99_s"] = _pct(values, 0.99)
            print(f"{name:>6}: workflow start p50 {medians[name] * 1000:.1f} ms, p99 {_pct(values, 0.99) * 1000:.1f} ms "
                  f"({args.runs} runs, {time.perf_counter() - began:.1f} s)")  # fmt: skip
    out["ratio_p50_legacy_over_actor"] = (
        medians["legacy"] / medians["actor"] if medians["actor"] > 0 else None
    )
    out["load_average_1m"] = os.getloadavg()[0]
    print(f"ratio legacy / actor (p50): {out['ratio_p50_legacy_over_actor']}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
