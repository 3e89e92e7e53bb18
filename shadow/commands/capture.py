"""``shadow capture --store legacy.db -o traces.jsonl``: export finished runs of a legacy store as traces.

This is how production traces are captured: the legacy engine's store (written by live mode,
:mod:`engines.legacy.live`) holds the workflow definitions, every run with its trigger time and
params, and what each step attempt's job did. Each workflow becomes one shadow-trace/1 trace.
Exit codes: 0 ok (even with nothing finished to export: a note says so), 4 harness error (missing,
locked or corrupt store; unwritable output).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC
from typing import Any

from corpora.io import TraceWriter
from engines.api import CapturesTraces, EngineError, FollowsTraces
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
    )  # fmt: skip
    p.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="the legacy engine's store: a SQLite file (path or sqlite:///path) or postgresql://...",
    )
    p.add_argument("-o", "--output", required=True, help="output file (.gz compresses, - is stdout)")
    p.add_argument("--include-unfinished", action="store_true", help="also export runs that have not ended")
    p.add_argument(
        "--engine",
        default="legacy",
        metavar="ENGINE",
        help="the engine whose store it is: legacy (default) or module:factory of an adapter whose "
        "engine offers capture(store, include_unfinished=...)",
    )
    p.add_argument(
        "--redact",
        metavar="RULES",
        default=None,
        help="redaction rules (TOML: hash, mask or drop params and outputs by workflow/step/name glob), "
        "applied before anything is written; see docs/LIVE.md",
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="keep going: write each run as it reaches a terminal state (one trace per run), with a "
        "durable cursor beside the output so a restart continues where it stopped",
    )
    p.add_argument(
        "--since",
        type=_time,
        metavar="T",
        help="--follow from scratch: skip runs that ended before T (epoch seconds or ISO-8601)",
    )
    p.add_argument("--max-traces", type=int, metavar="N", help="--follow: stop after N traces this session")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="--follow: stop after this many seconds")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="--follow: seconds between looks at the store (default 1)",
    )
    p.add_argument(
        "--state",
        metavar="FILE",
        help="--follow: the cursor file (default OUTPUT.cursor.json, or cursor.json in an output folder)",
    )
    p.add_argument(
        "--rotate",
        type=int,
        default=1000,
        metavar="N",
        help="--follow into a folder (-o DIR/): start a new capture-NNNNNN.jsonl segment every N traces",
    )
    add_mkdir_flag(p)
    p.set_defaults(func=capture_command)


def _time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither epoch seconds nor an ISO-8601 time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def capture_command(args: argparse.Namespace) -> int:
    redactor = None
    if args.redact is not None:
        from corpora.redact import RedactionRulesError, load_rules

        try:
            redactor = load_rules(args.redact)
        except RedactionRulesError as exc:
            print(f"shadow capture: error: {exc}", file=sys.stderr)
            return EXIT_HARNESS
    if not args.follow and any(
        v is not None for v in (args.since, args.max_traces, args.duration, args.state)
    ):
        print(
            "shadow capture: error: --since, --max-traces, --duration and --state go with --follow",
            file=sys.stderr,
        )
        return EXIT_HARNESS
    problem = (
        None
        if args.follow and args.output.endswith(("/", os.sep))
        else output_folder_problem(args.output, "-o", mkdir=args.mkdir)
    )
    if problem:
        print(f"shadow capture: error: {problem}", file=sys.stderr)
        return EXIT_HARNESS
    try:
        engine = build_engine(resolve_engine(args.engine))
    except (EngineSpecError, EngineError) as exc:
        print(f"shadow capture: error: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    if args.follow:
        return _follow(args, engine, redactor)
    if not isinstance(engine, CapturesTraces):
        print(
            f"shadow capture: error: engine {args.engine} offers no capture (engines.api.CapturesTraces); "
            "capture from the store of the engine production runs on (legacy)",
            file=sys.stderr,
        )
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


def _follow(args: argparse.Namespace, engine: object, redactor: Any) -> int:
    from shadow.follow import FollowError, FollowOptions, FollowSink, follow

    if not isinstance(engine, FollowsTraces):
        print(
            f"shadow capture: error: engine {args.engine} cannot follow a store (engines.api.FollowsTraces)",
            file=sys.stderr,
        )
        return EXIT_HARNESS
    for flag, value in (("--max-traces", args.max_traces), ("--rotate", args.rotate)):
        if value is not None and value < 1:
            print(f"shadow capture: error: {flag} must be at least 1", file=sys.stderr)
            return EXIT_HARNESS
    for flag, number in (("--duration", args.duration), ("--poll-interval", args.poll_interval)):
        if number is not None and not number > 0:
            print(f"shadow capture: error: {flag} must be a positive number of seconds", file=sys.stderr)
            return EXIT_HARNESS
    try:
        sink = FollowSink(args.output, state=args.state, store=args.store, rotate=args.rotate)
        feed = engine.follow(args.store, since=args.since)
    except (FollowError, EngineError) as exc:
        print(f"shadow capture: error: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    options = FollowOptions(
        max_traces=args.max_traces, duration=args.duration, poll_interval=args.poll_interval
    )
    try:
        written = follow(feed, sink, options, transform=None if redactor is None else redactor.apply)
    except (FollowError, EngineError) as exc:
        print(f"shadow capture: error: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    except OSError as exc:
        print(f"shadow capture: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    finally:
        feed.close()
    print(
        f"captured {written} trace(s) this session ({sink.captured} in all) from {args.store} to {args.output}; "
        f"cursor in {sink.state_path}",
        file=sys.stderr,
    )
    return EXIT_OK
