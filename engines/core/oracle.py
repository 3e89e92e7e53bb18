"""The reference executor: the core's semantics with zero orchestration overhead.

:class:`CoreOracle` is an :class:`engines.api.Engine` ("core-oracle") built on a tiny discrete-event
loop (a heap of ``(time, seq, event)``; no asyncio). A status change is followed by the next
``execute`` at once; a runtime finishes exactly ``duration`` seconds after it started with its
recorded outcome; a RUNNING step is polled every 3 s (the step-timeout detection both engines share);
``decide`` runs after every call that changed something and at every due retry or timeout.

It is the semantic reference the two engines are tested against, and the model of a driving loop:
copy the shape of :meth:`_Replay.execute_step` (execute -> effects -> decide -> execute ready paths).
"""

from __future__ import annotations

import gc
import heapq
import json
import math
from collections import deque
from dataclasses import dataclass, field

from corpora.model import RecordedAttempt, Run, Trace
from engines.api import EngineError, ExecutionRecord, ReplayOptions
from engines.core.children import can_launch_more
from engines.core.definition import CompiledTrace, compile_trace
from engines.core.effects import RuntimeReport, StartRuntime, TerminateRuntime, Wake
from engines.core.flow import decide, new_run, start_run, stop_queued_run, stop_run
from engines.core.record import execution_record
from engines.core.state import RunState, run_from_json, run_to_json
from engines.core.statuses import StepStatus, WorkflowStatus
from engines.core.step import execute
from engines.core.strategy import RunSlot, StrategyPlan, on_insert, on_run_end

__all__ = ["RUNNING_POLL_SECONDS", "CoreOracle"]

RUNNING_POLL_SECONDS = 3.0
_TRIGGER, _EXEC, _DECIDE, _RUNTIME, _POLL = range(5)


@dataclass(slots=True)
class _RunBook:
    state: RunState
    run: Run
    recorded: dict[tuple[str, int], RecordedAttempt]
    started: bool = False
    finished: dict[tuple[str, int], RuntimeReport] = field(default_factory=dict)
    pending: dict[tuple[str, int], RuntimeReport] = field(default_factory=dict)
    killed: set[tuple[str, int]] = field(default_factory=set)
    poll_at: dict[str, float] = field(default_factory=dict)
    decide_at: set[float] = field(default_factory=set)


