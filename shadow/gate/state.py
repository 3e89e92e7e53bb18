"""The rollout state store: an append-only history of every cohort's rollout changes, apart from results.

Results databases are throwaway CI artifacts; the rollout state must outlive them (and a fresh results
file must not reset it). So it lives in its own store, named by ``--state``:

- a file path: SQLite (the default). The file is marked as ours in its header (``PRAGMA application_id``
  :data:`APPLICATION_ID`, ``PRAGMA user_version`` :data:`STATE_VERSION`); a non-empty file without the mark
  (not SQLite, another application's SQLite file, tables of someone else) is refused before any write.
- ``postgresql://...`` (or ``postgres://``): PostgreSQL through psycopg, for state shared by several CI
  runners. Tables ``rollout_history`` and ``rollout_meta`` (format mark) in the connection's schema; a
  ``rollout_history`` table without our mark is refused.

Append-only by construction: ``rollout_history`` rejects UPDATE and DELETE (a trigger in both backends),
and :class:`StateStore` only ever inserts. Each row says who (``actor``: ``--actor``, else $GITHUB_ACTOR,
$GITLAB_USER_LOGIN, $USER), from which CI job (``ci_job``), when (UTC), on which verdict (id, time,
results identity, candidate identity, cohorts file hash) and why (``note``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadow.gate.errors import GateError

__all__ = [
    "APPLICATION_ID",
    "FORMAT_NAME",
    "STATE_VERSION",
    "HistoryRow",
    "StateStore",
    "StateStoreError",
    "ci_job",
    "current_actor",
    "open_state",
]

APPLICATION_ID = 0x57534852
"""SQLite ``application_id`` of a rollout state file ('WSHR': workflow-shadow rollout)."""

STATE_VERSION = 1
FORMAT_NAME = "workflow-shadow-rollout-state"

COLUMNS = (
    "cohort",
    "changed_at",
    "state",
    "percent",
    "verdict_id",
    "verdict_at",
    "identity",
    "candidate_identity",
    "candidate_engine",
    "cohorts_sha256",
    "results_database",
    "actor",
    "ci_job",
    "note",
)

_HISTORY = """CREATE TABLE IF NOT EXISTS rollout_history (
    seq {serial},
    cohort TEXT NOT NULL,
    changed_at TEXT NOT NULL,          -- ISO 8601, UTC
    state TEXT NOT NULL,               -- canary | cutover | rolled_back (no row: shadow)
    percent DOUBLE PRECISION NOT NULL,
    verdict_id TEXT,                   -- the verdict an advance relied on (NULL for a rollback)
    verdict_at TEXT,
    identity TEXT,                     -- the results identity the verdict judged
    candidate_identity TEXT,           -- sha256 of its candidate part: the engine the canary runs
    candidate_engine TEXT,
    cohorts_sha256 TEXT,               -- the cohorts file the verdict judged with
    results_database TEXT,             -- where the verdict was read (for the audit trail)
    actor TEXT NOT NULL,
    ci_job TEXT,
    note TEXT
)"""
_META = "CREATE TABLE IF NOT EXISTS rollout_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SQLITE_GUARDS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS rollout_history_no_{op.lower()} BEFORE {op} ON rollout_history "
    "BEGIN SELECT RAISE(ABORT, 'rollout_history is append-only'); END"
    for op in ("UPDATE", "DELETE")
)
_PG_GUARDS = (
    "CREATE OR REPLACE FUNCTION rollout_history_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'rollout_history is append-only'; END $$",
    "DROP TRIGGER IF EXISTS rollout_history_append_only ON rollout_history",
    "CREATE TRIGGER rollout_history_append_only BEFORE UPDATE OR DELETE ON rollout_history "
    "FOR EACH ROW EXECUTE FUNCTION rollout_history_append_only()",
)


class StateStoreError(GateError):
    """The rollout state store cannot be opened, is not ours, or failed (a harness error, exit 4)."""


def current_actor() -> str:
    """Who is changing the rollout: the CI's user if any, else the login name."""
    for name in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_REQUESTEDFOR", "USER"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def ci_job() -> str | None:
    """The CI job making the change, when run by one (GitHub Actions, GitLab CI), for the audit trail."""
    env = os.environ
    if env.get("GITHUB_RUN_ID"):
        where = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env.get('GITHUB_REPOSITORY', '?')}"
        return f"github {where}/actions/runs/{env['GITHUB_RUN_ID']} job {env.get('GITHUB_JOB', '?')}"
    if env.get("CI_JOB_ID"):
        return f"gitlab {env.get('CI_JOB_URL') or env.get('CI_PROJECT_PATH', '?')} job {env['CI_JOB_ID']}"
    if env.get("CI"):
        return "ci (unknown system)"
    return None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    seq: int
    cohort: str
    changed_at: dt.datetime
    state: str
    percent: float
    verdict_id: str | None = None
    verdict_at: str | None = None
    identity: str | None = None
    candidate_identity: str | None = None
    candidate_engine: str | None = None
    cohorts_sha256: str | None = None
    results_database: str | None = None
    actor: str = "unknown"
    ci_job: str | None = None
    note: str | None = None


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _is_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def _describe(target: str) -> str:
    """A URL without its password, for messages."""
    if not _is_url(target) or "@" not in target:
        return target
    scheme, rest = target.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"


