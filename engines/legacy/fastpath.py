"""The legacy engine's fast path: polls that change nothing, advanced in memory instead of tick by tick.

In replay, most legacy cycles are polls of a RUNNING step whose job has not finished: the worker claims
the task, reloads the run, calls ``execute`` (which changes nothing), re-queues the task 3 s later and
sleeps its poll gap; an idle worker alternates an empty poll with a wait for the next visible task.
Nothing in such a stretch changes a run, so its outcome is known in advance -- except for the clock,
the store's latency draws, the worker's random gaps and the counters. :class:`FastForward` computes
exactly those in a tight loop, with the same arithmetic and the same draws in the same order as the
tick-by-tick path (``ReplayOptions(exact=True)``), and hands control back to the real worker for the
first cycle that may change something.

At the top of its poll loop the worker calls :meth:`FastForward.advance`. It reads the queue and the
runs' versions (unmetered: the simulated polls are accounted below), then simulates iterations of the
worker's loop, each one *speculatively*: the draws it takes are handed back (to the store's latency
sampler and the worker's generator) if the iteration turns out not to be trivial, so the real worker
takes them next. An iteration is trivial when

* it is an empty poll (nothing visible) of a non-empty queue, followed by the idle wait up to the next
  visible task (nothing can ring the doorbell: the bound below excludes triggers); or
* it claims a step task of a run whose decoded rows are cached at the run's current version (a reload
  would return an equal state, every row a cache hit) -- or were written since, and are then reloaded
  incrementally right there (:meth:`RowCodec.speculate`: the reload the poll makes, counted once even
  if the poll is handed back to the worker) --, the step is not done, its job (a leaf in RUNNING) is
  still running at the cycle's time (the replay runtime's timer is strictly later) and the core's
  ``execute`` -- called for real on the cached state at the cycle's time -- returns the same state
  with no effect; the task is then re-queued with the same callback delay. A fresh step's first poll
  (Conductor's ``start()``: CREATED, no ``execute``, callback 0) is trivial too.

and it ends strictly before the bound: the next trigger (or while the trigger task is busy), the replay
deadline minus a second, and no wake-up of the worker may coincide with a timer already on the loop
(the tick-by-tick loop would then make one jump fewer). Decider tasks, fresh attempts, finished jobs,
step and workflow timeouts (``execute`` sees them; a workflow timeout is a decider task) all stop it.

What the stretch did is then applied at once: the queue rows (``visible_at``, ``poll_count``; owner and
claim fields are back to NULL as a re-queue leaves them), the store's counters and latency total
(accumulated draw by draw, so the float sum is the same), the worker's counters and its float
``idle_polls_elided``, the codec's cache-hit count, and the loop jumps the tick-by-tick run would have
made (``Deployment.jump_credit``). The worker then sleeps until the end of the stretch on the loop
(``call_at`` of the exact float time) and carries on with the real cycle.

Used only with one worker, no stall faults, a virtual clock and a SQLite store without a fault hook;
anything else runs tick by tick.

Concurrency: one instance per worker, used from the loop's thread.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from corpora.model import StepType
from engines.clock import VirtualClock
from engines.core.effects import RuntimeReport
from engines.core.state import scope_of
from engines.core.statuses import StepStatus
from engines.core.step import execute
from engines.legacy.rows import _SQL_ROOT
from engines.legacy.sampling import BlockSampler
from engines.store import DECIDER_PATH, WorkflowInstance
from engines.store._sqlite_base import SqliteBase

if TYPE_CHECKING:
    from engines.legacy.worker import Worker

__all__ = ["DEADLINE_MARGIN", "FastForward"]

S = StepStatus
DEADLINE_MARGIN = 1.0
"""Seconds before the replay deadline from which every poll is simulated for real (the deadline cuts
the worker mid-cycle; its counters at that point must be the tick-by-tick ones)."""

_RUNNING = RuntimeReport.running()
_Q_COLUMNS = (
    "SELECT task_id, run_key, path, visible_at, owner, claimed_until, wake_at, poll_count FROM queue "
)
_Q_FIRST = _Q_COLUMNS + "ORDER BY visible_at, task_id LIMIT ?"
_Q_NEXT = (
    _Q_COLUMNS
    + "WHERE visible_at > ? OR (visible_at = ? AND task_id > ?) ORDER BY visible_at, task_id LIMIT ?"
)
_FIRST_PAGE = 4  # most attempts stop at the first task or two
_PAGE = 64
_Q_VERSIONS = "SELECT run_key, version FROM workflow_instances WHERE parent_key IS NULL"
_Q_RESTORE = "UPDATE queue SET visible_at = ?, poll_count = ? WHERE task_id = ?"

# Round trips: a claimed poll that changes nothing is 8 (claim: write + commit; reload: 3 reads + commit;
# re-queue: write + commit), an empty poll 4 (claim: write + commit; next_visible_at: read + commit).


_UNSEEN: list[Any] = []


class FastForward:
    """Advances one worker over polls that change nothing (see the module docstring)."""

    def __init__(self, worker: Worker, store: SqliteBase, clock: VirtualClock) -> None:
        self.worker = worker
        self.dep = worker.dep
        self.store = store
        self.clock = clock
        sampler = store._sampler
        assert isinstance(sampler, BlockSampler)  # for_worker checked it
        self.sampler: BlockSampler = sampler
        if self.dep.codec.snapshots is None:
            self.dep.codec.snapshots = {}
        from engines.legacy.worker import callback_delay  # the worker module imports this one

        self._callback_delay: Callable[..., float | None] = callback_delay

    @classmethod
    def for_worker(cls, worker: Worker) -> FastForward | None:
        """The fast path for ``worker``, or None where only the tick-by-tick path is exact."""
        dep = worker.dep
        store, clock = dep.store, dep.clock
        if not dep.fast or dep.config.workers != 1 or dep.faults:
            return None
        if (
            not isinstance(store, SqliteBase)
            or store._faults is not None
            or not isinstance(clock, VirtualClock)
        ):
            return None
        return cls(worker, store, clock)

    async def advance(self) -> None:
        """Simulate trivial iterations from now; sleep to the end of the stretch (if any)."""
        if self.worker.ff_skip:
            self.worker.ff_skip = False
            return
        now = self.clock.now()
        if now >= self.dep.trigger_horizon or now >= self.dep.deadline - DEADLINE_MARGIN:
            return
        if self.store.pending_latency() != 0.0 or self.store._depth != 0:
            return
        end = self._simulate(now)
        if end is None:
            return
        loop = self.clock.loop
        fut: asyncio.Future[None] = loop.create_future()
        handle = loop.call_at(end, _wake, fut)
        try:
            await fut
        finally:
            handle.cancel()

    # ---- the simulation ---------------------------------------------------------------------

    def _simulate(self, t: float) -> float | None:
        dep, store, worker = self.dep, self.store, self.worker
        conn = store._conn
        # The queue is read a page at a time in claim order: a stretch usually touches its first few tasks.
        tasks: dict[int, list[Any]] = {}
        heap: list[tuple[float, int]] = []
        rows = conn.execute(_Q_FIRST, (_FIRST_PAGE,)).fetchall()
        if not rows:
            return None
        more = len(rows) == _FIRST_PAGE
        frontier = (rows[-1][3], rows[-1][0])
        for task_id, run_key, path, visible_at, owner, _claimed, wake_at, poll_count in rows:
            if owner is not None or wake_at is not None:
                return None
            tasks[task_id] = [visible_at, poll_count, run_key, path, False]
            heap.append((visible_at, task_id))
        heapq.heapify(heap)
        versions = dict(conn.execute(_Q_VERSIONS).fetchall())
        codec = dep.codec
        snapshots = codec.snapshots or {}
        epoch = codec.epoch
        bound = min(dep.trigger_horizon, dep.deadline - DEADLINE_MARGIN)
        # Timers other tasks have on the loop inside the stretch: only jobs' (triggers and the deadline are
        # past the bound). A wake-up of the worker at the very time of one would be one jump, not two.
        timers = dep.jobs.due_times
        cfg = dep.config
        pi, jitter = cfg.poll_interval, cfg.poll_jitter
        first_cycles = cfg.first_polling_cycles
        sampler, wback, rng = self.sampler, worker._back, worker.rng
        take, give_back = sampler.take, sampler.give_back
        jobs = dep.jobs
        callback = self._callback_delay
        info: dict[int, list[Any] | None] = {}

        total = store._latency_total
        sleeps = polls = empties = hits = starts = 0
        idle = worker.idle_polls_elided
        start = t
        while True:
            while more and (not heap or heap[0] > frontier):
                # every task not read yet comes after the frontier in claim order: read the next page
                rows = conn.execute(_Q_NEXT, (frontier[0], frontier[0], frontier[1], _PAGE)).fetchall()
                more = len(rows) == _PAGE
                if rows:
                    frontier = (rows[-1][3], rows[-1][0])
                bad = False
                for task_id, run_key, path, visible_at, owner, _claimed, wake_at, poll_count in rows:
                    if owner is not None or wake_at is not None:
                        bad = True
                    tasks[task_id] = [visible_at, poll_count, run_key, path, False]
                    heapq.heappush(heap, (visible_at, task_id))
                if bad:
                    more = False
                    heap.clear()  # a claimed or woken task: not a state this path simulates
            if heap and heap[0][0] <= t:
                # A claimed poll: claim (write + commit), reload (3 reads + commit), re-queue (write + commit).
                task_id = heap[0][1]
                entry = tasks[task_id]
                ds = take(8)
                d1, d2, d3, d4, d5, d6, d7, d8 = ds
                p = d1 + d2
                t1 = t + p if p > 0.0 else t  # the reload's time
                static = info.get(task_id, _UNSEEN)
                if static is _UNSEEN:
                    # A run written since its last reload is reloaded now (speculate), only if nothing but
                    # the worker can run until that reload's time: should this poll not be kept, the real
                    # worker's reload of the run is then this very one (and counts nothing).
                    static = info[task_id] = self._static(entry, snapshots, versions, epoch, t1 < bound)
                if static is None:
                    give_back(ds)
                    break
                state, latest, ct, step_type, job_key, snap_hits, verified, _ = static
                poll_count = entry[1] + 1
                p = d3 + d4 + d5 + d6
                tc = t1 + p if p > 0.0 else t1  # the cycle's time
                report = None
                fresh = poll_count <= 1 and latest.status is S.CREATED
                if fresh:
                    # Conductor's start() cycle: no execute; the step stays CREATED (callback 0 in its first
                    # polling window), exactly as Worker.cycle does it
                    delay = callback(cfg, S.CREATED, StepType.NOOP, poll_count, tc - latest.created_at, False)
                    if delay is None:
                        give_back(ds)
                        break
                elif job_key is not None and jobs.has(job_key):
                    due = jobs.due(job_key)
                    if due is None or not due > tc or jobs.done(job_key):
                        give_back(ds)
                        break  # the job has finished by this poll (or may have): a real cycle
                    report = _RUNNING
                if fresh:
                    pass
                elif verified:
                    # RUNNING, and execute() changed nothing at an earlier poll of this stretch on this very
                    # state: only its step-timeout test depends on the time (a running leaf's job, a foreach's
                    # or subworkflow's children can only change by a write, which ends the stretch).
                    if latest.timeout_s is not None and tc - latest.started_at >= latest.timeout_s:
                        give_back(ds)
                        break
                else:
                    result = execute(ct, state, latest.path, tc, report)
                    if result.run is not state or result.effects or result.changed or result.needs_decide:
                        give_back(ds)
                        break
                    static[6] = (
                        latest.status is S.RUNNING
                        and latest.started_at is not None
                        and latest.terminating is None
                    )
                if not fresh and (delay := static[7]) is None:
                    delay = callback(cfg, latest.status, step_type, poll_count, tc - latest.created_at, False)
                    if delay is None:
                        give_back(ds)
                        break
                    if poll_count > first_cycles:
                        static[7] = (
                            delay  # past the first polling cycles the delay depends on the status only
                        )
                assert delay is not None
                p = d7 + d8
                t3 = tc + p if p > 0.0 else tc
                r = wback.pop() if wback else rng.random()
                t4 = t3 + pi * (1.0 + jitter * r)
                if not t4 < bound or t1 in timers or tc in timers or t3 in timers or t4 in timers:
                    give_back(ds)
                    wback.append(r)
                    break
                visible = tc + delay
                heapq.heapreplace(heap, (visible, task_id))
                entry[0] = visible
                entry[1] = poll_count
                entry[4] = True
                sleeps += (t1 > t) + (tc > t1) + (t3 > tc) + 1
                total = total + d1 + d2 + d3 + d4 + d5 + d6 + d7 + d8
                polls += 1
                starts += fresh
                hits += snap_hits
                if codec.prepaid is not None:
                    # this poll's reload was the speculative one (counted then): later polls reload for free
                    codec.prepaid = None
                    hits -= snap_hits
                t = t4
            else:
                # An empty poll (claim + next_visible_at: write, commit, read, commit) and the idle wait.
                if not heap:
                    break  # nothing queued: the real worker checks for quiescence
                nxt = heap[0][0]
                ds = take(4)
                d1, d2, d3, d4 = ds
                p = d1 + d2 + d3 + d4
                t1 = t + p if p > 0.0 else t
                r1 = wback.pop() if wback else rng.random()
                r2 = wback.pop() if wback else rng.random()
                wait = max(max(0.0, nxt - t1) + r1 * pi, pi * (1.0 + jitter * r2))
                t2 = t1 + wait
                if not t2 < bound or t1 in timers or t2 in timers:
                    give_back(ds)
                    wback.append(r2)
                    wback.append(r1)
                    break
                idle += max(0.0, (t2 - t1) / pi - 1.0)
                sleeps += (t1 > t) + 1
                total = total + d1 + d2 + d3 + d4
                empties += 1
                t = t2
        if t == start:
            return None
        # Apply what the stretch did, as the tick-by-tick path would have left it.
        touched = [(e[0], e[1], tid) for tid, e in tasks.items() if e[4]]
        if touched:
            conn.execute("BEGIN")
            conn.executemany(_Q_RESTORE, touched)
            conn.execute("COMMIT")
        store._round_trips += 8 * polls + 4 * empties
        store._reads += 3 * polls + empties
        store._writes += 2 * polls + empties
        store._commits += 3 * polls + 2 * empties
        store._latency_total = total
        dep.upkeep_round_trips += 4 * empties
        dep.jump_credit += sleeps - 1
        wc = worker.counters
        wc["polls"] += polls + empties
        wc["cycles"] += polls
        wc["executes"] += polls - starts
        if starts:
            wc["start_cycles"] += starts
        worker.claims += polls
        if empties:
            wc["empty_polls"] += empties
            worker.idle_polls_elided = idle
            wc["idle_polls_elided"] = round(idle)
        codec.cache_hits += hits
        stats = dep.fast_stats
        stats["stretches"] += 1
        stats["polls"] += polls
        stats["empty_polls"] += empties
        return t

    def _static(
        self, entry: list[Any], snapshots: dict[str, Any], versions: dict[str, int], epoch: int, reload: bool
    ) -> list[Any] | None:
        """What a poll of this task needs that cannot change during the stretch; None: not trivial.

        ``reload``: a run written since its last reload may be reloaded now (:meth:`RowCodec.speculate`)."""
        run_key, path = entry[2], entry[3]
        if path == DECIDER_PATH:
            return None
        snap = snapshots.get(run_key)
        if snap is None or snap.epoch != epoch:
            return None
        version = versions.get(run_key)
        if version != snap.version:
            if not reload or version is None or version < snap.version:
                return None
            row = self.store._conn.execute(_SQL_ROOT, (run_key,)).fetchone()
            snap = self.dep.codec.speculate(self.store._conn, WorkflowInstance(*row))
            if snap is None:
                return None
        state = snap.loaded.state
        latest = state.latest(path)
        if latest is None or latest.status.is_terminal:
            return None
        wf = self.dep.workflow_of(snap.loaded)
        prefix, sid = scope_of(path)
        cstep = wf.ct.workflows[state.scopes[prefix].workflow].steps[sid]
        job_key = (
            (run_key, path, latest.attempt) if latest.status is S.RUNNING and cstep.type.is_leaf else None
        )
        return [state, latest, wf.ct, cstep.type, job_key, snap.hits, False, None]


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
