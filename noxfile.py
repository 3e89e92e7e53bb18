"""Sessions a CI pipeline calls: tests, lint, typecheck, shadow (the main job), report_smoke, bench."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = os.environ.get("SHADOW_PYTHON", "python3")


def _install(session: nox.Session, *groups: str) -> None:
    session.install("--upgrade", "pip>=25.1")
    args = ["-e", "."]
    for group in groups:
        args += ["--group", group]
    session.install(*args)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest arguments after --)."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and import order."""
    _install(session, "lint")
    session.run("ruff", "check", "corpora", "engines", "shadow", "reports", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy (strict for corpora and engines/core)."""
    _install(session, "typecheck")
    session.run("mypy")
