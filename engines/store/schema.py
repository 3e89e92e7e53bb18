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

from engines.store.errors import StoreCorruptError, StoreSchemaError

__all__ = [
    "APPLICATION_ID",
    "LATEST_VERSION",
    "MIGRATIONS",
    "Migration",
    "apply_migrations",
    "check_store_file",
    "current_version",
    "inspect_store_file",
]

APPLICATION_ID = 0x5753484C
"""SQLite ``PRAGMA application_id`` of an engine store file ('WSHL': workflow-shadow store). Set with
``user_version`` (= the latest applied migration) when the schema is created or migrated, so a file is
recognised as ours from its header alone (``file(1)`` shows it too)."""


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
            if _header(conn) != (APPLICATION_ID, latest) and not _read_only(conn):
                # Written before the marks existed: stamp it (two header fields, one small transaction).
                conn.execute("BEGIN IMMEDIATE")
                try:
                    _mark(conn, latest)
                finally:
                    conn.execute("COMMIT")
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
        _mark(conn, latest)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return applied


def _header(conn: sqlite3.Connection) -> tuple[int, int]:
    return (
        int(conn.execute("PRAGMA application_id").fetchone()[0]),
        int(conn.execute("PRAGMA user_version").fetchone()[0]),
    )


def _read_only(conn: sqlite3.Connection) -> bool:
    try:
        return bool(conn.execute("PRAGMA query_only").fetchone()[0])
    except sqlite3.Error:
        return False


def _mark(conn: sqlite3.Connection, version: int) -> None:
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {int(version)}")


def inspect_store_file(path: str) -> str | None:
    """Why the file at ``path`` is not an engine store of ours, or None when it is one (or is missing, or
    is empty: a new store may be created there). Read-only: the file is opened ``mode=ro`` and never written.

    Ours: the header carries :data:`APPLICATION_ID`, or (written before the mark) ``application_id`` 0 with a
    ``schema_version`` table beside ``workflow_instances``. A file that is not SQLite at all, a SQLite file of
    another application, or a SQLite file with tables of someone else is not ours."""
    import os
    import urllib.parse

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(100)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror or exc})"
    if size == 0:
        return None
    if not head.startswith(b"SQLite format 3\x00"):
        return f"{path} is not a SQLite database (a {size:,}-byte file of another kind)"
    app_id = int.from_bytes(head[68:72], "big")
    if app_id == APPLICATION_ID:
        return None
    if app_id != 0:
        return f"{path} is a SQLite database of another application (application_id {app_id:#010x})"
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"{path} cannot be read as a SQLite database ({exc})"
    if not tables or {"schema_version", "workflow_instances"} <= tables:
        return None
    listed = ", ".join(sorted(tables)[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    return f"{path} is a SQLite database not written by workflow-shadow (tables: {listed})"


def check_store_file(path: str, *, database: str) -> None:
    """Raise before anything is written when ``path`` is not an engine store of ours (nor missing / empty):
    StoreCorruptError for a file that is not SQLite at all, StoreSchemaError for another application's."""
    problem = inspect_store_file(path)
    if problem is None:
        return
    advice = (
        "; refusing to use it as an engine store, it was not modified. Pass a new file name or a store "
        "written by workflow-shadow"
    )
    if "is not a SQLite database" in problem or "cannot be read as a SQLite" in problem:
        raise StoreCorruptError(problem + advice, database=database)
    raise StoreSchemaError(problem + advice, database=database)
