"""``shadow corpus generate|validate|stats``: make the built-in corpus, check corpora, summarise them.

Exit codes follow :mod:`shadow.cli`: 0 ok, 1 when ``validate`` quarantined any trace, 4 for a harness
error (bad option, unreadable or unwritable file). Tables and progress go to stderr (progress only on a
terminal and without ``--quiet``); ``--json`` output goes to stdout, so it can be piped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from corpora.errors import TraceError
from corpora.io import DEFAULT_MAX_LINE_BYTES, TraceItem, TraceWriter, read_traces
from results.errors import overwrite_problem
from shadow.cli import add_mkdir_flag, output_folder_problem

if TYPE_CHECKING:
    from corpora.coverage import CoverageAccumulator
    from corpora.stats import CorpusStats
from results.exitcodes import EXIT_FAIL, EXIT_HARNESS, EXIT_OK

__all__ = ["register"]


# GeneratorConfig().max_steps, written here so that registering the command does not load the generator (and
# networkx); tests/shadow/test_cli_start.py checks that the two agree.
DEFAULT_MAX_STEPS = 2000


def register(sub: Any, groups: dict[str, Any]) -> None:
    del sub
    corpus = groups["corpus"]
    gen = corpus.add_parser(
        "generate",
        help="write the built-in synthetic corpus (seeded, byte-identical per seed)",
        description="Write COUNT synthetic shadow-trace/1 traces: chains, fan-out/fan-in, diamonds, random DAGs "
        "(3 to 2,000 steps), conditional branches, retries, timeouts, foreach, subworkflows and several runs "
        "under each run strategy. The same --seed always gives the same bytes.",
    )
    gen.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    gen.add_argument("--count", type=_positive, default=200, help="number of traces (default 200)")
    gen.add_argument(
        "--max-steps",
        type=_positive,
        default=DEFAULT_MAX_STEPS,
        help=f"cap on the steps of one workflow (default {DEFAULT_MAX_STEPS}); the legacy engine reloads "
        "every step at every poll, so a 2,000-step trace costs it minutes of CPU",
    )
    gen.add_argument("-o", "--output", required=True, help="output file (.gz compresses, - is stdout)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    add_mkdir_flag(gen)
    gen.set_defaults(func=run_generate)

    val = corpus.add_parser(
        "validate",
        help="check trace files; list every bad trace with file:line, JSON path and a fix",
        description="Read shadow-trace/1 JSON Lines files (.jsonl or .jsonl.gz, - for stdin) and check every "
        "trace: JSON, schema, format version, graph (cycles, missing transition targets, duplicate ids), "
        "recorded attempts, durations and subworkflow references. Bad traces are quarantined and listed; "
        "reading goes on. Exit 0 when all are valid, 1 when any is bad, 4 when a file cannot be read.",
    )
    _reading_args(val)
    val.add_argument(
        "--limit", type=_positive, default=50, help="list at most this many bad traces (default 50)"
    )
    val.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    val.set_defaults(func=run_validate)

    st = corpus.add_parser(
        "stats",
        help="summarise corpora: traces, runs, steps, depth, fan-out, failure and retry rates, sources",
        description="Summarise trace files in one streaming pass. Depth is the longest path of the top-level "
        "DAG, fan-out the most transitions out of one step; failure rate counts (run, step) pairs whose last "
        "attempt failed, retry rate those with more than one attempt.",
    )
    _reading_args(st)
    st.add_argument("--json", action="store_true", help="print the stats as JSON on stdout")
    st.add_argument(
        "--coverage",
        action="store_true",
        help="also list which features and situations the traces exercise (failures by where, retries "
        "by error class, timeouts, failure modes, foreach, subworkflows, run strategies with "
        "several runs, ...), the ones no trace exercises first",
    )
    st.set_defaults(func=run_stats)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _reading_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="trace files (.jsonl, .jsonl.gz; - for stdin)"
    )
    parser.add_argument(
        "--max-line-bytes",
        type=_positive,
        default=DEFAULT_MAX_LINE_BYTES,
        help=f"reject longer lines as line_too_long (default {DEFAULT_MAX_LINE_BYTES})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def _progress(
    err: Console, quiet: bool, label: str, total: float | None, in_bytes: bool
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr, only when stderr is a terminal; yields an ``advance(n)`` callback."""
    columns: list[Any] = [TextColumn(f"[bold]{label}"), BarColumn()]
    columns += [DownloadColumn()] if in_bytes else [MofNCompleteColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=quiet or not err.is_terminal) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _read(args: argparse.Namespace, err: Console, label: str) -> Iterator[TraceItem]:
    sizes = [os.path.getsize(p) for p in args.paths if p != "-" and os.path.isfile(p)]
    total = float(sum(sizes)) if len(sizes) == len(args.paths) else None
    with _progress(err, args.quiet, label, total, in_bytes=True) as advance:
        yield from read_traces(args.paths, max_line_bytes=args.max_line_bytes, progress=advance)


