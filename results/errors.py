"""What goes wrong with a results database file, in words a user can act on. No database library is
loaded here: the CLI runs these checks before it loads DuckDB (``shadow corpus ... -o`` must not load
DuckDB to learn that its output is a database)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ResultsError", "open_failure_hint", "overwrite_problem"]


class ResultsError(Exception):
    """The results database cannot be opened, is not ours, or has an incompatible schema."""


def overwrite_problem(output: str | Path, flag: str) -> str | None:
    """Why writing an artifact to ``output`` would destroy a results database, or None when it is safe.

    ``shadow report r.duckdb -o r.duckdb`` or ``--json r.duckdb`` would replace hours of replay with a
    page of HTML or JSON; a DuckDB file carries ``DUCK`` at byte 8, so any such file is refused."""
    if str(output) == "-":
        return None
    try:
        with open(output, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return None  # missing (will be created) or unreadable (the write reports it)
    if head[8:12] != b"DUCK":
        return None
    return (
        f"{flag} {output} is a DuckDB database (results of 'shadow run'?); refusing to overwrite it. "
        "Choose another output file."
    )


def open_failure_hint(exc: BaseException) -> str:
    """What to do about a DuckDB file that would not open: a lock held by another process needs waiting,
    not a new file name (the message names the holder's PID)."""
    text = str(exc).lower()
    if "lock" in text or "different configuration" in text:  # another process / a writer in this one
        return (
            "another process holds the database (see the PID above): wait for it to finish or stop it, "
            "then rerun; a 'shadow run' resumes where it stopped"
        )
    if "no such file or directory" in text:
        return "its folder does not exist: create the folder or pass another path"
    return "pass a database written by 'shadow run' ('shadow run' also takes a new file name)"
