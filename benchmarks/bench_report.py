"""Benchmark ``shadow report`` on a large results database: wall time and file size.

    .venv/bin/python benchmarks/bench_report.py --runs 100000 [--db /tmp/bench-results.duckdb] [--repeat 3]

Builds (once, cached at --db) a factory results database with ``--runs`` runs per engine role (two
runs per trace, three roles, ~4.5 step attempts per run), then renders the report ``--repeat`` times
and prints the best and median wall time and the file size, then (last line) the same as one JSON
object for ``benchmarks/run_all.py``. Targets for 100,000 runs: <= 3 s, <= 5 MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reports"))

from _dbfactory import build_results_db

from reports.render import write_report

TARGET_SECONDS, TARGET_BYTES = 3.0, 5 * 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs per engine role")
    parser.add_argument("--db", type=Path, help="results database to build or reuse")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hostile", action="store_true", help="hostile names everywhere (bigger page)")
    args = parser.parse_args()
    db = (
        args.db
        or Path(tempfile.gettempdir())
        / f"bench-results-{args.runs}{'-hostile' if args.hostile else ''}.duckdb"
    )
    if not db.exists():
        began = time.perf_counter()
        build_results_db(db, n_traces=args.runs // 2, runs_per_trace=2, hostile=args.hostile)
        print(f"built {db} ({db.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - began:.1f} s")
    out = Path(tempfile.gettempdir()) / "bench-report.html"
    times, cpu = [], []
    for _ in range(args.repeat):
        began = time.process_time()  # all threads of this process (DuckDB's too)
        stats = write_report(db, out)
        cpu.append(time.process_time() - began)
        times.append(stats.seconds)
    size = out.stat().st_size
    print(
        f"runs per role: {args.runs:,}; report: {size / 2**20:.2f} MiB ({size:,} bytes), "
        f"{stats.groups} groups, {stats.exemplars} exemplars"
    )
    print(
        f"render wall time: best {min(times):.2f} s, median {statistics.median(times):.2f} s over {len(times)} runs "
        f"(CPU {min(cpu):.2f} s: on a shared machine wall time is mostly waiting for a core)"
    )
    ok = min(times) <= TARGET_SECONDS and size <= TARGET_BYTES
    print(
        f"targets (<= {TARGET_SECONDS:.0f} s, <= {TARGET_BYTES / 2**20:.0f} MiB): {'met' if ok else 'MISSED'}"
    )
    # Last line: one JSON object, the convention of benchmarks/run_all.py.
    print(
        json.dumps(
            {
                "runs_per_role": args.runs,
                "seconds_best": round(min(times), 3),
                "seconds_median": round(statistics.median(times), 3),
                "cpu_seconds_best": round(min(cpu), 3),
                "bytes": size,
                "groups": stats.groups,
                "exemplars": stats.exemplars,
                "target_seconds": TARGET_SECONDS,
                "target_bytes": TARGET_BYTES,
                "targets_met": ok,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
