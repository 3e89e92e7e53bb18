"""Dask executor: 2 workers / 1 worker side by side, per-worker throughput, and the driver's ingest rate.

    python benchmarks/bench_dask.py [--traces 36] [--seed 1] [--no-pool] [--ingest-copies 10] [--repeat 2]

On the built-in corpus (the first ``--traces`` traces of ``generate_corpus(seed)``, uncapped; 36 by
default: trace 37 of seed 1 has 2,164 recorded attempts, a third of the CPU of the first 40 traces, and
no executor splits a trace, so it alone would cap 2 workers at ~1.5x), one after
the other in this process: ``shadow run`` (legacy baseline, actor candidate, legacy A/A replica) on a
Dask ``LocalCluster`` of 1 worker, then of 2 workers, ``--repeat`` times alternately (the fastest run of
each is compared: a burst of someone else's work slows whichever run it lands in), then (unless
``--no-pool``) on the process pool of 2 workers, each into a fresh database. Wall time of the run excludes the cluster's start and the workers'
imports (reported apart: a long run pays them once); CPU is the workers' (sum of the tasks' thread CPU time) and the
driver's (this process: corpus reading, scheduler, DuckDB). The machine is shared: the load average
is printed with every run, and each run's "cores obtained" (its workers' CPU / its wall) says how much of
the machine it got; a ratio of walls only means something beside them.

Per-worker throughput is the corpus's recorded step executions (each replayed three times) per
worker-second of the 1-worker run; from it, how many workers replay a day of a 1M-steps-a-day
orchestrator in one hour. The driver's ingest rate is measured on the Arrow batches the 2-worker run
returned, copied ``--ingest-copies`` times under new trace ids and inserted into a fresh database
in flushes of 20,000 step rows (the runner's default), as the runner does: recorded step executions
ingested per second of driver time; the driver caps the cluster at that rate whatever its size.
Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpora.generator import generate_corpus
from corpora.io import write_traces
from shadow.batches import ArrowBatch
from shadow.dask_executor import DaskExecutor
from shadow.engines import resolve_engine
from shadow.executors import ProcessExecutor
from shadow.results.store import ResultsStore
from shadow.runner import RunSettings, run_shadow
from shadow.trial import TraceJob, TrialConfig

__all__ = ["main"]

DAY_STEPS = 1_000_000
FLUSH_ROWS = 20_000


class RecordingDask(DaskExecutor):
    """Keeps every batch it hands the runner (for the CPU sum and the ingest measurement)."""

    seen: list[Any]

    def run_batches(self, batches: Iterable[Sequence[TraceJob]], config: TrialConfig) -> Iterator[list[Any]]:
        self.seen = []
        for out in super().run_batches(batches, config):
            self.seen.extend(out)
            yield out


def _steps(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM steps").fetchone()
    return int(row[0]) if row else 0


def run(corpus: Path, db: Path, executor: Any) -> dict[str, Any]:
    settings = RunSettings(
        corpus=(str(corpus),),
        db=str(db),
        baseline=resolve_engine("legacy"),
        candidate=resolve_engine("actor"),
    )
    cpu, wall = time.process_time(), time.perf_counter()
    report = run_shadow(settings, executor=executor)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert report.status == "finished", report
    out = {"wall_s": wall, "driver_cpu_s": cpu, "traces": report.traces_done, "step_rows": _steps(db)}
    seen = getattr(executor, "seen", None)
    if seen is not None:
        out["worker_cpu_s"] = sum(b.cpu_seconds for b in seen if isinstance(b, ArrowBatch))
        out["tasks"] = len(seen)
        out["task_cpu_s"] = [round(b.cpu_seconds, 3) for b in seen if isinstance(b, ArrowBatch)]
    return out


def _warm() -> None:
    import importlib

    for module in ("engines.actor", "engines.legacy", "shadow.dask_executor"):
        importlib.import_module(module)


def dask_run(corpus: Path, db: Path, workers: int) -> tuple[dict[str, Any], list[Any]]:
    began = time.perf_counter()
    executor = RecordingDask(workers, dashboard=False)
    executor.client.run(_warm)  # imports in every worker, as a long run pays once
    started = time.perf_counter() - began
    try:
        figures = run(corpus, db, executor)
    finally:
        executor.close()
    figures["cluster_start_s"] = started
    figures["workers"] = workers
    return figures, executor.seen


def ingest(batches: list[ArrowBatch], copies: int, directory: Path) -> dict[str, Any]:
    """Insert ``copies`` of the batches (new trace ids) into a fresh database the way the runner flushes."""
    copied: list[ArrowBatch] = []
    for n in range(copies):
        suffix = f"#copy{n}"
        for batch in batches:
            tables = {
                name: table.set_column(
                    table.column_names.index("trace_id"),
                    "trace_id",
                    pc.binary_join_element_wise(table.column("trace_id"), pa.scalar(suffix), ""),
                )
                for name, table in batch.tables.items()
            }
            copied.append(
                ArrowBatch(
                    tuple(t + suffix for t in batch.trace_ids),
                    tables,
                    batch.candidate_divergences,
                    batch.step_rows,
                )
            )
    step_rows = sum(b.step_rows for b in copied)
    traces = sum(len(b.trace_ids) for b in copied)
    store = ResultsStore(directory / "ingest.duckdb")
    store.start_session({"identity": "bench-ingest", "identity_parts": "{}"})
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        pending: list[ArrowBatch] = []
        rows = flushes = 0
        for batch in copied:
            pending.append(batch)
            rows += batch.step_rows
            if rows >= FLUSH_ROWS:
                _flush(store, pending)
                flushes += 1
                pending, rows = [], 0
        if pending:
            _flush(store, pending)
            flushes += 1
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        store.close()
    return {
        "traces": traces,
        "step_rows": step_rows,
        "flushes": flushes,
        "wall_s": wall,
        "cpu_s": cpu,
        "step_rows_per_s": step_rows / wall,
        "traces_per_s": traces / wall,
    }


def schedule_bound(task_cpu: list[float], workers: int) -> float:
    """Speedup the tasks allow on ``workers`` dedicated cores: their CPU over the makespan of handing them
    out largest first to the first free worker (what Dask does with this corpus); no measurement."""
    free = [0.0] * workers
    for cost in sorted(task_cpu, reverse=True):
        free[free.index(min(free))] += cost
    return sum(task_cpu) / max(free) if task_cpu else 0.0


def driver_pipeline(corpus: Path, copies: int) -> dict[str, float]:
    """The driver's other per-trace work: read and parse the corpus, pickle the jobs for the scheduler."""
    import pickle

    from shadow.sources import read_corpus

    cpu, wall = time.process_time(), time.perf_counter()
    size = 0
    for _ in range(copies):
        jobs = [
            TraceJob(it.trace, it.file, it.line) for it in read_corpus([str(corpus)]) if it.trace is not None
        ]
        size += len(pickle.dumps(jobs))
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "pickled_bytes": size}


