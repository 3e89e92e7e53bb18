"""``shadow rollout status|advance|rollback|route``: the rollout lifecycle of each cohort.

``advance`` is refused (exit 1, with the reason) without a PASS verdict newer than the cohort's last
change; a bad database or argument is a harness error (exit 4).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from collections import Counter
from typing import Any

from shadow.cli import EXIT_FAIL, EXIT_HARNESS, EXIT_OK, finite_number
from shadow.gate.cohorts import load_cohorts
from shadow.gate.errors import GateError, RolloutRefused
from shadow.gate.evidence import workflows_in
from shadow.gate.rollout import RolloutBook, build_router
from shadow.gate.router import RootWorkflow

__all__ = ["register"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _percent(text: str) -> float:
    """--to: a usage error (exit 4) when it is not a percentage, rather than a refusal (exit 1)."""
    value = finite_number(positive=True)(text)
    if value > 100.0:
        raise argparse.ArgumentTypeError(f"{text!r} is above 100 (100 = cutover)")
    return value


def register(sub: Any, groups: dict[str, Any]) -> None:
    rollout = sub.add_parser("rollout", help="show and change the rollout state of cohorts (shadow, canary, cutover)")
    actions = rollout.add_subparsers(dest="rollout_command", metavar="ACTION", parser_class=type(rollout))
    groups["rollout"] = actions

    status = actions.add_parser("status", help="each cohort's state, since when, and its latest verdict")
    status.add_argument("--db", required=True, metavar="DATABASE", help="the results database")
    status.add_argument("--cohorts", metavar="FILE", help="also list these cohorts (still in shadow if never moved)")
    status.set_defaults(func=_status)

    advance = actions.add_parser(
        "advance",
        help="move a cohort forward (needs a PASS verdict newer than its last change)",
        description="shadow -> canary 1 % -> 5 % -> 25 % -> 50 % -> cutover, or straight to --to PERCENT (100: cutover).",
    )
    advance.add_argument("cohort", metavar="COHORT")
    advance.add_argument("--db", required=True, metavar="DATABASE")
    advance.add_argument("--to", type=_percent, metavar="PERCENT", help="canary percentage to go to (100 = cutover)")
    advance.add_argument("--actor", default=None, help="who made the change (default: the login name)")
    advance.add_argument("--note", default="", help="why, for the history")
    advance.set_defaults(func=_advance)

    route = actions.add_parser(
        "route",
        help="which engine the router picks for a workflow, or for every workflow in the database",
        description="Without WORKFLOW_ID: count, per cohort, the database's workflows the router sends to each engine.",
    )
    route.add_argument("workflow_id", nargs="?", metavar="WORKFLOW_ID")
    route.add_argument("--db", required=True, metavar="DATABASE")
    route.add_argument("--cohorts", required=True, metavar="FILE", help="the cohorts TOML file (routing order)")
    route.add_argument("--owner", default="unknown")
    route.add_argument("--tag", action="append", default=[], dest="tags", help="a tag of the workflow (repeatable)")
    route.add_argument("--type", default="generic", dest="workflow_type", help="the workflow type")
    route.set_defaults(func=_route)

    rollback = actions.add_parser("rollback", help="send a cohort back to the legacy engine (always allowed)")
    rollback.add_argument("cohort", metavar="COHORT")
    rollback.add_argument("--db", required=True, metavar="DATABASE")
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
        rows = RolloutBook(args.db, clock=_now).states(names)
    except GateError as exc:
        return _fail(exc)
    if not rows:
        print("no cohorts yet: run 'shadow gate' first, or pass --cohorts")
        return EXIT_OK
    print(f"{'COHORT':<24} {'STATE':<16} {'SINCE (UTC)':<20} LATEST VERDICT")
    for state, verdict in rows:
        since = f"{state.changed_at:%Y-%m-%d %H:%M:%S}" if state.changed_at else "-"
        latest = f"{verdict.verdict} at {verdict.created_at:%Y-%m-%d %H:%M:%S}" if verdict else "none"
        print(f"{state.cohort:<24} {state.describe():<16} {since:<20} {latest}")
    return EXIT_OK


def _advance(args: argparse.Namespace) -> int:
    try:
        state = RolloutBook(args.db, clock=_now).advance(
            args.cohort, to=args.to, actor=args.actor or _actor(), note=args.note
        )
    except GateError as exc:
        return _fail(exc)
    print(f"{state.cohort}: now {state.describe()} (on verdict {state.verdict_id})")
    return EXIT_OK


def _route(args: argparse.Namespace) -> int:
    try:
        book = RolloutBook(args.db, clock=_now)
        router = build_router(book, load_cohorts(args.cohorts))
        if args.workflow_id:
            root = RootWorkflow(args.workflow_id, args.owner, tuple(args.tags), args.workflow_type)
            decision = router.route(root)
            print(f"{decision.workflow_id} -> {decision.engine} ({decision.reason})")
            return EXIT_OK
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
        state = RolloutBook(args.db, clock=_now).rollback(args.cohort, actor=args.actor or _actor(), note=args.note)
    except GateError as exc:
        return _fail(exc)
    print(f"{state.cohort}: rolled back; new runs start on the legacy engine, running ones restart there")
    return EXIT_OK
