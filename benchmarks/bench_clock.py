"""Benchmark the virtual-time loop: task switches per second on replay-shaped programs.

    .venv/bin/python benchmarks/bench_clock.py [--tasks 1000] [--sleeps 100] [--seed 0]

Two workloads. ``timers``: every task sleeps random distinct virtual durations (each wake-up needs a
clock jump or a timer firing: the replay shape). ``ready``: every task yields with ``sleep(0)`` (pure
scheduling, no timers: the loop's floor). A task switch is one resumption of a task. On a shared machine
read the per-CPU-second figure: wall time includes waiting for a core. Prints a JSON
line last (benchmarks/run_all.py convention).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from engines.clock import VirtualTimeLoop
from engines.testing import VirtualTimeEnvironment


async def _timers(tasks: int, sleeps: int, seed: int) -> int:
    rng = random.Random(seed)
    delays = [[rng.uniform(0.001, 60.0) for _ in range(sleeps)] for _ in range(tasks)]

    async def worker(mine: list[float]) -> None:
        for d in mine:
            await asyncio.sleep(d)

    await asyncio.gather(*(worker(d) for d in delays))
    return tasks * sleeps


async def _ready(tasks: int, sleeps: int) -> int:
    async def worker() -> None:
        for _ in range(sleeps):
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return tasks * sleeps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--sleeps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result: dict[str, float] = {}
    for name in ("timers", "ready"):
        with VirtualTimeEnvironment(start=1_700_000_000.0) as env:
            started, cpu_started = time.perf_counter(), time.process_time()
            if name == "timers":
                switches = env.run(_timers(args.tasks, args.sleeps, args.seed))
            else:
                switches = env.run(_ready(args.tasks, args.sleeps))
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            loop: VirtualTimeLoop = env.loop
            result[f"{name}_switches_per_s"] = round(switches / elapsed)
            result[f"{name}_switches_per_cpu_s"] = round(switches / cpu)
            result[f"{name}_jumps"] = loop.jumps
            result[f"{name}_virtual_seconds"] = round(env.now - 1_700_000_000.0, 3)
        print(
            f"{name:>6}: {switches} switches in {elapsed:.2f} s wall ({switches / elapsed:,.0f}/s), "
            f"{cpu:.2f} s CPU ({switches / cpu:,.0f}/CPU-s)"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