class _Replay:
    """One replay of one trace. Single-threaded; owns its heap."""

    def __init__(self, ct: CompiledTrace, options: ReplayOptions, *, reload_state: bool = False) -> None:
        self.ct = ct
        self.options = options
        self.reload_state = reload_state
        self.heap: list[tuple[float, int, int, str, str, int]] = []
        # Events due at the instant being processed (most of them: every status change is followed by
        # the next execute at once) go to a FIFO instead of the heap. Pops take the smaller of the
        # two heads by (time, seq), so the order is exactly the heap's: the FIFO only ever receives
        # events at the current time, with increasing seq, so it is sorted.
        self.now_queue: deque[tuple[float, int, int, str, str, int]] = deque()
        self.now = -math.inf
        self.seq = 0
        self.books: dict[str, _RunBook] = {}
        self.live: list[str] = []
        self.first_failed: str | None = None
        self.counters = {"executes": 0, "decides": 0, "attempts": 0, "events": 0}

    def push(self, t: float, kind: int, run_id: str, path: str = "", attempt: int = 0) -> None:
        self.seq += 1
        if t == self.now:
            self.now_queue.append((t, self.seq, kind, run_id, path, attempt))
        else:
            heapq.heappush(self.heap, (t, self.seq, kind, run_id, path, attempt))

    def run(self) -> list[RunState]:
        trace = self.ct.trace
        for i, r in enumerate(trace.runs, start=1):
            recorded = {(a.path, a.attempt): a for a in r.attempts}
            self.books[r.run_id] = _RunBook(new_run(self.ct, r, i), r, recorded)
            self.push(r.trigger_time, _TRIGGER, r.run_id)
        last_trigger = max((r.trigger_time for r in trace.runs), default=0.0)
        horizon = last_trigger + self.options.time_limit
        heap, now_queue = self.heap, self.now_queue
        counters = self.counters
        while heap or now_queue:
            if now_queue and (not heap or now_queue[0] < heap[0]):
                t, _, kind, run_id, path, attempt = now_queue.popleft()
            else:
                t, _, kind, run_id, path, attempt = heapq.heappop(heap)
            if t > horizon:
                break
            self.now = t
            counters["events"] += 1
            book = self.books[run_id]
            if kind == _TRIGGER:
                self.live.append(run_id)
                self.apply(on_insert(self.ct.root.definition.run_strategy, self.slots(), run_id), t)
            elif kind == _EXEC:
                self.execute_step(book, path, t)
            elif kind == _POLL:
                if book.poll_at.get(path) == t:
                    del book.poll_at[path]
                    self.execute_step(book, path, t)
            elif kind == _RUNTIME:
                key = (path, attempt)
                report = book.pending.pop(key, None)
                if report is not None and key not in book.killed:
                    book.finished[key] = report
                    self.execute_step(book, path, t)
            elif kind == _DECIDE:
                book.decide_at.discard(t)
                self.decide(book, t)
        return [book.state for book in self.books.values()]

    def slots(self) -> list[RunSlot]:
        """The strategy's view: every run still live, plus the first FAILED run (all that
        STRICT_SEQUENTIAL needs of finished runs); keeps each trigger O(live runs)."""
        out: list[RunSlot] = []
        live: list[str] = []
        for r in self.live:
            st = self.books[r].state.status
            if not st.is_terminal:
                live.append(r)
                out.append(RunSlot(r, st, self.books[r].started))
            elif st is WorkflowStatus.FAILED and self.first_failed is None:
                self.first_failed = r
        self.live = live
        if self.first_failed is not None:
            out.insert(0, RunSlot(self.first_failed, WorkflowStatus.FAILED, True))
        return out

    def apply(self, plan: StrategyPlan, now: float) -> None:
        for run_id in plan.stop_queued:
            book = self.books[run_id]
            book.state = stop_queued_run(book.state, now)
        for run_id in plan.stop_running:
            book = self.books[run_id]
            book.state, wake = stop_run(book.state)
            for p in wake:
                self.push(now, _EXEC, run_id, p)
            self.decide(book, now)
        for run_id in plan.start:
            book = self.books[run_id]
            book.started = True
            book.state = start_run(self.ct, book.state, book.run, now)
            if book.state.status.is_terminal:  # the run could not start (bad workflow param or timeout)
                self.apply(on_run_end(self.ct.root.definition.run_strategy, self.slots()), now)
            else:
                self.decide(book, now)
        if plan.stop_queued:
            self.apply(on_run_end(self.ct.root.definition.run_strategy, self.slots()), now)

    def execute_step(self, book: _RunBook, path: str, now: float) -> None:
        """One ``execute`` plus everything it asks for; the shape an engine's task worker copies."""
        state = book.state
        if self.reload_state:  # the legacy engine's way: state comes back from its JSON form every call
            state = run_from_json(json.loads(json.dumps(run_to_json(state))))
        latest = state.latest(path)
        if latest is None:
            return
        report = book.finished.get((path, latest.attempt)) if latest.status is StepStatus.RUNNING else None
        result = execute(self.ct, state, path, now, report)
        counters = self.counters
        counters["executes"] += 1
        book.state = result.run
        need_decide = result.needs_decide
        effects = result.effects
        run_id = book.run.run_id
        started = False
        for eff in effects:
            if type(eff) is StartRuntime:
                started = started or eff is effects[0]
                counters["attempts"] += 1
                key = (eff.path, eff.attempt)
                rec = book.recorded.get(key)
                if rec is None:
                    book.pending[key] = RuntimeReport.unrecorded()
                    self.push(now, _RUNTIME, run_id, eff.path, eff.attempt)
                else:
                    book.pending[key] = RuntimeReport.finished(rec.outcome.value, dict(rec.outputs))
                    self.push(now + rec.duration, _RUNTIME, run_id, eff.path, eff.attempt)
            elif type(eff) is TerminateRuntime:
                book.killed.add((eff.path, eff.attempt))
            elif type(eff) is Wake:
                for p in eff.paths:
                    self.push(now, _EXEC, run_id, p)
        status = result.status
        terminal = status.is_terminal
        if terminal:
            book.poll_at.pop(path, None)
        if result.changed and not terminal and not started:
            self.push(now, _EXEC, run_id, path)
        elif status is StepStatus.RUNNING:
            # Both engines poll a RUNNING step every 3 s. For a leaf (or a foreach with nothing left
            # to launch) such a poll changes nothing until the step timeout is due, so the oracle
            # schedules only the poll of the chain that will see it.
            att = book.state.latest(path)
            assert att is not None
            polls = 1
            launching = att.child_total is not None and can_launch_more(self.ct, book.state, path)
            if not launching and att.started_at is not None and att.timeout_s is not None:
                polls = max(1, math.ceil((att.started_at + att.timeout_s - now) / RUNNING_POLL_SECONDS))
            t = now + polls * RUNNING_POLL_SECONDS
            book.poll_at[path] = t
            self.push(t, _POLL, book.run.run_id, path)
        if need_decide:
            self.decide(book, now)

    def decide(self, book: _RunBook, now: float) -> None:
        was_terminal = book.state.status.is_terminal
        d = decide(self.ct, book.state, now)
        self.counters["decides"] += 1
        book.state = d.run
        for p in d.ready:
            self.push(now, _EXEC, book.run.run_id, p)
        for p in d.wake:
            self.push(now, _EXEC, book.run.run_id, p)
        if d.next_due is not None and d.next_due not in book.decide_at:
            book.decide_at.add(d.next_due)
            self.push(d.next_due, _DECIDE, book.run.run_id)
        if not was_terminal and book.state.status.is_terminal:
            self.apply(on_run_end(self.ct.root.definition.run_strategy, self.slots()), now)


class CoreOracle:
    """The semantic reference engine: replays a trace with the core alone, zero overhead.

    ``reload_state=True`` round-trips the run state through JSON before every ``execute`` (as the
    legacy engine does through SQL); the record must not change, which the tests check."""

    name = "core-oracle"
    version = "1"

    def __init__(self, *, reload_state: bool = False) -> None:
        self.reload_state = reload_state

    def replay(self, trace: Trace, options: ReplayOptions) -> ExecutionRecord:
        # The replay allocates many short-lived containers (immutable state: every transition copies)
        # and creates no reference cycles, so the cyclic garbage collector only costs time here
        # (15-25 % of a replay): it is paused for the replay and restored after.
        collecting = gc.isenabled()
        gc.disable()
        try:
            ct = compile_trace(trace)
            replay = _Replay(ct, options, reload_state=self.reload_state)
            try:
                states = replay.run()
            except RecursionError as exc:  # pragma: no cover - defensive
                raise EngineError(f"replay of {trace.trace_id!r} recursed too deeply: {exc}") from exc
            counters = {k: float(v) for k, v in replay.counters.items()}
            return execution_record(
                ct, states, engine=self.name, version=self.version, seed=options.seed, counters=counters
            )
        finally:
            if collecting:
                gc.enable()
