"""The job system under the legacy engine: step runtimes running on the clock, polled, never pushed.

In Maestro's legacy engine a step's job (a Kubernetes pod, a notebook) runs outside the engine; the
engine learns that it finished only when the step's next RUNNING poll asks (every 3 s). This module
is that outside world: :meth:`JobBoard.launch` starts a runtime as a task on the engine's loop, and
:meth:`JobBoard.report` answers a poll with where the job is. Nothing here wakes a worker: completion
is noticed at the next poll, as in production.

Concurrency: one board per engine deployment, used from the loop's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from corpora.model import JsonValue, Outcome, StepType
from engines.api import EngineError
from engines.clock import Clock
from engines.core.effects import RuntimeReport
from engines.runtimes import ReplayRuntime, RuntimeRegistry, RuntimeResult

__all__ = ["FinishedJob", "JobBoard", "JobKey"]

JobKey = tuple[str, str, int]
"""``(run_key, path, attempt)``."""


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """What a job did, with its clock times (for capture)."""

    result: RuntimeResult
    started_at: float
    ended_at: float


class JobBoard:
    """Runtimes launched by workers, keyed by attempt; polled by later cycles."""

    def __init__(self, registry: RuntimeRegistry, clock: Clock) -> None:
        self._registry = registry
        self._clock = clock
        self._tasks: dict[JobKey, asyncio.Task[FinishedJob]] = {}
        # When a replay job will finish (its runtime's timer), known once the job's task started; the
        # fast path uses it to know that a poll before that time sees the job still running.
        self._due: dict[JobKey, float] = {}
        self.due_times: dict[float, int] = {}  # how many known jobs finish at each time (their timers)
        self.launched = 0
        self.duplicate_launches = 0
        self.history: set[JobKey] = set()
        """Every attempt this board ever launched (a hand-off checks that no other engine starts one again)."""

    def launch(self, key: JobKey, run_id: str, step_type: str, params: Mapping[str, JsonValue]) -> None:
        """Start the runtime of one attempt. A second launch of the same attempt is ignored."""
        if key in self._tasks:
            self.duplicate_launches += 1
            return
        self.launched += 1
        self.history.add(key)
        _, path, attempt = key
        self._tasks[key] = asyncio.get_running_loop().create_task(
            self._run(key, run_id, path, attempt, StepType(step_type), dict(params)),
            name=f"job {key[0]} {path}#{attempt}",
        )

    async def _run(
        self,
        key: JobKey,
        run_id: str,
        path: str,
        attempt: int,
        step_type: StepType,
        params: dict[str, JsonValue],
    ) -> FinishedJob:
        started = self._clock.now()
        try:
            runtime = self._registry.for_type(step_type, step=path)
            if isinstance(runtime, ReplayRuntime):
                # ReplayRuntime.run sleeps the recorded duration (when positive) on the clock: its task
                # is done from exactly started + duration on (at that instant the loop's order decides).
                planned = runtime.result_for(run_id, path, attempt)
                dur = planned.duration if not planned.unrecorded and planned.duration > 0 else 0.0
                due = started + dur if dur > 0 else started
                self._due[key] = due
                self.due_times[due] = self.due_times.get(due, 0) + 1
            result = await runtime.run(run_id, path, attempt, params, self._clock)
        except EngineError as exc:
            # No runtime can run this step here: a configuration error no retry fixes.
            result = RuntimeResult(outcome=Outcome.FATAL_ERROR, outputs={"error": str(exc)})
        return FinishedJob(result, started, self._clock.now())

    def report(self, key: JobKey) -> RuntimeReport | None:
        """Where the job is, as a poll sees it: None when this engine never launched it (lost with a
        restarted process), running, or finished with the runtime's outcome."""
        task = self._tasks.get(key)
        if task is None:
            return None
        if not task.done():
            return RuntimeReport.running()
        result = task.result().result
        if result.unrecorded or result.outcome is None:
            return RuntimeReport.unrecorded()
        return RuntimeReport.finished(result.outcome.value, dict(result.outputs))

    def due(self, key: JobKey) -> float | None:
        """When a launched replay job finishes (None: unknown, not launched, or not started yet).

        A poll at a virtual time strictly before it sees the job running; at or after it, the poll
        must be simulated for real (at exactly that time the loop's ordering decides)."""
        return self._due.get(key)

    def has(self, key: JobKey) -> bool:
        """True when this board launched the job (and has not forgotten it)."""
        return key in self._tasks

    def done(self, key: JobKey) -> bool:
        task = self._tasks.get(key)
        return task is not None and task.done()

    def finished(self, key: JobKey) -> FinishedJob | None:
        task = self._tasks.get(key)
        return task.result() if task is not None and task.done() and not task.cancelled() else None

    def _drop_due(self, key: JobKey) -> None:
        due = self._due.pop(key, None)
        if due is not None:
            left = self.due_times[due] - 1
            if left:
                self.due_times[due] = left
            else:
                del self.due_times[due]

    def forget(self, key: JobKey) -> None:
        """Drop a job whose attempt reached a terminal status (its result was consumed)."""
        self._tasks.pop(key, None)
        self._drop_due(key)

    def terminate(self, key: JobKey) -> None:
        """Kill a job (step timeout, STOP); it reports nothing more."""
        task = self._tasks.pop(key, None)
        self._drop_due(key)
        if task is not None and not task.done():
            task.cancel()

    def outstanding(self) -> list[tuple[JobKey, float | None, bool]]:
        """The jobs whose result no cycle consumed yet, as ``(key, due, finished)``: ``due`` is when a
        running replay job finishes (None when unknown: not started yet, or not a replay runtime),
        ``finished`` whether it has. What a deployment stopped mid-run leaves running in the world."""
        out = []
        for key, task in self._tasks.items():
            done = task.done() and not task.cancelled()
            out.append((key, None if done else self._due.get(key), done))
        return out

    @property
    def running(self) -> int:
        return sum(1 for t in self._tasks.values() if not t.done())

    async def close(self) -> None:
        """Cancel every job still running and wait for them to release what they hold."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._due.clear()
        self.due_times.clear()
