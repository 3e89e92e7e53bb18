"""docs/BENCHMARKS.md from one ``run_all.py`` result document: targets first, then every figure.

Every number in the file comes from the JSON of the same ``run_all.py`` invocation (so the ratios
compare figures measured side by side, on the same machine, under the same load). The targets table
reads known keys of known benchmarks; a benchmark that failed or was not run shows "not measured".
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["machine", "render", "targets"]


def machine() -> dict[str, Any]:
    """What the numbers were measured on (a shared machine's load matters: wall times include waiting)."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _get(doc: Mapping[str, Any], bench: str, *path: str) -> Any:
    for entry in doc.get("benchmarks", []):
        if entry.get("name") == bench and entry.get("result"):
            value: Any = entry["result"]
            for key in path:
                if isinstance(value, list):
                    value = next((v for v in value if isinstance(v, dict) and v.get("engine") == key), None)
                elif isinstance(value, dict):
                    value = value.get(key)
                if value is None:
                    return None
            return value
    return None


def _fmt(value: Any) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.4g}"
    return str(value)


Check = Callable[[float], bool]


def targets(doc: Mapping[str, Any]) -> list[tuple[str, Any, str, str]]:
    """(figure, measured value, target, verdict) for every target of issue 10 we can read."""
    actor_p50 = _get(doc, "bench_actor_live", "engines", "actor", "start_overhead_median_s")
    actor_p99 = _get(doc, "bench_actor_live", "engines", "actor", "start_overhead_p99_s")
    ratio = _get(doc, "bench_actor_live", "start_overhead_median_ratio")  # actor / legacy
    speedup = 1 / ratio if ratio else None
    rows: list[tuple[str, Any, str, Check | None]] = [
        ("step start p50, actor live (s)", actor_p50, "<= 0.0005", lambda v: v <= 0.0005),
        ("step start p99, actor live (s)", actor_p99, "<= 0.005", lambda v: v <= 0.005),
        ("step start p50 legacy / actor", speedup, ">= 1000", lambda v: v >= 1000),
        ("workflow start p50, legacy (s)", _get(doc, "bench_workflow_start", "legacy_p50_s"), "seed: 0.2", None),
        ("workflow start p50, actor (s)", _get(doc, "bench_workflow_start", "actor_p50_s"), "<= 0.05", lambda v: v <= 0.05),
        ("actor live steps/s (1 core, durable)", _get(doc, "bench_actor_ceiling", "actor_steps_per_s"), ">= 20,000",
         lambda v: v >= 20_000),
        ("actor replay steps/CPU-s, built-in", _get(doc, "bench_replay", "builtin", "actor", "steps_per_cpu_s"),
         ">= 20,000", lambda v: v >= 20_000),
        ("end to end steps/s, built-in (1 worker)", _get(doc, "bench_replay", "builtin", "e2e", "workers_1", "steps_per_s"),
         ">= 5,000", lambda v: v >= 5_000),
        ("end to end production time / wall, built-in", _get(doc, "bench_replay", "builtin", "e2e", "production_over_wall"),
         ">= 10,000", lambda v: v >= 10_000),
        ("2 workers / 1 worker, built-in", _get(doc, "bench_replay", "builtin", "e2e", "speedup_2_workers"), ">= 1.8",
         lambda v: v >= 1.8),
        # issue 14 (Dask executor), bench_dask: a LocalCluster of 2 workers vs 1, the same corpus side by side
        ("Dask 2 workers / 1 worker, built-in", _get(doc, "bench_dask", "speedup_2_workers"), ">= 1.8",
         lambda v: v >= 1.8),
        ("Dask workers for 1M steps in 1 hour", _get(doc, "bench_dask", "workers_for_1m_steps_in_1h"), "reported",
         None),
        ("Dask driver ingest, recorded steps/s", _get(doc, "bench_dask", "ingest_steps_per_s"), "reported", None),
        ("store round trips per step, actor / legacy", _get(doc, "bench_replay", "builtin", "round_trips_actor_over_legacy"),
         "<= 0.1", lambda v: v <= 0.1),
        ("scale: max peak RSS (MB)", _get(doc, "bench_scale", "max_peak_rss_mb"), "<= 500", lambda v: v <= 500),
        ("scale: CPU per step, largest / smallest", _get(doc, "bench_scale", "cpu_per_step_growth"), "~1 (linear)",
         lambda v: v <= 1.2),
        # issue 13 (replay speed), bench_replay_speed: generate_corpus(1, 200) uncapped, CPU seconds
        ("replay: e2e candidate attempts / CPU-s (1 worker)", _get(doc, "bench_replay_speed", "e2e",
                                                                  "candidate_attempts_per_cpu_s"),
         ">= 5,000", lambda v: v >= 5_000),
        ("replay: e2e production time / CPU time", _get(doc, "bench_replay_speed", "e2e", "production_over_cpu"),
         ">= 10,000", lambda v: v >= 10_000),
        ("replay: oracle (core) attempts / CPU-s", _get(doc, "bench_replay_speed", "engines", "oracle",
                                                       "attempts_per_cpu_s"), ">= 20,000", lambda v: v >= 20_000),
        ("replay: actor attempts / CPU-s", _get(doc, "bench_replay_speed", "engines", "actor", "attempts_per_cpu_s"),
         ">= 20,000", lambda v: v >= 20_000),
        ("replay: legacy CPU / oracle CPU, total", _get(doc, "bench_replay_speed", "engines", "legacy",
                                                        "cpu_over_oracle"), "<= 5", lambda v: v <= 5),
        ("replay: actor CPU / oracle CPU, total", _get(doc, "bench_replay_speed", "engines", "actor", "cpu_over_oracle"),
         "<= 5", lambda v: v <= 5),
        ("replay: legacy worst trace / oracle", _get(doc, "bench_replay_speed", "engines", "legacy",
                                                     "worst_trace_over_oracle"), "<= 20", lambda v: v <= 20),
        ("replay: actor worst trace / oracle", _get(doc, "bench_replay_speed", "engines", "actor",
                                                    "worst_trace_over_oracle"), "<= 20", lambda v: v <= 20),
        ("replay: legacy on gen-1-00037 (CPU-s)", _get(doc, "bench_replay_speed", "legacy_big_trace_cpu_s"), "<= 10",
         lambda v: v <= 10),
        ("replay: hot round trips, actor / legacy", _get(doc, "bench_replay_speed", "hot_round_trips_actor_over_legacy"),
         "<= 0.1", lambda v: v <= 0.1),
        # issue 19 (first minutes), bench_cli_start: median CPU of a fresh interpreter
        ("CLI: shadow --help (CPU-s)", _get(doc, "bench_cli_start", "help_cpu_s"), "<= 0.3", lambda v: v <= 0.3),
        ("CLI: corpus validate, 3 traces (CPU-s)", _get(doc, "bench_cli_start", "validate_cpu_s"), "<= 0.3",
         lambda v: v <= 0.3),
        (f"report for {_fmt(_get(doc, 'bench_report', 'runs_per_role'))} runs per role (s)",
         _get(doc, "bench_report", "seconds_best"), "<= 3 at 100,000", lambda v: v <= 3),
    ]  # fmt: skip
    out = []
    for name, value, target, check in rows:
        if value is None or check is None:
            verdict = "not measured" if value is None else "reference"
        else:
            verdict = "met" if check(float(value)) else "MISSED"
        out.append((name, value, target, verdict))
    return out


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            label = v.get("engine", v.get("size", i)) if isinstance(v, dict) else i
            yield from _flatten(v, f"{prefix}[{label}]")
    else:
        yield prefix, value


