"""Sessions a CI pipeline calls: tests, lint, typecheck, shadow (the main job), report_smoke, bench."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = os.environ.get("SHADOW_PYTHON", "python3")


def _install(session: nox.Session, *groups: str, extras: str = "") -> None:
    session.install("--upgrade", "pip>=25.1")
    args = ["-e", f".[{extras}]" if extras else "."]
    for group in groups:
        args += ["--group", group]
    session.install(*args)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite, without the tests marked ``slow`` (pass other pytest arguments after --).

    This is what .ci/run runs. ``nox -s tests_slow`` runs the slow ones (whole-corpus engine
    comparisons, large real traces) - tens of minutes on two cores. Arguments after ``--`` are added to
    the ``not slow`` filter (``nox -s tests -- tests/shadow -k gate``); a ``-m`` of your own replaces it.
    The PostgreSQL store tests need the server binaries (Debian: ``apt-get install postgresql``; .ci/run
    installs them) and skip without. The ``dask`` extra is installed so the Dask executor's tests run
    (tests/shadow/test_dask_executor.py)."""
    _install(session, "test", extras="postgres,dask")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session(python=PYTHON)
def tests_slow(session: nox.Session) -> None:
    """Run only the tests marked ``slow``."""
    _install(session, "test", extras="postgres,dask")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint, import order, and the formatter's check (``nox -s format`` rewrites what it flags)."""
    _install(session, "lint")
    paths = (
        "corpora",
        "engines",
        "results",
        "shadow",
        "reports",
        "examples",
        "tests",
        "benchmarks",
        "noxfile.py",
    )
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session(python=PYTHON, name="format")
def format_(session: nox.Session) -> None:
    """Rewrite files in place: ruff's safe fixes (import order, ...) and the formatter (``-- PATH...`` to
    limit it). ``nox -s lint`` fails on what this would change."""
    _install(session, "lint")
    paths = session.posargs or [
        "corpora",
        "engines",
        "results",
        "shadow",
        "reports",
        "examples",
        "tests",
        "benchmarks",
        "noxfile.py",
    ]
    session.run("ruff", "check", "--fix", *paths)
    session.run("ruff", "format", *paths)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package (corpora, engines, shadow, reports)."""
    _install(session, "typecheck")
    session.run("mypy")


def _bin(session: nox.Session, name: str) -> str:
    """A console script inside the session's virtualenv (found on PATH with --no-venv)."""
    if session.venv_backend == "none":
        return shutil.which(name) or name
    return str(Path(session.bin) / name)


def _install_unless_no_venv(session: nox.Session, *groups: str, extras: str = "") -> None:
    """``--no-venv`` runs in an environment the pipeline prepared itself: install nothing there."""
    if session.venv_backend != "none":
        _install(session, *groups, extras=extras)


def _executor_args() -> list[str]:
    """``shadow run`` flags from SHADOW_EXECUTOR (auto|inline|process|dask), SHADOW_SCHEDULER (a Dask scheduler
    address; implies dask) and SHADOW_WORKERS (worker processes; default: cores)."""
    args: list[str] = []
    if os.environ.get("SHADOW_EXECUTOR"):
        args += ["--executor", os.environ["SHADOW_EXECUTOR"]]
    if os.environ.get("SHADOW_SCHEDULER"):
        args += ["--scheduler", os.environ["SHADOW_SCHEDULER"]]
    if os.environ.get("SHADOW_WORKERS"):
        args += ["--workers", os.environ["SHADOW_WORKERS"]]
    return args


def _wants_dask() -> bool:
    return os.environ.get("SHADOW_EXECUTOR") == "dask" or bool(os.environ.get("SHADOW_SCHEDULER"))


def _step(session: nox.Session, *args: str) -> None:
    """Run one step of the main job; a step that fails ends the job with the harness-error code 4
    (nox alone would exit 1, which the CI contract reserves for a FAIL verdict)."""
    session.log(" ".join(args))
    code = subprocess.call([_bin(session, args[0]), *args[1:]])
    if code != 0:
        session.log(f"step failed with exit code {code}: harness error, exit 4")
        raise SystemExit(130 if code == 130 else 4)


def _fresh_results(session: nox.Session, out: Path, count: str, seed: str, extra: list[str]) -> Path:
    """Built-in corpus -> shadow run, into a fresh out/results.duckdb."""
    out.mkdir(parents=True, exist_ok=True)
    corpus, database = out / "corpus.jsonl", out / "results.duckdb"
    for stale in (database, out / "results.duckdb.wal"):
        stale.unlink(missing_ok=True)
    cap = ["--max-steps", os.environ["SHADOW_MAX_STEPS"]] if os.environ.get("SHADOW_MAX_STEPS") else []
    _step(session, "shadow", "corpus", "generate", "--seed", seed, "--count", count, *cap, "-o", str(corpus))
    run = [
        "shadow",
        "run",
        str(corpus),
        "--db",
        str(database),
        *_executor_args(),
    ]  # progress: bar or CI log lines
    if os.environ.get("SHADOW_REGISTRY"):
        run += ["--registry", os.environ["SHADOW_REGISTRY"]]
    # Divergences are findings for the gate to judge, not a failure of the run itself.
    _step(session, *run, *extra)
    return database


