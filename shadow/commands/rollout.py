"""``shadow rollout status|history|advance|rollback|route``: the rollout lifecycle of each cohort.

The state lives in its own store, ``--state FILE`` (SQLite) or ``--state postgresql://...`` (default:
$SHADOW_ROLLOUT_STATE), never in a results database. ``advance`` reads the verdict from ``--db`` and is
refused (exit 1, one line saying why) unless shadow.gate.rollout's conditions hold; a bad store, database
or argument is a harness error (exit 4), and a foreign state file is refused before anything is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import os
import sys
from collections import Counter
from typing import Any

from shadow.cli import EXIT_FAIL, EXIT_HARNESS, EXIT_OK, finite_number
from shadow.gate.cohorts import cohorts_sha256, load_cohorts
from shadow.gate.errors import GateError, RolloutRefused
from shadow.gate.evidence import workflows_in
from shadow.gate.rollout import RolloutBook, build_router, read_verdict
from shadow.gate.router import RootWorkflow
from shadow.gate.state import ci_job, current_actor

__all__ = ["register"]

STATE_ENV = "SHADOW_ROLLOUT_STATE"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _percent(text: str) -> float:
    """--to: a usage error (exit 4) when it is not a percentage, rather than a refusal (exit 1)."""
    value = finite_number(positive=True)(text)
    if value > 100.0:
        raise argparse.ArgumentTypeError(f"{text!r} is above 100 (100 = cutover)")
    return value


def _state_flag(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(STATE_ENV) or None
    parser.add_argument(
        "--state",
        required=default is None,
        default=default,
        metavar="FILE_OR_URL",
        help="the rollout state store: a SQLite file (created if new) or postgresql://... "
        f"(default ${STATE_ENV}); never a results database",
    )


def register(sub: Any, groups: dict[str, Any]) -> None:
    rollout = sub.add_parser(
        "rollout", help="show and change the rollout state of cohorts (shadow, canary, cutover)"
    )
    actions = rollout.add_subparsers(dest="rollout_command", metavar="ACTION", parser_class=type(rollout))
    groups["rollout"] = actions

    status = actions.add_parser(
        "status", help="each cohort's state, since when, who moved it, its latest verdict"
    )
    _state_flag(status)
    status.add_argument(
        "--db", metavar="DATABASE", help="also show each cohort's latest verdict in this database"
    )
    status.add_argument(
        "--cohorts", metavar="FILE", help="also list these cohorts (still in shadow if never moved)"
    )
    status.set_defaults(func=_status)

    history = actions.add_parser(
        "history", help="every change (append-only): when, who, which CI job, on which verdict"
    )
    history.add_argument("cohort", nargs="?", metavar="COHORT")
    _state_flag(history)
    history.set_defaults(func=_history)

    advance = actions.add_parser(
        "advance",
        help="move a cohort forward (needs a fresh PASS verdict on the same candidate and cohorts file)",
        description="shadow -> canary 1 % -> 5 % -> 25 % -> 50 % -> cutover, or straight to --to PERCENT (100: cutover). "
        "Needs a PASS verdict in --db for the cohort, judged with the --cohorts file, about the candidate "
        "the canary runs, over traces captured after the cohort's last change.",
    )
    advance.add_argument("cohort", metavar="COHORT")
    _state_flag(advance)
    advance.add_argument(
        "--db", required=True, metavar="DATABASE", help="the results database holding the verdict"
    )
    advance.add_argument(
        "--cohorts",
        required=True,
        metavar="FILE",
        help="the cohorts file the verdict was judged with (its sha256 must match)",
    )
    advance.add_argument(
        "--verdict", metavar="VERDICT_ID", help="advance on this verdict (default: the latest)"
    )
    advance.add_argument(
        "--to", type=_percent, metavar="PERCENT", help="canary percentage to go to (100 = cutover)"
    )
    advance.add_argument(
        "--actor",
        default=None,
        help="who made the change (default: $GITHUB_ACTOR, $GITLAB_USER_LOGIN or the login name)",
    )
    advance.add_argument("--note", default="", help="why, for the history")
    advance.set_defaults(func=_advance)

    route = actions.add_parser(
        "route",
        help="which engine the router picks for a workflow, or for every workflow in a results database",
        description="Without WORKFLOW_ID: count, per cohort, the workflows of --db the router sends to each engine.",
    )
    route.add_argument("workflow_id", nargs="?", metavar="WORKFLOW_ID")
    _state_flag(route)
    route.add_argument(
        "--db", metavar="DATABASE", help="a results database whose workflows to route (no WORKFLOW_ID)"
    )
    route.add_argument(
        "--cohorts", required=True, metavar="FILE", help="the cohorts TOML file (routing order)"
    )
    route.add_argument("--owner", default="unknown")
    route.add_argument(
        "--tag", action="append", default=[], dest="tags", help="a tag of the workflow (repeatable)"
    )
    route.add_argument("--type", default="generic", dest="workflow_type", help="the workflow type")
    route.set_defaults(func=_route)

    rollback = actions.add_parser("rollback", help="send a cohort back to the legacy engine (always allowed)")
    rollback.add_argument("cohort", metavar="COHORT")
    _state_flag(rollback)
    rollback.add_argument("--actor", default=None)
    rollback.add_argument("--note", default="")
    rollback.set_defaults(func=_rollback)


def _fail(exc: GateError) -> int:
    if isinstance(exc, RolloutRefused):
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(f"shadow rollout: harness error: {exc}", file=sys.stderr)
    return EXIT_HARNESS


def _status(args: argparse.Namespace) -> int:
    try:
        names = [c.name for c in load_cohorts(args.cohorts)] if args.cohorts else []
        states = RolloutBook(args.state, clock=_now).states(names)
        verdicts = {s.cohort: read_verdict(args.db, s.cohort) for s in states} if args.db else {}
    except GateError as exc:
        return _fail(exc)
    if not states:
        print("no cohorts yet: nothing has been advanced in this state store; pass --cohorts to list yours")
        return EXIT_OK
    print(f"{'COHORT':<24} {'STATE':<16} {'SINCE (UTC)':<20} {'BY':<16} LATEST VERDICT")
    for state in states:
        since = f"{state.changed_at:%Y-%m-%d %H:%M:%S}" if state.changed_at else "-"
        verdict = verdicts.get(state.cohort)
        latest = (
            f"{verdict.verdict} at {verdict.created_at:%Y-%m-%d %H:%M:%S}"
            if verdict
            else "none"
            if args.db
            else "- (pass --db)"
        )
        print(f"{state.cohort:<24} {state.describe():<16} {since:<20} {(state.actor or '-'):<16} {latest}")
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    try:
        rows = RolloutBook(args.state, clock=_now).history(args.cohort)
    except GateError as exc:
        return _fail(exc)
    if not rows:
        print("no changes recorded" + (f" for {args.cohort!r}" if args.cohort else ""))
        return EXIT_OK
    for row in rows:
        assert row.changed_at is not None
        on = f" on verdict {row.verdict_id}" if row.verdict_id else ""
        job = f" ({row.ci_job})" if row.ci_job else ""
        note = f": {row.note}" if row.note else ""
        print(
            f"{row.changed_at:%Y-%m-%d %H:%M:%S} {row.cohort} -> {row.describe()} by {row.actor}{job}{on}{note}"
        )
    return EXIT_OK


def _advance(args: argparse.Namespace) -> int:
    try:
        book = RolloutBook(args.state, clock=_now)
        known = [
            c.name for c in load_cohorts(args.cohorts)
        ]  # a malformed file is a harness error, not a refusal
        if args.cohort not in known:
            close = difflib.get_close_matches(args.cohort, known, n=1)
            print(
                f"shadow rollout: unknown cohort {args.cohort!r}"
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + f"; cohorts in {args.cohorts}: {', '.join(known)}",
                file=sys.stderr,
            )
            return EXIT_HARNESS
        digest = cohorts_sha256(args.cohorts)
        verdict = read_verdict(args.db, args.cohort, args.verdict)
        if args.verdict and verdict is None:
            print(f"shadow rollout: harness error: {args.db}: no verdict {args.verdict!r}", file=sys.stderr)
            return EXIT_HARNESS
        state = book.advance(
            args.cohort,
            verdict=verdict,
            cohorts_sha256=digest,
            to=args.to,
            actor=args.actor or current_actor(),
            ci_job=ci_job(),
            note=args.note,
            results_database=args.db,
        )
    except GateError as exc:
        return _fail(exc)
    print(
        f"{state.cohort}: now {state.describe()} (on verdict {state.verdict_id}, candidate "
        f"{state.candidate_engine or '?'})"
    )
    return EXIT_OK


def _route(args: argparse.Namespace) -> int:
    try:
        book = RolloutBook(args.state, clock=_now)
        router = build_router(book, load_cohorts(args.cohorts))
        if args.workflow_id:
            root = RootWorkflow(args.workflow_id, args.owner, tuple(args.tags), args.workflow_type)
            decision = router.route(root)
            print(f"{decision.workflow_id} -> {decision.engine} ({decision.reason})")
            return EXIT_OK
        if not args.db:
            print(
                "shadow rollout: harness error: give a WORKFLOW_ID, or --db to route a results database's "
                "workflows",
                file=sys.stderr,
            )
            return EXIT_HARNESS
        roots = workflows_in(args.db)
    except GateError as exc:
        return _fail(exc)
    counts: Counter[tuple[str, str]] = Counter()
    for root in roots:
        decision = router.route(root)
        counts[(decision.cohort or "(no cohort)", str(decision.engine))] += 1
    print(f"{'COHORT':<24} {'LEGACY':>8} {'ACTOR':>8}")
    for cohort in dict.fromkeys(c for c, _ in sorted(counts)):
        print(f"{cohort:<24} {counts[(cohort, 'legacy')]:>8} {counts[(cohort, 'actor')]:>8}")
    return EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    try:
        state = RolloutBook(args.state, clock=_now).rollback(
            args.cohort, actor=args.actor or current_actor(), ci_job=ci_job(), note=args.note
        )
    except GateError as exc:
        return _fail(exc)
    print(f"{state.cohort}: rolled back; new runs start on the legacy engine, running ones restart there")
    return EXIT_OK
