"""The store operations, written once in portable SQL over a backend's statement primitives.

A backend (:mod:`engines.store.sqlite`, :mod:`engines.store.postgres`) supplies the connection,
transactions, accounting and error translation (:class:`SqlBackend`); this module supplies what each
operation does. SQL uses ``?`` placeholders; a backend whose driver wants another style converts them.
Two dialect hooks exist because only a multi-writer server needs them: ``_lock_rows`` (``FOR UPDATE``
on rows read before being written, e.g. a lease) and ``_skip_locked`` (``FOR UPDATE SKIP LOCKED`` in
the queue claim, so concurrent workers never claim the same task while its claim is live).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from engines.clock import Clock
from engines.store.errors import StaleGenerationError, StoreConflictError, StoreError, StoreIntegrityError
from engines.store.faults import FaultHook
from engines.store.latency import LatencySampler
from engines.store.protocol import Fence
from engines.store.records import (
    STEP_TIME_FIELDS,
    GroupLease,
    LeaseRenewal,
    LoadedRun,
    OutboxMessage,
    QueueTask,
    StepAction,
    StepInstance,
    StepTimes,
    WorkflowInstance,
)

__all__ = ["SqlBackend", "SqlOperations"]


class SqlBackend:
    """What an operation needs from a backend. Subclasses implement every method."""

    _lock_rows = ""
    _share_rows = ""
    _skip_locked = ""
    #: the driver's exceptions, which every backend turns into typed StoreErrors
    _driver_errors: tuple[type[Exception], ...] = ()
    #: > 0 inside ``unsampled()``: round trips are counted but draw no latency
    _unsampled = 0

    def _init_accounting(self, database: str, sampler: LatencySampler, faults: FaultHook | None) -> None:
        self._database = database
        self._faults = faults
        self._sampler = sampler
        self._pending = 0.0
        self._depth = 0
        self._round_trips = 0
        self._reads = 0
        self._writes = 0
        self._commits = 0
        self._rollbacks = 0
        self._latency_total = 0.0
        self._step_rows: dict[tuple[Any, ...], StepInstance] = {}

    # ---- accounting -------------------------------------------------------------------------

    @property
    def database(self) -> str:
        return self._database

    @property
    def counters(self) -> Mapping[str, float]:
        """round_trips (statements + commits), reads, writes, commits, rollbacks, latency_seconds."""
        return {
            "round_trips": self._round_trips,
            "reads": self._reads,
            "writes": self._writes,
            "commits": self._commits,
            "rollbacks": self._rollbacks,
            "latency_seconds": self._latency_total,
        }

    def pending_latency(self) -> float:
        """Simulated latency accumulated since the last ``take_latency`` / ``settle``."""
        return self._pending

    def take_latency(self) -> float:
        """Return and reset the accumulated latency (for engines that schedule it themselves)."""
        pending, self._pending = self._pending, 0.0
        return pending

    async def settle(self, clock: Clock) -> float:
        """Sleep the accumulated latency on ``clock`` and reset it; returns the seconds slept.

        Call it right after your store calls, before any other await, so you pay your own latency."""
        pending = self.take_latency()
        if pending > 0.0:
            await clock.sleep(pending)
        return pending

    @contextlib.contextmanager
    def unsampled(self) -> Iterator[None]:
        """Round trips inside are counted (and may fail by a fault hook) as usual, but draw no latency
        from this store's sampler and add none to ``pending_latency`` or ``latency_seconds``: the
        caller accounts for their latency itself. The actor engine uses it for node upkeep
        (heartbeats, sweeps, reconciliation, claims), which nothing waits on, so upkeep neither
        shifts the seeded latency stream of the flows' commits nor adds to a latency they settle."""
        self._unsampled += 1
        try:
            yield
        finally:
            self._unsampled -= 1

    def _round_trip(self, kind: str, operation: str) -> None:
        if self._faults is not None:
            self._faults.before(kind, operation)
        self._round_trips += 1
        if self._unsampled:
            return
        delay = self._sampler.draw()
        self._pending += delay
        self._latency_total += delay

    def _begin_sql(self, write: bool) -> str:
        """The statement that opens a transaction (``write`` says whether it will write)."""
        raise NotImplementedError

    def _store_error(self, exc: Exception) -> StoreError:
        """A driver exception as a typed StoreError."""
        raise NotImplementedError

    def _control(self, sql: str) -> None:
        """Run a transaction-control statement (BEGIN, COMMIT) on the connection."""
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[None]:
        """All store calls inside are one atomic unit; nested blocks join the outer one.

        Nothing is half-written: any exception inside, or a failed COMMIT, rolls the whole unit back."""
        if self._depth > 0:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self._control(self._begin_sql(write))
        except self._driver_errors as exc:
            raise self._store_error(exc) from exc
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._rollback()
            raise
        self._depth = 0
        try:
            self._round_trip("commit", "commit")
            self._commits += 1
            self._control("COMMIT")
        except self._driver_errors as exc:
            self._rollback()
            raise self._store_error(exc) from exc
        except BaseException:
            self._rollback()
            raise

    def _read(self, operation: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _write(self, operation: str, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        raise NotImplementedError

    def _write_returning(self, operation: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _write_many(self, operation: str, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _check_fence(self, fence: Fence | None) -> None:
        if fence is None:
            return
        group_id, generation = fence
        rows = self._read(
            "check_fence",
            f"SELECT generation FROM group_leases WHERE group_id = ?{self._share_rows}",
            (group_id,),
        )
        current = int(rows[0][0]) if rows else None
        if current != generation:
            raise StaleGenerationError(group_id, generation, current, database=self.database)


_RUN_COLUMNS = (
    "run_key, workflow_id, run_id, status, state, parent_key, group_id, version, created_at, updated_at"
)
_STEP_COLUMNS = "run_key, path, attempt, status, state, updated_at, " + ", ".join(STEP_TIME_FIELDS)
_QUEUE_COLUMNS = "task_id, run_key, path, visible_at, owner, claimed_until, poll_count"
_LEASE_COLUMNS = "group_id, owner, generation, heartbeat_at, expires_at"

_SQL_INSERT_RUN = f"INSERT INTO workflow_instances ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SQL_GET_RUN = f"SELECT {_RUN_COLUMNS} FROM workflow_instances WHERE run_key = ?"
_SQL_GET_STEPS = f"SELECT {_STEP_COLUMNS} FROM step_instances WHERE run_key = ? ORDER BY path, attempt"
_SQL_SAVE_RUN = (
    "UPDATE workflow_instances SET status = ?, state = ?, parent_key = ?, group_id = ?, "
    "version = version + 1, updated_at = ? WHERE run_key = ? AND version = ?"
)
_SQL_UPSERT_STEP = (
    f"INSERT INTO step_instances ({_STEP_COLUMNS}) VALUES ({', '.join('?' * (6 + len(STEP_TIME_FIELDS)))}) "
    "ON CONFLICT (run_key, path, attempt) DO UPDATE SET status = excluded.status, state = excluded.state, "
    "updated_at = excluded.updated_at, " + ", ".join(f"{f} = excluded.{f}" for f in STEP_TIME_FIELDS)
)
# An unclaimed entry moves to the earlier time. A claimed entry keeps its claim and remembers the
# earliest wake-up asked for meanwhile in ``wake_at``, which the owner's requeue/ack then honours, so a
# wake-up sent while a worker holds the task is not lost.
_SQL_ENQUEUE = (
    "INSERT INTO queue (run_key, path, visible_at) VALUES (?, ?, ?) "
    "ON CONFLICT (run_key, path) DO UPDATE SET "
    "visible_at = CASE WHEN queue.owner IS NULL AND excluded.visible_at < queue.visible_at "
    "THEN excluded.visible_at ELSE queue.visible_at END, "
    "wake_at = CASE WHEN queue.owner IS NULL THEN queue.wake_at "
    "WHEN queue.wake_at IS NULL OR excluded.visible_at < queue.wake_at THEN excluded.visible_at "
    "ELSE queue.wake_at END "
    "RETURNING task_id"
)
_SQL_CLAIM = (
    "UPDATE queue SET owner = ?, claimed_until = ?, poll_count = poll_count + 1 WHERE task_id IN ("
    "SELECT task_id FROM queue WHERE visible_at <= ? AND (owner IS NULL OR claimed_until <= ?) "
    "ORDER BY visible_at, task_id LIMIT ?{skip_locked}) RETURNING " + _QUEUE_COLUMNS
)
_SQL_REQUEUE = (
    "UPDATE queue SET visible_at = CASE WHEN wake_at IS NOT NULL AND wake_at < ? THEN wake_at ELSE ? END, "
    "owner = NULL, claimed_until = NULL, wake_at = NULL WHERE task_id = ? AND owner = ?"
)
_SQL_ACK = "DELETE FROM queue WHERE task_id = ? AND owner = ? AND wake_at IS NULL"
_SQL_ACK_WOKEN = (
    "UPDATE queue SET visible_at = wake_at, owner = NULL, claimed_until = NULL, wake_at = NULL "
    "WHERE task_id = ? AND owner = ? AND wake_at IS NOT NULL"
)
_SQL_NEXT_VISIBLE = (
    "SELECT MIN(CASE WHEN owner IS NULL OR claimed_until < visible_at THEN visible_at ELSE claimed_until END) "
    "FROM queue"
)


_RENEW_CHUNK = 2_000
"""Groups renewed per statement: 2 + 3 parameters per group stays far below SQLite's and libpq's
parameter limits. Any realistic node (tens of groups) renews in one statement."""


def _renew_sql(count: int) -> str:
    """One UPDATE extending ``count`` leases, each only if still ``owner``'s at the given generation
    and unexpired (a CASE keeps the per-group generation check flat, whatever the count)."""
    marks = ", ".join("?" * count)
    cases = " ".join("WHEN ? THEN ?" for _ in range(count))
    return (
        "UPDATE group_leases SET heartbeat_at = ?, expires_at = ? "
        f"WHERE owner = ? AND expires_at > ? AND group_id IN ({marks}) AND generation = CASE group_id {cases} END "
        "RETURNING group_id, generation"
    )


def _run(row: Sequence[Any]) -> WorkflowInstance:
    return WorkflowInstance(
        run_key=row[0], workflow_id=row[1], run_id=row[2], status=row[3], state=row[4],
        parent_key=row[5], group_id=row[6], version=row[7], created_at=row[8], updated_at=row[9],
    )  # fmt: skip


_STEP_ROW_CACHE = 20_000


def _step(row: Sequence[Any]) -> StepInstance:
    return StepInstance(row[0], row[1], row[2], row[3], row[4], StepTimes(*row[6:]), row[5])


def _times_row(t: StepTimes) -> tuple[float | None, ...]:
    return (t.create_time, t.initialize_time, t.pause_time, t.wait_signal_time, t.evaluate_param_time,
            t.wait_permit_time, t.start_time, t.execute_time, t.finish_time, t.end_time)  # fmt: skip


def _task(row: Sequence[Any]) -> QueueTask:
    return QueueTask(*row)


def _lease(row: Sequence[Any]) -> GroupLease:
    return GroupLease(*row)


class SqlOperations(SqlBackend):
    """Every store operation, written once over the backend's statement primitives."""

    # ---- runs and step attempts -------------------------------------------------------------

    def create_run(self, run: WorkflowInstance, *, fence: Fence | None = None) -> None:
        """Insert a new run; StoreIntegrityError if ``run_key`` exists."""
        with self.transaction():
            self._check_fence(fence)
            self._write(
                "create_run",
                _SQL_INSERT_RUN,
                (run.run_key, run.workflow_id, run.run_id, run.status, run.state, run.parent_key,
                 run.group_id, run.version, run.created_at, run.updated_at),
            )  # fmt: skip

    def get_run(self, run_key: str) -> WorkflowInstance | None:
        with self.transaction(write=False):
            rows = self._read("get_run", _SQL_GET_RUN, (run_key,))
        return _run(rows[0]) if rows else None

    def load_run(self, run_key: str) -> LoadedRun | None:
        """The run and all its step attempts, from one consistent snapshot (two reads)."""
        with self.transaction(write=False):
            rows = self._read("load_run", _SQL_GET_RUN, (run_key,))
            if not rows:
                return None
            steps = self._read("load_run", _SQL_GET_STEPS, (run_key,))
        return LoadedRun(run=_run(rows[0]), steps=tuple(self._decode_steps(steps)))

    def _decode_steps(self, rows: list[Any]) -> Iterator[StepInstance]:
        # The legacy engine reloads every step at every poll, and most rows are unchanged since the last
        # load: reuse the immutable record built for an identical row (the row tuple is the key, so any
        # change in any column builds a fresh one). Bounded: cleared when it grows past _STEP_ROW_CACHE.
        cache = self._step_rows
        if len(cache) > _STEP_ROW_CACHE:
            cache.clear()
        for row in rows:
            key = tuple(row)
            step = cache.get(key)
            if step is None:
                step = cache[key] = _step(row)
            yield step

    def save_run(self, run: WorkflowInstance, *, fence: Fence | None = None) -> WorkflowInstance:
        """Write ``run`` if its row is still at ``run.version``; return it at the new version.

        StoreConflictError when another writer moved the version (reload and redo the transition);
        StoreIntegrityError when the run does not exist."""
        with self.transaction():
            self._check_fence(fence)
            changed = self._write(
                "save_run",
                _SQL_SAVE_RUN,
                (
                    run.status,
                    run.state,
                    run.parent_key,
                    run.group_id,
                    run.updated_at,
                    run.run_key,
                    run.version,
                ),
            )
            if changed == 0:
                rows = self._read(
                    "save_run", "SELECT version FROM workflow_instances WHERE run_key = ?", (run.run_key,)
                )
                if not rows:
                    raise StoreIntegrityError(
                        f"save_run: run {run.run_key!r} does not exist; create_run it first",
                        database=self.database,
                    )
                raise StoreConflictError(
                    f"save_run: run {run.run_key!r} is at version {rows[0][0]}, the write was based on version "
                    f"{run.version}; reload the run and apply the transition again",
                    database=self.database,
                )
        return WorkflowInstance(
            run_key=run.run_key, workflow_id=run.workflow_id, run_id=run.run_id, status=run.status,
            state=run.state, parent_key=run.parent_key, group_id=run.group_id, version=run.version + 1,
            created_at=run.created_at, updated_at=run.updated_at,
        )  # fmt: skip

    def save_steps(self, steps: Sequence[StepInstance], *, fence: Fence | None = None) -> None:
        """Insert or overwrite step attempts in one batched round trip."""
        if not steps:
            return
        rows = [
            (s.run_key, s.path, s.attempt, s.status, s.state, s.updated_at, *_times_row(s.times))
            for s in steps
        ]
        with self.transaction():
            self._check_fence(fence)
            self._write_many("save_steps", _SQL_UPSERT_STEP, rows)

    def runs(
        self, *, group_id: int | None = None, statuses: Iterable[str] | None = None
    ) -> list[WorkflowInstance]:
        """Runs, optionally of one group and/or in the given statuses, ordered by run key."""
        sql = f"SELECT {_RUN_COLUMNS} FROM workflow_instances"
        clauses: list[str] = []
        params: list[Any] = []
        if group_id is not None:
            clauses.append("group_id = ?")
            params.append(group_id)
        if statuses is not None:
            wanted = sorted(set(statuses))
            if not wanted:
                return []
            clauses.append(f"status IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self.transaction(write=False):
            rows = self._read("runs", sql + " ORDER BY run_key", params)
        return [_run(r) for r in rows]

    def child_runs(self, parent_key: str) -> list[WorkflowInstance]:
        with self.transaction(write=False):
            rows = self._read(
                "child_runs", f"SELECT {_RUN_COLUMNS} FROM workflow_instances WHERE parent_key = ? ORDER BY run_key",
                (parent_key,),
            )  # fmt: skip
        return [_run(r) for r in rows]

    # ---- step actions -----------------------------------------------------------------------

    def add_step_action(self, run_key: str, path: str, action: str, created_at: float) -> int:
        with self.transaction():
            rows = self._write_returning(
                "add_step_action",
                "INSERT INTO step_actions (run_key, path, action, created_at) VALUES (?, ?, ?, ?) RETURNING action_id",
                (run_key, path, action, created_at),
            )
        return int(rows[0][0])

    def take_step_actions(self, run_key: str) -> list[StepAction]:
        """Remove and return the run's pending actions, oldest first."""
        with self.transaction():
            rows = self._write_returning(
                "take_step_actions",
                "DELETE FROM step_actions WHERE run_key = ? RETURNING action_id, run_key, path, action, created_at",
                (run_key,),
            )
        return sorted((StepAction(*r) for r in rows), key=lambda a: a.action_id)

    # ---- legacy queue -----------------------------------------------------------------------

    def enqueue(self, run_key: str, path: str, visible_at: float) -> int:
        """Queue a poll of ``path`` (one entry per run and path: re-enqueueing keeps the earlier time)."""
        with self.transaction():
            rows = self._write_returning("enqueue", _SQL_ENQUEUE, (run_key, path, visible_at))
        return int(rows[0][0])

    def claim(self, owner: str, now: float, *, claim_seconds: float, limit: int = 1) -> list[QueueTask]:
        """Claim up to ``limit`` visible tasks (unclaimed, or whose claim expired) for ``claim_seconds``.

        An expired claim is taken over: the slow worker may still finish and write (at-least-once)."""
        with self.transaction():
            rows = self._write_returning(
                "claim",
                _SQL_CLAIM.format(skip_locked=self._skip_locked),
                (owner, now + claim_seconds, now, now, limit),
            )
        return sorted((_task(r) for r in rows), key=lambda t: (t.visible_at, t.task_id))

    def requeue(self, task_id: int, owner: str, visible_at: float) -> bool:
        """Release a claimed task to become visible at ``visible_at`` (or at an earlier wake-up enqueued
        while it was claimed); False if ``owner`` lost it."""
        with self.transaction():
            changed = self._write("requeue", _SQL_REQUEUE, (visible_at, visible_at, task_id, owner))
        return changed == 1

    def ack(self, task_id: int, owner: str) -> bool:
        """Delete a finished task; False if ``owner`` no longer holds it. A task woken (enqueued) while
        claimed is not deleted but released to its wake-up time: the wake-up is new work."""
        with self.transaction():
            changed = self._write("ack", _SQL_ACK, (task_id, owner))
            if changed == 0:
                changed = self._write("ack", _SQL_ACK_WOKEN, (task_id, owner))
        return changed == 1

    def next_visible_at(self) -> float | None:
        """When the next task becomes claimable (None when the queue is empty)."""
        with self.transaction(write=False):
            rows = self._read("next_visible_at", _SQL_NEXT_VISIBLE)
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def queue_depth(self) -> int:
        with self.transaction(write=False):
            rows = self._read("queue_depth", "SELECT COUNT(*) FROM queue")
        return int(rows[0][0])

    def queue_tasks(self) -> list[QueueTask]:
        """Every queue entry, by visibility (for inspection and tests)."""
        with self.transaction(write=False):
            rows = self._read(
                "queue_tasks", f"SELECT {_QUEUE_COLUMNS} FROM queue ORDER BY visible_at, task_id"
            )
        return [_task(r) for r in rows]

    # ---- outbox -----------------------------------------------------------------------------

    def add_outbox(
        self, target: str, message: str, created_at: float, deliver_by: float, *, fence: Fence | None = None
    ) -> int:
        with self.transaction():
            self._check_fence(fence)
            rows = self._write_returning(
                "add_outbox",
                "INSERT INTO outbox (target, message, created_at, deliver_by) VALUES (?, ?, ?, ?) RETURNING message_id",
                (target, message, created_at, deliver_by),
            )
        return int(rows[0][0])

    def mark_delivered(self, message_ids: Sequence[int]) -> None:
        if not message_ids:
            return
        with self.transaction():
            self._write_many(
                "mark_delivered",
                "UPDATE outbox SET delivered = 1 WHERE message_id = ?",
                [(i,) for i in message_ids],
            )

    def undelivered(self, due_by: float, *, limit: int = 1000) -> list[OutboxMessage]:
        """Undelivered messages whose ``deliver_by`` is at or before ``due_by``, oldest first."""
        with self.transaction(write=False):
            rows = self._read(
                "undelivered",
                "SELECT message_id, target, message, created_at, deliver_by, delivered FROM outbox "
                "WHERE delivered = 0 AND deliver_by <= ? ORDER BY message_id LIMIT ?",
                (due_by, limit),
            )
        return [OutboxMessage(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

    # ---- group leases -----------------------------------------------------------------------

    def lease(self, group_id: int) -> GroupLease | None:
        with self.transaction(write=False):
            rows = self._read(
                "lease", f"SELECT {_LEASE_COLUMNS} FROM group_leases WHERE group_id = ?", (group_id,)
            )
        return _lease(rows[0]) if rows else None

    def acquire_lease(self, group_id: int, owner: str, now: float, ttl: float) -> GroupLease | None:
        """Take (or renew) the group's lease; None if another owner holds an unexpired one.

        A takeover of an expired lease (by anyone, even the old owner) bumps the generation, so
        writes fenced with the old generation are rejected from then on."""
        with self.transaction():
            rows = self._read(
                "acquire_lease",
                f"SELECT {_LEASE_COLUMNS} FROM group_leases WHERE group_id = ?{self._lock_rows}",
                (group_id,),
            )
            if not rows:
                # ON CONFLICT DO NOTHING: a node that inserted the first lease concurrently wins.
                inserted = self._write_returning(
                    "acquire_lease",
                    f"INSERT INTO group_leases ({_LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (group_id) DO NOTHING RETURNING generation",
                    (group_id, owner, 1, now, now + ttl),
                )
                return GroupLease(group_id, owner, 1, now, now + ttl) if inserted else None
            held = _lease(rows[0])
            if held.expires_at > now and held.owner != owner:
                return None
            generation = held.generation if held.expires_at > now else held.generation + 1
            self._write(
                "acquire_lease",
                "UPDATE group_leases SET owner = ?, generation = ?, heartbeat_at = ?, expires_at = ? WHERE group_id = ?",
                (owner, generation, now, now + ttl, group_id),
            )
        return GroupLease(group_id, owner, generation, now, now + ttl)

    def heartbeat(self, group_id: int, owner: str, generation: int, now: float, ttl: float) -> GroupLease:
        """Extend a held, unexpired lease; StaleGenerationError if it expired or moved on."""
        with self.transaction():
            changed = self._write(
                "heartbeat",
                "UPDATE group_leases SET heartbeat_at = ?, expires_at = ? "
                "WHERE group_id = ? AND owner = ? AND generation = ? AND expires_at > ?",
                (now, now + ttl, group_id, owner, generation, now),
            )
            if changed == 0:
                rows = self._read(
                    "heartbeat", "SELECT generation FROM group_leases WHERE group_id = ?", (group_id,)
                )
                current = int(rows[0][0]) if rows else None
                raise StaleGenerationError(group_id, generation, current, database=self.database)
        return GroupLease(group_id, owner, generation, now, now + ttl)

    def renew_leases(self, owner: str, held: Mapping[int, int], now: float, ttl: float) -> LeaseRenewal:
        """Extend every lease ``owner`` holds -- ``held`` maps group id to generation -- in ONE statement.

        Each lease is fenced on its own: one that expired or moved to another owner or generation is
        not extended and comes back in ``lost`` with the group's current generation (one extra read,
        only then). The renewed ones are extended even if others are lost; the caller decides what
        losing a group means (the actor node stops). A heartbeat then costs one statement + commit per
        node, whatever the number of groups."""
        if not held:
            return LeaseRenewal(renewed=(), lost={})
        items = sorted(held.items())
        renewed: dict[int, int] = {}
        with self.transaction():
            for start in range(0, len(items), _RENEW_CHUNK):
                chunk = items[start : start + _RENEW_CHUNK]
                params: list[Any] = [now, now + ttl, owner, now]
                params.extend(g for g, _ in chunk)
                for g, generation in chunk:
                    params.extend((g, generation))
                rows = self._write_returning("renew_leases", _renew_sql(len(chunk)), params)
                renewed.update((int(r[0]), int(r[1])) for r in rows)
            missing = [g for g, _ in items if g not in renewed]
            lost: dict[int, int | None] = {}
            if missing:
                rows = self._read(
                    "renew_leases",
                    f"SELECT group_id, generation FROM group_leases WHERE group_id IN ({', '.join('?' * len(missing))})",
                    missing,
                )
                current = {int(r[0]): int(r[1]) for r in rows}
                lost = {g: current.get(g) for g in missing}
        return LeaseRenewal(
            renewed=tuple(GroupLease(g, owner, renewed[g], now, now + ttl) for g, _ in items if g in renewed),
            lost=lost,
        )
