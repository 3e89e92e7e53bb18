"""``shadow run CORPUS... --db results.duckdb``: replay every trace on baseline, candidate and A/A."""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import os
import shlex
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from engines.api import DEFAULT_TIME_LIMIT
from results.errors import ResultsError
from results.exitcodes import EXIT_HARNESS, EXIT_OK
from shadow import interrupts
from shadow.campaign import CampaignError, check_campaign, load_campaign
from shadow.cli import finite_number
from shadow.dask_executor import DaskError
from shadow.engines import EngineSpecError, resolve_engine
from shadow.executors import Executor, InlineExecutor, ProcessExecutor
from shadow.noise import NoiseConfig, Registry, RegistryError
from shadow.runner import FollowSettings, RunReport, RunSettings, follow_shadow, run_shadow
from shadow.sources import META_COLUMNS, SelectionError

__all__ = ["register"]


# Seconds between progress lines when stderr is not a terminal (CI logs); SHADOW_PROGRESS_EVERY overrides.
PROGRESS_EVERY = 3.0


def register(sub: Any, groups: dict[str, Any]) -> None:
    del groups
    p = sub.add_parser(
        "run",
        help="replay a corpus on baseline, candidate and an A/A replica; store results",
        description="Replay every trace on the baseline (legacy), the candidate (actor) and a "
        "second baseline replica (A/A noise), compare, and store everything in DuckDB. "
        "Rerunning against the same --db resumes: stored traces are skipped.",
    )
    p.add_argument(
        "corpus",
        nargs="+",
        help="shadow-trace/1 JSON Lines files (.jsonl or .jsonl.gz); with --follow one "
        "growing .jsonl file or folder of segments",
    )
    p.add_argument("--db", required=True, help="results database file (created if missing)")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: cores); with --executor dask, the local cluster's workers "
        "(ignored with --scheduler: the cluster has its own)",
    )
    p.add_argument(
        "--executor",
        choices=("auto", "inline", "process", "dask"),
        default="auto",
        help="where trials run: auto (inline for --workers 1, else a process pool), inline, process, or "
        "dask (a local Dask cluster of --workers processes, or --scheduler's cluster; needs "
        "pip install 'workflow-shadow[dask]')",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --executor dask (implied): a running dask.distributed scheduler, e.g. "
        "tcp://10.0.0.5:8786 (docs/SCALING.md: dask-kubernetes, dask-jobqueue, dask scheduler)",
    )
    p.add_argument(
        "--batch-steps",
        type=int,
        default=None,
        help="--executor dask: recorded step attempts per task (default 250)",
    )
    p.add_argument(
        "--parts-dir",
        metavar="FOLDER",
        help="--executor dask: workers write each task's rows as Parquet parts in this folder (one the "
        "workers and this machine both see) instead of sending them back; the driver ingests and "
        "removes them",
    )
    p.add_argument("--candidate", default="actor", help="legacy|actor|oracle|module:factory (default actor)")
    p.add_argument("--candidate-nodes", type=int, help="nodes= for the candidate's factory (e.g. actor)")
    p.add_argument(
        "--candidate-fault",
        action="append",
        default=[],
        help="fault spec passed as faults= to the candidate's factory (repeatable), e.g. crash:0@30",
    )
    p.add_argument(
        "--faults",
        metavar="CAMPAIGN.toml",
        help="a fault campaign: each trace is also replayed on the candidate under each fault of the file, "
        "placed per trace (seeded), and compared with its own no-fault record; results in the "
        "fault_trials table, judged by the gate (docs/FAULTS.md)",
    )
    p.add_argument("--baseline", default="legacy", help="legacy|actor|oracle|module:factory (default legacy)")
    p.add_argument("--seed", type=int, default=0, help="baseline/candidate seed; the A/A replica uses seed+1")
    p.add_argument(
        "--where",
        metavar="PREDICATE",
        help="SQL predicate over trace metadata, e.g. \"owner = 'team-a' AND n_steps < 500\"; columns: "
        + ", ".join(META_COLUMNS)
        + " (tags is a list: list_contains(tags, 'daily'))",
    )
    p.add_argument("--sample", type=float, default=1.0, help="keep this share of traces (stable hash)")
    p.add_argument("--limit", type=int, help="replay at most N traces this session")
    p.add_argument("--registry", help="known-divergence registry (TOML)")
    p.add_argument(
        "--time-limit",
        type=finite_number(positive=True),
        default=DEFAULT_TIME_LIMIT,
        help="virtual seconds after which an unfinished run is reported stuck",
    )
    p.add_argument(
        "--noise-relative",
        type=finite_number(positive=False),
        default=0.20,
        help="noise filter: relative threshold",
    )
    p.add_argument(
        "--noise-absolute",
        type=finite_number(positive=False),
        default=0.0003,
        help="noise filter: share of traces",
    )
    p.add_argument("--batch-size", type=int, default=16, help="traces per executor batch")
    p.add_argument(
        "--flush-every", type=int, default=256, help="write to the database every N traces (or 5 s)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--new-session",
        action="store_true",
        help="the database holds results of another identity (candidate, baseline, corpus, seeds, time "
        "limit or harness version): start a new identity beside them instead of refusing; readers "
        "judge the latest identity unless given --identity",
    )
    p.add_argument(
        "--exact",
        action="store_true",
        help="simulate every poll, heartbeat and reconciliation tick by tick instead of jumping over "
        "idle periods (same records, much slower; for checking the fast path)",
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="keep going: replay traces as they are appended to CORPUS (a .jsonl file or a folder such as "
        "'shadow capture --follow -o DIR/' writes), storing each batch with how far it has read; a "
        "restart continues there (docs/LIVE.md)",
    )
    p.add_argument(
        "--max-traces", type=int, metavar="N", help="--follow: stop after replaying N traces this session"
    )
    p.add_argument(
        "--duration",
        type=finite_number(positive=True),
        metavar="SECONDS",
        help="--follow: stop after this many wall-clock seconds",
    )
    p.add_argument(
        "--poll-interval",
        type=finite_number(positive=True),
        default=1.0,
        metavar="SECONDS",
        help="--follow: seconds between looks at the source when nothing new is there (default 1)",
    )
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """SIGINT or SIGTERM (a CI job cancelled or timed out, ``kill``) end the session cleanly: finished traces
    are flushed, the session is marked interrupted, and a rerun resumes (shadow.interrupts, via cli.main)."""
    return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    problem = _follow_problem(args)
    if problem:
        err.print(f"[red]error:[/] {escape(problem)}", highlight=False)
        return EXIT_HARNESS
    if not 0.0 < args.sample <= 1.0:
        err.print(f"[red]error:[/] --sample {args.sample} must be in (0, 1]")
        return EXIT_HARNESS
    for wrong, message in (
        (args.workers < 1, f"--workers {args.workers}: give 1 or more worker processes"),
        (args.limit is not None and args.limit < 0, f"--limit {args.limit}: give 0 or more traces"),
        (args.time_limit <= 0, f"--time-limit {args.time_limit}: give virtual seconds > 0"),
    ):
        if wrong:
            err.print(f"[red]error:[/] {message}", highlight=False)
            return EXIT_HARNESS
    try:
        registry = Registry.load(args.registry) if args.registry else Registry()
        registry.check(dt.datetime.now(dt.UTC).date())
        candidate = resolve_engine(args.candidate, **_candidate_options(args))
        campaign = None
        if args.faults:
            campaign = load_campaign(args.faults)
            check_campaign(campaign, candidate)
        settings = RunSettings(
            corpus=tuple(args.corpus),
            db=args.db,
            baseline=resolve_engine(args.baseline),
            candidate=candidate,
            seed=args.seed,
            workers=args.workers,
            time_limit=args.time_limit,
            where=args.where,
            sample=args.sample,
            limit=args.limit,
            registry=registry,
            noise=NoiseConfig(args.noise_relative, args.noise_absolute),
            batch_size=max(1, args.batch_size),
            flush_traces=max(1, args.flush_every),
            command=shlex.join(sys.argv),
            exact=args.exact,
            new_session=args.new_session,
            campaign=campaign,
        )
        undecodable = [p for p in (*settings.corpus, settings.db) if not _utf8(p)]
        if undecodable:
            # Paths are stored in the results database as text; a name with raw non-UTF-8 bytes cannot be.
            err.print(
                f"[red]error:[/] {escape(ascii(undecodable[0]))}: the path is not valid UTF-8; rename it",
                highlight=False,
            )
            return EXIT_HARNESS
        if args.follow:
            return _follow(settings, args, err)
        missing = [p for p in settings.corpus if not os.path.isfile(p)]
        if missing:
            err.print(f"[red]error:[/] corpus file(s) not found: {escape(', '.join(missing))}")
            return EXIT_HARNESS
        if all(_empty(p) for p in settings.corpus):  # before the database is created
            err.print(
                f"[red]error:[/] no traces in {escape(', '.join(settings.corpus))}: the corpus is empty. "
                "Check the paths ('shadow corpus stats' counts the traces).",
                highlight=False,
            )
            return EXIT_HARNESS
        try:
            executor = _executor(args)
        except DaskError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            return EXIT_HARNESS
        if executor is not None and hasattr(executor, "describe"):
            # Dask: workers and the dashboard address, on one unwrapped line (a URL cut in two is no link in CI logs)
            print(executor.describe(), file=sys.stderr, flush=True)
        try:
            report = _run(settings, args, err, executor)
        except BaseException:
            if executor is not None:
                getattr(executor, "abort", executor.close)()
            raise
        if executor is not None:
            if report.status == "finished":
                executor.close()
            else:
                getattr(executor, "abort", executor.close)()
    except (EngineSpecError, RegistryError, ResultsError, SelectionError, DaskError, CampaignError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return EXIT_HARNESS
    except BrokenProcessPool as exc:
        err.print(
            f"[red]error:[/] a worker process died ({escape(str(exc))}); finished traces are stored and a rerun "
            "resumes. Run with --workers 1 to see the failure in this process.",
            highlight=False,
        )
        return EXIT_HARNESS
    if report.status == "interrupted":  # one line: what was kept, how to resume
        interrupts.note()
        print(
            f"interrupted by {interrupts.signal_name()}: {report.traces_done} traces replayed this session are "
            f"stored in {args.db} ({report.skipped_existing} were already there); rerun the same command to "
            "resume (stored traces are skipped)",
            file=sys.stderr,
        )
        return interrupts.exit_code()
    err.print(
        f"{report.status}: {report.traces_done} traces replayed, {report.skipped_existing} already stored, "
        f"{report.quarantined} quarantined, {report.candidate_divergences} raw candidate divergences "
        f"-> {escape(args.db)}",
        highlight=False,
    )
    return _incomplete_input(err, report, args.corpus)


def _follow_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the --follow flags, if anything."""
    if not args.follow:
        if args.max_traces is not None or args.duration is not None:
            return "--max-traces and --duration go with --follow (a corpus run stops at its end; --limit N caps it)"
        return None
    if len(args.corpus) != 1:
        return (
            f"--follow reads one growing source, not {len(args.corpus)}: give one .jsonl file or one folder of "
            "segments"
        )
    if args.limit is not None:
        return "--follow stops after --max-traces N replays (--limit is for a corpus run)"
    if args.max_traces is not None and args.max_traces < 1:
        return f"--max-traces {args.max_traces}: give 1 or more traces"
    if args.executor == "dask" or args.scheduler:
        return "--follow replays on this machine (--executor inline or process), not on Dask"
    parent = os.path.dirname(os.path.abspath(args.corpus[0].rstrip("/") or "/"))
    if not os.path.exists(args.corpus[0]) and not os.path.isdir(parent):
        return (
            f"{args.corpus[0]}: neither it nor its folder {parent} exists; give the file or folder "
            "'shadow capture --follow -o' writes"
        )
    return None


def _follow(settings: RunSettings, args: argparse.Namespace, err: Console) -> int:
    """``shadow run SOURCE --follow``: replay what arrives until a stop condition (docs/LIVE.md)."""
    from shadow.sources import FollowSourceError

    executor: Executor | None = None
    if args.executor == "inline":
        executor = InlineExecutor()
    elif args.executor == "process":
        executor = ProcessExecutor(args.workers)
    follow = FollowSettings(
        source=args.corpus[0],
        max_traces=args.max_traces,
        duration=args.duration,
        poll_interval=args.poll_interval,
    )

    def say(text: str) -> None:
        if not args.no_progress:
            print(text, file=sys.stderr, flush=True)

    try:
        report = follow_shadow(replace(settings, limit=args.max_traces), follow, say=say, executor=executor)
    except FollowSourceError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return EXIT_HARNESS
    if not report.session_id:
        if report.status == "interrupted":
            interrupts.note()
            print(
                f"interrupted by {interrupts.signal_name()} before any trace arrived; nothing stored",
                file=sys.stderr,
            )
            return interrupts.exit_code()
        err.print(
            f"follow: no trace arrived in {args.corpus[0]} within --duration {args.duration:g} s; nothing "
            "stored",
            highlight=False,
        )
        return EXIT_OK
    if report.status == "interrupted":
        interrupts.note()
        print(
            f"interrupted by {interrupts.signal_name()}: {report.traces_done} traces replayed this session are "
            f"stored in {args.db}; rerun the same command to continue where it stopped",
            file=sys.stderr,
        )
        return interrupts.exit_code()
    err.print(
        f"{report.status}: {report.traces_done} traces replayed, {report.skipped_existing} already stored, "
        f"{report.quarantined} quarantined, {report.candidate_divergences} raw candidate divergences "
        f"-> {escape(args.db)}",
        highlight=False,
    )
    for problem in report.unreadable:
        err.print(f"[red]error:[/] {escape(problem)}", highlight=False)
    if report.selection_note:
        err.print(f"[red]error:[/] {escape(report.selection_note)}", highlight=False)
    return EXIT_HARNESS if report.unreadable or report.selection_note else EXIT_OK


def _executor(args: argparse.Namespace) -> Executor | None:
    """The executor ``--executor`` asks for, built before the database is touched (a Dask scheduler that does
    not answer is exit 4 with nothing written); None: ``run_shadow`` picks by ``--workers``."""
    kind = "dask" if args.scheduler and args.executor == "auto" else args.executor
    if args.scheduler and kind != "dask":
        raise DaskError(f"--scheduler {args.scheduler} is for --executor dask, not --executor {kind}")
    if kind != "dask" and (args.batch_steps is not None or args.parts_dir):
        raise DaskError("--batch-steps and --parts-dir are for --executor dask")
    if kind == "inline":
        return InlineExecutor()  # dask itself is imported only below, for --executor dask
    if kind == "process":
        return ProcessExecutor(args.workers)
    if kind != "dask":
        return None
    from shadow.dask_executor import BATCH_STEPS, DaskExecutor

    if args.parts_dir and not os.path.isdir(args.parts_dir):
        raise DaskError(
            f"--parts-dir {args.parts_dir}: not a folder; create it (on storage the workers share) "
            "or leave the flag out to have the rows sent back"
        )
    if args.batch_steps is not None and args.batch_steps < 1:
        raise DaskError(f"--batch-steps {args.batch_steps}: give 1 or more recorded step attempts per task")
    return DaskExecutor(
        args.workers, args.scheduler, batch_steps=args.batch_steps or BATCH_STEPS, parts_dir=args.parts_dir
    )


def _run(
    settings: RunSettings, args: argparse.Namespace, err: Console, executor: Executor | None
) -> RunReport:
    """``run_shadow`` with the progress display: none, a line every few seconds in CI logs, or a live bar."""
    if args.no_progress:
        return run_shadow(settings, executor=executor)
    if not err.is_terminal:  # CI logs: a plain line every few seconds instead of a live bar
        every = _progress_every()
        began, last = time.monotonic(), [-every]

        def log_line(done: int, divergences: int) -> None:
            elapsed = time.monotonic() - began
            if elapsed - last[0] >= every:
                last[0] = elapsed
                print(
                    f"progress: {done} traces in {elapsed:.0f} s ({done / max(elapsed, 1e-9):.1f} traces/s), "
                    f"{divergences} divergences",
                    file=sys.stderr,
                    flush=True,
                )

        return run_shadow(settings, progress=log_line, executor=executor)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.completed} traces"),
        TextColumn("{task.fields[rate]:.1f} traces/s"),
        TextColumn("{task.fields[div]} divergences"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=None, rate=0.0, div=0)

        def progress(done: int, divergences: int) -> None:
            elapsed = bar.tasks[0].elapsed or 1e-9
            bar.update(task, completed=done, rate=done / elapsed, div=divergences)

        return run_shadow(settings, progress=progress, executor=executor)


def _progress_every() -> float:
    """SHADOW_PROGRESS_EVERY (seconds >= 0) or the default; a bad value is not worth failing a run over."""
    try:
        value = float(os.environ.get("SHADOW_PROGRESS_EVERY", PROGRESS_EVERY))
    except ValueError:
        return PROGRESS_EVERY
    return value if 0 <= value < float("inf") else PROGRESS_EVERY


def _incomplete_input(err: Console, report: RunReport, corpus: list[str]) -> int:
    """A corpus that could not be read to its end, or held nothing, is a harness error (exit 4), not a clean
    run: CI must not gate on a fraction of the traffic without knowing it. What was replayed stays stored."""
    for problem in report.unreadable:
        err.print(
            f"[red]error:[/] {escape(problem)}; the traces read before it are stored. Re-copy or fix "
            "the file and rerun with the same --db: stored traces are skipped.",
            highlight=False,
        )
    if report.unreadable:
        return EXIT_HARNESS
    if report.items_read and report.items_bad == report.items_read:
        err.print(
            f"[red]error:[/] every one of the {report.items_read} corpus lines was quarantined: nothing "
            f"was replayed. 'shadow corpus validate {escape(' '.join(corpus))}' lists why.",
            highlight=False,
        )
        return EXIT_HARNESS
    if report.selection_note:
        err.print(
            f"[red]error:[/] {escape(report.selection_note)}. Nothing was replayed; fix --where "
            "(its columns are in 'shadow run --help').",
            highlight=False,
        )
        return EXIT_HARNESS
    if report.items_read == 0:
        err.print(
            f"[red]error:[/] no traces in {escape(', '.join(corpus))}: the corpus is empty. "
            "Check the paths ('shadow corpus stats' counts the traces).",
            highlight=False,
        )
        return EXIT_HARNESS
    return EXIT_OK


def _empty(path: str) -> bool:
    """True when the file holds no line but blanks (a gzip file is read through; an unreadable file is not
    'empty': the run reports it with its own error)."""
    try:
        with (
            gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")
        ) as handle:
            return all(not line.strip() for line in handle)
    except (OSError, UnicodeDecodeError, EOFError):
        return False


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _candidate_options(args: argparse.Namespace) -> dict[str, Any]:
    """Factory kwargs for the candidate; an engine whose factory lacks them rejects them (exit 4)."""
    options: dict[str, Any] = {}
    if args.candidate_nodes is not None:
        options["nodes"] = args.candidate_nodes
    if args.candidate_fault:
        options["faults"] = tuple(args.candidate_fault)
    return options
