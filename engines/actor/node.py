"""An engine node: holds groups by lease, hosts their actors, heartbeats, sweeps and reconciles.

Leases (MAESTRO-SEMANTICS §8.2, DESIGN "actor"): a node renews every owned group's lease each
``heartbeat`` seconds with ONE batched statement (``Store.renew_leases``, fenced per group), so a
heartbeat costs one statement + commit per node whatever the number of groups. For every group it does not own it keeps a
claim check timed at the lease's expiry; a lease that expired is claimed with generation + 1 and the
group's unfinished runs are resumed from the store -- so a takeover happens at most ``lease_expiry``
seconds after the owner's last heartbeat. Every write of a group is fenced with its generation; the
first write (or heartbeat) a node makes after losing a lease raises StaleGenerationError and the node
stops: memory that is no longer the owner's must not act.

Delivery: outbox rows are handed to the owning node in memory at once after their commit; handlers
acknowledge them, and the acknowledgements ride on the node's next transaction. The sweeper (every
``sweep_interval``) re-delivers rows nobody acknowledged by their deadline.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from engines.actor.actors import Actor
from engines.actor.group import LIVE_STATUSES, GroupActor
from engines.actor.messages import DurableMessage, Reconcile, Shutdown, decode_message, encode_message
from engines.actor.upkeep import loop_is_idle, next_event_at, unsampled
from engines.store.errors import StaleGenerationError, StoreError
from engines.store.protocol import Fence

if TYPE_CHECKING:
    from engines.actor.cluster import Cluster, WorkflowEntry

__all__ = ["HEARTBEAT_ROUND_TRIPS", "Node"]

HEARTBEAT_ROUND_TRIPS = 2
"""A heartbeat that loses no lease: one batched renewal statement + its commit."""


def generation_taken_over(generation: int) -> bool:
    return generation > 1


def store_name(store: object) -> str:
    """The store's database name for error messages (``:memory:`` when it does not say)."""
    return str(getattr(store, "database", ":memory:"))


def target_of(group_id: int) -> str:
    return f"group:{group_id}"


