"""Run every benchmarks/bench_*.py and collect their results in one JSON file.

    python benchmarks/run_all.py [--out out/bench.json] [--markdown docs/BENCHMARKS.md] [--quick] [-k PATTERN]
                                 [--timeout SECONDS]
    python benchmarks/run_all.py --render out/bench.json --markdown docs/BENCHMARKS.md

Convention for a benchmark: a script ``bench_<name>.py`` that runs with no arguments (quick defaults
are its own business) and prints, as its LAST line of stdout, one JSON object with its measurements.
A benchmark that prints no JSON is still run and its output tail is kept, marked ``"json": false``.
Each runs in its own process (fresh interpreter, no shared warm caches), one after the other, since the
machine is shared. Exit code: 0 when every benchmark exited 0, 1 otherwise.

Arguments per benchmark: :data:`ARGS` (sizes that keep the whole default run near ten minutes on a
shared 2-core machine) or, with ``--quick``, :data:`QUICK_ARGS` plus ``BENCH_QUICK=1`` in the
environment (benchmarks that read it shrink themselves). ``--markdown`` also writes the Markdown page
(targets table, machine, date, command; see benchmarks/results_page.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_page  # benchmarks/ is a folder of scripts, not a package

HERE = Path(__file__).resolve().parent
TAIL_LINES = 20

ARGS: dict[str, list[str]] = {
    "bench_report": ["--runs", "100000", "--repeat", "2"],
    "bench_shadow_run": ["20"],
    "bench_replay": ["--traces", "30", "--budget", "20"],
    "bench_wfformat_makespan": ["--cpu-budget", "10"],
    "bench_maestro_races": ["--seeds", "3"],
    "bench_replay_speed": ["--seed", "1", "--count", "200", "--exact-sample", "12"],
    "bench_dask": ["--traces", "36"],
}
QUICK_ARGS: dict[str, list[str]] = {
    "bench_report": ["--runs", "10000", "--repeat", "1"],
    "bench_shadow_run": ["6", "oracle", "actor"],
    "bench_legacy_live": ["--steps", "10"],
    "bench_actor_live": ["--steps", "10", "--runs", "2"],
    "bench_store": ["--polls", "1000"],
    "bench_clock": ["--tasks", "200"],
    "bench_wfformat_makespan": ["--engines", "actor", "--cpu-budget", "3"],
    "bench_replay": ["--budget", "5"],
    "bench_maestro_races": ["--seeds", "1"],
    "bench_replay_speed": ["--count", "20", "--exact-sample", "4"],
    "bench_cli_start": ["--repeat", "3"],
    "bench_dask": ["--traces", "8", "--no-pool", "--ingest-copies", "3"],
}


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
    return None


def run_one(
    script: Path, timeout: float, args: list[str] | None = None, quick: bool = False
) -> dict[str, Any]:
    """Run one benchmark script (with ``args``) and describe what happened."""
    started = time.perf_counter()
    env = {**os.environ, "BENCH_QUICK": "1"} if quick else None
    try:
        done = subprocess.run(
            [sys.executable, str(script), *(args or [])], capture_output=True, text=True, timeout=timeout,
            cwd=HERE.parent, env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return {"name": script.stem, "status": "timeout", "returncode": None, "seconds": round(timeout, 1),
                "json": False, "result": None, "tail": out.splitlines()[-TAIL_LINES:]}  # fmt: skip
    seconds = time.perf_counter() - started
    result = _last_json(done.stdout)
    return {
        "name": script.stem,
        "args": args or [],
        "status": "ok" if done.returncode == 0 else "failed",
        "returncode": done.returncode,
        "seconds": round(seconds, 2),
        "json": result is not None,
        "result": result,
        "tail": (done.stdout + done.stderr).splitlines()[-TAIL_LINES:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench.json"), help="where to write the results")
    parser.add_argument(
        "-k", dest="pattern", default="*", help="only benchmarks whose name matches this glob"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a benchmark is stopped")
    parser.add_argument("--dir", type=Path, default=HERE, help="where the bench_*.py scripts are")
    parser.add_argument("--quick", action="store_true", help="CI-sized workloads (BENCH_QUICK=1, QUICK_ARGS)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the Markdown page here")
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="run nothing: write --markdown from an earlier run's JSON (e.g. after editing NOTES.md)",
    )
    args = parser.parse_args(argv)
    command = "python benchmarks/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.render is not None:
        if args.markdown is None:
            parser.error("--render needs --markdown")
        earlier = json.loads(args.render.read_text(encoding="utf-8"))
        page = results_page.render(
            {**earlier, "machine": earlier.get("machine_detail")},
            earlier.get("command", "python benchmarks/run_all.py"),
        )
        args.markdown.write_text(page, encoding="utf-8")
        print(f"bench: Markdown -> {args.markdown} (from {args.render})")
        return 0
    scripts = sorted(p for p in args.dir.glob("bench_*.py") if fnmatch.fnmatchcase(p.stem, args.pattern))
    results = []
    for script in scripts:
        print(f"bench: {script.name} ...", flush=True)
        extra = (QUICK_ARGS if args.quick else ARGS).get(script.stem, [])
        entry = run_one(script, args.timeout, extra, args.quick)
        print(f"bench: {script.name}: {entry['status']} in {entry['seconds']} s", flush=True)
        results.append(entry)
    document = {
        "schema": "shadow-bench/1",
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": args.quick,
        "command": command.strip(),
        "host": results_page.machine(),
        "benchmarks": results,
    }
    document["machine_detail"] = document.pop("host")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"bench: {len(results)} benchmark(s) -> {args.out}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        page = results_page.render({**document, "machine": document["machine_detail"]}, command.strip())
        args.markdown.write_text(page, encoding="utf-8")
        print(f"bench: Markdown -> {args.markdown}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
