"""``shadow capture --follow``: write traces as the production store finishes runs, with a durable cursor.

The output is a JSON Lines file, stdout, or a folder of rotating segments (``capture-000001.jsonl``, ...).
Beside it a small state file (``OUT.cursor.json``, or ``cursor.json`` in the folder; ``--state``) records,
after every trace, the engine's cursor, the segment and its byte length, written atomically (temporary
file, fsync, rename). On restart the output is cut back to the recorded length (a line written after the
last state write is dropped, it is captured again) and the feed continues from the cursor: no trace lost,
none twice. On stdout nothing can be cut back: a kill between a line and its state write repeats that
one trace after a restart (at least once; readers flag the repeated trace id).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from corpora.io import dump_trace
from corpora.model import JsonValue, Trace
from engines.api import TraceFeed

__all__ = ["STATE_FORMAT", "FollowError", "FollowOptions", "FollowSink", "follow"]

STATE_FORMAT = "shadow-capture-state/1"


class FollowError(Exception):
    """The output or its state file cannot be used (harness error, exit 4)."""


def _write_atomically(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # the rename itself durable: fsync the folder
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class FollowSink:
    """Where followed traces go, and the state that says how far it got."""

    def __init__(self, output: str, *, state: str | None, store: str, rotate: int) -> None:
        self.output = output
        self.store = store
        self.rotate = rotate
        self.folder = output != "-" and (output.endswith(os.sep) or os.path.isdir(output))
        if output != "-" and output.endswith(".gz"):
            raise FollowError(f"{output}: --follow writes plain JSON Lines (a cut-back after a restart needs them); "
                              "write .jsonl and compress finished segments afterwards")  # fmt: skip
        if state is not None:
            self.state_path = Path(state)
        elif output == "-":
            raise FollowError("--follow to stdout needs --state FILE for its cursor")
        elif self.folder:
            self.state_path = Path(output) / "cursor.json"
        else:
            self.state_path = Path(output + ".cursor.json")
        self.cursor: dict[str, JsonValue] | None = None
        self.segment = 1
        self.in_segment = 0
        self.captured = 0
        self._handle: IO[bytes] | None = None
        self._load()

    def _segment_path(self) -> Path:
        if self.folder:
            return Path(self.output) / f"capture-{self.segment:06d}.jsonl"
        return Path(self.output)

    def _load(self) -> None:
        if self.folder:
            Path(self.output).mkdir(parents=True, exist_ok=True)
        if not self.state_path.exists():
            if self.output != "-" and self._segment_path().exists() and self._segment_path().stat().st_size:
                raise FollowError(f"{self._segment_path()} exists but has no state file {self.state_path}: refusing to "
                                  "append to output this capture did not write; pass a new output")  # fmt: skip
            return
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FollowError(f"cannot read the capture state {self.state_path}: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise FollowError(f"{self.state_path} is not a capture state file ({STATE_FORMAT})")
        if state.get("store") != self.store:
            raise FollowError(f"{self.state_path} follows {state.get('store')!r}, not {self.store!r}: pass the same "
                              "--store, or a new output")  # fmt: skip
        self.cursor = state.get("cursor")
        self.segment = int(state.get("segment", 1))
        self.in_segment = int(state.get("in_segment", 0))
        self.captured = int(state.get("captured", 0))
        if self.output != "-":
            path = self._segment_path()
            length = int(state.get("offset", 0))
            size = path.stat().st_size if path.exists() else 0
            if size < length:
                raise FollowError(f"{path} is shorter ({size} bytes) than its state says ({length}): it was changed "
                                  "outside the capture; pass a new output")  # fmt: skip
            if size > length:  # lines written after the last state write: captured again below
                with open(path, "r+b") as handle:
                    handle.truncate(length)
                    os.fsync(handle.fileno())

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            if self.output == "-":
                self._handle = sys.stdout.buffer
            else:
                self._segment_path().parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self._segment_path(), "ab")  # noqa: SIM115 - closed in close()
        return self._handle

    def write(self, trace: Trace, cursor: dict[str, JsonValue]) -> None:
        if self.folder and self.in_segment >= self.rotate:
            self.close()
            self.segment += 1
            self.in_segment = 0
        handle = self._open()
        handle.write(dump_trace(trace).encode("utf-8") + b"\n")
        handle.flush()
        if self.output != "-":
            os.fsync(handle.fileno())
        self.cursor = cursor
        self.in_segment += 1
        self.captured += 1
        offset = 0 if self.output == "-" else handle.tell()
        _write_atomically(self.state_path, {
            "format": STATE_FORMAT, "store": self.store, "cursor": cursor, "segment": self.segment,
            "in_segment": self.in_segment, "offset": offset, "captured": self.captured,
        })  # fmt: skip

    def close(self) -> None:
        if self._handle is not None and self._handle is not sys.stdout.buffer:
            self._handle.close()
        self._handle = None


@dataclass(frozen=True, slots=True)
class FollowOptions:
    max_traces: int | None = None
    duration: float | None = None
    poll_interval: float = 1.0


def follow(
    feed: TraceFeed,
    sink: FollowSink,
    options: FollowOptions,
    *,
    transform: Callable[[Trace], Trace] | None = None,
    say: Callable[[str], None] | None = None,
) -> int:
    """Poll ``feed`` and write what finished until ``max_traces`` (this session), ``duration`` seconds, or
    SIGTERM / SIGINT; return how many traces this session wrote. ``transform`` (redaction) runs first."""
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        del signum, frame
        nonlocal stop
        stop = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    written = 0
    end = None if options.duration is None else time.monotonic() + options.duration
    try:
        while not stop:
            for trace, cursor in feed.poll(sink.cursor):
                sink.write(trace if transform is None else transform(trace), cursor)
                written += 1
                if say is not None:
                    say(f"captured {trace.trace_id}")
                if stop or (options.max_traces is not None and written >= options.max_traces):
                    return written
            if options.max_traces is not None and written >= options.max_traces:
                break
            if end is not None and time.monotonic() >= end:
                break
            wait = (
                options.poll_interval
                if end is None
                else min(options.poll_interval, max(0.0, end - time.monotonic()))
            )
            time.sleep(wait)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sink.close()
    return written
