"""One running legacy deployment: a store, N workers, the job board, the API that inserts runs.

Replay and live mode build the same :class:`Deployment`; they differ only in the clock (virtual or
real), the runtimes (replay or live) and the store (in memory with a latency model, or a file).
:meth:`Deployment.serve` runs the workers and the triggers until every inserted run is finished
(the queue is empty, nothing is in flight, no trigger is pending) or until a deadline.

Idle workers do not spin: when the queue holds nothing visible, a worker asks the store when the next
task becomes visible and sleeps until its first poll tick after that (a seeded phase within one poll
interval), or until a commit rings the :class:`Doorbell` because it queued new work. That is
observationally the same as polling every 100 ms (the task is picked up by the first poll after it
becomes visible) without millions of empty polls in a days-long replay; the elided polls are
counted (``idle_polls_elided``).

Concurrency: everything runs on one event loop thread.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from corpora.model import Run, Trace
from engines.api import EngineError, RunExecution
from engines.clock import Clock
from engines.core.definition import compile_trace
from engines.core.record import run_execution
from engines.legacy.config import LegacyConfig
from engines.legacy.decider import RunDesk, WorkflowEntry
from engines.legacy.jobs import JobBoard
from engines.legacy.rows import LoadedState, RowCodec, root_key
from engines.legacy.worker import Worker
from engines.runtimes import RuntimeRegistry
from engines.store import Store, StoreLockedError

__all__ = ["MAX_TRIGGER_TRIES", "Deployment", "Doorbell", "StallFault", "workflow_entry"]

MAX_TRIGGER_TRIES = 50


@dataclass(frozen=True, slots=True)
class StallFault:
    """Worker ``worker`` stalls ``seconds`` on its ``claim``-th claimed task, at ``phase``
    (``"before_load"``: after the claim, before reloading the run; ``"before_write"``: after computing
    the transition, before writing it). With ``seconds`` > the claim timeout the task is delivered to
    another worker meanwhile: the at-least-once duplicate delivery of production."""

    worker: int
    claim: int
    seconds: float
    phase: str = "before_load"

    @classmethod
    def parse(cls, spec: str) -> StallFault:
        """``stall-worker:W:CLAIM:SECONDS[:PHASE]``, e.g. ``stall-worker:0:5:90:before_write``."""
        parts = spec.split(":")
        try:
            if parts[0] != "stall-worker" or len(parts) not in (4, 5):
                raise ValueError(spec)
            phase = parts[4] if len(parts) == 5 else "before_load"
            if phase not in ("before_load", "before_write"):
                raise ValueError(phase)
            return cls(int(parts[1]), int(parts[2]), float(parts[3]), phase)
        except ValueError as exc:
            raise EngineError(
                f"legacy fault {spec!r} is not understood; use stall-worker:WORKER:CLAIM:SECONDS[:before_load|"
                "before_write] (e.g. stall-worker:0:5:90)"
            ) from exc


class Doorbell:
    """Wakes idle workers when a commit queued new work.

    A plain future per wait with a loop timer for the timeout: cheaper than ``asyncio.wait_for``,
    which wraps every wait in a task (idle waits are the most frequent await of a replay)."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[bool]] = []

    def ring(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(True)

    async def wait(self, timeout: float | None) -> bool:
        """Wait for the next ring or ``timeout`` seconds; True when rung."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(fut)
        timer = None if timeout is None else loop.call_later(timeout, _expire, fut)
        try:
            return await fut
        finally:
            if timer is not None:
                timer.cancel()


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


def workflow_entry(trace: Trace) -> WorkflowEntry:
    """Compile a trace's definitions once (workers cache definitions, as Maestro's did)."""
    ct = compile_trace(trace)
    runs: dict[str, Run] = {r.run_id: r for r in trace.runs}
    index = {r.run_id: i for i, r in enumerate(trace.runs, start=1)}
    return WorkflowEntry(trace, ct, runs, index)


class Deployment:
    """The shared context of the workers of one legacy deployment."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        config: LegacyConfig,
        registry: RuntimeRegistry,
        workflows: Mapping[str, WorkflowEntry],
        seed: int = 0,
        faults: Sequence[StallFault] = (),
        fast: bool = False,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.workflows = dict(workflows)
        self.codec = RowCodec()
        self.desk = RunDesk(store, self.codec, self.workflows)
        self.jobs = JobBoard(registry, clock)
        self.doorbell = Doorbell()
        self.seed = seed
        self.faults = tuple(faults)
        self.counters: Counter[str] = Counter()
        self.busy = 0
        self.pending_triggers = 0
        self.quiescent = asyncio.Event()
        # The fast path (engines.legacy.fastpath): on only for one worker, no faults, a virtual clock and a
        # SQLite store without fault hooks; everything else runs tick by tick.
        self.fast = fast
        if fast:
            self.codec.enable_fast()
        self.deadline = math.inf
        self.trigger_horizon = -math.inf  # the trigger task does nothing before this time
        self.jump_credit = 0  # loop jumps the tick-by-tick run would have made inside fast-forwards
        self.upkeep_round_trips = 0  # round trips of empty polls (per worker upkeep)
        self.fast_stats: Counter[str] = Counter()
        self.stopped_jobs: list[tuple[tuple[str, str, int], float | None, bool]] = []
        """Jobs still outstanding when :meth:`serve` last returned (:meth:`JobBoard.outstanding`): what a
        deployment stopped at a deadline leaves running in the world, for a hand-off to adopt."""

    def workflow_of(self, loaded: LoadedState) -> WorkflowEntry:
        return self.workflows[loaded.root.workflow_id]

    def check_quiescent(self) -> None:
        """Called by a worker that found the queue empty: finished when nothing else can happen."""
        if self.busy == 0 and self.pending_triggers == 0:
            self.quiescent.set()

    async def trigger(self, workflow_id: str, run_id: str) -> None:
        """Maestro's API: insert a triggered run and apply the run strategy (one transaction)."""
        with self.store.transaction():
            self.desk.insert(workflow_id, run_id, self.clock.now())
        self.doorbell.ring()
        await self.store.settle(self.clock)

    async def _trigger_all(self, schedule: list[tuple[float, str, str]]) -> None:
        for when, workflow_id, run_id in schedule:
            delay = when - self.clock.now()
            if delay > 0:
                # the time the sleep's timer fires: now + delay, as the loop computes it (may differ from
                # ``when`` in the last bit)
                self.trigger_horizon = min(when, self.clock.now() + delay)
                await self.clock.sleep(delay)
            self.trigger_horizon = -math.inf
            try:
                for tries in range(MAX_TRIGGER_TRIES):
                    try:
                        await self.trigger(workflow_id, run_id)
                        break
                    except StoreLockedError:
                        # Rolled back; the API retries after a poll interval, as a client would.
                        self.store.take_latency()
                        if tries + 1 == MAX_TRIGGER_TRIES:
                            raise
                        self.counters["store_locked_retries"] += 1
                        await self.clock.sleep(self.config.poll_interval)
            finally:
                self.pending_triggers -= 1
                if self.pending_triggers == 0:
                    self.doorbell.ring()  # idle workers re-check: maybe nothing is left to do
        self.trigger_horizon = math.inf

    async def serve(self, *, deadline: float | None) -> bool:
        """Trigger every run of every workflow at its trigger time and run the workers until
        quiescent (True) or until the clock reaches ``deadline`` (False)."""
        schedule = sorted(
            (run.trigger_time, wid, run.run_id, wf.run_index[run.run_id])
            for wid, wf in self.workflows.items()
            for run in wf.runs.values()
        )
        self.pending_triggers = len(schedule)
        self.quiescent.clear()
        self.deadline = math.inf if deadline is None else deadline
        self.trigger_horizon = -math.inf
        workers = [Worker(self, i) for i in range(self.config.workers)]
        tasks = [asyncio.get_running_loop().create_task(w.run(), name=w.name) for w in workers]
        trig = asyncio.get_running_loop().create_task(
            self._trigger_all([(t, w, r) for t, w, r, _ in schedule]), name="legacy triggers"
        )
        done = asyncio.get_running_loop().create_task(self.quiescent.wait(), name="legacy quiescence")
        everything: list[asyncio.Task[Any]] = [*tasks, trig, done]
        pending: set[asyncio.Task[Any]] = set(everything)
        try:
            while True:
                timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
                finished, pending = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not finished:
                    break  # the deadline passed
                for t in finished:
                    if t is not done and not t.cancelled() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                if done in finished:
                    break
        finally:
            for t in everything:
                t.cancel()
            await asyncio.gather(*everything, return_exceptions=True)
            self.stopped_jobs = self.jobs.outstanding()
            await self.jobs.close()
            for w in workers:
                self.counters.update(w.counters)
        return done.done() and not done.cancelled()

    def root_keys(self) -> list[tuple[str, str, str]]:
        """``(workflow_id, run_id, run_key)`` of every run the deployment knows, in trigger order."""
        return [
            (wid, run_id, root_key(wid, wf.run_index[run_id]))
            for wid, wf in self.workflows.items()
            for run_id in wf.runs
        ]

    def final_runs(self) -> tuple[RunExecution, ...]:
        """Canonical records of every run from the store's final rows; a run that started but did
        not end is ``stuck``. A run whose trigger never fired is an error (the deadline was too short)."""
        out = []
        for workflow_id, run_id, key in self.root_keys():
            loaded = self.codec.load(self.store, key)
            self.store.take_latency()
            if loaded is None:
                raise EngineError(
                    f"run {run_id!r} of {workflow_id!r} was never inserted: its trigger did not fire before the "
                    "deadline; raise the time limit"
                )
            state = loaded.state
            if state.unfinished:
                state = replace(state, stuck=True)
            out.append(run_execution(self.workflows[workflow_id].ct, state))
        return tuple(out)
