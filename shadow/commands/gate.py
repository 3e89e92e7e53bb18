"""``shadow gate results.duckdb --cohorts cohorts.toml``: a verdict per cohort, and the CI exit code.

Exit codes: 0 PASS, 1 FAIL, 2 MARGINAL, 3 INSUFFICIENT_DATA (the worst cohort decides), 4 harness
error (unreadable database, bad cohorts file). Verdicts are appended to the database's ``verdicts``
table, which is what ``shadow rollout advance`` checks.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import duckdb

from results.errors import ResultsError, overwrite_problem
from shadow.cli import EXIT_HARNESS, add_database_flag, add_mkdir_flag, output_folder_problem
from shadow.gate.cohorts import Cohort, cohorts_sha256, load_cohorts
from shadow.gate.errors import GateError
from shadow.gate.evaluate import GateResult, evaluate, store_verdicts
from shadow.gate.outputs import dumps, to_junit, to_markdown, write_artifact
from shadow.results.reader import open_results, run_progress

__all__ = ["register", "run_gate"]

EXIT_INSUFFICIENT = 3


def _as_of(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date-time like 2026-11-28T12:00:00Z"
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def register(sub: Any, groups: dict[str, Any]) -> None:
    del groups
    parser = sub.add_parser(
        "gate",
        help="judge each cohort PASS / MARGINAL / FAIL / INSUFFICIENT_DATA and exit with the CI code",
        description=(
            "Judge every cohort of COHORTS on the results in DATABASE. Exit code: 0 PASS, 1 FAIL, "
            "2 MARGINAL (needs sign-off), 3 INSUFFICIENT_DATA, 4 harness error; the worst cohort decides."
        ),
    )
    add_database_flag(parser)
    parser.add_argument("--cohorts", required=True, metavar="FILE", help="cohorts TOML file")
    parser.add_argument("--json", metavar="FILE", help="write the verdict JSON here ('-' for stdout)")
    parser.add_argument(
        "--junit", metavar="FILE", help="write JUnit XML here (a test case per cohort and check)"
    )
    parser.add_argument(
        "--markdown", metavar="FILE", help="write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)"
    )
    parser.add_argument("--no-store", action="store_true", help="do not append the verdicts to the database")
    parser.add_argument(
        "--identity",
        metavar="ID",
        help="judge the results of this identity (id or unique prefix, as 'shadow summary' or a "
        "previous gate printed it); default: the latest session's identity",
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="judge a run that is still going on what has landed so far (otherwise exit 3, "
        "INSUFFICIENT_DATA); such verdicts are stored as partial and cannot advance a rollout",
    )
    parser.add_argument(
        "--since",
        metavar="T",
        help="judge only the traces production captured at or after T (ISO-8601, UTC unless it "
        "names a zone, or epoch seconds): a window of a continuous shadow run (docs/LIVE.md)",
    )
    add_mkdir_flag(parser)
    parser.add_argument("--as-of", type=_as_of, metavar="TIME",
                        help="judge as of this UTC time (registry expiry, verdict timestamps); default now")  # fmt: skip
    parser.set_defaults(func=run_gate)


def _harness_error(args: argparse.Namespace, exc: GateError | OSError) -> int:
    print(f"shadow gate: harness error: {exc}", file=sys.stderr)
    if args.json:
        document = {"schema": "shadow-verdict/1", "verdict": "HARNESS_ERROR", "exit_code": EXIT_HARNESS,
                    "error": str(exc), "cohorts": []}  # fmt: skip
        with contextlib.suppress(OSError):  # the --json path itself failed; the message above says so
            write_artifact(args.json, json.dumps(document, indent=2) + "\n", mkdir=args.mkdir)
    return EXIT_HARNESS


def _write_artifacts(args: argparse.Namespace, result: Any) -> None:
    """Every requested artifact; an unwritable path is an OSError that names it."""
    for flag, path, render in (("--json", args.json, dumps), ("--junit", args.junit, to_junit),
                               ("--markdown", args.markdown, to_markdown)):  # fmt: skip
        if not path:
            continue
        problem = overwrite_problem(path, flag)
        if problem:
            raise OSError(problem)
        try:
            write_artifact(path, render(result), mkdir=args.mkdir)
        except OSError as exc:
            raise OSError(
                f"cannot write {flag} {path} ({exc.strerror or exc}): choose a writable path; "
                "the verdicts themselves are already stored in the database"
            ) from exc


def _warn_if_incomplete(database: str, identity: str | None) -> None:
    """A verdict on a run that was interrupted (Ctrl-C, a cancelled job) or failed covers only part of the
    corpus: say so on stderr, since the verdict itself cannot tell."""
    try:
        con = open_results(database, identity)
    except ResultsError:
        return  # evaluate() already opened it; a race here is not worth failing the gate over
    try:
        row = con.execute("SELECT status FROM provenance ORDER BY started_at DESC LIMIT 1").fetchone()
    except duckdb.Error:
        row = None  # an older database without provenance
    finally:
        con.close()
    if row is not None and row[0] != "finished":
        print(
            f"shadow gate: warning: the last 'shadow run' session on {database} is {row[0]}: these verdicts "
            "cover only the traces stored so far; rerun 'shadow run' with the same --db to finish it",
            file=sys.stderr,
        )


def _run_going(database: str, identity: str | None) -> str | None:
    """ "run still going (N traces so far ...)" when a 'shadow run' of the judged identity is in progress."""
    try:
        con = open_results(database, identity)
    except ResultsError:
        return None  # evaluate() reports the problem precisely
    try:
        progress = run_progress(con)
    finally:
        con.close()
    return progress.describe() if progress is not None and progress.going else None


def _still_going(args: argparse.Namespace, going: str) -> int:
    """No verdict on a run still going: INSUFFICIENT_DATA (exit 3), nothing stored."""
    message = (
        f"{args.db}: {going}; no verdict on an incomplete run: wait for 'shadow run' to finish, or "
        "pass --allow-partial to judge what has landed (stored as partial: it cannot advance a rollout)"
    )
    print(f"shadow gate: INSUFFICIENT_DATA: {message}", file=sys.stderr)
    print(
        f"gate: INSUFFICIENT_DATA (exit code {EXIT_INSUFFICIENT})",
        file=sys.stderr if "-" in (args.json, args.junit, args.markdown) else sys.stdout,
    )
    if args.json:
        document = {
            "schema": "shadow-verdict/1",
            "verdict": "INSUFFICIENT_DATA",
            "exit_code": EXIT_INSUFFICIENT,
            "error": message,
            "run_in_progress": True,
            "cohorts": [],
        }
        write_artifact(args.json, json.dumps(document, indent=2) + "\n", mkdir=args.mkdir)
    return EXIT_INSUFFICIENT


def _evaluate_window(
    args: argparse.Namespace, cohorts: Sequence[Cohort], now: dt.datetime, partial: bool
) -> GateResult:
    """The verdicts on the traces captured since ``--since`` (shadow.results.window): judged on a scratch
    copy of that window, stored (by the caller) in ``--db`` with ``captured_since``."""
    from dataclasses import replace

    from shadow.results.window import parse_since, window_copy

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        raise GateError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="shadow-window-") as folder:
        try:
            window = window_copy(args.db, args.identity, since, folder)
        except ResultsError as exc:
            raise GateError(str(exc)) from None
        print(f"window: {window.describe()}", file=sys.stderr)
        result = evaluate(
            window.path, cohorts, now=now, cohorts_sha256=cohorts_sha256(args.cohorts), partial=partial
        )
    return replace(result, database=str(args.db), captured_since=since)


def run_gate(args: argparse.Namespace) -> int:
    now = args.as_of or dt.datetime.now(dt.UTC)
    for flag, path in (("--json", args.json), ("--junit", args.junit), ("--markdown", args.markdown)):
        problem = output_folder_problem(path, flag, mkdir=args.mkdir)
        if problem:  # before judging: a gate that cannot write its artifacts stores no verdicts either
            print(f"shadow gate: harness error: {problem}", file=sys.stderr)
            return EXIT_HARNESS
    try:
        cohorts = load_cohorts(args.cohorts)
        going = _run_going(args.db, args.identity)
        if going and not args.allow_partial:
            return _still_going(args, going)
        if args.since is not None:
            result = _evaluate_window(args, cohorts, now, going is not None)
        else:
            result = evaluate(
                args.db,
                cohorts,
                now=now,
                identity=args.identity,
                cohorts_sha256=cohorts_sha256(args.cohorts),
                partial=going is not None,
            )
        if not args.no_store:
            store_verdicts(args.db, result)
    except GateError as exc:
        return _harness_error(args, exc)
    # An artifact written to stdout ('-') must be the only thing there: the human lines go to stderr.
    human = sys.stderr if "-" in (args.json, args.junit, args.markdown) else sys.stdout
    judged = result.identity
    if result.partial:
        print(
            f"shadow gate: warning: {going}: judging what has landed so far (--allow-partial); these verdicts are "
            "stored as partial and cannot advance a rollout",
            file=sys.stderr,
        )
    else:
        _warn_if_incomplete(args.db, judged.id if judged else None)
    print(
        f"judging {judged.describe()}"
        if judged
        else "judging every result in the file (it records no identity: written before identities existed)",
        file=human,
    )
    for verdict in result.verdicts:
        print(
            f"{verdict.verdict:<17} {verdict.cohort} (score {verdict.score:.0f}, {verdict.n_traces} traces)",
            file=human,
        )
        print(f"    {verdict.reason}", file=human)
    print(f"gate: {result.overall} (exit code {result.exit_code})", file=human)
    try:
        _write_artifacts(args, result)
    except OSError as exc:
        print(f"shadow gate: harness error: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    return result.exit_code
