"""Stream traces from corpus files, with bad ones quarantined, and select which to replay.

Reading goes through ``corpora.io.read_traces`` (it validates fully and quarantines bad lines). Selection is
``--where`` (a SQL predicate over trace metadata, evaluated by DuckDB over a small in-memory table per
batch), ``--sample`` (stable hash of the trace id) and ``--limit``.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import json
import os
import re
import sys
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa

from corpora.errors import TraceError, TraceLocation
from corpora.io import load_trace, read_traces
from corpora.model import Trace
from shadow.trial import count_steps

__all__ = [
    "META_COLUMNS",
    "FollowPosition",
    "FollowSource",
    "FollowSourceError",
    "SelectionError",
    "SourceItem",
    "TraceSelector",
    "corpus_content_hash",
    "corpus_hash",
    "read_corpus",
    "sample_hit",
]


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


_META_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("workflow_id", pa.string()),
        ("workflow_type", pa.string()),
        ("owner", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("source", pa.string()),
        ("n_runs", pa.int64()),
        ("n_steps", pa.int64()),
        ("corpus_file", pa.string()),
        ("captured_at", pa.string()),
    ]
)


META_COLUMNS = tuple(_META_SCHEMA.names)
"""The columns a ``--where`` predicate can use."""
_HINT_COLUMNS = ("workflow_type", "owner", "tags", "source", "workflow_id")
_HINT_VALUES = 10_000

_SANDBOX: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
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
                + ", ".join(f.name for f in _META_SCHEMA)
                + ", e.g. --where \"owner = 'team-a'\""
            )

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
                + ", ".join(f.name for f in _META_SCHEMA)
                + ". Example: --where \"owner = 'team-a' AND "
                "list_contains(tags, 'daily')\""
            ) from exc
        finally:
            self._con.unregister("trace_meta")
        return {r[0] for r in found}

    def select(self, items: Sequence[SourceItem]) -> list[SourceItem]:
        """The items (all with a trace) that satisfy the predicate, in input order."""
        if not self.where:
            return list(items)
        rows = [
            {
                "trace_id": it.trace.trace_id,
                "workflow_id": it.trace.workflow_id,
                "workflow_type": it.trace.metadata.workflow_type,
                "owner": it.trace.metadata.owner,
                "tags": list(it.trace.metadata.tags),
                "source": it.trace.metadata.source,
                "n_runs": len(it.trace.runs),
                "n_steps": count_steps(it.trace.definition.steps, it.trace),
                "corpus_file": it.file,
                "captured_at": it.trace.metadata.captured_at,
            }
            for it in items
            if it.trace is not None
        ]
        keep = self._evaluate(rows)
        self.considered += len(rows)
        self.matched += len(keep)
        for row in rows:
            for name, values in self._seen.items():
                if len(values) < _HINT_VALUES:
                    value = row[name]
                    values.update(
                        str(v) for v in (value if isinstance(value, list) else [value]) if v is not None
                    )
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
            close = [
                f"{name}: " + ", ".join(repr(v) for v in sorted(values)[:5])
                for name, values in self._seen.items()
                if values
            ]
        return f"--where {self.where!r} matched 0 of {self.considered} traces; closest values: " + "; ".join(
            dict.fromkeys(close)
        )


# -- shadow run --follow: a growing file or a folder of segments ------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowPosition:
    """Where ``shadow run --follow`` stands in its source: the segment (a file name; the file itself for a
    file source), the byte offset in it and the number of the last line read there."""

    segment: str
    offset: int = 0
    line: int = 0

    def to_json(self, source: str) -> dict[str, Any]:
        return {"source": source, "segment": self.segment, "offset": self.offset, "line": self.line}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FollowPosition:
        return cls(str(data["segment"]), int(data.get("offset") or 0), int(data.get("line") or 0))

    def describe(self) -> str:
        return f"{self.segment}:{self.line}"


class FollowSourceError(Exception):
    """A followed source that cannot be read as one (harness error, exit 4)."""


_SEGMENT = re.compile(r"^capture-(\d+)\.jsonl$")


class FollowSource:
    """The traces appended to a JSON Lines file, or to a folder of segments, since a position.

    A folder's segments are its ``*.jsonl`` files in name order (``shadow capture --follow -o DIR/`` writes
    ``capture-000001.jsonl``, ``capture-000002.jsonl``, ...); a segment is left for the next one once a
    later one exists and it has been read to its end. Only whole lines (ending in a newline) are read.
    When the capture's own state file is beside the source (``FILE.cursor.json``, ``DIR/cursor.json``)
    only what it has committed is read: a line capture wrote but had not yet recorded may be cut back
    and written again after a capture restart, so it is read once it is committed, never before."""

    def __init__(self, path: str, *, max_line_bytes: int = 16 * 1024 * 1024) -> None:
        self.path = path
        self.folder = path.endswith(("/", os.sep)) or os.path.isdir(path)
        if path.endswith(".gz"):
            raise FollowSourceError(
                f"{path}: --follow reads a growing plain .jsonl file or a folder of them, not .gz"
            )
        self.state_path = Path(path) / "cursor.json" if self.folder else Path(path + ".cursor.json")
        self.max_line_bytes = max_line_bytes

    # -- layout ------------------------------------------------------------------------------------------------
    def segments(self) -> list[str]:
        """The segment names present now, in reading order."""
        if not self.folder:
            return [Path(self.path).name] if os.path.isfile(self.path) else []
        try:
            # A finished segment compressed in place (capture-000001.jsonl.gz) is still that segment.
            names = sorted(
                {n.removesuffix(".gz") for n in os.listdir(self.path) if n.endswith((".jsonl", ".jsonl.gz"))}
            )
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise FollowSourceError(f"{self.path}: cannot list the folder ({exc.strerror or exc})") from None
        if self._capture_state() is not None:  # a capture's folder: its segments only
            names = [n for n in names if _SEGMENT.match(n)]
        return names

    def segment_path(self, segment: str) -> str:
        return os.path.join(self.path, segment) if self.folder else self.path

    def _capture_state(self) -> dict[str, Any] | None:
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FollowSourceError(f"cannot read the capture state {self.state_path}: {exc}") from None
        try:
            state = json.loads(text)
        except ValueError:
            return None  # replaced atomically, so never half-written; not a capture state: not ours to use
        return (
            state
            if isinstance(state, dict) and str(state.get("format", "")).startswith("shadow-capture-state/")
            else None
        )

    def _limit(self, segment: str, state: dict[str, Any] | None, size: int) -> int:
        """How far ``segment`` may be read: what the capture committed, else its size."""
        if state is None:
            return size
        committed = int(state.get("offset", 0) or 0)
        if not self.folder:
            return min(size, committed)
        match = _SEGMENT.match(segment)
        if match is None:
            return 0
        number, current = int(match.group(1)), int(state.get("segment", 1) or 1)
        return size if number < current else min(size, committed) if number == current else 0

    # -- reading -----------------------------------------------------------------------------------------------
    def start(self) -> FollowPosition | None:
        """The position before the first line, once the source has a segment; None while it has none."""
        names = self.segments()
        return FollowPosition(names[0]) if names else None

    def head(self) -> bytes | None:
        """The first committed line of the source (what names the stream in the session identity), or None."""
        position = self.start()
        if position is None:
            return None
        for _, line, _ in self._lines(position, 1):
            return line
        return None

    def poll(self, position: FollowPosition, limit: int) -> list[tuple[SourceItem, FollowPosition]]:
        """Up to ``limit`` items after ``position``, each with the position just past it."""
        out: list[tuple[SourceItem, FollowPosition]] = []
        for item_position, line, too_long in self._lines(position, limit):
            name = self.segment_path(item_position.segment)
            if too_long:
                error = TraceError(
                    "line_too_long",
                    f"line is longer than {self.max_line_bytes} bytes",
                    location=TraceLocation(file=name, line=item_position.line),
                    hint="split the trace or raise the limit",
                )
                out.append((SourceItem(name, item_position.line, None, error), item_position))
                continue
            try:
                trace = load_trace(line)
            except TraceError as exc:
                out.append(
                    (
                        SourceItem(
                            name, item_position.line, None, exc.at(file=name, line=item_position.line)
                        ),
                        item_position,
                    )
                )
                continue
            out.append((SourceItem(name, item_position.line, trace, None), item_position))
        return out

    def _open(self, segment: str) -> tuple[IO[bytes], int | None] | None:
        """The segment open for reading with its size; a segment compressed in place (``.jsonl.gz``, in a
        folder) has no size: it is finished. None when it is not there (yet, or any more)."""
        path = self.segment_path(segment)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
            return handle, os.fstat(handle.fileno()).st_size
        except FileNotFoundError:
            pass
        if self.folder and os.path.isfile(path + ".gz"):
            return typing.cast(IO[bytes], gzip.open(path + ".gz", "rb")), None
        return None

    def _lines(self, position: FollowPosition, limit: int) -> Iterator[tuple[FollowPosition, bytes, bool]]:
        """(position past the line, the line, whether it was too long) for up to ``limit`` non-blank lines;
        a position past blank lines too once the segment is read to its limit."""
        state = self._capture_state()
        names = self.segments()
        current = position
        produced = 0
        while produced < limit:
            path = self.segment_path(current.segment)
            opened = self._open(current.segment)
            if opened is None and current.offset:
                raise FollowSourceError(
                    f"{path} is gone, but {current.line} lines of it were read: the "
                    "followed source was removed or replaced (compressing a segment in place "
                    "as .jsonl.gz is fine)"
                )
            handle, size = opened if opened is not None else (None, 0)
            finished = size is None  # compressed in place: read it to its end
            end = sys.maxsize if size is None else self._limit(current.segment, state, size)
            if size is not None and size < current.offset:
                raise FollowSourceError(
                    f"{path} is shorter ({size} bytes) than what was read of it "
                    f"({current.offset} bytes): it was truncated or replaced; follow a new "
                    "source into a new --db (or --new-session)"
                )
            try:
                if handle is not None and current.offset < end:
                    handle.seek(current.offset)
                    while produced < limit and handle.tell() < end:
                        line = handle.readline(min(self.max_line_bytes + 1, end - handle.tell()))
                        too_long = len(line) > self.max_line_bytes and not line.endswith(b"\n")
                        if too_long:  # skip the rest of the line, if it is whole
                            rest = b""
                            while handle.tell() < end:
                                rest = handle.readline(min(1 << 20, end - handle.tell()))
                                if not rest or rest.endswith(b"\n"):
                                    break
                            if not rest.endswith(b"\n"):
                                break  # the long line is not whole yet
                        elif not line.endswith(b"\n"):
                            break  # a line being written (or the end): read it when it is whole
                        current = FollowPosition(current.segment, handle.tell(), current.line + 1)
                        if too_long:
                            produced += 1
                            yield current, b"", True
                        elif line.strip():
                            produced += 1
                            yield current, line, False
            finally:
                if handle is not None:
                    handle.close()
            if produced >= limit:
                return
            # The segment is read as far as it may be: move on once a later segment exists and this one is done.
            later = [n for n in names if n > current.segment]
            if not later or not (finished or self._closed(current, state, size or 0)):
                return
            current = FollowPosition(later[0])

    def _closed(self, position: FollowPosition, state: dict[str, Any] | None, size: int) -> bool:
        """Whether ``position`` is at the end of a segment no one writes any more."""
        if not self.folder or position.offset < size:
            return False
        if state is None:
            return True  # a later segment exists: the writer moved on
        match = _SEGMENT.match(position.segment)
        return match is not None and int(match.group(1)) < int(state.get("segment", 1) or 1)
