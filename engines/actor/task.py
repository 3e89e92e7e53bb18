"""The task actor: one per leaf step attempt; it owns the attempt's runtime, not its state.

The flow actor keeps the state and calls the core; the task actor starts the external runtime once
(StartTask, idempotent), and when the runtime reports (RuntimeDone) it sends a TaskUpdate carrying
the report to its flow at once -- the completion is an event, not something a poll discovers. It
remembers the report, so a ping or a reconciliation can re-send it if that update was lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engines.actor.actors import Actor
from engines.actor.messages import RuntimeDone, Shutdown, StartTask, TaskUpdate
from engines.core.effects import RuntimeReport

if TYPE_CHECKING:
    from engines.actor.flow import FlowActor

__all__ = ["TaskActor"]


class TaskActor(Actor):
    __slots__ = ("attempt", "flow", "path", "report", "started")

    def __init__(self, flow: FlowActor, path: str, attempt: int) -> None:
        super().__init__(flow.node)
        self.flow = flow
        self.path = path
        self.attempt = attempt
        self.report: RuntimeReport | None = None
        self.started = False

    def receive(self, message: Any) -> None:
        match message:
            case StartTask(params=params):
                if self.started:
                    return
                self.started = True
                latest = self.flow.state.latest(self.path)
                started_at = latest.started_at if latest is not None else None
                fresh = self.node.world.ensure(
                    self.flow.run.run_id, self.path, self.attempt, params, started_at, self._runtime_done
                )
                self.node.counters["runtime_starts" if fresh else "runtime_attaches"] += 1
            case RuntimeDone(report=report):
                self.report = report
                self.node.send_local(self.flow, TaskUpdate(self.path, self.attempt, report))
            case Shutdown():
                self.stop()
            case _:
                raise TypeError(f"task actor {self.path!r}#{self.attempt} got an unknown message {message!r}")

    def _runtime_done(self, report: RuntimeReport) -> None:
        self.node.send_local(self, RuntimeDone(report))

    def refresh(self) -> None:
        """Reconciliation: re-send a known report the flow has not seen (a lost TaskUpdate), or, when
        the runtime has finished but its completion message was lost (a lost RuntimeDone), attach
        to it again to hear the result. A runtime still running is left alone: this actor already
        listens to it (attaching again would only duplicate its completion message)."""
        if self.stopped:
            return
        if self.report is not None:
            self.node.counters["repaired_updates"] += 1
            self.flow.tell(TaskUpdate(self.path, self.attempt, self.report))
        elif self.started and self.node.world.peek(self.flow.run.run_id, self.path, self.attempt) is not None:
            latest = self.flow.state.latest(self.path)
            started_at = latest.started_at if latest is not None else None
            self.node.world.ensure(
                self.flow.run.run_id, self.path, self.attempt, {}, started_at, self._runtime_done
            )

    def refresh_is_noop(self) -> bool:
        """Whether ``refresh`` now would do nothing (fast mode's prediction of a reconciliation)."""
        if self.stopped:
            return True
        if self.report is not None:
            return False
        return not self.started or self.node.world.peek(self.flow.run.run_id, self.path, self.attempt) is None

    def terminate(self) -> None:
        """TerminateRuntime: kill the external attempt; it reports nothing more."""
        self.node.world.kill(self.flow.run.run_id, self.path, self.attempt)
        self.stop()
