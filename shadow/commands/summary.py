"""``shadow summary results.duckdb [--json]``: the headline of a results database."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from results.errors import ResultsError
from results.exitcodes import EXIT_HARNESS, EXIT_OK
from shadow.cli import add_database_flag
from shadow.results.reader import Headline, read_headline

__all__ = ["register"]


def register(sub: Any, groups: dict[str, Any]) -> None:
    del groups
    p = sub.add_parser(
        "summary",
        help="print the headline of a results database",
        description="Traces, runs, divergences (raw / A/A noise / unexplained), waived, "
        "quarantined, and start overhead per engine. Exit 0 when readable, 4 if not.",
    )
    add_database_flag(p)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument(
        "--identity",
        metavar="ID",
        help="the identity to summarize (id or unique prefix; default: the latest session's)",
    )
    p.set_defaults(func=summary_command)


def _fmt(value: float | None, unit: str = "s") -> str:
    return "-" if value is None else f"{value:.3f} {unit}".rstrip()


def render(headline: Headline, console: Console) -> None:
    table = Table(title="shadow summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    h = headline
    table.add_row("traces", f"{h.traces} ({h.traces_with_error} with engine errors)")
    table.add_row("runs", f"{h.runs} ({h.stuck_runs} stuck on candidate)")
    table.add_row("divergences raw (baseline vs candidate)", str(h.divergences_raw))
    table.add_row("divergences A/A noise (baseline vs baseline)", str(h.divergences_noise))
    table.add_row(
        "divergences unexplained",
        f"{h.divergences_unexplained} in {h.causes_unexplained} cause(s), {h.signatures_unexplained} signature(s)",
    )
    table.add_row("divergences waived", str(h.divergences_waived))
    table.add_row("quarantined inputs", str(h.quarantined))
    for lat in h.start_overhead:
        table.add_row(f"start overhead {lat.engine} p50 / p99", f"{_fmt(lat.p50)} / {_fmt(lat.p99)}")
    ratio = "-" if h.start_overhead_ratio is None else f"{h.start_overhead_ratio:.1f}x"
    table.add_row("start overhead ratio (baseline p50 / candidate p50)", ratio)
    table.add_row("last session", h.last_session_status or "-")
    table.add_row("identity", h.identity_description or "- (not recorded: written before identities)")
    console.print(table)
    if h.run_in_progress:
        console.print(f"{h.run_in_progress}: these numbers cover what has landed so far", highlight=False)


def summary_command(args: argparse.Namespace) -> int:
    try:
        headline = read_headline(args.db, args.identity)
    except ResultsError as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return EXIT_HARNESS
    if args.json:
        print(json.dumps(headline.to_dict(), indent=2, sort_keys=True))
    else:
        render(headline, Console())
    return EXIT_OK
