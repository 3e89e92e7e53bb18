"""The store's legacy queue, step actions, outbox and group leases with fencing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engines.store import (
    DECIDER_PATH,
    LatencyModel,
    SqliteConfig,
    SqliteStore,
    StaleGenerationError,
    StepInstance,
    WorkflowInstance,
)


def _store() -> SqliteStore:
    return SqliteStore(SqliteConfig(latency=LatencyModel.zero()))


class TestQueue:
    def test_claim_respects_visibility_and_order(self) -> None:
        """Only visible tasks are claimed, earliest visible_at first, up to the limit."""
        store = _store()
        store.enqueue("r1", "b", 5.0)
        store.enqueue("r1", "a", 1.0)
        store.enqueue("r1", DECIDER_PATH, 2.0)
        store.enqueue("r1", "late", 50.0)
        claimed = store.claim("w1", 10.0, claim_seconds=30.0, limit=10)
        assert [t.path for t in claimed] == ["a", DECIDER_PATH, "b"]
        assert all(t.owner == "w1" and t.claimed_until == 40.0 and t.poll_count == 1 for t in claimed)
        assert store.claim("w2", 10.0, claim_seconds=30.0, limit=10) == []

    def test_expired_claim_is_taken_over(self) -> None:
        """A claim past claimed_until is claimed by another worker (at-least-once); the slow owner's
        requeue then fails while the new owner's succeeds."""
        store = _store()
        task_id = store.enqueue("r1", "a", 0.0)
        (first,) = store.claim("slow", 0.0, claim_seconds=5.0)
        assert store.claim("fast", 4.9, claim_seconds=5.0) == []
        (second,) = store.claim("fast", 5.0, claim_seconds=5.0)
        assert (first.task_id, second.task_id) == (task_id, task_id)
        assert second.poll_count == 2
        assert not store.requeue(task_id, "slow", 6.0)
        assert store.requeue(task_id, "fast", 7.0)
        (task,) = store.queue_tasks()
        assert (task.visible_at, task.owner, task.claimed_until) == (7.0, None, None)

    def test_enqueue_same_step_keeps_one_entry_earliest_time(self) -> None:
        """Re-enqueueing a run's step keeps a single entry, visible at the earlier time."""
        store = _store()
        a = store.enqueue("r1", "a", 9.0)
        b = store.enqueue("r1", "a", 3.0)
        c = store.enqueue("r1", "a", 20.0)
        assert a == b == c
        assert [t.visible_at for t in store.queue_tasks()] == [3.0]

    def test_wake_up_while_claimed_is_not_lost(self) -> None:
        """An enqueue while a worker holds the task keeps the claim; the owner's later requeue honours the
        earlier wake-up."""
        store = _store()
        task_id = store.enqueue("r1", "a", 0.0)
        store.claim("w1", 0.0, claim_seconds=30.0)
        store.enqueue("r1", "a", 2.0)
        store.enqueue("r1", "a", 1.5)
        assert store.claim("w2", 1.5, claim_seconds=30.0) == []
        assert store.requeue(task_id, "w1", 3.0)
        (task,) = store.queue_tasks()
        assert (task.visible_at, task.owner) == (1.5, None)
        store.claim("w1", 1.5, claim_seconds=30.0)
        assert store.requeue(task_id, "w1", 3.0)
        assert [t.visible_at for t in store.queue_tasks()] == [3.0]

    def test_ack_of_woken_task_releases_it(self) -> None:
        """Acking a task that was woken while claimed releases it at the wake-up instead of deleting it."""
        store = _store()
        task_id = store.enqueue("r1", "a", 0.0)
        store.claim("w1", 0.0, claim_seconds=30.0)
        store.enqueue("r1", "a", 4.0)
        assert store.ack(task_id, "w1")
        assert [(t.visible_at, t.owner) for t in store.queue_tasks()] == [(4.0, None)]
        store.claim("w1", 4.0, claim_seconds=30.0)
        assert store.ack(task_id, "w1")
        assert store.queue_depth() == 0

    def test_ack_needs_ownership(self) -> None:
        """Only the current owner can ack (delete) a task."""
        store = _store()
        task_id = store.enqueue("r1", "a", 0.0)
        store.claim("w1", 0.0, claim_seconds=1.0)
        assert not store.ack(task_id, "w2")
        assert store.ack(task_id, "w1")
        assert store.queue_depth() == 0

    def test_next_visible_at(self) -> None:
        """next_visible_at is the earliest claimable time, counting claim expiry; None when empty."""
        store = _store()
        assert store.next_visible_at() is None
        store.enqueue("r1", "a", 4.0)
        store.enqueue("r1", "b", 6.0)
        assert store.next_visible_at() == 4.0
        store.claim("w", 4.0, claim_seconds=10.0)
        assert store.next_visible_at() == 6.0
        store.claim("w", 6.0, claim_seconds=1.0)
        assert store.next_visible_at() == 7.0


class TestStepActions:
    def test_actions_are_taken_once_in_order(self) -> None:
        """Pending actions come back oldest first, once, and only for their run."""
        store = _store()
        store.add_step_action("r1", "a", "STOP", 1.0)
        store.add_step_action("r2", "a", "KILL", 2.0)
        store.add_step_action("r1", "b", "SKIP", 3.0)
        taken = store.take_step_actions("r1")
        assert [(a.path, a.action) for a in taken] == [("a", "STOP"), ("b", "SKIP")]
        assert store.take_step_actions("r1") == []
        assert [a.action for a in store.take_step_actions("r2")] == ["KILL"]