def _emit_json(data: object) -> None:
    """JSON on stdout; a reader that stops early (``| head``) is not an error."""
    try:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit


def run_generate(args: argparse.Namespace) -> int:
    from corpora.generator import GeneratorConfig, generate_corpus

    err = _stderr()
    digest = hashlib.sha256()
    problem = overwrite_problem(args.output, "-o") or output_folder_problem(
        args.output, "-o", mkdir=args.mkdir
    )
    if problem:
        err.print(f"shadow corpus generate: {escape(problem)}")
        return EXIT_HARNESS
    try:
        with (
            TraceWriter(args.output) as writer,
            _progress(err, args.quiet, "generate", args.count, False) as advance,
        ):
            for trace in generate_corpus(args.seed, args.count, GeneratorConfig(max_steps=args.max_steps)):
                writer.write(trace)
                digest.update(trace.trace_id.encode())
                advance(1)
    except OSError as exc:
        err.print(
            f"shadow corpus generate: cannot write {escape(args.output)}: {escape(str(exc.strerror or exc))}"
        )
        return EXIT_HARNESS
    if not args.quiet and args.output != "-":
        size = os.path.getsize(args.output)
        err.print(f"wrote {writer.count} traces (seed {args.seed}) to {escape(args.output)} ({size:,} bytes)")
    return EXIT_OK


def run_validate(args: argparse.Namespace) -> int:
    err = _stderr()
    per_file: dict[str, Counter[str]] = {}
    bad: list[TraceError] = []
    for item in _read(args, err, "validate"):
        counts = per_file.setdefault(item.file, Counter())
        if item.error is None:
            counts["valid"] += 1
        else:
            counts["unreadable" if item.error.code == "unreadable" else "quarantined"] += 1
            bad.append(item.error)
    unreadable = any(e.code == "unreadable" for e in bad)
    if args.json:
        _emit_json({"files": {f: dict(c) for f, c in per_file.items()}, "errors": [e.to_dict() for e in bad]})
    else:
        _print_validation(err, per_file, bad, args.limit)
    if unreadable:
        return EXIT_HARNESS
    return EXIT_FAIL if bad else EXIT_OK


def _print_validation(
    err: Console, per_file: dict[str, Counter[str]], bad: Sequence[TraceError], limit: int
) -> None:
    table = Table(title="shadow corpus validate", title_justify="left")
    table.add_column("file")
    table.add_column("valid", justify="right")
    table.add_column("quarantined", justify="right")
    for name, counts in per_file.items():
        table.add_row(escape(name), str(counts["valid"]), str(counts["quarantined"] + counts["unreadable"]))
    err.print(table)
    if not bad and not any(counts["valid"] for counts in per_file.values()):
        # An empty file passes, but saying "all traces are valid" about nothing hides a wrong path or export.
        err.print("no traces found: the input is empty")
        return
    if not bad:
        err.print("all traces are valid")
        return
    by_code = Counter(e.code for e in bad)
    err.print("quarantined: " + ", ".join(f"{code} {n}" for code, n in by_code.most_common()))
    for error in bad[:limit]:
        loc = error.location
        where = f"{loc.file}:{loc.line}" if loc.line is not None else str(loc.file)
        trace = f" (trace {error.trace_id})" if error.trace_id else ""
        err.print(
            f"[red]{escape(where)}[/red] at {escape(loc.json_path)}{escape(trace)}: [bold]{error.code}[/bold]: ",
            end="",
        )
        err.print(error.message, markup=False, end="")
        if error.hint:
            err.print(f" -> {error.hint}", markup=False, end="")
        err.print()
    if len(bad) > limit:
        err.print(f"... and {len(bad) - limit} more (raise --limit or use --json)")