@nox.session(python=PYTHON)
def shadow(session: nox.Session) -> None:
    """The main job: built-in corpus -> shadow run -> shadow gate -> shadow report; exits with the gate's code.

    The gate runs before the report so that the report shows the verdicts it just stored; the report is
    written whatever the gate decided.

    Artifacts in out/: results.duckdb, report.html, verdict.json, junit.xml, summary.md. Environment:
    SHADOW_TRACES (default 200), SHADOW_MAX_STEPS (steps per workflow; uncapped by default), SHADOW_SEED (1),
    SHADOW_COHORTS (examples/cohorts.toml),
    SHADOW_REGISTRY (a known-divergence registry, none by default), SHADOW_EXECUTOR (auto, inline, process or
    dask; dask installs the extra), SHADOW_SCHEDULER (a running Dask scheduler's address, implies dask),
    SHADOW_WORKERS (worker processes; default: cores). Arguments after -- go to
    ``shadow run``; ``-- --planted-fault`` swaps in a broken candidate (examples/planted_fault.py).
    """
    _install_unless_no_venv(session, extras="dask" if _wants_dask() else "")
    extra = [a for a in session.posargs if a != "--planted-fault"]
    if "--planted-fault" in session.posargs:
        extra += ["--candidate", "examples.planted_fault:lost_wakeup"]
    out = Path("out")
    count, seed = os.environ.get("SHADOW_TRACES", "200"), os.environ.get("SHADOW_SEED", "1")
    database = _fresh_results(session, out, count, seed, extra)
    _step(session, "shadow", "summary", "--db", str(database))
    gate = [
        _bin(session, "shadow"), "gate", "--db", str(database),
        "--cohorts", os.environ.get("SHADOW_COHORTS", "examples/cohorts.toml"),
        "--json", str(out / "verdict.json"), "--junit", str(out / "junit.xml"), "--markdown", str(out / "summary.md"),
    ]  # fmt: skip
    session.log(" ".join(gate))
    code = subprocess.call(gate)
    _step(session, "shadow", "report", "--db", str(database), "-o", str(out / "report.html"))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and (out / "summary.md").is_file():
        with open(summary, "a", encoding="utf-8") as sink:
            sink.write((out / "summary.md").read_text(encoding="utf-8"))
    session.log(f"gate exit code {code} (0 PASS, 1 FAIL, 2 MARGINAL, 3 INSUFFICIENT_DATA, 4 harness error)")
    if code:
        # nox itself only knows pass/fail; the CI contract needs the gate's own code.
        raise SystemExit(code)


@nox.session(python=PYTHON)
def live_shadow(session: nox.Session) -> None:
    """Live shadowing end to end (docs/LIVE.md): a live legacy deployment on SQLite running shell/sleep
    workflows, ``shadow capture --follow`` tailing its store, ``shadow run --follow`` tailing the capture, and
    ``shadow gate`` once SHADOW_LIVE_TRACES (default 40) traces are replayed; exits with the gate's code.

    Artifacts in out/live/: legacy.db, traces/, results.duckdb, verdict.json, junit.xml, report.html.
    Arguments after -- go to examples/live_shadow.py (--traces, --spacing, --cohorts, --timeout)."""
    _install_unless_no_venv(session)
    python = "python" if session.venv_backend == "none" else str(Path(session.bin) / "python")
    command = [
        python,
        "examples/live_shadow.py",
        "--out",
        "out/live",
        "--traces",
        os.environ.get("SHADOW_LIVE_TRACES", "40"),
        *session.posargs,
    ]
    session.log(" ".join(command))
    code = subprocess.call(command)
    session.log(f"gate exit code {code} (0 PASS, 1 FAIL, 2 MARGINAL, 3 INSUFFICIENT_DATA, 4 harness error)")
    if code:
        raise SystemExit(code)  # nox itself only knows pass/fail; the CI contract needs the gate's own code


@nox.session(python=PYTHON)
def report_smoke(session: nox.Session) -> None:
    """Render the report and open it in headless Chromium (installs Debian's chromium if missing)."""
    _install_unless_no_venv(session)
    if not any(shutil.which(name) for name in ("chromium", "chromium-browser")):
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        session.run(*sudo, "apt-get", "update", external=True)
        session.run(*sudo, "apt-get", "install", "-y", "--no-install-recommends", "chromium", external=True)
    out = Path("out")
    database = out / "results.duckdb"
    if not database.is_file():
        database = _fresh_results(session, out, os.environ.get("SHADOW_TRACES", "20"), "1", [])
    session.run("python", "-m", "reports.smoke", str(database), "--html", str(out / "report.html"),
                "--screenshot", str(out / "report-smoke.png"), *session.posargs)  # fmt: skip


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run every benchmarks/bench_*.py: results in out/bench.json and out/BENCHMARKS.md (``-- --quick`` for CI,
    ``-- -k PATTERN`` for some). Only ``-- --update-docs`` rewrites the tracked docs/BENCHMARKS.md: a quick or
    partial run on a busy machine must not replace the published figures by accident."""
    _install_unless_no_venv(session, "bench", extras="dask")  # bench_dask.py runs LocalClusters
    args = list(session.posargs)
    markdown = "out/BENCHMARKS.md"
    if "--update-docs" in args:
        args.remove("--update-docs")
        markdown = "docs/BENCHMARKS.md"
    session.run("python", "benchmarks/run_all.py", "--out", "out/bench.json", "--markdown", markdown, *args)
