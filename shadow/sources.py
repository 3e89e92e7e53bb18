"""Stream traces from corpus files, with bad ones quarantined, and select which to replay.

Reading goes through ``corpora.io.read_traces`` (it validates fully and quarantines bad lines). Selection is
``--where`` (a SQL predicate over trace metadata, evaluated by DuckDB over a small in-memory table per
batch), ``--sample`` (stable hash of the trace id) and ``--limit``.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from corpora.errors import TraceError
from corpora.io import read_traces
from corpora.model import Trace
from shadow.trial import count_steps

__all__ = ["META_COLUMNS", "SelectionError", "SourceItem", "TraceSelector", "corpus_content_hash", "corpus_hash", "read_corpus",
           "sample_hit"]


@dataclass(frozen=True, slots=True)
class SourceItem:
    file: str
    line: int
    trace: Trace | None
    error: TraceError | None


def read_corpus(paths: Sequence[str]) -> Iterator[SourceItem]:
    """Every trace of every file in order; a bad line comes back as an item with an error."""
    for item in read_traces(list(paths)):
        yield SourceItem(str(item.file), int(item.line or 0), item.trace, item.error)


def corpus_hash(paths: Sequence[str]) -> str:
    """sha256 over the files' names and bytes, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.fsencode(Path(path).name) + b"\0")  # a non-UTF-8 file name hashes too
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def corpus_content_hash(paths: Sequence[str]) -> str:
    """sha256 over the files' bytes only, in the order given (each file's length first, so that moving
    bytes from one file to the next changes it): a copy of the corpus at another path hashes the same."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(os.path.getsize(path)).encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def sample_hit(trace_id: str, rate: float) -> bool:
    """Stable sampling: the same trace id is in or out for a given rate on every machine and run."""
    if rate >= 1.0:
        return True
    bucket = int.from_bytes(hashlib.sha256(trace_id.encode()).digest()[:8], "big") / 2**64
    return bucket < rate


class SelectionError(Exception):
    """A ``--where`` predicate that DuckDB cannot evaluate over the trace metadata columns."""


_META_SCHEMA = pa.schema([
    ("trace_id", pa.string()), ("workflow_id", pa.string()), ("workflow_type", pa.string()),
    ("owner", pa.string()), ("tags", pa.list_(pa.string())), ("source", pa.string()),
    ("n_runs", pa.int64()), ("n_steps", pa.int64()), ("corpus_file", pa.string()), ("captured_at", pa.string()),
])


META_COLUMNS = tuple(_META_SCHEMA.names)
"""The columns a ``--where`` predicate can use."""
_HINT_COLUMNS = ("workflow_type", "owner", "tags", "source", "workflow_id")
_HINT_VALUES = 10_000

_SANDBOX: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False, "autoinstall_known_extensions": False,
    "autoload_known_extensions": False, "lock_configuration": True,
}


class TraceSelector:
    """Applies ``--where`` to batches of traces; the predicate is checked once, up front."""

    def __init__(self, where: str | None) -> None:
        self.where = where
        self.considered = self.matched = 0
        # Distinct text values seen per column, to suggest the closest ones when nothing matches.
        self._seen: dict[str, set[str]] = {name: set() for name in _HINT_COLUMNS}
        # The predicate is the user's own text, but it is pasted into SQL: a sandboxed connection (no
        # file system, no extensions, settings locked) and a one-statement check keep "; COPY ... TO" or
        # read_csv('/etc/...') from writing or reading anything beyond the metadata table.
        self._con = duckdb.connect(":memory:", config=_SANDBOX) if where else None
        if where:
            self._check_one_statement(where)
            self._evaluate([])  # a bad predicate fails now, with the column list

    def _check_one_statement(self, where: str) -> None:
        assert self._con is not None
        query = f"SELECT trace_id FROM trace_meta WHERE ({where})"
        try:
            count = len(self._con.extract_statements(query))
        except duckdb.Error:
            return  # a syntax error: _evaluate reports it with the column list
        if count != 1:
            raise SelectionError(
                f"--where {where!r} is not a single predicate: it closes the WHERE clause and adds "
                f"{count - 1} more SQL statement(s). Give one boolean expression over the columns "
                + ", ".join(f.name for f in _META_SCHEMA) + ", e.g. --where \"owner = 'team-a'\"")

    def _evaluate(self, rows: list[dict[str, Any]]) -> set[str]:
        assert self._con is not None
        assert self.where is not None
        table = pa.Table.from_pylist(rows, schema=_META_SCHEMA)
        self._con.register("trace_meta", table)
        try:
            found = self._con.execute(f"SELECT trace_id FROM trace_meta WHERE ({self.where})").fetchall()
        except duckdb.Error as exc:
            raise SelectionError(
                f"--where {self.where!r} is not a valid predicate over trace metadata ({exc}). Columns: "
                + ", ".join(f.name for f in _META_SCHEMA) + ". Example: --where \"owner = 'team-a' AND "
                "list_contains(tags, 'daily')\"") from exc
        finally:
            self._con.unregister("trace_meta")
        return {r[0] for r in found}

    def select(self, items: Sequence[SourceItem]) -> list[SourceItem]:
        """The items (all with a trace) that satisfy the predicate, in input order."""
        if not self.where:
            return list(items)
        rows = [{
            "trace_id": it.trace.trace_id, "workflow_id": it.trace.workflow_id,
            "workflow_type": it.trace.metadata.workflow_type, "owner": it.trace.metadata.owner,
            "tags": list(it.trace.metadata.tags), "source": it.trace.metadata.source,
            "n_runs": len(it.trace.runs), "n_steps": count_steps(it.trace.definition.steps, it.trace),
            "corpus_file": it.file, "captured_at": it.trace.metadata.captured_at,
        } for it in items if it.trace is not None]
        keep = self._evaluate(rows)
        self.considered += len(rows)
        self.matched += len(keep)
        for row in rows:
            for name, values in self._seen.items():
                if len(values) < _HINT_VALUES:
                    value = row[name]
                    values.update(str(v) for v in (value if isinstance(value, list) else [value]) if v is not None)
        return [it for it in items if it.trace is not None and it.trace.trace_id in keep]

    def no_match_hint(self) -> str | None:
        """When ``--where`` matched none of the traces it saw: says so, with the values closest to the
        predicate's quoted strings (``owner = 'team-z'`` -> owner 'team-a'), else the values present."""
        if not self.where or self.matched or not self.considered:
            return None
        literals = re.findall(r"'((?:[^']|'')*)'", self.where)
        close: list[str] = []
        for literal in literals:
            for name, values in self._seen.items():
                for value in difflib.get_close_matches(literal, sorted(values), n=3, cutoff=0.5):
                    close.append(f"{name} {value!r}")
        if not close:
            close = [f"{name}: " + ", ".join(repr(v) for v in sorted(values)[:5])
                     for name, values in self._seen.items() if values]
        return (f"--where {self.where!r} matched 0 of {self.considered} traces; closest values: "
                + "; ".join(dict.fromkeys(close)))