class Node:
    """One engine node of a :class:`~engines.actor.cluster.Cluster`."""

    def __init__(self, cluster: Cluster, node_id: str, index: int) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.index = index
        self.store = cluster.store
        self.clock = cluster.clock
        self.loop = cluster.loop
        self.world = cluster.world
        self.config = cluster.config
        self.desk = cluster.desk
        self.catalog: Mapping[str, WorkflowEntry] = cluster.catalog
        self.rng = random.Random(f"actor-node:{cluster.seed}:{node_id}")
        """The flows' refresh jitter (hot path)."""
        self.reconcile_rng = random.Random(f"actor-reconcile:{cluster.seed}:{node_id}")
        """Reconciliation jitter only: accounting a skipped reconcile draws exactly what running it would."""
        self.counters: defaultdict[str, float] = defaultdict(float)
        self.fast = False
        """Fast mode (set before ``start``): heartbeats and reconciliations that change nothing are
        accounted instead of simulated. Only for a node alone on its store with no fault planned."""
        self.accounted: defaultdict[str, float] = defaultdict(float)
        """Fast mode: store round trips and commits accounted instead of made, and diagnostics."""
        self._next_beat = 0.0
        self._next_reconcile = 0.0
        self.groups: dict[int, GroupActor] = {}
        self.acks: list[int] = []
        self.alive = True
        self.halted_reason: str | None = None
        self.paused_until: float | None = None
        self._timers: dict[Any, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self, preferred: list[int]) -> None:
        """Claim the preferred groups now; watch the others; start heartbeat, sweeper, reconcile.

        A group another node prefers is first looked at one lease expiry from now, so nodes that
        start a little apart do not grab each other's groups; one nobody claims is taken then."""
        now = self.clock.now()
        for g in range(self.config.groups):
            if g in preferred:
                self._claim(g)
            else:
                self._at(("claim", g), now + self.config.lease_expiry, lambda g=g: self._claim(g))
        if self.fast:
            self._next_beat = now + self.config.heartbeat
            self.arm_sweep()
            self._next_reconcile = now + self._reconcile_delay()
            self._arm_upkeep()
        else:
            self._at("heartbeat", now + self.config.heartbeat, self._heartbeat)
            self.arm_sweep()
            self._at("reconcile", now + self._reconcile_delay(), self._reconcile)

    def halt(self, reason: str) -> None:
        """Stop acting: drop every actor and timer (memory lost). Runtimes outside keep running."""
        if not self.alive:
            return
        self.alive = False
        self.halted_reason = reason
        for group in self.groups.values():
            group.receive(Shutdown())
        self.groups.clear()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.acks.clear()
        for task in self._tasks:
            task.cancel()
        self.cluster.node_halted(self, reason)

    def crash(self) -> None:
        self.counters["crashes"] += 1
        self.halt("crashed")

    def pause(self, duration: float) -> None:
        """A GC pause: nothing of this node runs until it ends; then it finds out what it lost."""
        self.counters["pauses"] += 1
        until = self.clock.now() + duration
        self.paused_until = until

        def wake() -> None:
            if self.paused_until == until:
                self.paused_until = None

        self.clock.call_at(until, wake)

    def fenced(self, group_id: int, exc: StaleGenerationError) -> None:
        """A write of ours was rejected: we lost ``group_id``'s lease. Stop the node."""
        self.counters["fenced_writes"] += 1
        self.halt(f"lost the lease of group {group_id}: {exc}")

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.counters["tasks_spawned"] += 1
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self.cluster.fail(exc)

    def _at(self, key: Any, when: float, callback: Any) -> None:
        """A node timer; during a pause it fires when the pause ends."""
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            if not self.alive:
                return
            if self.paused_until is not None:
                self._at(key, self.paused_until, callback)
                return
            callback()

        self._timers[key] = self.clock.call_at(when, fire)

    # ---- messages ---------------------------------------------------------------------------

    def add_outbox(
        self, group_id: int, message: DurableMessage, now: float, *, fence: Fence | None = None
    ) -> int:
        """Write one outbox row (inside the caller's transaction). A row whose target no node of
        this process holds is due at once, so the owner's sweeper picks it up without waiting."""
        owner = self.cluster.owner_of(group_id)
        deadline = now if owner is None else now + self.config.delivery_deadline
        message_id = self.store.add_outbox(
            target_of(group_id), encode_message(message), now, deadline, fence=fence
        )
        self.cluster.written(message_id)
        return message_id

    def deliver(self, group_id: int, message_id: int | None, message: DurableMessage) -> None:
        self.cluster.route(group_id, message_id, message)

    def receive_durable(self, group_id: int, message_id: int | None, message: DurableMessage) -> None:
        group = self.groups.get(group_id)
        if group is not None:
            self.counters["delivered"] += 1
            group.tell((message_id, message))

    def send_local(self, actor: Actor, message: object) -> None:
        """An in-memory message between actors of this node, subject to drop/dup faults."""
        for _ in range(self.cluster.faults.copies(type(message).__name__)):
            actor.tell(message)

    def ack(self, message_id: int) -> None:
        self.acks.append(message_id)
        self.arm_sweep()

    def flush_acks(self) -> None:
        """Mark handled messages delivered, inside the caller's transaction (the acknowledgement is
        durable only once that transaction commits; a crash before it leaves the rows to the sweeper)."""
        if self.acks:
            self.store.mark_delivered(self.acks)
            self.cluster.acked(self.acks)
            self.acks = []

    def run_ended(self, row: Any) -> None:
        self.cluster.run_ended(row)

    # ---- leases -----------------------------------------------------------------------------

    def _claim(self, group_id: int) -> None:
        if group_id in self.groups or not self.alive:
            return
        store = self.store
        now = self.clock.now()
        before = store.counters["round_trips"]
        try:
            with unsampled(store):
                lease = store.lease(group_id)
                acquired = None
                if lease is None or lease.expires_at <= now:
                    acquired = store.acquire_lease(group_id, self.node_id, now, self.config.lease_expiry)
                    lease = acquired or store.lease(group_id)
        except StoreError:
            self.counters["store_errors"] += 1
            self._at(("claim", group_id), now + self.config.error_retry, lambda: self._claim(group_id))
            return
        finally:
            self.counters["upkeep_round_trips"] += store.counters["round_trips"] - before
        if acquired is not None:
            group = GroupActor(self, group_id, acquired.generation)
            self.groups[group_id] = group
            self.counters["groups_claimed"] += 1
            self.cluster.group_claimed(self, group_id, acquired.generation, now)
            group.resume_all()
            group.tell(("kick",))
            if generation_taken_over(acquired.generation):
                self.arm_sweep()
        elif lease is not None:
            self._at(("claim", group_id), max(lease.expires_at, now), lambda: self._claim(group_id))

    def _heartbeat(self) -> None:
        """Renew every lease this node holds in one statement, one transaction: the cost is per node
        and interval, not per group. Idle groups are renewed too -- the node keeps ownership as
        Maestro does -- since that costs nothing extra. A lease the store did not renew (expired, or
        taken over with a newer generation) means this node's memory of that group is no longer the
        owner's: the node stops, as on a fenced write. Acknowledgements do not ride on the heartbeat
        (they ride on flow commits and the sweeper), so a heartbeat is always the same two round
        trips, and nothing waits for it (its latency is upkeep's, :mod:`engines.actor.upkeep`)."""
        store = self.store
        now = self.clock.now()
        before = store.counters["round_trips"]
        held = {g: group.generation for g, group in self.groups.items()}
        try:
            with unsampled(store), store.transaction():
                renewal = store.renew_leases(self.node_id, held, now, self.config.lease_expiry)
                if renewal.lost:  # roll back the renewals: this node stops
                    self.counters["leases_lost"] += len(renewal.lost)
                    group_id, current = min(renewal.lost.items())
                    raise StaleGenerationError(group_id, held[group_id], current, database=store_name(store))
        except StaleGenerationError as exc:
            self.fenced(exc.group_id, exc)
            return
        except StoreError:
            self.counters["store_errors"] += 1
        finally:
            spent = store.counters["round_trips"] - before
            self.counters["upkeep_round_trips"] += spent
            self.counters["heartbeat_round_trips"] += spent
        self.counters["heartbeats"] += 1
        self._at("heartbeat", now + self.config.heartbeat, self._heartbeat)

    # ---- sweeper and reconciliation ---------------------------------------------------------

    def arm_sweep(self) -> None:
        """Make sure the sweeper will look within ``sweep_interval``. When this process holds every
        node on the store (replay), it sleeps while no outbox row is unacknowledged: there is then
        nothing it could find, and an idle replay costs no store reads."""
        if self.alive and "sweep" not in self._timers:
            self._at("sweep", self.clock.now() + self.config.sweep_interval, self._sweep)

    def _sweep(self) -> None:
        now = self.clock.now()
        self._redeliver(now)
        if self.acks or not self.cluster.exclusive or self.cluster.unacked:
            self._at("sweep", now + self.config.sweep_interval, self._sweep)
        self.cluster.poke()

    def _redeliver(self, now: float) -> None:
        store = self.store
        before = store.counters["round_trips"]
        try:
            with unsampled(store), store.transaction():
                self.flush_acks()
                rows = store.undelivered(now)
        except StoreError:
            self.counters["store_errors"] += 1
            return
        finally:
            self.counters["upkeep_round_trips"] += store.counters["round_trips"] - before
        self.counters["sweeps"] += 1
        for row in rows:
            group_id = int(row.target.partition(":")[2])
            if group_id in self.groups:
                self.counters["redelivered"] += 1
                self.groups[group_id].tell((row.message_id, decode_message(row.message)))

    def _reconcile_delay(self) -> float:
        return self.config.reconcile + self.reconcile_rng.uniform(0.0, self.config.reconcile_jitter)

    def _read_live(self) -> tuple[list[Any] | None, float, float]:
        """The reconciliation read: live runs, with the round trips and commits it cost."""
        store = self.store
        trips, commits = store.counters["round_trips"], store.counters["commits"]
        try:
            with unsampled(store):
                rows: list[Any] | None = store.runs(statuses=LIVE_STATUSES)
        except StoreError:
            self.counters["store_errors"] += 1
            rows = None
        spent = store.counters["round_trips"] - trips
        self.counters["upkeep_round_trips"] += spent
        return rows, spent, store.counters["commits"] - commits

    def _reconcile(self) -> None:
        """Compare the store with memory: adopt runs no flow holds, reload flows the store moved past,
        and let every flow run its FLOW_RECONCILE."""
        now = self.clock.now()
        rows = self._read_live()[0]
        if rows is not None:
            self._reconcile_rows(rows)
        self._at("reconcile", now + self._reconcile_delay(), self._reconcile)

    def _reconcile_rows(self, rows: list[Any]) -> None:
        store = self.store
        before = store.counters["round_trips"]
        try:
            with unsampled(store):
                self._apply_reconcile(rows)
        finally:
            self.counters["upkeep_round_trips"] += store.counters["round_trips"] - before

    def _apply_reconcile(self, rows: list[Any]) -> None:
        for row in rows:
            group = self.groups.get(row.group_id) if row.group_id is not None else None
            if group is None:
                continue
            if row.parent_key is not None:  # a detached-work marker: its run's async children
                held = group.flows.get(row.parent_key)
                if held is None:
                    if group.adopt_live_row(row) is not None:
                        self.counters["repaired_flows"] += 1
                else:
                    held.tell(Reconcile())
                continue
            flow = group.flows.get(row.run_key)
            if flow is None:
                if row.status != "CREATED":
                    self.counters["repaired_flows"] += 1
                    group.adopt(row)
            elif flow.row.version < row.version:
                self.counters["repaired_flows"] += 1
                group.reload(row.run_key, RuntimeError("store moved past memory"))
            else:
                flow.tell(Reconcile())

    # ---- fast mode: upkeep that changes nothing is accounted, not simulated ------------------

    def _arm_upkeep(self) -> None:
        self._at("upkeep", min(self._next_beat, self._next_reconcile), self._upkeep)

    def _upkeep(self) -> None:
        """The fast mode's one upkeep timer, at the next heartbeat or reconciliation.

        When nothing else is ready at this instant, nothing can happen before the loop's next timer
        (``horizon``): every upkeep tick before it sees the state as it is now. A heartbeat changes
        nothing (one node, nobody contests its leases): accounted. The reconciliation due now reads
        the store as exact mode does; if it would change nothing it is accounted, and so is every
        later one before the horizon (same state, same outcome); if it would act, it runs as in
        exact mode and the window closes. Each tick draws its jitter from ``reconcile_rng`` and its
        time is computed as exact mode computes it, so both modes tick at the same instants."""
        now = self.clock.now()
        loop = self.loop
        horizon = next_event_at(loop) if loop_is_idle(loop) else now
        self.accounted["upkeep_wakeups"] += 1
        noop: tuple[float, float, int, int] | None = None
        heartbeat = self.config.heartbeat
        while self.alive:
            beat, rec = self._next_beat, self._next_reconcile
            if beat <= rec:
                # every heartbeat up to the next reconciliation or the horizon, times computed one
                # addition at a time exactly as exact mode's timers compute them
                beats = 0
                while beat <= rec and (beat <= now or beat < horizon):
                    beats += 1
                    beat += heartbeat
                if beats:
                    self._account_heartbeats(beats)
                    self._next_beat = beat
                if beat <= rec:
                    break
                continue
            if rec > now and rec >= horizon:
                break
            if rec <= now:
                noop = self._reconcile_fast(now, idle=horizon > now)
                if noop is None:
                    horizon = now  # it acted: what follows depends on what it did
            elif noop is not None:
                self._account_reconcile(*noop)
            else:
                break
            self._next_reconcile = rec + self._reconcile_delay()
        if self.alive:
            self._arm_upkeep()

    def _account_heartbeats(self, beats: int) -> None:
        c = self.counters
        trips = beats * HEARTBEAT_ROUND_TRIPS
        c["heartbeats"] += beats
        c["heartbeat_round_trips"] += trips
        c["upkeep_round_trips"] += trips
        self.accounted["round_trips"] += trips
        self.accounted["commits"] += beats
        self.accounted["heartbeats"] += beats

    def _account_reconcile(self, trips: float, commits: float, told: int, ran: int) -> None:
        self.counters["upkeep_round_trips"] += trips
        self._count_reconcile(told, ran)
        self.accounted["round_trips"] += trips
        self.accounted["commits"] += commits
        self.accounted["reconciles"] += 1

    def _reconcile_fast(self, now: float, *, idle: bool) -> tuple[float, float, int, int] | None:
        """The reconciliation due now: the store read as in exact mode; then, if nothing else is
        ready and it would change nothing, only its counters (returned, to account later ticks);
        otherwise exactly what exact mode does (returns None)."""
        rows, trips, commits = self._read_live()
        if rows is None:
            return None
        plan = self._reconcile_plan(rows, now) if idle else None
        if plan is None:
            self.accounted["reconciles_run"] += 1
            self._reconcile_rows(rows)
            return None
        told, ran = plan
        self._count_reconcile(told, ran)
        return trips, commits, told, ran

    def _count_reconcile(self, told: int, ran: int) -> None:
        """The counters of a reconciliation that changed nothing (a counter exact mode never touched
        stays absent: the records compare key by key)."""
        c = self.counters
        if told:
            c["messages"] += told
        if ran:
            c["reconciles"] += ran
            c["decides"] += ran

    def _reconcile_plan(self, rows: list[Any], now: float) -> tuple[int, int] | None:
        """What reconciling ``rows`` now would do if it changes nothing: (flows told, flows that run
        FLOW_RECONCILE); None if it would change anything (adopt, reload, repair, execute, decide
        something, arm a timer) or cannot be predicted (an actor is mid-way)."""
        told = ran = 0
        for row in rows:
            group = self.groups.get(row.group_id) if row.group_id is not None else None
            if group is None:
                continue
            if row.parent_key is not None:
                flow = group.flows.get(row.parent_key)
                if flow is None:
                    return None
            else:
                flow = group.flows.get(row.run_key)
                if flow is None:
                    if row.status != "CREATED":
                        return None
                    continue
                if flow.row.version < row.version:
                    return None
            runs = flow.reconcile_noop(now)
            if runs is None:
                return None
            told += 1
            ran += runs
        return told, ran
