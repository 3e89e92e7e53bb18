"""``shadow report results.duckdb -o report.html [--baseline previous.duckdb]``."""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from reports.data import ReportDataError, ReportLimits
from reports.render import ReportOptions, write_report
from results.errors import ResultsError, overwrite_problem
from results.exitcodes import EXIT_HARNESS, EXIT_OK
from shadow.cli import add_database_flag, add_mkdir_flag, output_folder_problem
from shadow.results.reader import judged_identity, open_results, run_progress

__all__ = ["register"]


def register(sub: Any, groups: dict[str, Any]) -> None:
    """Add ``shadow report``."""
    del groups
    parser = sub.add_parser(
        "report",
        help="render a self-contained HTML divergence report from a results database",
        description=(
            "Render one self-contained HTML file (inline CSS and SVG, no network access) from a results "
            "database written by 'shadow run': headline and verdicts, divergence groups with A/A noise, "
            "exemplars with side-by-side diffs, DAGs and timelines, latency charts, quarantined input."
        ),
    )
    add_database_flag(parser)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("report.html"),
        help="HTML file to write (default: report.html)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a previous results database: mark signatures new / recurring / resolved",
    )
    parser.add_argument("--title", default=ReportOptions().title, help="page title")
    parser.add_argument(
        "--max-groups",
        type=int,
        default=ReportLimits().groups,
        help="divergence groups listed (rest: an 'N more' line)",
    )
    parser.add_argument(
        "--drilldown-groups",
        type=int,
        default=ReportLimits().drilldown_groups,
        help="groups with exemplar drill-down",
    )
    parser.add_argument(
        "--corpus-root",
        type=Path,
        action="append",
        default=[],
        help="folder where relative corpus paths of exemplar traces are found, to draw the real "
        "DAG from the definition (default: the database's folder, then the working directory)",
    )
    parser.add_argument(
        "--identity",
        metavar="ID",
        help="report the results of this identity (id or unique prefix); default: the latest session's",
    )
    parser.add_argument(
        "--since",
        metavar="T",
        help="report only the traces production captured at or after T (ISO-8601, UTC unless it "
        "names a zone, or epoch seconds); groups, noise and latency are computed over that "
        "window alone (docs/LIVE.md)",
    )
    add_mkdir_flag(parser)
    parser.set_defaults(func=_run)


def _run_going(path: Path, identity: str | None) -> str | None:
    try:
        con = open_results(path, identity)
    except ResultsError:
        return None
    try:
        progress = run_progress(con)
    finally:
        con.close()
    return progress.describe() if progress is not None and progress.going else None


def _write_window(args: argparse.Namespace, options: ReportOptions) -> Any:
    """The report of the traces captured since ``--since``, rendered from a scratch copy of that window."""
    from shadow.results.window import parse_since, window_copy

    since = parse_since(args.since)  # ValueError: a bad time, said as such
    with tempfile.TemporaryDirectory(prefix="shadow-window-") as folder:
        window = window_copy(args.db, args.identity, since, folder)
        print(f"window: {window.describe()}", file=sys.stderr)
        windowed = replace(
            options,
            title=f"{options.title} — traces captured since {since.isoformat().replace('+00:00', 'Z')}",
            identity=None,
            corpus_roots=(*options.corpus_roots, Path(args.db).resolve().parent),
        )
        return write_report(window.path, args.output, baseline=args.baseline, options=windowed)


def _run(args: argparse.Namespace) -> int:
    if args.max_groups < 1 or args.drilldown_groups < 0:
        print("shadow report: --max-groups must be >= 1 and --drilldown-groups >= 0", file=sys.stderr)
        return EXIT_HARNESS
    missing_roots = [root for root in args.corpus_root if not root.is_dir()]
    if missing_roots:
        print(
            f"shadow report: --corpus-root {missing_roots[0]} is not a folder; give the folder the corpus paths "
            "in the database are relative to",
            file=sys.stderr,
        )
        return EXIT_HARNESS
    options = ReportOptions(
        title=args.title,
        limits=ReportLimits(groups=args.max_groups, drilldown_groups=args.drilldown_groups),
        corpus_roots=tuple(args.corpus_root),
        identity=args.identity,
    )
    problem = overwrite_problem(args.output, "-o") or output_folder_problem(
        args.output, "-o", mkdir=args.mkdir
    )
    if problem:
        print(f"shadow report: {problem}", file=sys.stderr)
        return EXIT_HARNESS
    try:
        judged = judged_identity(Path(args.db), args.identity)
    except ResultsError:
        judged = None  # not a results database, or no such identity: write_report says which, precisely
    try:
        if args.since is not None:
            stats = _write_window(args, options)
        else:
            stats = write_report(Path(args.db), args.output, baseline=args.baseline, options=options)
    except (ReportDataError, ResultsError, ValueError) as exc:
        print(f"shadow report: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    except OSError as exc:
        print(
            f"shadow report: cannot write {args.output}: {exc.strerror or exc}; check the directory exists and is writable",
            file=sys.stderr,
        )
        return EXIT_HARNESS
    print(
        f"wrote {stats.path} ({stats.bytes / 1024:,.0f} KiB, {stats.groups} groups, {stats.exemplars} exemplars) in {stats.seconds:.2f} s"
    )
    going = _run_going(args.db, args.identity)
    if going:
        print(f"{going}: the report covers what has landed so far")
    if judged is not None:
        print(f"reported {judged.describe()}")
    return EXIT_OK