def run_stats(args: argparse.Namespace) -> int:
    from corpora.coverage import CoverageAccumulator
    from corpora.stats import StatsAccumulator

    err = _stderr()
    acc = StatsAccumulator()
    coverage = CoverageAccumulator() if args.coverage else None
    unreadable = False
    for item in _read(args, err, "stats"):
        acc.add_item(item)
        if coverage is not None and item.trace is not None:
            coverage.add(item.trace)
        unreadable = unreadable or (item.error is not None and item.error.code == "unreadable")
    stats = acc.result()
    if args.json:
        data = stats.to_dict()
        if coverage is not None:
            data["coverage"] = {r.feature: r.traces for r in coverage.rows()}
            data["coverage_missing"] = coverage.missing()
        _emit_json(data)
    else:
        out = Console(highlight=False)
        _print_stats(out, stats)
        if coverage is not None:
            _print_coverage(out, coverage)
    return EXIT_HARNESS if unreadable else EXIT_OK


def _print_coverage(out: Console, coverage: CoverageAccumulator) -> None:
    table = Table(title=f"coverage ({coverage.traces} traces; never exercised first)", title_justify="left")
    table.add_column("feature")
    table.add_column("traces", justify="right")
    table.add_column("what it is")
    for row in coverage.rows():
        table.add_row(
            f"[red]{row.feature}[/]" if row.traces == 0 else row.feature,
            f"{row.traces:,}",
            escape(row.description),
        )
    out.print(table)
    missing = coverage.missing()
    out.print(
        f"{len(missing)} of {len(coverage.rows())} features never exercised"
        + (f": {', '.join(missing)}" if missing else ""),
        highlight=False,
        markup=False,
    )


def _print_stats(out: Console, stats: CorpusStats) -> None:
    table = Table(title="shadow corpus stats", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in (
        ("traces", stats.traces),
        ("quarantined", stats.quarantined),
        ("runs", stats.runs),
        ("steps", stats.steps),
        ("recorded attempts", stats.attempts),
        ("attempt failure rate", f"{stats.attempt_failure_rate:.2%}"),
        ("step failure rate", f"{stats.step_failure_rate:.2%}"),
        ("retry rate", f"{stats.retry_rate:.2%}"),
    ):
        table.add_row(label, f"{value:,}" if isinstance(value, int) else value)
    out.print(table)
    dist = Table(title="per trace", title_justify="left")
    for col in ("", "min", "median", "p95", "max", "mean"):
        dist.add_column(col, justify="right" if col else "left")
    for label, d in (
        ("steps", stats.steps_per_trace),
        ("depth", stats.depth),
        ("fan-out", stats.fan_out),
        ("runs", stats.runs_per_trace),
    ):
        dist.add_row(label, *(f"{v:g}" for v in (d.min, d.median, d.p95, d.max, d.mean)))
    out.print(dist)
    for title, counts in (
        ("outcomes", stats.outcomes),
        ("sources", stats.sources),
        ("workflow types", stats.workflow_types),
        ("run strategies", stats.run_strategies),
        ("quarantined by code", stats.error_codes),
    ):
        if counts:
            out.print(f"{title}: " + ", ".join(f"{escape(str(k))} {v:,}" for k, v in counts.items()))