class StateStore:
    """One connection to a rollout state store. ``write()`` is an exclusive transaction: the check that
    allows a change and the row that records it cannot interleave with another writer's."""

    def __init__(self, target: str, conn: Any, *, postgres: bool) -> None:
        self.target = target
        self.where = _describe(target)
        self._conn = conn
        self._pg = postgres
        self._mark = "%s" if postgres else "?"

    # -- reading ------------------------------------------------------------------------------
    def _q(self, sql: str) -> str:
        return sql.replace("?", self._mark)

    def history(self, cohort: str | None = None) -> list[HistoryRow]:
        """Every change, oldest first (of one cohort, or of all)."""
        sql = f"SELECT seq, {', '.join(COLUMNS)} FROM rollout_history"
        params: tuple[Any, ...] = ()
        if cohort is not None:
            sql += " WHERE cohort = ?"
            params = (cohort,)
        try:
            rows = self._execute(sql + " ORDER BY seq", params).fetchall()
        except self._errors() as exc:
            raise StateStoreError(f"cannot read the rollout history ({exc})", where=self.where) from exc
        out = []
        for seq, *values in rows:
            fields = dict(zip(COLUMNS, values, strict=True))
            fields["changed_at"] = dt.datetime.fromisoformat(str(fields["changed_at"]))
            fields["percent"] = float(fields["percent"] or 0.0)
            out.append(HistoryRow(int(seq), **fields))
        return out

    def cohorts(self) -> list[str]:
        rows = self._execute("SELECT DISTINCT cohort FROM rollout_history ORDER BY cohort").fetchall()
        return [str(r[0]) for r in rows]

    # -- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """An exclusive transaction (SQLite BEGIN IMMEDIATE; PostgreSQL a table lock): read, decide, append."""
        try:
            if self._pg:
                self._conn.execute("BEGIN")
                self._conn.execute("LOCK TABLE rollout_history IN SHARE ROW EXCLUSIVE MODE")
            else:
                self._conn.execute("BEGIN IMMEDIATE")
        except self._errors() as exc:
            raise StateStoreError(
                f"cannot lock the rollout history ({exc})",
                where=self.where,
                hint="another rollout change is in progress: retry",
            ) from exc
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except self._errors() as exc:
            raise StateStoreError(f"cannot record the change ({exc})", where=self.where) from exc

    def append(self, row: Mapping[str, Any]) -> None:
        values = [row.get(c) for c in COLUMNS]
        values[COLUMNS.index("changed_at")] = _iso(row["changed_at"])
        sql = f"INSERT INTO rollout_history ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        try:
            self._execute(sql, values)
        except self._errors() as exc:
            raise StateStoreError(f"cannot record the change ({exc})", where=self.where) from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, sql: str, params: Any = ()) -> Any:
        return self._conn.execute(self._q(sql), tuple(params))

    def _errors(self) -> tuple[type[BaseException], ...]:
        if self._pg:
            import psycopg

            return (psycopg.Error,)
        return (sqlite3.Error,)


