"""PostgresStore against a throwaway PostgreSQL server: the same behaviour and round trips as SQLite.

Uses ``SHADOW_TEST_POSTGRES_DSN`` when set; otherwise starts a private cluster (``initdb`` + ``pg_ctl``,
unix socket only, trust auth) in a temporary directory, as user ``postgres`` when run as root.
Skipped with the reason when psycopg or the server binaries are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator

import pytest

from engines.store import (
    FailNthRoundTrip,
    LatencyModel,
    SqliteConfig,
    SqliteStore,
    StaleGenerationError,
    StepInstance,
    StepTimes,
    Store,
    StoreConflictError,
    StoreFullError,
    StoreIntegrityError,
    StoreLockedError,
    WorkflowInstance,
)

if os.environ.get("SHADOW_REQUIRE_POSTGRES") == "1":  # CI: a missing driver is a broken install, not a skip
    import psycopg
else:
    psycopg = pytest.importorskip(
        "psycopg", reason="psycopg not installed: pip install 'workflow-shadow[postgres]'"
    )

from engines.store.postgres import PostgresConfig, PostgresStore


def _as_postgres_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _skip(reason: str) -> None:
    """Skip, unless SHADOW_REQUIRE_POSTGRES=1 (CI sets it: a missing server there is a broken install step)."""
    if os.environ.get("SHADOW_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"SHADOW_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


def _server_binary(name: str) -> str | None:
    """``name`` on PATH, else from Debian's versioned /usr/lib/postgresql/<major>/bin (not on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return versions[-1] if versions else None


