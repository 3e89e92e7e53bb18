"""Reading and writing corpora: JSON Lines of ``shadow-trace/1`` traces, optionally gzip-compressed.

Reading streams one line at a time (memory is bounded by ``max_line_bytes``, not by the corpus) and
*quarantines*: a bad line becomes a :class:`TraceItem` carrying a located :class:`TraceError`, and the
reader goes on with the next line. Callers decide what to do with the bad ones (the CLI lists them at
the end and exits 1). The only state kept across lines is the set of trace ids seen, to catch duplicates.

Writing is byte-stable: the codec drops default-valued fields, keys keep model order, and gzip output
carries no timestamp, so the same traces always give the same bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import sys
import typing
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from corpora.bounds import parse_int
from corpora.codec import decode, encode
from corpora.errors import TraceError, TraceLocation
from corpora.model import FORMAT, Trace
from corpora.validate import validate_trace

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "TraceItem",
    "TraceWriter",
    "dump_trace",
    "load_trace",
    "read_traces",
    "write_traces",
]

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TraceItem:
    """One line of a corpus: either a valid ``trace`` or the ``error`` that quarantined it."""

    file: str
    line: int | None
    trace: Trace | None = None
    error: TraceError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def dump_trace(trace: Trace) -> str:
    """The canonical one-line JSON text of ``trace`` (no newline)."""
    return json.dumps(encode(trace), sort_keys=False, separators=(",", ":"), ensure_ascii=False)


def load_trace(obj_or_line: str | bytes | Mapping[str, Any]) -> Trace:
    """Decode and fully validate one trace from a JSON line or already-parsed JSON object.

    Raises :class:`TraceError` (codes ``malformed_json``, ``unsupported_format``, ``schema`` and the
    semantic codes of :func:`corpora.validate.validate_trace`) with the JSON path of the problem."""
    if isinstance(obj_or_line, (str, bytes)):
        try:
            data: Any = json.loads(obj_or_line)
        except UnicodeDecodeError as exc:
            raise TraceError(
                "malformed_json",
                f"line is not UTF-8 ({exc.reason} at byte {exc.start})",
                hint="write corpora as UTF-8 JSON Lines",
            ) from None
        except json.JSONDecodeError as exc:
            raise TraceError(
                "malformed_json",
                f"invalid JSON: {exc.msg} at column {exc.colno}",
                hint="each line must be one complete JSON object",
            ) from None
        except ValueError:  # an integer longer than int() converts: read it as OversizedInt, bounded later
            data = _loads_oversized(obj_or_line)
        except RecursionError:
            raise TraceError(
                "malformed_json", "JSON nested too deeply to parse", hint="flatten the value"
            ) from None
        if isinstance(obj_or_line, str):
            maybe = _MAYBE_SURROGATE.search(obj_or_line) is not None
        else:
            maybe = _MAYBE_SURROGATE_BYTES.search(obj_or_line) is not None
        if maybe:
            _refuse_surrogates(data, "$", data.get("trace_id") if isinstance(data, dict) else None)
    else:
        data = obj_or_line
    if not isinstance(data, Mapping):
        raise TraceError(
            "schema",
            f"a trace is a JSON object, got {type(data).__name__}",
            hint=f'start each line with {{"format":"{FORMAT}", ...',
        )
    trace_id = data.get("trace_id") if isinstance(data.get("trace_id"), str) else None
    fmt = data.get("format")
    if fmt != FORMAT:
        what = "missing 'format' field" if fmt is None else f"unsupported format {fmt!r}"
        raise TraceError(
            "unsupported_format",
            what,
            location=TraceLocation(json_path="$.format"),
            hint=f"this version reads {FORMAT!r}; convert the trace or upgrade workflow-shadow",
            trace_id=trace_id,
        )
    try:
        trace = decode(Trace, dict(data))
        validate_trace(trace)
    except TraceError as exc:
        raise _refine(exc, trace_id) from None
    except RecursionError:
        raise TraceError(
            "schema",
            "trace nested too deeply (foreach/steps recursion)",
            hint="nest foreach steps at most a few dozen levels",
            trace_id=trace_id,
        ) from None
    return trace


# "\ud800".."\udfff" escapes: JSON can spell a lone UTF-16 surrogate, which no UTF-8 file, SQLite
# store or hash of the engines can encode. Only lines holding such an escape are walked.
# "\ud800".."\udfff" escapes, the raw character in a str, or its (surrogatepass) UTF-8 bytes.
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_MAYBE_SURROGATE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_surrogates(data: Any, path: str, trace_id: Any) -> None:
    stack = [(data, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            bad = _SURROGATE.search(value) is not None
        elif isinstance(value, dict):
            bad = False
            for key, item in value.items():
                if _SURROGATE.search(key):
                    value, where, bad = (
                        key,
                        f"{where}.{key.encode('utf-8', 'backslashreplace').decode()}",
                        True,
                    )
                    break
                stack.append((item, f"{where}.{key}"))
        elif isinstance(value, list):
            bad = False
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))
        else:
            bad = False
        if bad:
            raise TraceError(
                "bad_value",
                "text holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape)",
                location=TraceLocation(json_path=where.encode("utf-8", "backslashreplace").decode()),
                hint="write valid Unicode; engines store and hash this text as UTF-8",
                trace_id=trace_id if isinstance(trace_id, str) and not _SURROGATE.search(trace_id) else None,
            )


def _loads_oversized(text: str | bytes) -> Any:
    try:
        return json.loads(text, parse_int=parse_int)
    except (ValueError, RecursionError) as exc:
        raise TraceError(
            "malformed_json", f"invalid JSON: {exc}"[:300], hint="each line must be one complete JSON object"
        ) from None


def _refine(exc: TraceError, trace_id: str | None) -> TraceError:
    """Give non-finite durations their own code: the codec reports them as generic schema errors."""
    path = exc.location.json_path
    if exc.code == "schema" and "non-finite" in exc.message and path.endswith((".duration", ".trigger_time")):
        return TraceError(
            "bad_duration",
            exc.message,
            location=exc.location,
            hint="durations are non-negative finite seconds",
            trace_id=trace_id,
        )
    return exc.at(trace_id=trace_id) if trace_id and not exc.trace_id else exc


def _open_raw(path: str) -> tuple[IO[bytes], int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    return raw, os.fstat(raw.fileno()).st_size


def read_traces(
    paths: Iterable[str | os.PathLike[str]],
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: Callable[[int], None] | None = None,
) -> Iterator[TraceItem]:
    """Stream every line of every file (``-`` is stdin; ``.gz`` is gunzipped) as a :class:`TraceItem`.

    Blank lines are skipped. A line longer than ``max_line_bytes`` is skipped without being held in
    memory (``line_too_long``). A trace id seen before in this read is ``duplicate_trace_id``. A file
    that cannot be opened or decompressed yields one item with code ``unreadable`` and reading goes on.
    ``progress`` is called with the number of (on-disk) bytes consumed since its last call."""
    seen_ids: dict[str, str] = {}
    for raw_path in paths:
        name = os.fspath(raw_path)
        try:
            raw, _ = _open_raw(name)
        except OSError as exc:
            yield TraceItem(
                name,
                None,
                error=TraceError(
                    "unreadable",
                    f"cannot open: {exc.strerror or exc}",
                    location=TraceLocation(file=name),
                    hint="check the path and permissions",
                ),
            )
            continue
        try:
            yield from _read_file(name, raw, max_line_bytes, progress, seen_ids)
        finally:
            if raw is not sys.stdin.buffer:
                raw.close()


def _read_file(
    name: str,
    raw: IO[bytes],
    max_line_bytes: int,
    progress: Callable[[int], None] | None,
    seen_ids: dict[str, str],
) -> Iterator[TraceItem]:
    stream: IO[bytes] = raw
    if name.endswith(".gz"):
        stream = typing.cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    last_pos = 0
    number = 0
    while True:
        try:
            line = stream.readline(max_line_bytes + 1)
            too_long = len(line) > max_line_bytes and not line.endswith(b"\n")
            if too_long:
                while chunk := stream.readline(_CHUNK):  # skip the rest of the line in bounded chunks
                    if chunk.endswith(b"\n"):
                        break
        except (OSError, EOFError, zlib.error) as exc:
            yield TraceItem(
                name,
                number + 1,
                error=TraceError(
                    "unreadable",
                    f"cannot read (corrupt or truncated file?): {exc}",
                    location=TraceLocation(file=name, line=number + 1),
                    hint="re-copy or re-compress the file",
                ),
            )
            return
        if not line:
            break
        number += 1
        if progress is not None and raw.seekable():
            pos = raw.tell()
            progress(pos - last_pos)
            last_pos = pos
        if too_long:
            yield TraceItem(
                name,
                number,
                error=TraceError(
                    "line_too_long",
                    f"line is longer than {max_line_bytes} bytes",
                    location=TraceLocation(file=name, line=number),
                    hint="split the trace or raise the limit (--max-line-bytes)",
                ),
            )
            continue
        if not line.strip():
            continue
        yield _parse_line(name, number, line, seen_ids)


def _parse_line(name: str, number: int, line: bytes, seen_ids: dict[str, str]) -> TraceItem:
    try:
        trace = load_trace(line)
    except TraceError as exc:
        return TraceItem(name, number, error=exc.at(file=name, line=number))
    where = f"{name}:{number}"
    first = seen_ids.setdefault(trace.trace_id, where)
    if first != where:
        return TraceItem(
            name,
            number,
            error=TraceError(
                "duplicate_trace_id",
                f"trace id {trace.trace_id!r} was already read at {first}",
                location=TraceLocation(file=name, line=number, json_path="$.trace_id"),
                hint="trace ids must be unique across the corpus; drop or rename the copy",
                trace_id=trace.trace_id,
            ),
        )
    return TraceItem(name, number, trace=trace)


class TraceWriter:
    """Write traces as JSON Lines to ``path`` (gzip when it ends with ``.gz``; ``-`` is stdout).

    Use as a context manager; the file is complete once the ``with`` block exits. Lines go to
    ``PATH.partial`` first, renamed to ``PATH`` only when the block ends cleanly: an interrupted or
    failed write (Ctrl-C in ``shadow corpus generate``) leaves no shorter corpus that reads as valid,
    and an existing ``PATH`` stays as it was."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._partial = self.path + ".partial"
        self._raw: IO[bytes] | None = None
        self._out: IO[bytes] | None = None
        self.count = 0

    def __enter__(self) -> TraceWriter:
        if self.path == "-":
            self._raw = None
            self._out = sys.stdout.buffer
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            if os.path.exists(self.path) and not os.path.isfile(self.path):
                self._partial = (
                    self.path
                )  # /dev/null, a FIFO or a directory (open fails): never rename over it
            self._raw = open(self._partial, "wb")
            if self.path.endswith(".gz"):
                # filename="" and mtime=0: no name or timestamp in the header, so output is byte-stable.
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
                self._out = typing.cast(IO[bytes], gz)
            else:
                self._out = self._raw
        return self

    def write(self, trace: Trace) -> None:
        if self._out is None:
            raise RuntimeError("TraceWriter.write outside 'with TraceWriter(path) as writer:'")
        try:
            line = dump_trace(trace).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate read from a "\ud800" escape: keep it escaped
            line = json.dumps(encode(trace), separators=(",", ":"), ensure_ascii=True).encode("ascii")
        self._out.write(line + b"\n")
        self.count += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._raw is None:
            if self._out is not None:
                self._out.flush()  # stdout: flush, never close
        else:
            try:
                if self._out is not None and self._out is not self._raw:
                    self._out.close()  # the gzip trailer
            finally:
                self._raw.close()
            if self._partial != self.path:
                try:
                    if exc_type is None:
                        os.replace(self._partial, self.path)
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(self._partial)  # after a clean replace it is already gone
        self._out = self._raw = None


def write_traces(path: str | os.PathLike[str], traces: Iterable[Trace]) -> int:
    """Write all ``traces`` to ``path``; return how many were written."""
    with TraceWriter(path) as writer:
        for trace in traces:
            writer.write(trace)
    return writer.count
