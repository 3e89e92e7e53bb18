"""The SQL store both engines persist to: SQLite today, a PostgreSQL-ready interface.

Start here: ``SqliteStore(SqliteConfig())`` for replay (in memory, seeded latency model),
``SqliteStore(SqliteConfig(path=..., latency=LatencyModel.zero()))`` or
``PostgresStore(PostgresConfig(dsn=...))`` (extra ``postgres``) for live mode. docs/STORE.md
explains the tables, the latency accounting (``await store.settle(clock)``), fencing and errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engines.store.errors import (
    StaleGenerationError,
    StoreConflictError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIntegrityError,
    StoreLockedError,
    StoreSchemaError,
)
from engines.store.faults import FailNthRoundTrip, FaultHook
from engines.store.latency import LatencyKind, LatencyModel, LatencySampler
from engines.store.protocol import Fence, Store
from engines.store.records import (
    DECIDER_PATH,
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
from engines.store.schema import LATEST_VERSION, MIGRATIONS, Migration
from engines.store.sqlite import SqliteConfig, SqliteStore

if TYPE_CHECKING:
    from engines.store.postgres import PostgresConfig, PostgresStore


def __getattr__(name: str) -> Any:
    # PostgreSQL support loads psycopg; import it only when asked, so replay workers stay light.
    if name in ("PostgresConfig", "PostgresStore"):
        from engines.store import postgres

        return getattr(postgres, name)
    raise AttributeError(f"module 'engines.store' has no attribute {name!r}")


__all__ = [
    "DECIDER_PATH",
    "LATEST_VERSION",
    "MIGRATIONS",
    "STEP_TIME_FIELDS",
    "FailNthRoundTrip",
    "FaultHook",
    "Fence",
    "GroupLease",
    "LatencyKind",
    "LatencyModel",
    "LatencySampler",
    "LeaseRenewal",
    "LoadedRun",
    "Migration",
    "OutboxMessage",
    "PostgresConfig",
    "PostgresStore",
    "QueueTask",
    "SqliteConfig",
    "SqliteStore",
    "StaleGenerationError",
    "StepAction",
    "StepInstance",
    "StepTimes",
    "Store",
    "StoreConflictError",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreIntegrityError",
    "StoreLockedError",
    "StoreSchemaError",
    "WorkflowInstance",
]
