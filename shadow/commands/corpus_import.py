"""``shadow corpus import --from FORMAT PATH... -o traces.jsonl``: import foreign traces, streaming.

Exit 0 when everything imported, 1 when any input was quarantined (the good traces are still
written), 4 for a harness error (bad option, unwritable output).
"""

from __future__ import annotations

import argparse
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from corpora.io import TraceWriter
from results.errors import overwrite_problem
from results.exitcodes import EXIT_FINDINGS, EXIT_HARNESS, EXIT_OK
from shadow.cli import add_mkdir_flag, output_folder_problem

__all__ = ["register"]

_DEFAULT_SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "schemas"


# The --from choices, named here so that registering the command does not load every importer (and
# networkx, yaml, ...) at CLI start; tests/shadow/test_cli_start.py checks them against corpora.importers.IMPORTERS.
SOURCES = ("alibaba", "argo", "maestro", "nextflow", "wfformat")


def register(sub: Any, groups: dict[str, Any]) -> None:
    del sub
    parser = groups["corpus"].add_parser(
        "import",
        help="import WfFormat, Maestro, Argo, Nextflow or Alibaba traces into shadow-trace/1",
        description="Stream foreign traces into shadow-trace/1 JSON lines; bad inputs are quarantined and listed.",
    )
    parser.add_argument("--from", dest="source", required=True, choices=SOURCES, help="source format")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders to import")
    parser.add_argument("-o", "--output", required=True, help="output .jsonl (.gz to compress, - for stdout)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the outcome model (Maestro)")
    parser.add_argument(
        "--failure-rate", type=float, default=0.05, help="share of steps that fail for good (Maestro)"
    )
    parser.add_argument(
        "--retry-rate", type=float, default=0.1, help="share of steps that succeed after retries (Maestro)"
    )
    parser.add_argument(
        "--race-margin",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="keep synthesized failures this far (+10 s per sequential launch) from other attempt "
        "starts/ends, so engines with different latency cannot race (Maestro; 0 = raw draws)",
    )
    parser.add_argument(
        "--schemas",
        type=Path,
        default=None,
        help="folder with wfcommons-schema-1.4/1.5.json (default: ../shared/corpora/schemas when present)",
    )
    parser.add_argument(
        "--redact",
        metavar="RULES",
        default=None,
        help="redaction rules (TOML: hash, mask or drop params and outputs by workflow/step/name "
        "glob) applied to every trace before it is written; see docs/LIVE.md",
    )
    add_mkdir_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from corpora.importers import IMPORTERS, ImportOptions, run_import

    err = Console(stderr=True)
    schemas = (
        args.schemas
        if args.schemas is not None
        else (_DEFAULT_SCHEMAS if _DEFAULT_SCHEMAS.is_dir() else None)
    )
    try:
        options = ImportOptions(
            seed=args.seed,
            failure_rate=args.failure_rate,
            retry_rate=args.retry_rate,
            race_margin=args.race_margin,
            schema_dir=schemas,
        )
    except ValueError as exc:
        err.print(f"shadow corpus import: {escape(str(exc))}")
        return EXIT_HARNESS
    redactor = None
    if args.redact is not None:
        from corpora.redact import RedactionRulesError, load_rules

        try:
            redactor = load_rules(args.redact)
        except RedactionRulesError as exc:
            err.print(f"shadow corpus import: error: {escape(str(exc))}", highlight=False, soft_wrap=True)
            return EXIT_HARNESS
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        err.print(f"shadow corpus import: no such file or folder: {escape(str(missing[0]))}")
        return EXIT_HARNESS
    problem = overwrite_problem(args.output, "-o") or output_folder_problem(
        args.output, "-o", mkdir=args.mkdir
    )
    if problem:
        err.print(f"shadow corpus import: {escape(problem)}")
        return EXIT_HARNESS
    importer = IMPORTERS[args.source]
    if not importer.discover(args.paths):
        # An empty folder or the wrong --from: writing an empty corpus and exiting 0 would hide it.
        err.print(
            f"shadow corpus import: no {args.source} input found in {escape(', '.join(map(str, args.paths)))}; "
            "check the paths and --from",
            highlight=False,
        )
        return EXIT_HARNESS
    imported, quarantined = 0, []
    try:
        with ExitStack() as stack:
            writer = stack.enter_context(TraceWriter(args.output))
            progress = stack.enter_context(
                Progress(
                    TextColumn("[bold]import {task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[last]}", markup=False),
                    console=err,
                    transient=True,
                    disable=not err.is_terminal,
                )
            )
            units = importer.discover(args.paths)
            task = progress.add_task(args.source, total=len(units), last="")
            done: set[str] = set()
            for item in run_import(importer, args.paths, options):
                if item.trace is not None:
                    writer.write(item.trace if redactor is None else redactor.apply(item.trace))
                    imported += 1
                elif item.error is not None:
                    quarantined.append(item.error)
                if item.source not in done:
                    done.add(item.source)
                    progress.update(task, completed=len(done), last=Path(item.source).name[-40:])
    except OSError as exc:
        err.print(f"shadow corpus import: cannot write {escape(str(args.output))}: {escape(str(exc))}")
        return EXIT_HARNESS
    err.print(f"imported {imported} trace(s) from {args.source}; quarantined {len(quarantined)}")
    if quarantined:
        for code, count in Counter(e.code for e in quarantined).most_common():
            err.print(f"  {code}: {count}")
        for error in quarantined[:20]:
            err.print(f"  - {error}", markup=False, highlight=False, soft_wrap=True)
        if len(quarantined) > 20:
            err.print(f"  ... and {len(quarantined) - 20} more")
    return EXIT_FINDINGS if quarantined else EXIT_OK
