"""The flow actor: one per workflow run (children included), the run's state in memory.

It drives the core exactly as :class:`engines.core.oracle.CoreOracle` does -- a status change is
followed by the next ``execute`` at once, a runtime's completion arrives as a message and is
handled at once, a terminal step triggers ``decide`` in the same actor at once, RUNNING steps are
pinged on Maestro's 3 s RUNNING schedule, lazily (the ping at the step's timeout; every 3 s when a
planned message fault may lose a completion), retries are timers at failure end + backoff --
and reads nothing from the store on the way. What it writes:

* **before a new attempt runs** (``decide`` created it): the run state, in one transaction, so a
  created attempt is never lost (Maestro's step-instance insert);
* **when runtimes must start**: the run state and one outbox row per StartTask in the same
  transaction, then the messages go to the task actors at once;
* **when the run ends**: the final state and a RunEnded row for the run strategy; if async
  subworkflow children still run (an independent instance in Maestro, it outlives its parent's
  run), the flow goes on driving them, writes through, and keeps a detached-work marker row
  IN_PROGRESS (:func:`engines.actor.persist.detached_key`) until they end, so a takeover resumes them;
* **behind**, FLOW_REFRESH (3 s + U(0, 1 s), de-duplicated) after other changes.

Every write carries the group's fence, so a node that lost its lease cannot overwrite its successor.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from corpora.model import Run
from engines.actor.actors import Actor
from engines.actor.messages import (
    DurableMessage,
    Reconcile,
    Refresh,
    RetryDue,
    RunEnded,
    Shutdown,
    StartFlow,
    StartTask,
    StopFlow,
    TaskUpdate,
    WakeUp,
)
from engines.actor.persist import RunCodec, detached_key, has_detached_work
from engines.actor.task import TaskActor
from engines.core.definition import CompiledStep, CompiledTrace
from engines.core.effects import RuntimeReport, StartRuntime, TerminateRuntime, Wake
from engines.core.flow import decide, start_run, stop_run
from engines.core.state import RunState, scope_of
from engines.core.statuses import StepStatus, WorkflowStatus
from engines.core.step import execute
from engines.store.errors import StaleGenerationError, StoreConflictError, StoreError
from engines.store.protocol import Fence
from engines.store.records import WorkflowInstance

if TYPE_CHECKING:
    from engines.actor.group import GroupActor

__all__ = ["FlowActor"]


class FlowActor(Actor):
    """One run's flow. ``row`` is the run's store row as last committed (its version)."""

    __slots__ = (
        "_committed", "codec", "ct", "detached", "dirty", "ended", "group", "outgoing", "poll_at", "reports",
        "row", "run", "state", "tasks",
    )  # fmt: skip

    def __init__(
        self,
        group: GroupActor,
        ct: CompiledTrace,
        run: Run,
        row: WorkflowInstance,
        state: RunState,
        codec: RunCodec,
    ) -> None:
        super().__init__(group.node)
        self.codec = codec
        self.group = group
        self.ct = ct
        self.run = run
        self.row = row
        self.state = state
        self._committed = state
        self.outgoing: list[DurableMessage] = []
        self.reports: dict[tuple[str, int], RuntimeReport] = {}
        self.poll_at: dict[str, float] = {}
        self.tasks: dict[tuple[str, int], TaskActor] = {}
        self.dirty = False
        self.ended = state.status.is_terminal
        # the detached-work marker row as last committed (None: never written); set by adopt
        self.detached: WorkflowInstance | None = None

    @property
    def run_key(self) -> str:
        return self.row.run_key

    # ---- messages ---------------------------------------------------------------------------

    def receive(self, message: Any) -> None:
        now = self.node.clock.now()
        match message:
            case WakeUp(path=path):
                self.execute_step(path, now)
            case TaskUpdate(path=path, attempt=attempt, report=report, poll_at=poll_at):
                if poll_at is not None:
                    if self.poll_at.get(path) != poll_at:
                        return
                    del self.poll_at[path]
                if report is None:
                    # A ping: ask the task, and the runtime itself, whether the attempt finished (a
                    # lost completion message is noticed here, as Maestro's RUNNING poll notices it).
                    task = self.tasks.get((path, attempt))
                    report = task.report if task is not None else None
                    if report is None and task is not None and task.started:
                        report = self.node.world.peek(self.run.run_id, path, attempt)
                        if report is not None:
                            self.node.counters["repaired_updates"] += 1
                if report is not None:
                    self.reports[(path, attempt)] = report
                latest = self.state.latest(path)
                if latest is None or latest.attempt != attempt or latest.status.is_terminal:
                    return
                self.execute_step(path, now)
            case RetryDue():
                self.decide(now)
            case StartFlow():
                if self.state.status is WorkflowStatus.CREATED:
                    self.state = start_run(self.ct, self.state, self.run, now)
                    self.barrier = True
                    if self.state.status.is_terminal:  # a bad workflow param fails the start
                        self.ended = True
                        self.outgoing.append(RunEnded(self.run_key))
                    else:
                        self.decide(now)
            case StopFlow():
                if not self.state.status.is_terminal:
                    self.state, wake = stop_run(self.state)
                    for p in wake:
                        self.tell(WakeUp(p))
                    self.decide(now)
            case Refresh():
                if self.state is not self._committed:
                    self.barrier = True
            case Reconcile(resume=resume):
                if not self.state.status.is_terminal or has_detached_work(self.state):
                    self.reconcile(now, resume=resume)
            case Shutdown():
                self.shutdown()
            case _:
                raise TypeError(f"flow actor {self.run_key!r} got an unknown message {message!r}")

    # ---- the driving loop (CoreOracle._Replay.execute_step) ---------------------------------

    def execute_step(self, path: str, now: float) -> None:
        state = self.state
        latest = state.latest(path)
        if latest is None:
            return
        report = self.reports.get((path, latest.attempt)) if latest.status is StepStatus.RUNNING else None
        result = execute(self.ct, state, path, now, report)
        self.node.counters["executes"] += 1
        self.state = result.run
        for eff in result.effects:
            if isinstance(eff, StartRuntime):
                self.node.counters["attempts"] += 1
                self.outgoing.append(
                    StartTask(self.run_key, eff.path, eff.attempt, eff.step_type, dict(eff.params))
                )
            elif isinstance(eff, TerminateRuntime):
                task = self.tasks.pop((eff.path, eff.attempt), None)
                if task is not None:
                    task.terminate()
                else:
                    self.node.world.kill(self.run.run_id, eff.path, eff.attempt)
                self.reports.pop((eff.path, eff.attempt), None)
            elif isinstance(eff, Wake):
                for p in eff.paths:
                    self.tell(WakeUp(p))
        status = result.status
        if status.is_terminal:
            self.poll_at.pop(path, None)
            self.tasks.pop((path, latest.attempt), None)
        started = bool(result.effects) and isinstance(result.effects[0], StartRuntime)
        if result.changed and not status.is_terminal and not started:
            self.tell(WakeUp(path))
        elif status is StepStatus.RUNNING:
            att = self.state.latest(path)
            assert att is not None
            ping = self.node.config.running_ping
            polls = 1
            # Lazily, the next ping is the one at the step's timeout: a runtime's completion is an event
            # (RuntimeDone), so the pings in between would find nothing. With a message fault planned a
            # completion message may be lost, and Maestro's RUNNING poll every 3 s is what notices it.
            if (
                att.started_at is not None
                and att.timeout_s is not None
                and not self.node.cluster.faults.message_faults
            ):
                polls = max(1, math.ceil((att.started_at + att.timeout_s - now) / ping))
            at = now + polls * ping
            self.poll_at[path] = at
            self.timer(("poll", path), at, TaskUpdate(path, att.attempt, None, at))
        if result.needs_decide:
            self.decide(now)
        if self.state is not self._committed and not self.has_timer("refresh"):
            cfg = self.node.config
            at = now + cfg.flow_refresh + self.node.rng.uniform(0.0, cfg.flow_refresh_jitter)
            self.timer("refresh", at, Refresh())

    def decide(self, now: float) -> None:
        was_terminal = self.state.status.is_terminal
        d = decide(self.ct, self.state, now)
        self.node.counters["decides"] += 1
        self.state = d.run
        if d.ready:
            self.barrier = True  # new attempts are durable before they run
        for p in d.ready:
            self.tell(WakeUp(p))
        for p in d.wake:
            self.tell(WakeUp(p))
        if d.next_due is not None and not self.has_timer(("due", d.next_due)):
            self.timer(("due", d.next_due), d.next_due, RetryDue(d.next_due))
        if not was_terminal and self.state.status.is_terminal:
            self.ended = True
            self.outgoing.append(RunEnded(self.run_key))
            self.barrier = True

    def reconcile(self, now: float, *, resume: bool = False) -> None:
        """FLOW_RECONCILE: restart lost task starts, re-read finished runtimes, execute steps caught
        mid-way, full decide. On ``resume`` (a takeover) RUNNING steps are executed too, which
        re-arms their pings."""
        self.node.counters["reconciles"] += 1
        for path, atts in self.state.attempts.items():
            att = atts[-1]
            if att.status.is_terminal:
                continue
            cs = self._step(path)
            if (
                att.status is StepStatus.RUNNING
                and cs is not None
                and cs.body is None
                and att.params is not None
            ):
                key = (path, att.attempt)
                task = self.tasks.get(key)
                if task is None:
                    if not resume:
                        self.node.counters["repaired_tasks"] += 1
                    self.start_task(
                        StartTask(self.run_key, path, att.attempt, cs.type.value, dict(att.params))
                    )
                elif key not in self.reports:
                    task.refresh()
            if resume or att.status is not StepStatus.RUNNING:
                self.tell(WakeUp(path))
        self.decide(now)

    def reconcile_noop(self, now: float) -> int | None:
        """Fast mode: what a ``Reconcile`` told now would do, if it changes nothing -- 1 (FLOW_RECONCILE
        runs: one ``reconcile`` and one ``decide`` counted), 0 (the handler ignores it) -- or None
        if it would change anything (a WakeUp, a repaired task or update, a decide that moves the
        state, readies or wakes a step or needs a new timer) or the actor is mid-way."""
        if self.stopped or self._busy or self._mailbox or self.barrier:
            return None
        state = self.state
        if state.status.is_terminal and not has_detached_work(state):
            return 0
        attempts = state.attempts
        for path in state.live:  # the paths whose latest attempt is not terminal
            att = attempts[path][-1]
            if att.status.is_terminal:
                continue
            if att.status is not StepStatus.RUNNING:
                return None
            cs = self._step(path)
            if cs is not None and cs.body is None and att.params is not None:
                key = (path, att.attempt)
                task = self.tasks.get(key)
                if task is None or (key not in self.reports and not task.refresh_is_noop()):
                    return None
        d = decide(self.ct, state, now)
        if d.run is not state or d.ready or d.wake:
            return None
        if d.next_due is not None and not self.has_timer(("due", d.next_due)):
            return None
        return 1

    def _step(self, path: str) -> CompiledStep | None:
        prefix, sid = scope_of(path)
        scope = self.state.scopes.get(prefix)
        return None if scope is None else self.ct.workflows[scope.workflow].steps.get(sid)

    # ---- tasks ------------------------------------------------------------------------------

    def start_task(self, message: StartTask, message_id: int | None = None) -> None:
        """StartTask delivered (after the commit, or again by the sweeper): idempotent per attempt."""
        key = (message.path, message.attempt)
        latest = self.state.latest(message.path)
        if (
            key in self.tasks
            or latest is None
            or latest.attempt != message.attempt
            or latest.status.is_terminal
        ):
            if message_id is not None:
                self.node.ack(message_id)
            return
        task = TaskActor(self, message.path, message.attempt)
        self.tasks[key] = task
        task.tell(message)
        if message_id is not None:
            self.node.ack(message_id)

    def resume_now(self) -> None:
        """After a takeover (or a lost StartFlow): rebuild tasks for RUNNING attempts, execute every
        step that is mid-way, decide. Runtimes are re-attached, never started twice."""
        if self.state.status is WorkflowStatus.CREATED:
            self.tell(StartFlow(self.run_key))
        elif not self.state.status.is_terminal or has_detached_work(self.state):
            self.tell(Reconcile(resume=True))

    def shutdown(self) -> None:
        for task in self.tasks.values():
            task.stop()
        self.tasks.clear()
        self.stop()

    # ---- persistence ------------------------------------------------------------------------

    def wants_flush(self) -> bool:
        return bool(self.outgoing) or (self.ended and self.state is not self._committed)

    async def flush(self) -> None:
        node = self.node
        while not self.stopped:
            try:
                ids = self._commit()
            except StaleGenerationError as exc:
                node.fenced(self.group.group_id, exc)
                return
            except StoreConflictError as exc:
                node.counters["store_conflicts"] += 1
                self.group.reload(self.run_key, exc)
                return
            except StoreError:
                node.counters["store_errors"] += 1
                await node.clock.sleep(node.config.error_retry)
                continue
            await node.store.settle(node.clock)
            if self.stopped:
                return
            out, self.outgoing = self.outgoing, []
            for message_id, message in zip(ids, out, strict=True):
                node.deliver(self.group.group_id, message_id, message)
            if self.ended and self.state.status.is_terminal and not has_detached_work(self._committed):
                node.run_ended(self.row)
                self.group.flow_done(self)
            return

    def _commit(self) -> list[int]:
        node = self.node
        store = node.store
        now = node.clock.now()
        state = self.state
        fence: Fence | None = self.group.fence
        before = store.counters["round_trips"]
        ids: list[int] = []
        text = self.codec.run_text(state)
        steps = self.codec.step_rows(self.run_key, state, self._committed, now)
        saved = self.row
        try:
            with store.transaction():
                if text != self.row.state:
                    saved = store.save_run(replace(self.row, status=state.status.value, state=text, updated_at=now),
                                           fence=fence)  # fmt: skip
                    fence = None
                if steps:
                    store.save_steps(steps, fence=fence)
                    fence = None
                for message in self.outgoing:
                    ids.append(node.add_outbox(self._target(message), message, now, fence=fence))
                    fence = None
                detached = self._write_detached(state, saved, now, fence)
                node.flush_acks()
        except BaseException:
            self.codec.rollback()  # nothing of this write is durable: the retry writes it all again
            spent = store.counters["round_trips"] - before  # a failed write's round trips were made
            node.counters["hot_round_trips"] += spent
            node.counters["flow_round_trips"] += spent
            raise
        self.codec.commit()
        self.row = saved
        self.detached = detached
        self._committed = state
        self.cancel_timer("refresh")
        node.counters["commits"] += 1
        spent = store.counters["round_trips"] - before
        node.counters["hot_round_trips"] += spent
        node.counters["flow_round_trips"] += spent
        return ids

    def _write_detached(
        self, state: RunState, row: WorkflowInstance, now: float, fence: Fence | None
    ) -> WorkflowInstance | None:
        """Open the detached-work marker when the run ends with async children still running; close
        it (SUCCEEDED) when they are done. Inside the commit's transaction, so the run's end and the
        marker are durable together."""
        marker = self.detached
        if not state.status.is_terminal:
            return marker
        work = has_detached_work(state)
        if work and marker is None:
            marker = WorkflowInstance(
                run_key=detached_key(row.run_key), workflow_id=row.workflow_id, run_id=row.run_id,
                status=WorkflowStatus.IN_PROGRESS.value, parent_key=row.run_key, group_id=row.group_id,
                created_at=now, updated_at=now,
            )  # fmt: skip
            self.node.store.create_run(marker, fence=fence)
        elif not work and marker is not None and not WorkflowStatus(marker.status).is_terminal:
            marker = self.node.store.save_run(
                replace(marker, status=WorkflowStatus.SUCCEEDED.value, updated_at=now), fence=fence
            )
        return marker

    def _target(self, message: DurableMessage) -> int:
        return self.group.group_id
