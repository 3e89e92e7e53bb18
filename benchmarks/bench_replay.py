"""Replay throughput: each engine alone and end to end, built-in corpus and an imported real corpus.

    .venv/bin/python benchmarks/bench_replay.py [--traces 30] [--budget 60] [--no-real] [--no-e2e]

For each corpus -- the built-in generator (``generate_corpus(seed=1)``) and the WfCommons instances
in ../shared/corpora/wfinstances imported with ``shadow corpus import --from wfformat`` (skipped with a
note when absent) -- in one process, one after the other:

1. the **legacy** engine replays traces in corpus order until ``--budget`` seconds have passed (it is
   the slowest); the traces it finished are the set every other figure uses, so ratios compare the
   same work;
2. the **actor** engine and the **core oracle** replay the same traces;
3. **end to end**: ``shadow run`` (legacy baseline, actor candidate, legacy A/A replica, comparison,
   DuckDB) over the same traces with 1 and then 2 workers.

Per engine: step attempts, wall and CPU seconds, attempts/s (wall and per CPU second), replayed
production time (per trace: last run end - first trigger, summed) / wall time, store round trips per
attempt. End to end: attempts/s over all three roles, production time / wall, the 2-worker speedup,
and the share of the 1-worker wall time spent outside the engines (1 - engines' own replay time /
end-to-end time). Targets (issue 10): actor >= 20,000 steps/s per core, end to end >= 5,000 steps/s
and >= 10,000x production time, 2 workers >= 1.8x. Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb

from corpora.generator import generate_corpus
from corpora.io import read_traces, write_traces
from corpora.model import Trace
from engines.api import ExecutionRecord, ReplayOptions
from shadow.engines import build_engine, resolve_engine
from shadow.runner import RunSettings, run_shadow

__all__ = ["engine_pass", "main", "production_seconds"]

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "corpora" / "wfinstances"


def production_seconds(record: ExecutionRecord) -> float:
    """Virtual time the record spans: last run end (or start) minus first trigger."""
    starts = [r.triggered_at for r in record.runs if r.triggered_at is not None]
    ends = [t for r in record.runs for t in (r.ended_at, r.started_at, r.triggered_at) if t is not None]
    return max(ends) - min(starts) if starts and ends else 0.0


def engine_pass(
    name: str, traces: Iterable[Trace], budget: float | None = None
) -> tuple[dict[str, Any], list[Trace]]:
    """Replay ``traces`` on engine ``name`` (stop starting new ones after ``budget`` s); figures and the traces done."""
    engine = build_engine(resolve_engine(name))
    done: list[Trace] = []
    attempts = 0
    prod = trips = wall = cpu = 0.0
    for trace in traces:
        if budget is not None and wall >= budget:
            break
        c0, w0 = time.process_time(), time.perf_counter()
        record = engine.replay(trace, ReplayOptions(seed=0))
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        done.append(trace)
        attempts += sum(len(r.attempts) for r in record.runs)
        prod += production_seconds(record)
        trips += float(record.counters.get("store_round_trips", 0.0))
    figures = {
        "traces": len(done), "attempts": attempts, "wall_s": wall, "cpu_s": cpu,
        "steps_per_s": attempts / wall if wall else 0.0, "steps_per_cpu_s": attempts / cpu if cpu else 0.0,
        "production_over_wall": prod / wall if wall else 0.0, "production_s": prod,
        "round_trips_per_step": trips / attempts if attempts else 0.0,
    }  # fmt: skip
    return figures, done


def end_to_end(path: Path, workers: int, directory: Path) -> dict[str, Any]:
    db = directory / f"e2e-{path.stem}-{workers}.duckdb"
    started = time.perf_counter()
    run_shadow(RunSettings(corpus=(str(path),), db=str(db), baseline=resolve_engine("legacy"),
                           candidate=resolve_engine("actor"), workers=workers))  # fmt: skip
    wall = time.perf_counter() - started
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM steps").fetchone()
    steps = int(row[0]) if row else 0
    return {"workers": workers, "attempts_3_roles": steps, "wall_s": wall, "steps_per_s": steps / wall}


def corpus_figures(
    label: str, traces: Iterable[Trace], budget: float, e2e: bool, tmp: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    legacy, done = engine_pass("legacy", traces, budget)
    out["legacy"] = legacy
    out["actor"], _ = engine_pass("actor", done)
    out["oracle"], _ = engine_pass("oracle", done)
    for name in ("legacy", "actor", "oracle"):
        f = out[name]
        print(f"[{label}] {name:>6}: {f['traces']} traces, {f['attempts']} attempts in {f['wall_s']:.2f} s "
              f"({f['cpu_s']:.2f} s CPU) = {f['steps_per_s']:,.0f} steps/s, {f['steps_per_cpu_s']:,.0f}/CPU-s, "
              f"production x{f['production_over_wall']:,.0f}, {f['round_trips_per_step']:.2f} round trips/step")  # fmt: skip
    if out["legacy"]["round_trips_per_step"]:
        out["round_trips_actor_over_legacy"] = (
            out["actor"]["round_trips_per_step"] / out["legacy"]["round_trips_per_step"]
        )
    if e2e and done:
        path = tmp / f"{label}.jsonl"
        write_traces(str(path), done)
        one, two = end_to_end(path, 1, tmp), end_to_end(path, 2, tmp)
        engines_wall = (
            2 * out["legacy"]["wall_s"] + out["actor"]["wall_s"]
        )  # baseline + A/A replica + candidate
        prod = out["legacy"]["production_s"]
        out["e2e"] = {
            "workers_1": one, "workers_2": two, "speedup_2_workers": one["wall_s"] / two["wall_s"],
            "production_over_wall": prod / one["wall_s"], "share_outside_engines": max(0.0, 1 - engines_wall / one["wall_s"]),
        }  # fmt: skip
        e = out["e2e"]
        print(f"[{label}] end to end: 1 worker {one['steps_per_s']:,.0f} steps/s ({one['wall_s']:.1f} s), 2 workers "
              f"{two['steps_per_s']:,.0f} steps/s (x{e['speedup_2_workers']:.2f}); production x{e['production_over_wall']:,.0f}; "
              f"outside the engines {e['share_outside_engines']:.0%}")  # fmt: skip
    return out


def import_real(tmp: Path) -> list[Trace] | None:
    if not REAL.is_dir():
        print(f"real corpus: {REAL} is absent; skipped")
        return None
    target = tmp / "wfinstances.jsonl"
    shadow = Path(sys.executable).with_name("shadow")
    command = [
        str(shadow) if shadow.exists() else "shadow",
        "corpus",
        "import",
        "--from",
        "wfformat",
        "-o",
        str(target),
        str(REAL),
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=REPO)
    return [item.trace for item in read_traces([str(target)]) if item.trace is not None]


def main(argv: list[str] | None = None) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=int, default=8 if quick else 30, help="built-in corpus traces offered")
    ap.add_argument("--budget", type=float, default=15.0 if quick else 60.0, help="legacy seconds per corpus")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--no-e2e", action="store_true")
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"bench": "replay", "budget_s": args.budget}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        result["builtin"] = corpus_figures(
            "builtin", generate_corpus(1, args.traces), args.budget, not args.no_e2e, tmp
        )
        real = None if args.no_real else import_real(tmp)
        if real is not None:
            result["real"] = corpus_figures("wfinstances", real, args.budget, not args.no_e2e, tmp)
    result["load_average_1m"] = os.getloadavg()[0]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
