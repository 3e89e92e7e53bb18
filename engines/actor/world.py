"""The world outside the engine: step runtimes that keep running whatever happens to a node.

A runtime (a Kubernetes job, a notebook) does not die with the engine node that started it. The
world starts each attempt **at most once** (``ensure`` on an attempt already started only attaches
a listener), so a duplicated StartTask, a takeover or a reconciliation never runs an attempt twice,
and a node that resumes a RUNNING attempt re-attaches to the job instead of starting it again.

:class:`TraceWorld` answers from the trace through :class:`engines.runtimes.ReplayRuntime` (its
params evidence included) and finishes each attempt its recorded duration after it started, with a
timer instead of a Task, on the virtual clock in replay or the real one in live mode (where the
"job" is a sleep of the recorded duration, as the live benchmark and the SIGKILL test need).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from engines.clock import Clock
from engines.core.effects import RuntimeReport
from engines.core.expr import Value
from engines.runtimes import ReplayRuntime

__all__ = ["AttemptJob", "TraceWorld", "World"]

JobKey = tuple[str, str, int]
Listener = Callable[[RuntimeReport], None]


@dataclass(slots=True)
class AttemptJob:
    """One external attempt: its result once done, and who waits for it."""

    key: JobKey
    report: RuntimeReport | None = None
    killed: bool = False
    listeners: list[Listener] = field(default_factory=list)
    handle: asyncio.TimerHandle | asyncio.Task[None] | None = None


class World(Protocol):
    starts: int

    def ensure(
        self,
        run_id: str,
        path: str,
        attempt: int,
        params: Mapping[str, Value],
        started_at: float | None,
        listener: Listener,
    ) -> bool: ...

    def kill(self, run_id: str, path: str, attempt: int) -> None: ...

    def peek(self, run_id: str, path: str, attempt: int) -> RuntimeReport | None: ...

    def close(self) -> None: ...


class _JobTable:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.jobs: dict[JobKey, AttemptJob] = {}
        self.starts = 0
        self.started: set[JobKey] = set()
        """The attempts this world started (not the ones it adopted): a hand-off's duplicate check."""

    def _attach(self, job: AttemptJob, listener: Listener) -> None:
        if job.report is not None:
            report = job.report
            self.clock.call_later(0.0, lambda: listener(report))
        else:
            job.listeners.append(listener)

    def _finish(self, job: AttemptJob, report: RuntimeReport) -> None:
        if job.killed or job.report is not None:
            return
        job.report = report
        listeners, job.listeners = job.listeners, []
        for listener in listeners:
            listener(report)

    def peek(self, run_id: str, path: str, attempt: int) -> RuntimeReport | None:
        """The attempt's result if it has finished (what a RUNNING ping asks the runtime), else None."""
        job = self.jobs.get((run_id, path, attempt))
        return None if job is None or job.killed else job.report

    def kill(self, run_id: str, path: str, attempt: int) -> None:
        job = self.jobs.get((run_id, path, attempt))
        if job is not None and job.report is None:
            job.killed = True
            job.listeners.clear()
            if job.handle is not None:
                job.handle.cancel()

    def close(self) -> None:
        for job in self.jobs.values():
            if job.handle is not None:
                job.handle.cancel()
            job.listeners.clear()


class TraceWorld(_JobTable):
    """Attempts answered from the trace. ``from_started``: False (replay, one shared world) -- an
    attempt first seen now runs its whole recorded duration from now; True (live, one world per
    process) -- it ends at its ``started_at`` + duration, so a process re-attaching to an attempt
    another process started waits only for the rest."""

    def __init__(self, runtime: ReplayRuntime, clock: Clock, *, from_started: bool = False) -> None:
        super().__init__(clock)
        self.runtime = runtime
        self.from_started = from_started

    def ensure(
        self,
        run_id: str,
        path: str,
        attempt: int,
        params: Mapping[str, Value],
        started_at: float | None,
        listener: Listener,
    ) -> bool:
        """Start the attempt unless it already was (then only listen); True when this call started it."""
        key = (run_id, path, attempt)
        job = self.jobs.get(key)
        if job is not None:
            if not job.killed:
                self._attach(job, listener)
            return False
        job = self.jobs[key] = AttemptJob(key, listeners=[listener])
        self.starts += 1
        self.started.add(key)
        now = self.clock.now()
        self.runtime.record_params(run_id, path, attempt, params, now)
        recorded = self.runtime.lookup(run_id, path, attempt)
        if recorded is None:
            report = RuntimeReport.unrecorded()
            delay = 0.0
        else:
            report = RuntimeReport.finished(recorded.outcome.value, dict(recorded.outputs))
            begin = started_at if (self.from_started and started_at is not None) else now
            delay = max(0.0, begin + recorded.duration - now)
        job.handle = self.clock.call_later(delay, lambda: self._finish(job, report))
        return True

    def adopt(self, run_id: str, path: str, attempt: int, *, ends_at: float | None, finished: bool) -> None:
        """A runtime another engine started (an in-flight hand-off): it goes on running in the world, and
        a later :meth:`ensure` of the same attempt only attaches to it. ``finished``: it ended before the
        hand-off and nobody read its result yet; else it ends at ``ends_at`` (None: its recorded
        duration from now, for a job whose start the other engine had not begun)."""
        key = (run_id, path, attempt)
        if key in self.jobs:
            return
        job = self.jobs[key] = AttemptJob(key)
        recorded = self.runtime.lookup(run_id, path, attempt)
        if recorded is None:
            report = RuntimeReport.unrecorded()
            duration = 0.0
        else:
            report = RuntimeReport.finished(recorded.outcome.value, dict(recorded.outputs))
            duration = recorded.duration
        if finished:
            job.report = report
            return
        now = self.clock.now()
        end = ends_at if ends_at is not None else now + duration
        job.handle = self.clock.call_later(max(0.0, end - now), lambda: self._finish(job, report))
