"""Scale: peak RSS and wall time of ``shadow run`` as the corpus grows (time linear, memory flat).

    .venv/bin/python benchmarks/bench_scale.py [--sizes 5000,20000] [--baseline oracle] [--candidate oracle]

For each size N (recorded step attempts), a fresh child process writes the first built-in corpus
traces (seed 3) holding at least N attempts to a JSON-lines file, then runs ``shadow run`` on it
(``--baseline`` vs ``--candidate``, A/A replica, comparison, DuckDB) and reports its own peak RSS
(``ru_maxrss``) and the wall time of the run. Default engines are the oracle on both sides: this
measures the harness (streaming reader, trials, comparison, result writer), which must stay flat in
memory; the engines' own throughput is bench_replay.py's. The issue asks for 10k / 100k / 1M steps:
at this machine's speed 1M steps is hours of CPU, so the defaults are smaller (``--sizes`` to go
further). Last stdout line: one JSON object with per-size rows and the time-per-step growth ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["child", "main"]


def child(size: int, baseline: str, candidate: str, directory: str) -> dict[str, Any]:
    """Inside the child process: build the corpus file, run shadow run, measure."""
    from corpora.generator import generate_trace
    from corpora.io import TraceWriter
    from shadow.engines import resolve_engine
    from shadow.runner import RunSettings, run_shadow

    path = Path(directory) / f"scale-{size}.jsonl"
    attempts = traces = 0
    with TraceWriter(str(path)) as writer:
        while attempts < size:
            trace = generate_trace(3, traces)
            writer.write(trace)
            attempts += sum(len(r.attempts) for r in trace.runs)
            traces += 1
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    cpu = time.process_time()
    run_shadow(RunSettings(corpus=(str(path),), db=str(Path(directory) / f"scale-{size}.duckdb"),
                           baseline=resolve_engine(baseline), candidate=resolve_engine(candidate)))  # fmt: skip
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"size": size, "traces": traces, "recorded_attempts": attempts, "wall_s": wall, "cpu_s": cpu,
            "peak_rss_mb": peak / 1024, "rss_before_run_mb": rss_before / 1024,
            "us_per_step_wall": wall / attempts * 1e6, "us_per_step_cpu": cpu / attempts * 1e6}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2000,6000" if quick else "5000,20000")
    ap.add_argument("--baseline", default="oracle")
    ap.add_argument("--candidate", default="oracle")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.baseline, args.candidate, args.dir)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(size), "--dir", tmp, "--baseline", args.baseline,
                 "--candidate", args.candidate],
                capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[1],
            )  # fmt: skip
            if done.returncode != 0:  # say why (the 1M point once died in a DuckDB checkpoint)
                tail = done.stderr.strip().splitlines()[-12:]
                print(
                    f"{size:>9,} steps: the run failed (exit {done.returncode}):",
                    *tail,
                    sep="\n  ",
                    file=sys.stderr,
                )
                rows.append({"size": size, "error": tail[-1] if tail else f"exit {done.returncode}"})
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{row['recorded_attempts']:>9,} steps ({row['traces']} traces): {row['wall_s']:.1f} s wall, "
                  f"{row['cpu_s']:.1f} s CPU, {row['us_per_step_cpu']:.0f} us CPU/step, peak RSS {row['peak_rss_mb']:.0f} MB")  # fmt: skip
    out: dict[str, Any] = {
        "bench": "scale",
        "baseline": args.baseline,
        "candidate": args.candidate,
        "rows": rows,
    }
    ok = [r for r in rows if "error" not in r]
    if len(ok) >= 2:
        out["cpu_per_step_growth"] = ok[-1]["us_per_step_cpu"] / ok[0]["us_per_step_cpu"]
        out["rss_growth_mb"] = ok[-1]["peak_rss_mb"] - ok[0]["peak_rss_mb"]
    if ok:
        out["max_peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    out["failed_sizes"] = [r["size"] for r in rows if "error" in r]
    out["load_average_1m"] = os.getloadavg()[0]
    print(json.dumps(out))
    return 1 if out["failed_sizes"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
