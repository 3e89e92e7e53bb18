"""Benchmark the store's legacy hot path: one poll = claim, reload the whole run, save, re-queue.

    .venv/bin/python benchmarks/bench_store.py [--steps 50] [--polls 5000] [--file] [--synchronous NORMAL]

Each poll, in ONE transaction: claim a queue task, load the run and all its ``--steps`` step attempts,
save the run (optimistic version), upsert the one step the poll advanced, re-queue the task. This is
what the legacy engine does at every poll; the number to watch is polls/s (and round trips per poll,
which the benchmarks compare between engines). In memory by default; ``--file`` uses a WAL file;
``--dsn`` a PostgreSQL server (whose public schema it drops).
Prints a JSON line last (benchmarks/run_all.py convention).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from engines.store import (
    LatencyModel,
    PostgresConfig,
    PostgresStore,
    SqliteConfig,
    SqliteStore,
    StepInstance,
    StepTimes,
    WorkflowInstance,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--polls", type=int, default=5000)
    parser.add_argument("--file", action="store_true", help="a WAL file instead of :memory:")
    parser.add_argument("--synchronous", default="NORMAL")
    parser.add_argument(
        "--dsn", help="benchmark PostgresStore on this server instead (its tables are dropped!)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.db") if args.file else ":memory:"
        store: SqliteStore | PostgresStore
        if args.dsn:
            import psycopg

            with psycopg.connect(args.dsn, autocommit=True) as admin:
                admin.execute("DROP SCHEMA public CASCADE")
                admin.execute("CREATE SCHEMA public")
            store = PostgresStore(PostgresConfig(dsn=args.dsn, latency=LatencyModel()))
            path = "postgresql"
        else:
            store = SqliteStore(SqliteConfig(path=path, synchronous=args.synchronous, latency=LatencyModel()))
        run = WorkflowInstance("t/r", "wf", "r", "IN_PROGRESS", state='{"params":{"date":20240101}}')
        store.create_run(run)
        store.save_steps(
            [StepInstance("t/r", f"step{i}", 1, "CREATED", state='{"params":{"x":1}}', times=StepTimes(create_time=0.0))
             for i in range(args.steps)]
        )  # fmt: skip
        store.enqueue("t/r", "step0", 0.0)
        before = dict(store.counters)
        now = 0.0
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(args.polls):
            now += 0.1
            with store.transaction():
                (task,) = store.claim("w1", now, claim_seconds=30.0)
                loaded = store.load_run(task.run_key)
                assert loaded is not None
                run = store.save_run(
                    WorkflowInstance(run.run_key, run.workflow_id, run.run_id, run.status, run.state,
                                     version=loaded.run.version, updated_at=now)
                )  # fmt: skip
                step = loaded.steps[i % len(loaded.steps)]
                store.save_steps(
                    [StepInstance(step.run_key, step.path, step.attempt, "RUNNING", step.state,
                                  step.times.stamped("RUNNING", now), now)]
                )  # fmt: skip
                store.requeue(task.task_id, "w1", now)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        after = dict(store.counters)
        store.close()
    rt = (after["round_trips"] - before["round_trips"]) / args.polls
    latency = (after["latency_seconds"] - before["latency_seconds"]) / args.polls
    print(
        f"{args.polls} polls of a {args.steps}-step run ({'WAL file' if args.file and not args.dsn else path}, "
        f"synchronous={args.synchronous}): {args.polls / elapsed:,.0f} polls/s wall, "
        f"{args.polls / cpu:,.0f} polls/CPU-s, {rt:.1f} round trips/poll, "
        f"{latency * 1000:.1f} ms simulated latency/poll"
    )
    print(json.dumps({
        "polls_per_s": round(args.polls / elapsed), "polls_per_cpu_s": round(args.polls / cpu),
        "round_trips_per_poll": rt,
        "simulated_latency_ms_per_poll": round(latency * 1000, 3), "steps": args.steps, "file": args.file, "postgres": bool(args.dsn),
        "synchronous": args.synchronous,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
