"""Where trials run: in this process, or spread over local worker processes.

The :class:`Executor` protocol is deliberately small (run a batch of trace jobs, get their outcomes
back in order) so that a distributed executor can follow without touching the runner. An
executor may also offer ``run_batches`` (a stream of batches in, their outcomes out), which
lets it work on the next batches while the runner stores the last one; :func:`stream_batches` uses it
when present. The Dask executor (``shadow.dask_executor``) uses it to regroup the stream into tasks by
step count and to return results as they complete; its items are ``shadow.batches.ArrowBatch`` (the
rows of several traces as Arrow tables) rather than one ``TraceOutcome`` per trace, and the runner
stores either kind.

The process pool ships one trace per task, largest first within a batch, and keeps two batches in
flight: a worker that finishes early takes the next trace instead of waiting for the slowest chunk
(one 1,900-step trace used to leave the other core idle for most of its batch). Workers receive
engine *specs* and build their engines once per process and configuration; they ignore SIGINT so
that Ctrl-C reaches only the parent, which stops cleanly and keeps what is already written.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Protocol

from engines.api import Engine
from shadow.engines import build_engine
from shadow.trial import ROLES, TraceJob, TraceOutcome, TrialConfig, run_trace_with

__all__ = ["Executor", "InlineExecutor", "ProcessExecutor", "make_executor", "stream_batches"]


class Executor(Protocol):
    """Runs batches of trials. ``run_batch`` returns one outcome per job, in job order."""

    def run_batch(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[TraceOutcome]: ...

    def close(self) -> None: ...


def stream_batches(executor: Executor, batches: Iterable[Sequence[TraceJob]],
                   config: TrialConfig) -> Iterator[list[TraceOutcome]]:
    """Each batch's outcomes, in order: through ``executor.run_batches`` when it has one (it may run
    ahead), else one ``run_batch`` call per batch."""
    ahead = getattr(executor, "run_batches", None)
    if ahead is not None:
        yield from ahead(batches, config)
        return
    for jobs in batches:
        yield executor.run_batch(jobs, config)


def job_cost(job: TraceJob) -> int:
    """The recorded attempts of a trace: what its replay costs, to hand out the largest first."""
    return sum(len(run.attempts) for run in job.trace.runs)


# In a worker process: the engines of the last configuration seen, keyed by its pickled specs.
_worker_engines: tuple[bytes, dict[str, Engine]] | None = None


def _run_one(job: TraceJob, config: TrialConfig) -> TraceOutcome:
    global _worker_engines
    key = pickle.dumps(config.engines)
    if _worker_engines is None or _worker_engines[0] != key:
        _worker_engines = (key, {role: build_engine(config.engines[role]) for role in ROLES})
    return run_trace_with(job, config, _worker_engines[1])


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
    """Spreads batches over ``workers`` processes, one trace per task, largest first, batches overlapping."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        # spawn, not fork: the parent holds DuckDB connections (and their threads); a forked child
        # would inherit their locks. Workers never touch the database, so a clean interpreter suffices.
        self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                         initargs=(os.getpid(),),
                                         mp_context=multiprocessing.get_context("spawn"))

    in_flight = 2
    """Batches submitted beyond the one being collected (the workers' queue never runs dry)."""

    def _submit(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[Future[TraceOutcome]]:
        largest_first = sorted(range(len(jobs)), key=lambda i: -job_cost(jobs[i]))
        futures = {i: self._pool.submit(_run_one, jobs[i], config) for i in largest_first}
        return [futures[i] for i in range(len(jobs))]

    def run_batch(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[TraceOutcome]:
        return [future.result() for future in self._submit(jobs, config)]

    def run_batches(self, batches: Iterable[Sequence[TraceJob]], config: TrialConfig) -> Iterator[list[TraceOutcome]]:
        queued: deque[list[Future[TraceOutcome]]] = deque()
        for jobs in batches:
            queued.append(self._submit(jobs, config))
            if len(queued) > self.in_flight:
                yield [future.result() for future in queued.popleft()]
        while queued:
            yield [future.result() for future in queued.popleft()]

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
