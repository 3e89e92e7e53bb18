"""The ``shadow`` command line. Each command group lives in its own module under ``shadow.commands``.

Exit codes are one contract across every command (and the CI gate):
0 success / PASS, 1 findings / FAIL, 2 MARGINAL, 3 INSUFFICIENT_DATA, 4 harness error (bad input,
wrong flag, unreadable file or database, and any unexpected exception: a bug must not read as FAIL),
130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM (shadow.interrupts).
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["EXIT_FAIL", "EXIT_HARNESS", "EXIT_INTERRUPTED", "EXIT_OK", "add_mkdir_flag", "finite_number", "main",
           "output_folder_problem"]

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_HARNESS = 4
EXIT_INTERRUPTED = 130

# Every module here defines ``register(subparsers, groups)``; a command sets ``func(args) -> int``.
COMMAND_MODULES = (
    "shadow.commands.corpus",
    "shadow.commands.corpus_import",
    "shadow.commands.report",
    "shadow.commands.run",
    "shadow.commands.summary",
    "shadow.commands.replay",
    "shadow.commands.gate",
    "shadow.commands.rollout",
    "shadow.commands.capture",
)


def finite_number(*, positive: bool) -> Callable[[str], float]:
    """An argparse type for seconds and thresholds: finite, and > 0 (positive) or >= 0. ``float()`` alone
    takes 'nan', and a NaN threshold compares false with everything (a NaN noise threshold hid every
    divergence)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(
                f"{text!r} must be a finite number {'> 0' if positive else '>= 0'}")
        return value

    return parse


def add_mkdir_flag(parser: argparse.ArgumentParser) -> None:
    """``--mkdir``: the same flag on every command that writes an output file."""
    parser.add_argument("--mkdir", action="store_true",
                        help="create the output file's folder when it is missing (without it, a missing folder is "
                             "an error, exit 4: a typo must not scatter folders)")


def output_folder_problem(path: str | os.PathLike[str] | None, flag: str, *, mkdir: bool) -> str | None:
    """Why ``path`` cannot be written for want of its folder, or None (its folder exists, or ``mkdir`` and it
    was created now). '-' (stdout) and None (not requested) are fine."""
    if path is None or str(path) == "-":
        return None
    folder = Path(path).parent
    if folder.is_dir():
        return None
    if folder.exists():
        return f"cannot write {flag} {path}: {folder} is not a folder; choose another path"
    if mkdir:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"cannot write {flag} {path}: cannot create the folder {folder} ({exc.strerror or exc}); choose another path"
        return None
    return (f"cannot write {flag} {path}: the folder {folder} does not exist; create it, choose another path, or "
            "pass --mkdir to have it created")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 4 (harness error), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_HARNESS, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for usage.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="shadow",
        description=(
            "Shadow-test a workflow engine migration: replay captured production traces on the legacy "
            "polling engine and the actor engine, compare what they did, and gate the rollout."
        ),
        epilog="Exit codes: 0 ok/PASS, 1 FAIL or findings, 2 MARGINAL, 3 INSUFFICIENT_DATA, 4 harness error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    corpus = sub.add_parser("corpus", help="generate, import, validate and summarize trace corpora")
    groups = {"corpus": corpus.add_subparsers(dest="corpus_command", metavar="ACTION", parser_class=_Parser)}
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. SIGINT and SIGTERM at any moment (even while the commands load) end it with one line
    on stderr and exit 130 / 143, never a traceback (shadow.interrupts)."""
    from shadow import interrupts

    previous = {signum: signal.getsignal(signum) for signum in interrupts.SIGNALS}
    interrupts.install()
    try:
        return _main(argv)
    except KeyboardInterrupt:
        interrupts.note()
        print(f"shadow: interrupted by {interrupts.signal_name()} before the command started; nothing was done",
              file=sys.stderr)
        return interrupts.exit_code()
    finally:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in previous.items():
                if handler is not None:
                    signal.signal(signum, handler)


def _main(argv: Sequence[str] | None) -> int:
    from shadow import interrupts

    interrupts.checkpoint("cli-start")
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # A group without an action: show that group's help.
        target = parser
        if args.command:
            target = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr,index]
        target.print_help()
        return EXIT_HARNESS  # a missing action is a usage error, like a wrong one: scripts must not pass on it
    try:
        return int(func(args))
    except KeyboardInterrupt:
        interrupts.note()
        print(f"shadow {args.command}: interrupted by {interrupts.signal_name()}; stopped without finishing",
              file=sys.stderr)
        return interrupts.exit_code()
    except BrokenPipeError:
        # `shadow ... | head`: the reader left; nothing more to say and nobody to say it to.
        sys.stderr.close()
        return EXIT_HARNESS
    except OSError as exc:
        # A file the command could not read or write that its own checks did not anticipate.
        print(f"shadow {args.command}: harness error: {exc}; check the path and its permissions", file=sys.stderr)
        return EXIT_HARNESS
    except Exception as exc:
        # A bug must never read as a FAIL (exit 1) in CI: it is a harness error, with the traceback on request.
        if os.environ.get("SHADOW_DEBUG"):
            traceback.print_exc()
        print(f"shadow {args.command}: internal error: {type(exc).__name__}: {exc}\n"
              "This is a bug in workflow-shadow, not a finding; rerun with SHADOW_DEBUG=1 for the traceback "
              "and report it.", file=sys.stderr)
        return EXIT_HARNESS


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
