"""Shadow-run throughput: steps/s end to end, time outside the engines, 1 vs 2 workers.

Usage: .venv/bin/python benchmarks/bench_shadow_run.py [N_TRACES] [BASELINE] [CANDIDATE]
(defaults: 200 traces, legacy vs actor; ``oracle oracle`` measures the harness with the cheapest engine).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from corpora.codec import encode
from engines.api import ReplayOptions
from shadow.engines import build_engine, resolve_engine
from shadow.runner import RunSettings, run_shadow
from shadow.testing import build_trace
from shadow.trial import ROLES, TraceJob, TrialConfig, run_trace_with


def corpus(path: Path, n: int) -> Path:
    dag = {
        f"s{i}": [f"s{i + 1}", f"s{i + 2}"] if i < 18 else ([f"s{i + 1}"] if i < 19 else [])
        for i in range(20)
    }
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            out.write(
                json.dumps(encode(build_trace(f"t{i}", dag, {"s3": ["user_error", "succeeded"]}))) + "\n"
            )
    return path


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    baseline = sys.argv[2] if len(sys.argv) > 2 else "legacy"
    candidate = sys.argv[3] if len(sys.argv) > 3 else "actor"
    with tempfile.TemporaryDirectory() as tmp:
        src = corpus(Path(tmp) / "c.jsonl", n)
        for workers in (1, 2):
            db = Path(tmp) / f"r{workers}.duckdb"
            began = time.perf_counter()
            run_shadow(
                RunSettings(
                    corpus=(str(src),),
                    db=str(db),
                    baseline=resolve_engine(baseline),
                    candidate=resolve_engine(candidate),
                    workers=workers,
                    batch_size=64,
                )
            )
            wall = time.perf_counter() - began
            row = duckdb.connect(str(db), read_only=True).execute("SELECT count(*) FROM steps").fetchone()
            steps = row[0] if row else 0
            print(
                f"workers={workers}: {n} traces, {steps} step attempts (3 roles) in {wall:.2f} s "
                f"-> {steps / wall:,.0f} steps/s, {n / wall:.1f} traces/s"
            )
        # Share of trial time spent inside engine.replay (in-process, first 50 traces).
        specs = {
            "baseline": resolve_engine(baseline),
            "candidate": resolve_engine(candidate),
            "baseline_aa": resolve_engine(baseline),
        }
        engines = {role: build_engine(specs[role]) for role in ROLES}
        from shadow.sources import read_corpus

        jobs = [TraceJob(it.trace, it.file, it.line) for it in read_corpus([str(src)]) if it.trace][:50]
        config = TrialConfig(engines=specs, seeds={"baseline": 0, "candidate": 0, "baseline_aa": 1})
        inside = 0.0
        for job in jobs:
            for role in ROLES:
                t0 = time.perf_counter()
                engines[role].replay(job.trace, ReplayOptions(seed=config.seeds[role]))
                inside += time.perf_counter() - t0
        t0 = time.perf_counter()
        for job in jobs:
            run_trace_with(job, config, engines)
        total = time.perf_counter() - t0
        print(
            f"trial time inside engines {inside / total:.0%}, outside (compare, latency, rows) "
            f"{1 - inside / total:.0%} over {len(jobs)} traces"
        )


if __name__ == "__main__":
    main()