def open_state(target: str | os.PathLike[str]) -> StateStore:
    """Open (creating when new) the rollout state store ``target``: a SQLite file path or a PostgreSQL URL.
    Raises StateStoreError, before anything is written, when it is not ours."""
    text = os.fspath(target)
    if not text:
        raise StateStoreError(
            "no rollout state store given", hint="pass --state FILE or --state postgresql://..."
        )
    if _is_url(text):
        return _open_postgres(text)
    return _open_sqlite(text)


def _foreign_sqlite(path: Path) -> str | None:
    """Why ``path`` is not a state file of ours (None: ours, missing or empty). Reads its header only."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(100)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    if path.is_dir():
        return "is a folder; pass a file name (a new one is created)"
    if size == 0:
        return None
    if not head.startswith(b"SQLite format 3\x00"):
        return f"not a rollout state file: a {size:,}-byte file that is not SQLite"
    app_id = int.from_bytes(head[68:72], "big")
    if app_id == APPLICATION_ID:
        return None
    if app_id != 0:
        return f"not a rollout state file: a SQLite database of another application (application_id {app_id:#010x})"
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"cannot be read as SQLite ({exc})"
    if not tables:
        return None
    return f"not a rollout state file: a SQLite database with other tables ({', '.join(tables[:5])})"


def _open_sqlite(text: str) -> StateStore:
    path = Path(text)
    problem = _foreign_sqlite(path)
    if problem:
        raise StateStoreError(
            problem + "; refusing to write into it",
            where=text,
            hint="pass --state a new file name or a state file 'shadow rollout' wrote",
        )
    if not path.parent.is_dir():
        raise StateStoreError(
            "its folder does not exist", where=text, hint="create the folder or pass another path"
        )
    fresh = not path.exists() or path.stat().st_size == 0
    try:
        conn = sqlite3.connect(text, isolation_level=None, timeout=10.0)
    except sqlite3.Error as exc:
        raise StateStoreError(f"cannot open ({exc})", where=text) from exc
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > STATE_VERSION:
            raise StateStoreError(
                f"state format {version} is newer than this tool's {STATE_VERSION}",
                where=text,
                hint="upgrade workflow-shadow",
            )
        if fresh or version < STATE_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_HISTORY.format(serial="INTEGER PRIMARY KEY"))
            conn.execute(_META)
            for statement in _SQLITE_GUARDS:
                conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO rollout_meta VALUES ('format', ?)", (FORMAT_NAME,))
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {STATE_VERSION}")
            conn.execute("COMMIT")
    except StateStoreError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise StateStoreError(f"cannot open as a rollout state file ({exc})", where=text) from exc
    return StateStore(text, conn, postgres=False)


def _open_postgres(url: str) -> StateStore:
    where = _describe(url)
    try:
        import psycopg
    except ImportError as exc:
        raise StateStoreError(
            "PostgreSQL state needs psycopg", where=where, hint="pip install 'workflow-shadow[postgres]'"
        ) from exc
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StateStoreError(
            f"cannot connect ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc})",
            where=where,
            hint="check the URL, the server and the credentials",
        ) from exc
    try:

        def present(table: str) -> bool:
            return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]  # type: ignore[index,no-any-return]

        has_history, has_meta = present("rollout_history"), present("rollout_meta")
        mark = None
        if has_meta:
            row = conn.execute("SELECT value FROM rollout_meta WHERE key = 'format'").fetchone()
            mark = row[0] if row else None
        if (has_history or has_meta) and mark != FORMAT_NAME:
            raise StateStoreError(
                "holds a rollout_history or rollout_meta table not written by workflow-shadow; "
                "refusing to write into it",
                where=where,
                hint="use another database or schema (?options=-csearch_path%3Dother)",
            )
        if not has_history:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(5753484852)")
                conn.execute(_HISTORY.format(serial="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"))
                conn.execute(_META)
                for statement in _PG_GUARDS:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO rollout_meta VALUES ('format', %s) ON CONFLICT DO NOTHING", (FORMAT_NAME,)
                )
                conn.execute(
                    "INSERT INTO rollout_meta VALUES ('version', %s) ON CONFLICT DO NOTHING",
                    (str(STATE_VERSION),),
                )
    except StateStoreError:
        conn.close()
        raise
    except psycopg.Error as exc:
        conn.close()
        raise StateStoreError(f"cannot prepare the rollout tables ({exc})", where=where) from exc
    return StateStore(url, conn, postgres=True)
