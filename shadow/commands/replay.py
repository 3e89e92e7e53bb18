"""``shadow replay PATH [--trace ID] [--engine E]``: replay one trace on one engine and print its record.

``--nodes`` and ``--fault`` are passed to the engine's factory as ``nodes=`` and ``faults=``; an engine
whose factory does not take them rejects them with a clear error instead of ignoring them.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from corpora.codec import encode
from engines.api import DEFAULT_TIME_LIMIT, DescribesFaults, EngineError, ExecutionRecord, ReplayOptions
from results.exitcodes import EXIT_HARNESS, EXIT_OK
from shadow.cli import finite_number
from shadow.engines import EngineSpecError, build_engine, resolve_engine
from shadow.sources import read_corpus

__all__ = ["register"]


def register(sub: Any, groups: dict[str, Any]) -> None:
    del groups
    p = sub.add_parser("replay", help="replay one trace on one engine and print the canonical record")
    p.add_argument("path", help="a shadow-trace/1 JSON Lines file")
    p.add_argument("--trace", help="trace id (default: the first trace in the file)")
    p.add_argument("--engine", default="legacy", help="legacy|actor|oracle|module:factory (default legacy)")
    p.add_argument("--seed", type=int, default=0, help="engine seed (default 0)")
    p.add_argument(
        "--time-limit",
        type=finite_number(positive=True),
        default=DEFAULT_TIME_LIMIT,
        help="virtual seconds after which an unfinished run is reported stuck (default 30 days)",
    )
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.add_argument(
        "--exact",
        action="store_true",
        help="simulate every poll, heartbeat and reconciliation tick by tick instead of jumping over "
        "idle periods (same record, much slower)",
    )
    p.add_argument("--nodes", type=int, help="engine nodes (engines whose factory accepts nodes=)")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="fault spec, repeatable, for engines whose factory accepts faults= (actor: crash, pause, "
        "drop, dup, store-fail; legacy: stall-worker); '--fault help' prints the engine's syntax",
    )
    p.set_defaults(func=replay_command)


def replay_command(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    if "help" in args.fault:
        return _fault_help(args.engine, err)
    kwargs: dict[str, Any] = {}
    if args.nodes is not None:
        kwargs["nodes"] = args.nodes
    if args.fault:
        kwargs["faults"] = tuple(args.fault)
    try:
        engine = build_engine(resolve_engine(args.engine, **kwargs))
    except (EngineSpecError, EngineError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return EXIT_HARNESS
    trace = None
    for item in read_corpus([args.path]):
        if item.error is not None:
            if args.trace is None or item.error.trace_id == args.trace:
                err.print(f"[red]error:[/] {escape(str(item.error))}", highlight=False)
                return EXIT_HARNESS
            continue
        if item.trace is not None and (args.trace is None or item.trace.trace_id == args.trace):
            trace = item.trace
            break
    if trace is None:
        err.print(
            f"[red]error:[/] no trace {escape(repr(args.trace))} in {escape(args.path)}"
            if args.trace
            else f"[red]error:[/] {escape(args.path)} holds no trace",
            highlight=False,
        )
        return EXIT_HARNESS
    try:
        record = engine.replay(
            trace, ReplayOptions(seed=args.seed, time_limit=args.time_limit, exact=args.exact)
        )
    except EngineError as exc:  # e.g. a DefinitionError: the engine cannot run this definition
        err.print(
            f"[red]error:[/] engine {escape(args.engine)} cannot replay trace {escape(trace.trace_id)} "
            f"({escape(args.path)}): {escape(str(exc))}",
            highlight=False,
        )
        return EXIT_HARNESS
    if args.json:
        print(json.dumps(encode(record), indent=2, sort_keys=True))
    else:
        render(record, Console())
    return EXIT_OK


def _fault_help(name: str, err: Console) -> int:
    """``--fault help``: the engine describes its own fault syntax (engines.api.DescribesFaults)."""
    try:
        engine = build_engine(resolve_engine(name))
    except (EngineSpecError, EngineError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return EXIT_HARNESS
    if isinstance(engine, DescribesFaults):
        print(engine.fault_syntax)
        return EXIT_OK
    err.print(f"[red]error:[/] engine {escape(name)} takes no faults", highlight=False)
    return EXIT_HARNESS


def render(record: ExecutionRecord, console: Console) -> None:
    for run in record.runs:
        table = Table(
            title=f"{escape(record.trace_id)} run {escape(run.run_id)}: {run.status}{' (STUCK)' if run.stuck else ''} "
            f"on {record.engine} {record.engine_version}"
        )
        for col in ("path", "attempt", "status", "outcome", "ready", "started", "ended", "params"):
            table.add_column(col)
        t0 = run.triggered_at or 0.0
        for a in run.attempts:
            table.add_row(
                escape(a.path),
                str(a.attempt),
                a.status,
                a.outcome or "-",
                _rel(a.ready_at, t0),
                _rel(a.started_at, t0),
                _rel(a.ended_at, t0),
                escape(json.dumps(dict(a.params), sort_keys=True)[:60]),
            )
        console.print(table)
    if record.error:
        console.print(f"[red]engine error:[/] {escape(str(record.error))}")


def _rel(at: float | None, t0: float) -> str:
    """Virtual seconds since the run's trigger, readable next to epoch-based timestamps."""
    return "-" if at is None else f"{at - t0:.3f}"