@pytest.fixture(scope="module")
def server_dsn() -> Iterator[str]:
    given = os.environ.get("SHADOW_TEST_POSTGRES_DSN")
    if given:
        yield given
        return
    initdb, pg_ctl = _server_binary("initdb"), _server_binary("pg_ctl")
    if not initdb or not pg_ctl:
        _skip(
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin, and "
            "SHADOW_TEST_POSTGRES_DSN unset: apt-get install postgresql"
        )
    if os.geteuid() == 0 and not shutil.which("runuser"):
        _skip("running as root without runuser: cannot start a private PostgreSQL cluster")
    data = tempfile.mkdtemp(prefix="shadow-pg-")
    if os.geteuid() == 0:
        shutil.chown(data, user="postgres")
    port = "54329"
    try:
        subprocess.run(_as_postgres_user([initdb, "-D", data, "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        subprocess.run(
            _as_postgres_user([pg_ctl, "-D", data, "-w", "-l", os.path.join(data, "log"),
                               "-o", f"-k {data} -p {port} -c listen_addresses='' -c fsync=off", "start"]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(data, ignore_errors=True)
        _skip(f"could not start a private PostgreSQL cluster: {exc}")
    try:
        yield f"host={data} port={port} user=postgres dbname=postgres"
    finally:
        subprocess.run(
            _as_postgres_user([pg_ctl, "-D", data, "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def make_store(server_dsn: str) -> Iterator[Callable[..., PostgresStore]]:
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute("DROP SCHEMA public CASCADE")
        admin.execute("CREATE SCHEMA public")
    opened: list[PostgresStore] = []

    def make(**kw: object) -> PostgresStore:
        store = PostgresStore(PostgresConfig(dsn=server_dsn, **kw))  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


_RUN = WorkflowInstance("r1", "wf", "r1", "CREATED", created_at=1.0)


class TestPostgresRuns:
    def test_run_round_trip_and_version_conflict(self, make_store: Callable[..., PostgresStore]) -> None:
        """Runs and steps round-trip; a stale save conflicts; a duplicate create is an integrity error."""
        store = make_store()
        assert isinstance(store, Store)
        store.create_run(_RUN)
        store.save_steps([StepInstance("r1", "b", 1, "RUNNING", times=StepTimes(execute_time=3.5)),
                          StepInstance("r1", "a", 1, "CREATED", state='{"x":1}')])  # fmt: skip
        loaded = store.load_run("r1")
        assert loaded is not None
        assert loaded.run == _RUN
        assert [(s.path, s.state, s.times.execute_time) for s in loaded.steps] == [
            ("a", '{"x":1}', None),
            ("b", "{}", 3.5),
        ]
        assert store.save_run(_RUN).version == 1
        with pytest.raises(StoreConflictError):
            store.save_run(_RUN)
        with pytest.raises(StoreIntegrityError):
            store.create_run(_RUN)

    def test_fault_mid_transaction_rolls_back(self, make_store: Callable[..., PostgresStore]) -> None:
        """A disk-full fault on the second write leaves nothing of the transaction."""
        store = make_store(latency=LatencyModel.zero())
        store._faults = FailNthRoundTrip(n=2)

        def write_both() -> None:
            with store.transaction():
                store.create_run(_RUN)
                store.save_steps([StepInstance("r1", "a", 1, "CREATED")])

        with pytest.raises(StoreFullError):
            write_both()
        assert store.load_run("r1") is None

    def test_same_round_trips_as_sqlite(self, make_store: Callable[..., PostgresStore]) -> None:
        """The same sequence of operations costs the same round trips and latency on both backends."""
        sqlite = SqliteStore(SqliteConfig(latency=LatencyModel(), seed=3))
        pg = make_store(latency=LatencyModel(), seed=3)
        for store in (sqlite, pg):
            store.create_run(_RUN)
            with store.transaction():
                store.load_run("r1")
                store.save_steps([StepInstance("r1", "a", 1, "CREATED")])
                store.enqueue("r1", "a", 0.0)
            store.claim("w", 0.0, claim_seconds=1.0)
        assert dict(pg.counters) == dict(sqlite.counters)


class TestPostgresQueueAndLeases:
    def test_queue_semantics_match(self, make_store: Callable[..., PostgresStore]) -> None:
        """Claim order, expiry takeover, kept wake-ups and ownership checks behave as on SQLite."""
        store = make_store()
        tid = store.enqueue("r1", "a", 0.0)
        store.enqueue("r1", "b", 1.0)
        assert [t.path for t in store.claim("w1", 1.0, claim_seconds=5.0, limit=5)] == ["a", "b"]
        store.enqueue("r1", "a", 2.0)
        (again,) = store.claim("w2", 6.0, claim_seconds=5.0, limit=1)
        assert (again.task_id, again.poll_count) == (tid, 2)
        assert not store.requeue(tid, "w1", 9.0)
        assert store.requeue(tid, "w2", 9.0)
        assert [t.visible_at for t in store.queue_tasks() if t.task_id == tid] == [2.0]
        assert store.next_visible_at() == 2.0

    def test_leases_and_fencing(self, make_store: Callable[..., PostgresStore]) -> None:
        """Takeover bumps the generation; fenced writes under the old one are rejected and not written."""
        store = make_store()
        assert store.acquire_lease(1, "a", 0.0, ttl=5.0) is not None
        assert store.acquire_lease(1, "b", 1.0, ttl=5.0) is None
        store.create_run(WorkflowInstance("r1", "wf", "r1", "IN_PROGRESS", group_id=1), fence=(1, 1))
        taken = store.acquire_lease(1, "b", 10.0, ttl=5.0)
        assert taken is not None
        assert taken.generation == 2
        with pytest.raises(StaleGenerationError):
            store.save_run(WorkflowInstance("r1", "wf", "r1", "FAILED", group_id=1), fence=(1, 1))
        run = store.get_run("r1")
        assert run is not None
        assert run.status == "IN_PROGRESS"

    def test_row_lock_wait_is_locked_error(
        self, make_store: Callable[..., PostgresStore], server_dsn: str
    ) -> None:
        """A lease row locked by another transaction past lock_timeout raises a retryable StoreLockedError."""
        store = make_store(lock_timeout=0.1)
        store.acquire_lease(4, "a", 0.0, ttl=5.0)
        with psycopg.connect(server_dsn) as other:
            other.execute("SELECT * FROM group_leases WHERE group_id = 4 FOR UPDATE")
            with pytest.raises(StoreLockedError) as info:
                store.acquire_lease(4, "b", 10.0, ttl=5.0)
            assert info.value.retryable
            other.rollback()

    def test_concurrent_claims_skip_locked(self, make_store: Callable[..., PostgresStore]) -> None:
        """Two connections claiming 200 tasks concurrently claim each exactly once."""
        setup = make_store()
        for i in range(200):
            setup.enqueue(f"r{i}", "a", 0.0)
        stores = {"w1": make_store(), "w2": make_store()}
        claimed: dict[str, list[int]] = {"w1": [], "w2": []}

        def worker(name: str) -> None:
            while tasks := stores[name].claim(name, 1.0, claim_seconds=1e9, limit=3):
                claimed[name].extend(t.task_id for t in tasks)

        threads = [threading.Thread(target=worker, args=(n,)) for n in claimed]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = claimed["w1"] + claimed["w2"]
        assert len(every) == 200
        assert len(set(every)) == 200


class TestPostgresLeaseRenewalAndMigrations:
    def test_batched_renewal_matches_sqlite(self, make_store: Callable[..., PostgresStore]) -> None:
        """renew_leases renews, reports lost groups with their generation, and costs the same round trips as SQLite."""
        results = []
        for store in (make_store(), SqliteStore(SqliteConfig(latency=LatencyModel.zero()))):
            for g in range(4):
                store.acquire_lease(g, "a", 0.0, ttl=10.0)
            store.renew_leases("a", {0: 1, 1: 1, 3: 1}, 8.0, 10.0)
            store.acquire_lease(2, "b", 12.0, ttl=10.0)
            before = store.counters["round_trips"]
            renewal = store.renew_leases("a", dict.fromkeys(range(4), 1), 12.0, 10.0)
            results.append(
                (
                    dict(renewal.lost),
                    [lease.group_id for lease in renewal.renewed],
                    store.counters["round_trips"] - before,
                )
            )
        assert results[0] == results[1] == ({2: 2}, [0, 1, 3], 3)

    def test_concurrent_opens_of_an_empty_schema_migrate_once(
        self, make_store: Callable[..., PostgresStore], server_dsn: str
    ) -> None:
        """Six connections opening an empty database at once all succeed; each migration is recorded once."""
        make_store().close()
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute("DROP SCHEMA public CASCADE")
            admin.execute("CREATE SCHEMA public")
        barrier = threading.Barrier(6)
        errors: list[BaseException] = []
        stores: list[PostgresStore] = []

        def open_store() -> None:
            barrier.wait()
            try:
                stores.append(PostgresStore(PostgresConfig(dsn=server_dsn)))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for store in stores:
            store.close()
        assert errors == []
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            versions = [r[0] for r in admin.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == [1, 2]


class TestPostgresReadOnly:
    def test_read_only_open_refuses_other_schema_versions(
        self, make_store: Callable[..., PostgresStore], server_dsn: str
    ) -> None:
        """Capture opens the server read-only: nothing is created in an empty database, and a schema of
        another version is refused with the version found and the one expected."""
        from engines.store import StoreSchemaError

        with pytest.raises(StoreSchemaError, match="found 0, expected 2"):
            make_store(read_only=True)
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            assert admin.execute("SELECT to_regclass('schema_version')").fetchone() == (None,)
        make_store().create_run(_RUN)  # a writable open migrates
        reader = make_store(read_only=True)
        assert reader.get_run("r1") == _RUN
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute("INSERT INTO schema_version VALUES (99, 'future', 'now')")
        with pytest.raises(StoreSchemaError, match="found 99, expected 2"):
            make_store(read_only=True)


def _url(dsn: str) -> str:
    """The test server's DSN as a store URL (``postgresql://``): what users pass to --store."""
    if dsn.startswith(("postgresql://", "postgres://")):
        return dsn
    parts = dict(item.split("=", 1) for item in dsn.split())
    return f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}&port={parts['port']}"


class TestLegacyLiveOnPostgres:
    def test_live_deployment_runs_on_postgres_and_capture_reads_it_back(
        self, make_store: Callable[..., PostgresStore], server_dsn: str
    ) -> None:
        """The legacy deployment's live mode on a PostgreSQL store (the same code as on SQLite): a shell/sleep
        chain runs for real, and ``capture`` reads the finished run back from the same server as a trace whose
        attempts are the ones that ran."""
        from engines.legacy import LegacyEngine
        from engines.legacy.live import live_trace, run_live
        from tests.engines.test_legacy_live import QUICK, shell_sleep_chain

        make_store()  # a clean public schema
        url = _url(server_dsn)
        trace = live_trace(shell_sleep_chain("pg-live-chain", 4, sleep=0.05))
        result = run_live([trace], store_path=url, config=QUICK, timeout=60)
        assert result.finished
        (run,) = result.runs
        assert run.status == "SUCCEEDED"
        ran = sorted((a.path, a.attempt, a.status) for a in run.attempts)
        assert ran == [(f"s{i}", 1, "SUCCEEDED") for i in range(4)]
        (captured,) = list(LegacyEngine().capture(url))
        assert captured.workflow_id == "pg-live-chain"
        (recorded,) = captured.runs
        assert sorted((a.path, a.attempt, a.outcome.value) for a in recorded.attempts) == [
            (f"s{i}", 1, "succeeded") for i in range(4)
        ]
        feed = LegacyEngine().follow(url)  # capture --follow's feed: the finished run, once, with a cursor
        try:
            first = list(feed.poll(None))
            assert [t.workflow_id for t, _ in first] == ["pg-live-chain"]
            assert list(feed.poll(first[-1][1])) == []
        finally:
            feed.close()


class TestActorLiveOnPostgres:
    def test_two_in_process_nodes_run_every_run_like_the_oracle(
        self, make_store: Callable[..., PostgresStore], server_dsn: str
    ) -> None:
        """The actor engine's live mode on a PostgreSQL store: two nodes share it (leases, outbox, fencing
        through the server), finish 4 parallel runs with the oracle's outcome, starting each runtime once."""
        import asyncio

        from engines.actor.live import run_live
        from engines.api import ReplayOptions
        from engines.core.oracle import CoreOracle
        from tests.engines._actor_support import outcome
        from tests.engines.test_actor_live import _trace

        make_store()  # a clean public schema
        trace = _trace(4, 0.05, trace_id="pg-live-actor")
        records, counters = asyncio.run(run_live([trace], store_path=_url(server_dsn), nodes=2, timeout=60))
        assert outcome(records[0]) == outcome(CoreOracle().replay(trace, ReplayOptions()))
        assert counters["runtime_starts"] == counters["attempts"] == 16