def _flush(store: ResultsStore, batches: list[ArrowBatch]) -> None:
    arrow: dict[str, list[pa.Table]] = {}
    for batch in batches:
        for name, table in batch.tables.items():
            arrow.setdefault(name, []).append(table)
    store.insert({}, arrow)


def main(argv: list[str] | None = None) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--traces", type=int, default=12 if quick else 36, help="first N traces of the built-in corpus"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-pool", action="store_true", help="skip the process-pool comparison")
    ap.add_argument("--ingest-copies", type=int, default=3 if quick else 10)
    ap.add_argument(
        "--repeat", type=int, default=1 if quick else 2, help="alternating 1- and 2-worker runs; fastest kept"
    )
    args = ap.parse_args(argv)
    for module in ("scipy.stats", "pandas"):  # the driver's one-time imports (aggregates), as for the workers
        importlib.import_module(module)
    out: dict[str, Any] = {
        "bench": "dask",
        "traces": args.traces,
        "seed": args.seed,
        "load_average_before": list(os.getloadavg()),
    }
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        corpus = tmp / "corpus.jsonl"
        traces = list(generate_corpus(args.seed, args.traces))
        write_traces(str(corpus), traces)
        attempts = sum(len(r.attempts) for t in traces for r in t.runs)
        out["recorded_attempts"] = attempts
        # 1 and 2 workers alternately, --repeat times; the fastest of each (the machine is shared: a burst of
        # someone else's work slows whichever run it lands in), every wall kept
        runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        batches: list[Any] = []
        for rep in range(args.repeat):
            for workers in (1, 2):
                figures, seen = dask_run(corpus, tmp / f"dask{workers}-{rep}.duckdb", workers)
                figures["cores_obtained"] = figures["worker_cpu_s"] / figures["wall_s"]
                runs[workers].append(figures)
                batches = seen if workers == 2 else batches
                print(f"dask {workers} worker(s), run {rep + 1}: {figures['wall_s']:.1f} s wall "
                      f"(+{figures['cluster_start_s']:.1f} s cluster start), workers {figures['worker_cpu_s']:.1f} CPU-s "
                      f"({figures['cores_obtained']:.2f} cores obtained), driver {figures['driver_cpu_s']:.1f} CPU-s, "
                      f"{figures['tasks']} tasks, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        one = min(runs[1], key=lambda r: r["wall_s"])
        two = min(runs[2], key=lambda r: r["wall_s"])
        out["dask_1"], out["dask_2"] = one, two
        out["walls_1"] = [r["wall_s"] for r in runs[1]]
        out["walls_2"] = [r["wall_s"] for r in runs[2]]
        out["speedup_2_workers"] = one["wall_s"] / two["wall_s"]
        out["speedup_2_workers_incl_start"] = (one["wall_s"] + one["cluster_start_s"]) / (
            two["wall_s"] + two["cluster_start_s"]
        )
        if not args.no_pool:
            pool = ProcessExecutor(2)
            try:
                out["pool_2"] = run(corpus, tmp / "pool2.duckdb", pool)
            finally:
                pool.close()
            print(f"process pool 2: {out['pool_2']['wall_s']:.1f} s wall", flush=True)
        # per-worker throughput: recorded step executions per worker-second (1 worker, its run wall)
        per_worker = attempts / one["wall_s"]
        per_worker_cpu = attempts / one["worker_cpu_s"]
        need = DAY_STEPS / 3600.0
        out["per_worker_steps_per_s"] = per_worker
        out["per_worker_steps_per_cpu_s"] = per_worker_cpu
        out["workers_for_1m_steps_in_1h"] = need / per_worker
        out["ingest"] = ingest([b for b in batches if isinstance(b, ArrowBatch)], args.ingest_copies, tmp)
        ing = out["ingest"]
        # step rows hold 3 roles: a recorded step execution is ~3 step rows (exactly, on this corpus)
        rows_per_attempt = two["step_rows"] / attempts
        out["ingest_steps_per_s"] = ing["step_rows_per_s"] / rows_per_attempt
        pipe = driver_pipeline(corpus, args.ingest_copies)
        out["driver_read_pickle"] = pipe
        # the driver per recorded step, all of it (read, pickle, insert), by CPU time: robust to the load
        driver_cpu = pipe["cpu_s"] + ing["cpu_s"]
        out["driver_steps_per_cpu_s"] = attempts * args.ingest_copies / driver_cpu
        out["driver_cap_workers_cpu"] = out["driver_steps_per_cpu_s"] / per_worker_cpu
        out["schedule_bound_2_workers"] = schedule_bound(one.get("task_cpu_s", []), 2)
        out["driver_cap_workers"] = out["ingest_steps_per_s"] / per_worker
        out["driver_cap_day_in_s"] = DAY_STEPS / out["ingest_steps_per_s"]
    out["load_average_after"] = list(os.getloadavg())
    out["load_average_1m"] = out["load_average_after"][0]
    print(f"2 workers / 1 worker: x{out['speedup_2_workers']:.2f} (x{out['speedup_2_workers_incl_start']:.2f} with the "
          f"cluster start); per worker {per_worker:.1f} recorded steps/s ({per_worker_cpu:.1f}/CPU-s) -> "
          f"{out['workers_for_1m_steps_in_1h']:.1f} workers for 1M steps in an hour; driver ingest "
          f"{ing['step_rows_per_s']:,.0f} step rows/s = {out['ingest_steps_per_s']:,.0f} recorded steps/s "
          f"(caps the cluster at {out['driver_cap_workers']:.0f} workers; 1M steps ingested in "
          f"{out['driver_cap_day_in_s']:.0f} s); driver all-in {out['driver_steps_per_cpu_s']:,.0f} recorded steps/CPU-s "
          f"(= {out['driver_cap_workers_cpu']:.0f} workers' output); the tasks allow x{out['schedule_bound_2_workers']:.2f} "
          f"on 2 dedicated cores; load {out['load_average_before']} -> {out['load_average_after']}")  # fmt: skip
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