class TestOutbox:
    def test_undelivered_until_marked(self) -> None:
        """Messages due by the time are listed in id order until marked delivered."""
        store = _store()
        m1 = store.add_outbox("flow:r1", '{"k":"TaskDone"}', 1.0, 2.0)
        m2 = store.add_outbox("flow:r2", '{"k":"Wake"}', 1.0, 9.0)
        assert [m.message_id for m in store.undelivered(5.0)] == [m1]
        assert [m.message_id for m in store.undelivered(10.0)] == [m1, m2]
        store.mark_delivered([m1])
        assert [m.target for m in store.undelivered(10.0)] == ["flow:r2"]


class TestLeasesAndFencing:
    def test_lease_held_then_taken_over_after_expiry(self) -> None:
        """A live lease blocks others; after expiry another node takes it at generation + 1."""
        store = _store()
        lease = store.acquire_lease(7, "node-a", 0.0, ttl=56.0)
        assert lease is not None
        assert lease.generation == 1
        assert store.acquire_lease(7, "node-b", 30.0, ttl=56.0) is None
        renewed = store.acquire_lease(7, "node-a", 30.0, ttl=56.0)
        assert renewed is not None
        assert renewed.generation == 1
        taken = store.acquire_lease(7, "node-b", 86.0, ttl=56.0)
        assert taken is not None
        assert (taken.owner, taken.generation, taken.expires_at) == ("node-b", 2, 142.0)
        assert store.lease(7) == taken

    def test_heartbeat_extends_or_is_fenced(self) -> None:
        """A heartbeat extends a held lease; after a takeover the old holder's heartbeat is fenced out."""
        store = _store()
        store.acquire_lease(1, "a", 0.0, ttl=56.0)
        assert store.heartbeat(1, "a", 1, 11.0, ttl=56.0).expires_at == 67.0
        store.acquire_lease(1, "b", 67.0, ttl=56.0)
        with pytest.raises(StaleGenerationError, match="generation 2, the writer holds generation 1"):
            store.heartbeat(1, "a", 1, 68.0, ttl=56.0)

    def test_expired_heartbeat_is_rejected(self) -> None:
        """A heartbeat after expiry is rejected even if nobody took over: the node must stop."""
        store = _store()
        store.acquire_lease(1, "a", 0.0, ttl=10.0)
        with pytest.raises(StaleGenerationError):
            store.heartbeat(1, "a", 1, 10.0, ttl=10.0)

    def test_stale_generation_write_is_rejected_and_not_written(self) -> None:
        """Writes fenced with an old generation raise StaleGenerationError and change nothing."""
        store = _store()
        store.acquire_lease(3, "a", 0.0, ttl=5.0)
        run = WorkflowInstance("r1", "wf", "r1", "IN_PROGRESS", group_id=3)
        store.create_run(run, fence=(3, 1))
        store.acquire_lease(3, "b", 10.0, ttl=5.0)
        with pytest.raises(StaleGenerationError) as info:
            store.save_run(WorkflowInstance("r1", "wf", "r1", "FAILED", group_id=3), fence=(3, 1))
        assert (info.value.group_id, info.value.held, info.value.current) == (3, 1, 2)
        with pytest.raises(StaleGenerationError):
            store.save_steps([StepInstance("r1", "a", 1, "RUNNING")], fence=(3, 1))
        with pytest.raises(StaleGenerationError):
            store.add_outbox("flow:r1", "{}", 10.0, 10.0, fence=(3, 1))
        loaded = store.load_run("r1")
        assert loaded is not None
        assert (loaded.run.status, loaded.steps) == ("IN_PROGRESS", ())
        assert store.undelivered(100.0) == []
        assert (
            store.save_run(WorkflowInstance("r1", "wf", "r1", "FAILED", group_id=3), fence=(3, 2)).version
            == 1
        )

    def test_write_without_any_lease_is_fenced(self) -> None:
        """A fenced write for a group that has no lease at all is rejected."""
        with pytest.raises(StaleGenerationError, match="no lease"):
            _store().create_run(WorkflowInstance("r1", "wf", "r1", "CREATED"), fence=(9, 1))


class TestConcurrentWorkers:
    def test_two_connections_never_double_claim_a_live_claim(self, tmp_path: Path) -> None:
        """Two threads with their own connections to one WAL file claim 200 tasks: each exactly once."""
        db = str(tmp_path / "q.db")
        setup = SqliteStore(SqliteConfig(path=db, latency=LatencyModel.zero()))
        for i in range(200):
            setup.enqueue(f"r{i}", "a", 0.0)
        setup.close()
        claimed: dict[str, list[int]] = {"w1": [], "w2": []}

        def worker(name: str) -> None:
            store = SqliteStore(SqliteConfig(path=db, latency=LatencyModel.zero(), busy_timeout=30.0))
            while True:
                tasks = store.claim(name, 1.0, claim_seconds=1e9, limit=3)
                if not tasks:
                    break
                claimed[name].extend(t.task_id for t in tasks)
            store.close()

        threads = [threading.Thread(target=worker, args=(n,)) for n in claimed]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = claimed["w1"] + claimed["w2"]
        assert sorted(every) == sorted(set(every))
        assert len(every) == 200
