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
from typing import Any

__all__ = [
    "COMMANDS",
    "EXIT_FAIL",
    "EXIT_HARNESS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "add_database_flag",
    "add_mkdir_flag",
    "finite_number",
    "main",
    "output_folder_problem",
]

from results.exitcodes import EXIT_FAIL, EXIT_HARNESS, EXIT_INTERRUPTED, EXIT_OK

# Every module here defines ``register(subparsers, groups)``; a command sets ``func(args) -> int``.
# The CLI imports only the module(s) of the command it runs: a command module may load DuckDB, pyarrow,
# scipy or the engines, and `shadow --help` or `shadow corpus validate` must not pay for the others. The help
# line of each command is therefore written here once (tests/shadow/test_cli_start.py checks that it is the
# one the module registers).
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "corpus": (
        ("shadow.commands.corpus", "shadow.commands.corpus_import"),
        "generate, import, validate and summarize trace corpora",
    ),
    "report": (
        ("shadow.commands.report",),
        "render a self-contained HTML divergence report from a results database",
    ),
    "run": (
        ("shadow.commands.run",),
        "replay a corpus on baseline, candidate and an A/A replica; store results",
    ),
    "summary": (("shadow.commands.summary",), "print the headline of a results database"),
    "replay": (("shadow.commands.replay",), "replay one trace on one engine and print the canonical record"),
    "gate": (
        ("shadow.commands.gate",),
        "judge each cohort PASS / MARGINAL / FAIL / INSUFFICIENT_DATA and exit with the CI code",
    ),
    "rollout": (
        ("shadow.commands.rollout",),
        "show and change the rollout state of cohorts (shadow, canary, cutover)",
    ),
    "capture": (
        ("shadow.commands.capture",),
        "export finished runs from a legacy engine store as shadow-trace/1",
    ),
    "handoff": (
        ("shadow.commands.handoff",),
        "cut traces over from the legacy to the actor engine mid-run; compare outcomes",
    ),
}
COMMAND_MODULES = tuple(module for modules, _ in COMMANDS.values() for module in modules)


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
                f"{text!r} must be a finite number {'> 0' if positive else '>= 0'}"
            )
        return value

    return parse


def add_mkdir_flag(parser: argparse.ArgumentParser) -> None:
    """``--mkdir``: the same flag on every command that writes an output file."""
    parser.add_argument(
        "--mkdir",
        action="store_true",
        help="create the output file's folder when it is missing (without it, a missing folder is "
        "an error, exit 4: a typo must not scatter folders)",
    )


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
    return (
        f"cannot write {flag} {path}: the folder {folder} does not exist; create it, choose another path, or "
        "pass --mkdir to have it created"
    )


def add_database_flag(
    parser: argparse.ArgumentParser, help: str = "results database written by 'shadow run'"
) -> None:
    """``--db DATABASE``: how every command is given the results database. Readers (summary, report, gate)
    still accept it as their first positional argument, as before; :func:`main` merges the two into
    ``args.db``."""
    parser.add_argument("--db", metavar="DATABASE", help=help + " (required)")
    parser.add_argument("db_positional", nargs="?", metavar="DATABASE", help=argparse.SUPPRESS)


