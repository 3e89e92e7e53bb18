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
from shadow import interrupts
from shadow.engines import build_engine
from shadow.trial import TraceJob, TraceOutcome, TrialConfig, run_trace_with

__all__ = ["Executor", "InlineExecutor", "ProcessExecutor", "make_executor", "stream_batches"]


class Executor(Protocol):
    """Runs batches of trials. ``run_batch`` returns one outcome per job, in job order."""

    def run_batch(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[TraceOutcome]: ...

    def close(self) -> None: ...


def stream_batches(
    executor: Executor, batches: Iterable[Sequence[TraceJob]], config: TrialConfig
) -> Iterator[list[TraceOutcome]]:
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
        _worker_engines = (key, {role: build_engine(spec) for role, spec in config.engines.items()})
    return run_trace_with(job, config, _worker_engines[1])


class InlineExecutor:
    """Runs every trial in the calling process (workers=1; also the simplest to debug and profile)."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] | None = None
        self._config: TrialConfig | None = None

    def run_batch(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[TraceOutcome]:
        return [self._one(job, config) for job in jobs]

    def _one(self, job: TraceJob, config: TrialConfig) -> TraceOutcome:
        if self._engines is None or self._config is not config:
            self._engines = {role: build_engine(spec) for role, spec in config.engines.items()}
            self._config = config
        return run_trace_with(job, config, self._engines)

    def run_batches(
        self, batches: Iterable[Sequence[TraceJob]], config: TrialConfig
    ) -> Iterator[list[TraceOutcome]]:
        """One trace at a time: the runner's time-bounded flush then sees every finished trace at once,
        and an interrupt loses only the trace being replayed."""
        for jobs in batches:
            for job in jobs:
                yield [self._one(job, config)]

    def close(self) -> None:
        self._engines = None


def _init_worker(parent_pid: int) -> None:
    """Ctrl-C and SIGTERM are the parent's business (it stops the workers with SIGKILL): the worker was
    started with both blocked (shadow.interrupts.blocked), so neither could interrupt its start-up with a
    traceback; now it ignores them and unblocks. A worker whose parent was SIGKILLed exits instead of
    replaying the rest of its chunk for nobody (a watchdog thread polls the parent pid)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM))

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
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            initializer=_init_worker,
            initargs=(os.getpid(),),
            mp_context=multiprocessing.get_context("spawn"),
        )
        self._queued: deque[list[Future[TraceOutcome]]] = deque()

    in_flight = 2
    """Batches submitted beyond the one being collected (the workers' queue never runs dry)."""

    def _submit(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[Future[TraceOutcome]]:
        largest_first = sorted(range(len(jobs)), key=lambda i: -job_cost(jobs[i]))
        # submit() starts worker processes on demand: they must be born with SIGINT/SIGTERM blocked, and the
        # pool's bookkeeping must not be cut by a KeyboardInterrupt halfway; a signal here is raised after.
        with interrupts.deferred(), interrupts.blocked():
            futures = {i: self._pool.submit(_run_one, jobs[i], config) for i in largest_first}
        batch = [futures[i] for i in range(len(jobs))]
        self._queued.append(batch)
        interrupts.checkpoint("worker-start")
        if interrupts.received():
            raise KeyboardInterrupt
        return batch

    def run_batch(self, jobs: Sequence[TraceJob], config: TrialConfig) -> list[TraceOutcome]:
        batch = self._submit(jobs, config)
        outcomes = [future.result() for future in batch]
        self._queued.remove(batch)
        return outcomes

    def run_batches(
        self, batches: Iterable[Sequence[TraceJob]], config: TrialConfig
    ) -> Iterator[list[TraceOutcome]]:
        queued = self._queued
        for jobs in batches:
            self._submit(jobs, config)
            if len(queued) > self.in_flight:
                yield [future.result() for future in queued.popleft()]
        while queued:
            yield [future.result() for future in queued.popleft()]

    def harvest(self) -> list[TraceOutcome]:
        """After an interrupt: the outcomes of traces the workers already finished but the stream has not
        handed over (their batch waits on a slower trace), so they are stored, not replayed again."""
        done: list[TraceOutcome] = []
        while self._queued:
            for future in self._queued.popleft():
                if future.done() and not future.cancelled() and future.exception() is None:
                    done.append(future.result())
        return done

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop now (Ctrl-C): drop queued chunks and terminate workers mid-trace; their traces are not
        stored, so a rerun replays them."""
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()  # workers ignore SIGTERM (see _init_worker)
        for process in processes:
            process.join(timeout=5)


def make_executor(workers: int) -> Executor:
    return InlineExecutor() if workers <= 1 else ProcessExecutor(workers)
