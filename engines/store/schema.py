"""The store's schema as an ordered list of migrations, and the code that applies them.

A ``schema_version`` table records every applied migration. Opening a database applies the missing
ones in order, in one ``BEGIN IMMEDIATE`` transaction that also holds the version check, so processes
opening a fresh file together do not race to create the schema; a database newer than this code is refused rather than
guessed at. The SQL is kept portable (no SQLite-only types or functions; ``INSERT ... ON CONFLICT``
and ``RETURNING`` exist in PostgreSQL too) so a PostgreSQL store can reuse it: the only SQLite-ism
is ``INTEGER PRIMARY KEY`` for generated ids, which PostgreSQL spells ``BIGINT GENERATED ... AS
IDENTITY``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from engines.store.errors import StoreSchemaError

__all__ = ["LATEST_VERSION", "MIGRATIONS", "Migration", "apply_migrations", "current_version"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, step attempts, step actions, legacy queue",
        (
            """CREATE TABLE workflow_instances (
                run_key TEXT PRIMARY KEY,
                workflow_id TEXT NOT NULL,
                run_id TEXT NOT NULL,
                parent_key TEXT,
                group_id INTEGER,
                status TEXT NOT NULL,
                state TEXT NOT NULL,
                version INTEGER NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX workflow_instances_group ON workflow_instances (group_id, status)",
            "CREATE INDEX workflow_instances_parent ON workflow_instances (parent_key)",
            """CREATE TABLE step_instances (
                run_key TEXT NOT NULL,
                path TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                status TEXT NOT NULL,
                state TEXT NOT NULL,
                create_time DOUBLE PRECISION,
                initialize_time DOUBLE PRECISION,
                pause_time DOUBLE PRECISION,
                wait_signal_time DOUBLE PRECISION,
                evaluate_param_time DOUBLE PRECISION,
                wait_permit_time DOUBLE PRECISION,
                start_time DOUBLE PRECISION,
                execute_time DOUBLE PRECISION,
                finish_time DOUBLE PRECISION,
                end_time DOUBLE PRECISION,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (run_key, path, attempt)
            )""",
            """CREATE TABLE step_actions (
                action_id INTEGER PRIMARY KEY,
                run_key TEXT NOT NULL,
                path TEXT NOT NULL,
                action TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX step_actions_run ON step_actions (run_key)",
            """CREATE TABLE queue (
                task_id INTEGER PRIMARY KEY,
                run_key TEXT NOT NULL,
                path TEXT NOT NULL,
                visible_at DOUBLE PRECISION NOT NULL,
                owner TEXT,
                claimed_until DOUBLE PRECISION,
                wake_at DOUBLE PRECISION,
                poll_count INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX queue_visible ON queue (visible_at, task_id)",
            "CREATE UNIQUE INDEX queue_run_path ON queue (run_key, path)",
        ),
    ),
    Migration(
        2,
        "actor engine: transactional outbox and group leases",
        (
            """CREATE TABLE outbox (
                message_id INTEGER PRIMARY KEY,
                target TEXT NOT NULL,
                message TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                deliver_by DOUBLE PRECISION NOT NULL,
                delivered INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX outbox_pending ON outbox (delivered, deliver_by)",
            """CREATE TABLE group_leases (
                group_id INTEGER PRIMARY KEY,
                owner TEXT NOT NULL,
                generation INTEGER NOT NULL,
                heartbeat_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )""",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


_CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


def current_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration, 0 for an empty database (creates ``schema_version`` if missing)."""
    conn.execute(_CREATE_VERSION_TABLE)
    return _read_version(conn)


def _read_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _peek_version(conn: sqlite3.Connection) -> int | None:
    """The applied version read without any lock, or None if ``schema_version`` does not exist yet."""
    try:
        return _read_version(conn)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise


def _refuse_newer(have: int, latest: int, database: str) -> None:
    if have > latest:
        raise StoreSchemaError(
            f"schema version {have} is newer than this code knows ({latest}); upgrade workflow-shadow "
            "or open a database written by this version",
            database=database,
        )


def apply_migrations(
    conn: sqlite3.Connection, *, database: str, migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[int]:
    """Apply the migrations the database lacks, in order, atomically; return their versions.

    Several processes may open a fresh file at once (live actor nodes), so the version check and the
    migrations run in ONE ``BEGIN IMMEDIATE`` transaction: the first opener takes the write lock,
    migrates and commits; the others wait for the lock (``busy_timeout``), then re-read the version
    inside their own transaction and find nothing left to do. An up-to-date database is recognised by
    a lock-free read first, so opening one (even read-only) never takes the write lock.

    ``conn`` must be in autocommit mode (``isolation_level=None``): this function owns BEGIN/COMMIT."""
    latest = migrations[-1].version if migrations else 0
    peeked = _peek_version(conn)
    if peeked is not None:
        _refuse_newer(peeked, latest, database)
        if peeked == latest:
            return []
    conn.execute("BEGIN IMMEDIATE")
    applied: list[int] = []
    try:
        conn.execute(_CREATE_VERSION_TABLE)
        have = _read_version(conn)
        _refuse_newer(have, latest, database)
        for migration in migrations:
            if migration.version <= have:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, CURRENT_TIMESTAMP)",
                (migration.version, migration.description),
            )
            applied.append(migration.version)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return applied
