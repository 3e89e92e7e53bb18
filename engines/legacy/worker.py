"""A stateless legacy worker: poll the queue, reload the run, advance one step, write back, re-queue.

One cycle is Conductor's ``executeSystemTask`` for one Maestro step task (MAESTRO-SEMANTICS.md
§7.1): claim a task; reload the workflow run and all its steps from the store (no cache of state
between cycles: every poll reads and decodes the rows); make ONE core ``execute`` call (the first
cycle of a fresh task is Conductor's ``start()``, which leaves the step CREATED); run the decider
pass when the call changed something; write everything back in one transaction (versioned: if
another worker wrote the run meanwhile, the transaction rolls back and the task is retried at once);
and re-queue the task with Maestro's per-status callback delay, or delete it when the step is done.
Runtimes are launched only after the commit, so a lost race never starts a job twice.

A worker that stalls past its claim loses the task to another worker and may then finish its own
cycle too (at-least-once delivery). Its late write goes through only if no one wrote the run since
it read it; its queue update is refused because it no longer owns the task. Both are counted.

Concurrency: a worker is one task on the deployment's loop; workers share nothing but the store.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING

from corpora.model import StepType
from engines.core.definition import CompiledTrace
from engines.core.effects import RuntimeReport, StartRuntime, TerminateRuntime, Wake
from engines.core.state import RunState, scope_of
from engines.core.statuses import StepStatus
from engines.core.step import execute
from engines.legacy.config import LegacyConfig
from engines.legacy.decider import DecideOutcome, decide_pass
from engines.legacy.fastpath import FastForward
from engines.store import DECIDER_PATH, QueueTask, StoreConflictError, StoreLockedError

if TYPE_CHECKING:
    from engines.legacy.deployment import Deployment

__all__ = ["MAX_LOCKED_RETRIES", "Worker", "callback_delay"]

S = StepStatus
MAX_LOCKED_RETRIES = 50


def callback_delay(
    cfg: LegacyConfig, status: StepStatus, step_type: StepType, poll_count: int, age: float, launched: bool
) -> float | None:
    """Maestro's delay before the next cycle of a task, from the step status after this cycle
    (``StepRuntimeFixedCallbackDelayPolicy`` + ``configureCallbackInterval``); None: the task is done."""
    if status.is_terminal:
        return None
    first = poll_count <= cfg.first_polling_cycles and age < cfg.first_polling_window
    if first and (status is S.CREATED or (status is S.RUNNING and step_type is StepType.FOREACH)):
        return 0.0
    if launched:
        return cfg.start_callback
    return cfg.callback_for(status)


class Worker:
    """One polling worker of a deployment."""

    def __init__(self, deployment: Deployment, index: int) -> None:
        self.dep = deployment
        self.index = index
        self.name = f"legacy-worker-{index}"
        self.rng = random.Random(f"legacy:{deployment.seed}:worker:{index}")
        self._back: list[float] = []  # draws of self.rng handed back by the fast path, next last
        self.counters: Counter[str] = Counter()
        self.idle_polls_elided = 0.0
        self.claims = 0
        self._stalls = {f.claim: f for f in deployment.faults if f.worker == index}
        self.ff_skip = False  # a hint to the fast path (engines.legacy.fastpath): do not try right now

    def _random(self) -> float:
        """The worker's next random draw (the fast path may have drawn ahead and handed draws back)."""
        return self._back.pop() if self._back else self.rng.random()

    def _gap(self) -> float:
        cfg = self.dep.config
        return cfg.poll_interval * (1.0 + cfg.poll_jitter * self._random())

    async def run(self) -> None:
        """Poll until cancelled. A locked database (another process holds the write lock) is retried
        at the next poll, up to ``MAX_LOCKED_RETRIES`` times per worker: the failed transaction was
        rolled back, and a claimed task is redelivered when its claim expires. Any other store error
        ends the deployment."""
        clock = self.dep.clock
        locked = 0
        while True:
            try:
                await self._poll_forever()
            except StoreLockedError:
                # A claim may now be held past the cycle that failed: the fast path assumes none is.
                self.dep.fast = False
                locked += 1
                self.counters["store_locked_retries"] += 1
                if locked > MAX_LOCKED_RETRIES:
                    raise
                self.dep.store.take_latency()
                await clock.sleep(self.dep.config.poll_interval)

    async def _poll_forever(self) -> None:
        dep, store, clock = self.dep, self.dep.store, self.dep.clock
        await clock.sleep(self._random() * dep.config.poll_interval)
        ff = FastForward.for_worker(self)
        while True:
            if ff is not None:
                await ff.advance()
            trips = store.counters["round_trips"]
            tasks = store.claim(self.name, clock.now(), claim_seconds=dep.config.claim_timeout, limit=1)
            # An empty poll also asks when the next task becomes visible; both round trips are paid
            # in one settle (they are back to back, nothing happens in between).
            nxt = store.next_visible_at() if not tasks else None
            if not tasks:
                dep.upkeep_round_trips += int(store.counters["round_trips"] - trips)
            await store.settle(clock)
            self.counters["polls"] += 1
            if tasks:
                for task in tasks:
                    dep.busy += 1
                    try:
                        await self.cycle(task)
                    finally:
                        dep.busy -= 1
                await clock.sleep(self._gap())
                continue
            self.counters["empty_polls"] += 1
            now = clock.now()
            if nxt is None:
                dep.check_quiescent()
            # Sleep to the first poll tick after the next visible task (or until new work is queued).
            wait = None if nxt is None else max(0.0, nxt - now) + self._random() * dep.config.poll_interval
            wait = max(wait, self._gap()) if wait is not None else None
            rung = await dep.doorbell.wait(wait)
            if rung:
                await clock.sleep(self._random() * dep.config.poll_interval)
            self.idle_polls_elided += max(0.0, (clock.now() - now) / dep.config.poll_interval - 1.0)
            self.counters["idle_polls_elided"] = round(self.idle_polls_elided)

    async def _stall(self, phase: str) -> None:
        fault = self._stalls.get(self.claims)
        if fault is not None and fault.phase == phase:
            self.counters["stalls"] += 1
            await self.dep.clock.sleep(fault.seconds)

    async def cycle(self, task: QueueTask) -> None:
        """One Conductor cycle for ``task``; see the module docstring."""
        dep, store, clock = self.dep, self.dep.store, self.dep.clock
        self.claims += 1
        self.counters["cycles"] += 1
        await self._stall("before_load")
        loaded = dep.codec.load(store, task.run_key)
        await store.settle(clock)
        if loaded is None:
            store.ack(task.task_id, self.name)
            await store.settle(clock)
            return
        wf = dep.workflow_of(loaded)
        now = clock.now()
        state = loaded.state
        effects: tuple[object, ...] = ()
        flow: DecideOutcome | None = None
        delay: float | None = None
        job_times: dict[tuple[str, int], dict[str, float]] = {}
        if task.path == DECIDER_PATH:
            flow = decide_pass(wf.ct, state, now)
            self.counters["decides"] += 1
            new_state = flow.state
        else:
            latest = state.latest(task.path)
            if latest is None or latest.status.is_terminal:
                new_state = state  # stale task: the step finished (or a retry will re-queue it)
            elif task.poll_count <= 1 and latest.status is S.CREATED:
                # Conductor start(): the step summary exists (CREATED); callback 0 follows.
                new_state = state
                self.counters["start_cycles"] += 1
                delay = callback_delay(
                    dep.config, S.CREATED, StepType.NOOP, task.poll_count, now - latest.created_at, False
                )
            else:
                new_state, effects, delay, flow = self._advance(wf.ct, state, task, now, job_times)
        await self._stall("before_write")
        writes = dep.codec.writes(loaded, new_state, now, job_times=job_times)
        key = task.run_key
        try:
            with store.transaction():
                if writes is not None:
                    writes.apply(store)
                owned = (
                    store.ack(task.task_id, self.name)
                    if delay is None
                    else store.requeue(task.task_id, self.name, now + delay)
                )
                for eff in effects:
                    if isinstance(eff, Wake):
                        for p in eff.paths:
                            store.enqueue(key, p, now)
                if flow is not None:
                    for p, at in flow.tasks:
                        store.enqueue(key, p, at)
                    if flow.ended:
                        # Its pending decider task (a workflow-timeout check) is moot: let it drain now.
                        store.enqueue(key, DECIDER_PATH, now)
                        dep.desk.run_ended(loaded.root.workflow_id, now)
        except StoreConflictError:
            self.counters["conflicts"] += 1
            await store.settle(clock)
            store.requeue(task.task_id, self.name, clock.now())
            await store.settle(clock)
            return
        await store.settle(clock)
        if not owned:
            self.counters["duplicate_deliveries"] += 1
        woken = any(isinstance(e, Wake) for e in effects)
        if (flow is not None and flow.tasks) or woken:
            dep.doorbell.ring()
        if woken:
            # The next claim is almost surely the woken step: a real cycle. Not worth a fast-forward
            # attempt. (A task of this run at a version no poll has read yet, or a fresh attempt's start
            # cycle, may be simulated: the fast path reloads the run itself.)
            self.ff_skip = True
        self._carry_out(key, task.path, new_state, effects)

    def _advance(
        self,
        ct: CompiledTrace,
        state: RunState,
        task: QueueTask,
        now: float,
        job_times: dict[tuple[str, int], dict[str, float]],
    ) -> tuple[RunState, tuple[object, ...], float | None, DecideOutcome | None]:
        dep, path = self.dep, task.path
        latest = state.latest(path)
        assert latest is not None
        prefix, sid = scope_of(path)
        cs = ct.workflows[state.scopes[prefix].workflow].steps[sid]
        report: RuntimeReport | None = None
        job_key = (task.run_key, path, latest.attempt)
        if latest.status is S.RUNNING and cs.type.is_leaf:
            report = dep.jobs.report(job_key)
            if report is not None and report.state != "running":
                done = dep.jobs.finished(job_key)
                if done is not None:
                    job_times[(path, latest.attempt)] = {
                        "job_started": done.started_at, "job_ended": done.ended_at, "job_duration": done.result.duration,
                    }  # fmt: skip
        result = execute(ct, state, path, now, report)
        self.counters["executes"] += 1
        effects: list[object] = list(result.effects)
        needs_decide = result.needs_decide
        # MaestroTask.isFirstPolling: a fresh FOREACH / SUBWORKFLOW runs straight to RUNNING in one cycle.
        while (
            dep.config.short_circuit_containers
            and not cs.type.is_leaf
            and result.changed
            and result.status in (S.INITIALIZED, S.WAITING_FOR_PERMITS, S.STARTING)
            and task.poll_count <= dep.config.first_polling_cycles + 1
        ):
            result = execute(ct, result.run, path, now, None)
            self.counters["executes"] += 1
            effects.extend(result.effects)
            needs_decide = needs_decide or result.needs_decide
        launched = any(isinstance(e, StartRuntime) for e in effects)
        new_state = result.run
        flow = None
        if needs_decide or launched:
            flow = decide_pass(ct, new_state, now)
            self.counters["decides"] += 1
            new_state = flow.state
        after = new_state.latest(path)
        assert after is not None
        status = after.status if after.attempt == latest.attempt else S.CREATED
        delay = callback_delay(dep.config, status, cs.type, task.poll_count, now - after.created_at, launched)
        if after.attempt != latest.attempt:
            delay = None  # a new attempt of this path was created: its own task follows from the decider
        return new_state, tuple(effects), delay, flow

    def _carry_out(self, run_key: str, path: str, state: RunState, effects: tuple[object, ...]) -> None:
        jobs = self.dep.jobs
        for eff in effects:
            if isinstance(eff, StartRuntime):
                jobs.launch((run_key, eff.path, eff.attempt), state.run_id, eff.step_type, eff.params)
            elif isinstance(eff, TerminateRuntime):
                jobs.terminate((run_key, eff.path, eff.attempt))
        # The job of an attempt that reached a terminal status was consumed: forget it.
        for a in state.attempts.get(path, ()):
            if a.status.is_terminal:
                jobs.forget((run_key, path, a.attempt))
