"""Actor throughput live, next to this machine's ceiling measured in the same run.

    .venv/bin/python benchmarks/bench_actor_ceiling.py [--steps 20] [--width 5] [--runs 40] [--seconds 2]

Three numbers, measured one after the other in this process (one core):

* **actor live**: step attempts finished per second of makespan by the actor engine
  (:func:`engines.actor.live.run_live`, one node, real clock, durable SQLite file in WAL mode,
  ``synchronous=NORMAL``) on ``--runs`` parallel runs of a layered DAG of zero-second steps, so the
  figure is pure orchestration (target >= 20,000 steps/s);
* **asyncio dispatch**: messages per second through an ``asyncio.Queue`` between two tasks (the
  least an actor mailbox hop can cost on this interpreter);
* **SQLite commits**: single-row upsert transactions per second on a file in the same mode as the
  live stores (WAL, ``synchronous=NORMAL``).

Ratios: actor steps/s over each ceiling (how many mailbox hops and commits one step costs, in effect).
``BENCH_QUICK=1`` (``run_all.py --quick``) shrinks the workload. Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_actor_live import bench_trace

from engines.actor.live import run_live

__all__ = ["asyncio_dispatch_rate", "main", "sqlite_commit_rate"]


def asyncio_dispatch_rate(seconds: float) -> float:
    """Messages/s through an asyncio.Queue from a producer task to a consumer task."""

    async def go() -> float:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1024)
        count = 0
        stop = time.perf_counter() + seconds

        async def consume() -> None:
            nonlocal count
            while True:
                item = await queue.get()
                if item < 0:
                    return
                count += 1

        consumer = asyncio.create_task(consume())
        started = time.perf_counter()
        while time.perf_counter() < stop:
            for i in range(1000):
                await queue.put(i)
        await queue.put(-1)
        await consumer
        return count / (time.perf_counter() - started)

    return asyncio.run(go())


def sqlite_commit_rate(seconds: float, directory: str) -> float:
    """Committed single-row upserts per second, WAL + synchronous=NORMAL (the live stores' mode)."""
    conn = sqlite3.connect(str(Path(directory) / "ceiling.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL").fetchone()
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    payload = "x" * 200
    count = 0
    started = time.perf_counter()
    stop = started + seconds
    while time.perf_counter() < stop:
        for _ in range(100):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO t (k, v) VALUES (?, ?)", (count % 1000, payload))
            conn.execute("COMMIT")
            count += 1
    rate = count / (time.perf_counter() - started)
    conn.close()
    return rate


def actor_live_rate(steps: int, width: int, runs: int, directory: str) -> dict[str, float]:
    trace = bench_trace(steps, width, 0.0, runs)
    cpu, started = time.process_time(), time.perf_counter()
    records, _ = asyncio.run(run_live([trace], store_path=str(Path(directory) / "actor.db"), timeout=600.0))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    runs_done = records[0].runs
    failed = [r.status for r in runs_done if r.status != "SUCCEEDED"]
    if failed:
        raise SystemExit(f"actor live: not every run succeeded: {failed[:5]}")
    attempts = sum(len(r.attempts) for r in runs_done)
    return {"attempts": attempts, "wall_s": wall, "cpu_s": cpu, "steps_per_s": attempts / wall,
            "steps_per_cpu_s": attempts / cpu if cpu > 0 else float("inf")}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--width", type=int, default=5)
    ap.add_argument("--runs", type=int, default=10 if quick else 40)
    ap.add_argument("--seconds", type=float, default=0.5 if quick else 2.0, help="per ceiling measurement")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        actor = actor_live_rate(args.steps, args.width, args.runs, tmp)
        dispatch = asyncio_dispatch_rate(args.seconds)
        commits = sqlite_commit_rate(args.seconds, tmp)
    out = {
        "bench": "actor_ceiling",
        "actor_attempts": actor["attempts"],
        "actor_steps_per_s": actor["steps_per_s"],
        "actor_steps_per_cpu_s": actor["steps_per_cpu_s"],
        "asyncio_dispatch_per_s": dispatch,
        "sqlite_commits_per_s": commits,
        "actor_over_dispatch": actor["steps_per_s"] / dispatch,
        "actor_over_commits": actor["steps_per_s"] / commits,
        "target_steps_per_s": 20_000,
        "load_average_1m": os.getloadavg()[0],
    }
    print(f"actor live: {actor['attempts']} attempts in {actor['wall_s']:.2f} s wall ({actor['cpu_s']:.2f} s CPU) "
          f"= {actor['steps_per_s']:,.0f} steps/s ({actor['steps_per_cpu_s']:,.0f} per CPU-s)")  # fmt: skip
    print(f"ceiling: asyncio queue {dispatch:,.0f} msgs/s; SQLite WAL/NORMAL {commits:,.0f} commits/s")
    print(
        f"actor / dispatch = {out['actor_over_dispatch']:.4f}; actor / commits = {out['actor_over_commits']:.3f}"
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
