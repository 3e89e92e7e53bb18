"""SqliteStore: the :class:`~engines.store.protocol.Store` on stdlib sqlite3.

In-memory for replay (``SqliteConfig()``), a WAL file for live mode
(``SqliteConfig(path="legacy.db", synchronous="FULL", latency=LatencyModel.zero())``).
Hot paths are one statement each: ``load_run`` is two reads, ``save_steps`` one batched upsert,
``claim`` one ``UPDATE ... RETURNING``. Wrap a whole poll in ``store.transaction()`` to pay one
commit for it. Writers serialize on SQLite's database lock (``BEGIN IMMEDIATE``), so the row-locking
hooks of :class:`~engines.store._ops.SqlBackend` stay empty.
"""

from __future__ import annotations

from engines.store._ops import SqlOperations
from engines.store._sqlite_base import SqliteBase, SqliteConfig

__all__ = ["SqliteConfig", "SqliteStore"]


class SqliteStore(SqliteBase, SqlOperations):
    """The store on SQLite. Single-threaded: use it from the loop's thread only."""
