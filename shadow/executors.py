"""Where trials run: in this process, or spread over local worker processes.

The :class:`Executor` protocol is deliberately small (run a batch of trace jobs, get their outcomes
back in order) so that a distributed executor (Dask) can follow without touching the runner.
Workers receive engine *specs* and build their engines once per chunk; they ignore SIGINT so that
Ctrl-C reaches only the parent, which stops cleanly and keeps what is already written.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Protocol

from engines.api import Engine
from shadow.engines import build_engine
from shadow.trial import ROLES, TraceJob, TraceOutcome, TrialConfig, run_trace_with

__all__ = ["Executor", "InlineExecutor", "ProcessExecutor", "make_executor"]


class Executor(Protocol):
    """Runs batches of trials. ``run_batch`` returns one outcome per job, in job order."""

    def run_batch(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[TraceOutcome]: ...

    def close(self) -> None: ...


def _run_chunk(jobs: Sequence[TraceJob], config: TrialConfig) -> list[TraceOutcome]:
    engines: dict[str, Engine] = {role: build_engine(config.engines[role]) for role in ROLES}
    return [run_trace_with(job, config, engines) for job in jobs]


class InlineExecutor:
    """Runs every trial in the calling process (workers=1; also the simplest to debug and profile)."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] | None = None
        self._config: TrialConfig | None = None

    def run_batch(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[TraceOutcome]:
        if self._engines is None or self._config is not config:
            self._engines = {role: build_engine(config.engines[role]) for role in ROLES}
            self._config = config
        return [run_trace_with(job, config, self._engines) for job in jobs]

    def close(self) -> None:
        self._engines = None


def _init_worker(parent_pid: int) -> None:
    """Ctrl-C is the parent's business; and a worker whose parent was SIGKILLed exits instead of
    replaying the rest of its chunk for nobody (a watchdog thread polls the parent pid)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


class ProcessExecutor:
    """Spreads each batch over ``workers`` processes in contiguous chunks (one engine set per chunk)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        # spawn, not fork: the parent holds DuckDB connections (and their threads); a forked child
        # would inherit their locks. Workers never touch the database, so a clean interpreter suffices.
        self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                         initargs=(os.getpid(),),
                                         mp_context=multiprocessing.get_context("spawn"))

    def run_batch(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[TraceOutcome]:
        if not jobs:
            return []
        size = -(-len(jobs) // self.workers)
        futures: list[Future[list[TraceOutcome]]] = [
            self._pool.submit(_run_chunk, list(jobs[i:i + size]), config) for i in range(0, len(jobs), size)
        ]
        out: list[TraceOutcome] = []
        for future in futures:
            out.extend(future.result())
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop now (Ctrl-C): drop queued chunks and terminate workers mid-trace; their traces are not
        stored, so a rerun replays them."""
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)


def make_executor(workers: int) -> Executor:
    return InlineExecutor() if workers <= 1 else ProcessExecutor(workers)
