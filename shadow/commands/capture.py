"""``shadow capture --store legacy.db -o traces.jsonl``: export finished runs of a legacy store as traces.

This is how production traces are captured: the legacy engine's store (written by live mode,
:mod:`engines.legacy.live`) holds the workflow definitions, every run with its trigger time and
params, and what each step attempt's job did. Each workflow becomes one shadow-trace/1 trace.
Exit codes: 0 ok (even with nothing finished to export: a note says so), 4 harness error (missing,
locked or corrupt store; unwritable output).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from corpora.io import TraceWriter
from engines.api import CapturesTraces, EngineError
from results.exitcodes import EXIT_HARNESS, EXIT_OK
from shadow.cli import add_mkdir_flag, output_folder_problem
from shadow.engines import EngineSpecError, build_engine, resolve_engine

__all__ = ["register"]


def register(sub: Any, groups: dict[str, Any]) -> None:
    del groups
    p = sub.add_parser(
        "capture", help="export finished runs from a legacy engine store as shadow-trace/1",
        description="Read a legacy engine SQLite store (written by live mode) and write one trace per workflow: "
        "its definition, its finished runs in trigger order, and for each step attempt that ran its outcome, "
        "duration and outputs, plus what the engine observed (final statuses, times).",
        epilog="Example: shadow capture --store legacy.db -o traces.jsonl.gz",
    )  # fmt: skip
    p.add_argument("--store", required=True, help="the legacy engine's SQLite file")
    p.add_argument("-o", "--output", required=True, help="output file (.gz compresses, - is stdout)")
    p.add_argument("--include-unfinished", action="store_true", help="also export runs that have not ended")
    p.add_argument("--engine", default="legacy", metavar="ENGINE",
                   help="the engine whose store it is: legacy (default) or module:factory of an adapter whose "
                        "engine offers capture(store, include_unfinished=...)")
    p.add_argument("--redact", metavar="RULES", default=None,
                   help="redaction rules (TOML: hash, mask or drop params and outputs by workflow/step/name glob), "
                        "applied before anything is written; see docs/LIVE.md")
    add_mkdir_flag(p)
    p.set_defaults(func=capture_command)


def capture_command(args: argparse.Namespace) -> int:
    redactor = None
    if args.redact is not None:
        from corpora.redact import RedactionRulesError, load_rules

        try:
            redactor = load_rules(args.redact)
        except RedactionRulesError as exc:
            print(f"shadow capture: error: {exc}", file=sys.stderr)
            return EXIT_HARNESS
    problem = output_folder_problem(args.output, "-o", mkdir=args.mkdir)
    if problem:
        print(f"shadow capture: error: {problem}", file=sys.stderr)
        return EXIT_HARNESS
    try:
        engine = build_engine(resolve_engine(args.engine))
    except (EngineSpecError, EngineError) as exc:
        print(f"shadow capture: error: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    if not isinstance(engine, CapturesTraces):
        print(f"shadow capture: error: engine {args.engine} offers no capture (engines.api.CapturesTraces); "
              "capture from the store of the engine production runs on (legacy)", file=sys.stderr)
        return EXIT_HARNESS
    try:
        # Read everything first: a store error then leaves no half-written output behind.
        captured = list(engine.capture(args.store, include_unfinished=args.include_unfinished))
        if redactor is not None:  # before anything is written
            captured = [redactor.apply(t) for t in captured]
    except EngineError as exc:
        print(f"shadow capture: error: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    traces, runs = len(captured), sum(len(t.runs) for t in captured)
    try:
        with TraceWriter(args.output) as writer:
            for trace in captured:
                writer.write(trace)
    except OSError as exc:
        print(f"shadow capture: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    note = "" if traces else " (no finished runs in the store)"
    print(
        f"captured {traces} trace(s), {runs} run(s) from {args.store} to {args.output}{note}", file=sys.stderr
    )
    return EXIT_OK
