"""Ctrl-C (SIGINT) and SIGTERM for the whole command line: one handler, critical sections, exit codes.

``install()`` (first thing ``shadow.cli.main`` does) makes both signals raise KeyboardInterrupt in the
main thread, remembering which signal came first, so ``main`` can exit 130 (SIGINT) or 143 (SIGTERM)
with one line and no traceback. Inside ``deferred()`` a signal is only recorded: the code there (a
flush of finished traces, marking the session, starting worker processes) completes, and its caller
checks :func:`received` afterwards. Worker processes never see either signal: they are started with
both blocked (a signal mask survives fork and exec) and then ignore them; the parent stops them
(SIGKILL) when it is interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

__all__ = [
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "blocked",
    "checkpoint",
    "deferred",
    "exit_code",
    "install",
    "received",
    "signal_name",
]

EXIT_SIGINT = 130
EXIT_SIGTERM = 143
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_state = {"received": 0, "deferred": 0}


def _handle(signum: int, frame: FrameType | None) -> None:
    del frame
    if not _state["received"]:
        _state["received"] = signum
    if _state["deferred"]:
        return
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM through this module (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _state["received"] = 0
    for signum in SIGNALS:
        signal.signal(signum, _handle)


def received() -> int:
    """The first signal received since ``install()`` (0: none)."""
    return int(_state["received"])


def note(signum: int = signal.SIGINT) -> None:
    """Record an interrupt that reached us as a KeyboardInterrupt without our handler (tests, embedding)."""
    if not _state["received"]:
        _state["received"] = signum


def exit_code() -> int:
    return EXIT_SIGTERM if received() == signal.SIGTERM else EXIT_SIGINT


def signal_name() -> str:
    return "SIGTERM" if received() == signal.SIGTERM else "SIGINT (Ctrl-C)"


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Signals arriving inside are recorded, not raised; check :func:`received` after."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1


@contextlib.contextmanager
def blocked() -> Iterator[None]:
    """SIGINT and SIGTERM blocked in this thread (and in processes and threads started inside, which inherit
    the mask): pending signals are delivered on exit. Used around starting worker processes."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


PAUSE_ENV = "SHADOW_TEST_PAUSE_AT"


def checkpoint(name: str) -> None:
    """A named moment a test can stop at to deliver a signal there: with ``SHADOW_TEST_PAUSE_AT=name`` the
    process says ``paused at NAME`` on stderr and waits (up to 60 s) for the signal. Otherwise nothing."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    print(f"paused at {name}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and not received():
        time.sleep(0.05)