def _merge_database(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not hasattr(args, "db_positional"):
        return
    positional = args.db_positional
    del args.db_positional
    if positional is not None and args.db is not None and positional != args.db:
        parser.error(
            f"shadow {args.command}: two databases given ({positional} and --db {args.db}); give one"
        )
    args.db = args.db if args.db is not None else positional
    if args.db is None:
        parser.error(f"shadow {args.command}: the results database is missing; pass --db DATABASE")


# One example per command, shown at the end of its --help (a command module may write its own epilog).
EXAMPLES: dict[str, str] = {
    "corpus generate": "shadow corpus generate --seed 7 --count 200 -o corpus.jsonl.gz",
    "corpus validate": "shadow corpus validate corpus.jsonl.gz more/*.jsonl",
    "corpus stats": "shadow corpus stats corpus.jsonl.gz --coverage --json | jq .coverage_missing",
    "corpus import": "shadow corpus import --from wfformat ../shared/corpora/wfinstances -o wf.jsonl.gz",
    "run": "shadow run corpus.jsonl.gz --db results.duckdb --where \"workflow_type = 'etl'\" --workers 2",
    "summary": "shadow summary --db results.duckdb",
    "report": "shadow report --db results.duckdb -o report.html",
    "replay": "shadow replay corpus.jsonl.gz --trace gen-7-00003 --engine actor --fault crash:0@60",
    "gate": "shadow gate --db results.duckdb --cohorts cohorts.toml --json verdict.json --junit junit.xml",
    "rollout status": "shadow rollout status --state rollout.sqlite --db results.duckdb --cohorts cohorts.toml",
    "rollout advance": "shadow rollout advance etl-daily --state rollout.sqlite --db results.duckdb --cohorts cohorts.toml "
    "--to 5",
    "rollout route": "shadow rollout route --state rollout.sqlite --cohorts cohorts.toml --db results.duckdb",
    "rollout rollback": "shadow rollout rollback etl-daily --state rollout.sqlite --note 'p99 regression'",
    "rollout history": "shadow rollout history etl-daily --state postgresql://ci@db/rollout",
    "capture": "shadow capture --store legacy.db -o traces.jsonl.gz",
    "handoff": "shadow handoff corpus.jsonl.gz --db handoffs.duckdb --at 25% --at step:extract --at random --seed 1",
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default when it has one worth showing (not None/False/empty) and its help does
    not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            text
            and "default" not in text
            and action.option_strings
            and default not in (None, False, "", [], ())
            and default is not argparse.SUPPRESS
        ):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 4 (harness error), like every other bad input; help shows
    defaults, and the command's example (:data:`EXAMPLES`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("formatter_class") in (None, argparse.HelpFormatter):
            kwargs["formatter_class"] = _HelpFormatter
        super().__init__(*args, **kwargs)
        name = self.prog.removeprefix("shadow ").strip()
        if name in EXAMPLES:
            example = f"Example: {EXAMPLES[name]}"
            self.epilog = f"{self.epilog}\n\n{example}" if self.epilog else example

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_HARNESS, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for usage.\n")


def version() -> str:
    """The installed package's version (``workflow-shadow 0.1.0``), or 'unknown' from a bare source tree."""
    from importlib import metadata

    try:
        return metadata.version("workflow-shadow")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Version(argparse.Action):
    """``--version`` that looks the version up only when asked (importlib.metadata is not free)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, help="print the version and exit")

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(f"workflow-shadow {version()}\n")
        parser.exit(EXIT_OK)


def build_parser(command: str | None = None, *, full: bool = False) -> argparse.ArgumentParser:
    """The CLI parser. Only ``command``'s module(s) are imported and registered (every module with
    ``full``); every other command is a placeholder that knows only its help line, which is all that
    ``shadow --help`` and an 'invalid choice' error need."""
    parser = _Parser(
        prog="shadow",
        description=(
            "Shadow-test a workflow engine migration: replay captured production traces on the legacy "
            "polling engine and the actor engine, compare what they did, and gate the rollout."
        ),
        epilog="Exit codes: 0 ok/PASS, 1 FAIL or findings, 2 MARGINAL, 3 INSUFFICIENT_DATA, 4 harness error, "
        "130 interrupted. 'shadow COMMAND --help' shows each command's options, defaults and an example.",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    groups: dict[str, Any] = {}
    for name, (modules, help_line) in COMMANDS.items():
        if name == "corpus":
            corpus = sub.add_parser("corpus", help=help_line)
            groups["corpus"] = corpus.add_subparsers(
                dest="corpus_command", metavar="ACTION", parser_class=_Parser
            )
            if full or command == "corpus":
                for module in modules:
                    importlib.import_module(module).register(sub, groups)
        elif full or command == name:
            for module in modules:
                importlib.import_module(module).register(sub, groups)
        else:
            sub.add_parser(name, help=help_line)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (its first argument, since ``shadow`` itself takes no option with a
    value), or None."""
    return argv[0] if argv and not argv[0].startswith("-") else None


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
        print(
            f"shadow: interrupted by {interrupts.signal_name()} before the command started; nothing was done",
            file=sys.stderr,
        )
        return interrupts.exit_code()
    finally:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in previous.items():
                if handler is not None:
                    signal.signal(signum, handler)


def _main(argv: Sequence[str] | None) -> int:
    from shadow import interrupts

    interrupts.checkpoint("cli-start")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    _merge_database(parser, args)
    func = getattr(args, "func", None)
    if func is None:
        # A group without an action: show that group's help.
        target = parser
        if args.command:
            target = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr,index]
        target.print_help()
        return (
            EXIT_HARNESS  # a missing action is a usage error, like a wrong one: scripts must not pass on it
        )
    try:
        return int(func(args))
    except KeyboardInterrupt:
        interrupts.note()
        print(
            f"shadow {args.command}: interrupted by {interrupts.signal_name()}; stopped without finishing",
            file=sys.stderr,
        )
        return interrupts.exit_code()
    except BrokenPipeError:
        # `shadow ... | head`: the reader left; nothing more to say and nobody to say it to.
        sys.stderr.close()
        return EXIT_HARNESS
    except OSError as exc:
        # A file the command could not read or write that its own checks did not anticipate.
        print(
            f"shadow {args.command}: harness error: {exc}; check the path and its permissions",
            file=sys.stderr,
        )
        return EXIT_HARNESS
    except Exception as exc:
        # A bug must never read as a FAIL (exit 1) in CI: it is a harness error, with the traceback on request.
        if os.environ.get("SHADOW_DEBUG"):
            traceback.print_exc()
        print(
            f"shadow {args.command}: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in workflow-shadow, not a finding; rerun with SHADOW_DEBUG=1 for the traceback "
            "and report it.",
            file=sys.stderr,
        )
        return EXIT_HARNESS


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
