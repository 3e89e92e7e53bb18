"""Batched lease renewal: one statement renews every lease a node holds, each fenced by generation."""

from __future__ import annotations

import pytest

from engines.store import LatencyModel, SqliteConfig, SqliteStore, StaleGenerationError, WorkflowInstance


def _store() -> SqliteStore:
    return SqliteStore(SqliteConfig(latency=LatencyModel.zero()))


def _held(
    store: SqliteStore, owner: str, groups: range, now: float = 0.0, ttl: float = 56.0
) -> dict[int, int]:
    held = {}
    for g in groups:
        lease = store.acquire_lease(g, owner, now, ttl)
        assert lease is not None
        held[g] = lease.generation
    return held


class TestRenewLeases:
    def test_one_statement_renews_every_lease(self) -> None:
        """Eight held leases are extended by one statement plus its commit, to now + ttl."""
        store = _store()
        held = _held(store, "a", range(8))
        before = dict(store.counters)
        renewal = store.renew_leases("a", held, 11.0, 56.0)
        assert renewal.ok
        assert [lease.group_id for lease in renewal.renewed] == list(range(8))
        assert store.counters["round_trips"] - before["round_trips"] == 2
        assert store.counters["writes"] - before["writes"] == 1
        assert all(store.lease(g).expires_at == 67.0 for g in range(8))  # type: ignore[union-attr]

    def test_cost_does_not_grow_with_groups(self) -> None:
        """Renewing 3,000 leases (more than one chunk) still costs a handful of round trips, and all are renewed."""
        store = _store()
        held = _held(store, "a", range(3000))
        before = store.counters["round_trips"]
        renewal = store.renew_leases("a", held, 11.0, 56.0)
        assert renewal.ok
        assert len(renewal.renewed) == 3000
        assert store.counters["round_trips"] - before == 3  # two chunked statements + commit
        assert store.lease(2999).expires_at == 67.0  # type: ignore[union-attr]

    def test_taken_over_group_is_lost_and_others_renewed(self) -> None:
        """A group another node took over (generation + 1) is reported lost with its current generation; the rest renew."""
        store = _store()
        held = _held(store, "a", range(4), ttl=10.0)
        store.renew_leases("a", dict.fromkeys((0, 1, 3), 1), 8.0, 10.0)  # group 2 not renewed
        assert store.acquire_lease(2, "b", 12.0, 10.0) is not None  # expired at 10: b takes it, generation 2
        renewal = store.renew_leases("a", held, 12.0, 10.0)
        assert dict(renewal.lost) == {2: 2}
        assert [lease.group_id for lease in renewal.renewed] == [0, 1, 3]
        assert store.lease(2).owner == "b"  # type: ignore[union-attr]
        assert store.lease(2).expires_at == 22.0  # type: ignore[union-attr]

    def test_expired_lease_is_not_renewed_even_without_takeover(self) -> None:
        """A lease past its expiry is lost even if nobody claimed it: the node must re-acquire (generation + 1)."""
        store = _store()
        held = _held(store, "a", range(2), ttl=10.0)
        renewal = store.renew_leases("a", held, 10.0, 10.0)
        assert dict(renewal.lost) == {0: 1, 1: 1}
        assert renewal.renewed == ()
        assert store.lease(0).expires_at == 10.0  # type: ignore[union-attr]

    def test_wrong_generation_or_owner_is_lost(self) -> None:
        """Holding a stale generation, or a group owned by someone else, renews nothing of that group."""
        store = _store()
        _held(store, "a", range(1))
        _held(store, "b", range(1, 2))
        renewal = store.renew_leases("a", {0: 7, 1: 1}, 5.0, 56.0)
        assert dict(renewal.lost) == {0: 1, 1: 1}
        assert store.lease(1).owner == "b"  # type: ignore[union-attr]
        assert store.lease(1).expires_at == 56.0  # type: ignore[union-attr]

    def test_group_without_lease_row_is_lost_with_none(self) -> None:
        """A group the store has no lease for comes back lost with generation None."""
        store = _store()
        renewal = store.renew_leases("a", {5: 1}, 0.0, 56.0)
        assert dict(renewal.lost) == {5: None}

    def test_nothing_held_costs_nothing(self) -> None:
        """A node holding no group makes no round trip."""
        store = _store()
        before = store.counters["round_trips"]
        assert store.renew_leases("a", {}, 0.0, 56.0).ok
        assert store.counters["round_trips"] == before

    def test_fencing_still_rejects_the_loser(self) -> None:
        """After losing a group at renewal, a write fenced with the old generation is rejected."""
        store = _store()
        _held(store, "a", range(1), ttl=10.0)
        store.acquire_lease(0, "b", 20.0, 10.0)
        assert not store.renew_leases("a", {0: 1}, 20.0, 10.0).ok
        with pytest.raises(StaleGenerationError):
            store.create_run(WorkflowInstance("r1", "wf", "r1", "IN_PROGRESS", group_id=0), fence=(0, 1))
        assert store.get_run("r1") is None

    def test_rolled_back_with_the_enclosing_transaction(self) -> None:
        """Inside store.transaction(), an exception after the renewal leaves every lease as it was."""
        store = _store()
        held = _held(store, "a", range(3))

        def renew_then_fail() -> None:
            with store.transaction():
                store.renew_leases("a", held, 11.0, 56.0)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            renew_then_fail()
        assert all(store.lease(g).expires_at == 56.0 for g in range(3))  # type: ignore[union-attr]