NOTES = Path(__file__).resolve().parent / "NOTES.md"


def render(doc: Mapping[str, Any], command: str, notes: Path = NOTES) -> str:
    """The whole Markdown page; ``notes`` (hand-written: profiles, changes, why targets are missed)
    is appended verbatim when it exists."""
    m = doc.get("machine") or machine()
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` on {doc.get('created_at', '?')} (UTC). Every figure below comes from that one",
        "run; ratios compare figures measured side by side in it. Regenerate with the same command",
        "(`nox -s bench`, or `--quick` for a CI-sized run).",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, load average {m.get('load_average')} at the end "
        f"(shared with other jobs: wall times include waiting for a core, CPU times do not), Python {m.get('python')}, "
        f"{m.get('system')}.",
        "",
        "## Targets (issue 10)",
        "",
        "| figure | measured | target | verdict |",
        "|---|---:|---|---|",
    ]
    for name, value, target, verdict in targets(doc):
        lines.append(f"| {name} | {_fmt(value)} | {target} | {verdict} |")
    lines += ["", "## Every benchmark", ""]
    lines += ["| benchmark | status | seconds |", "|---|---|---:|"]
    for entry in doc.get("benchmarks", []):
        lines.append(f"| {entry['name']} | {entry['status']} | {_fmt(entry.get('seconds'))} |")
    for entry in doc.get("benchmarks", []):
        lines += ["", f"### {entry['name']}", ""]
        if entry.get("args"):
            lines += [f"Arguments: `{' '.join(entry['args'])}`", ""]
        result = entry.get("result")
        if not result:
            lines += ["No JSON result; last lines of output:", "", "```", *entry.get("tail", [])[-8:], "```"]
            continue
        lines += ["| figure | value |", "|---|---:|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in _flatten(result) if k != "bench"]
    if notes.is_file():
        lines += ["", notes.read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"
