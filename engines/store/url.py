"""Stores chosen by URL: ``sqlite:///path/legacy.db`` (or a plain path) and ``postgresql://...``.

``open_store(url, read_only=True)`` is how capture reads a production store: SQLite read-only through
its header checks (a foreign file is refused untouched), PostgreSQL with a read-only session, a bounded
connect timeout and a schema version check (no migration). Errors are the store's typed errors and name
the URL (without its password).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from engines.store.errors import StoreError
from engines.store.latency import LatencyModel
from engines.store.protocol import Store
from engines.store.schema import check_store_file
from engines.store.sqlite import SqliteConfig, SqliteStore

__all__ = ["StoreUrl", "open_store", "parse_store_url"]

DEFAULT_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A parsed store URL: ``kind`` sqlite (``target`` a file path) or postgresql (``target`` the DSN)."""

    kind: Literal["sqlite", "postgresql"]
    target: str
    shown: str


def parse_store_url(url: str) -> StoreUrl:
    """``sqlite:///abs/path.db`` (``sqlite:////abs/path.db`` too), ``sqlite://rel.db``, a plain path, or
    ``postgresql://`` / ``postgres://``."""
    if url.startswith(("postgresql://", "postgres://")):
        from engines.store.postgres import shown_dsn

        return StoreUrl("postgresql", url, shown_dsn(url))
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if path.startswith("//"):  # sqlite:////abs/path (SQLAlchemy's spelling) is sqlite:///abs/path
            path = path[1:]
        if not path:
            raise StoreError("sqlite:// names no file; write sqlite:///path/to/legacy.db", database=url)
        return StoreUrl("sqlite", path, path)
    if "://" in url and not os.path.exists(url):
        scheme = url.split("://", 1)[0]
        raise StoreError(f"unknown store URL scheme {scheme!r}: use sqlite:///path, a plain path or "
                         "postgresql://...", database=url)  # fmt: skip
    return StoreUrl("sqlite", url, url)


def open_store(
    url: str, *, read_only: bool = False, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> Store:
    """Open the store at ``url`` with no simulated latency (a live store takes real time)."""
    parsed = parse_store_url(url)
    if parsed.kind == "postgresql":
        from engines.store.postgres import PostgresConfig, PostgresStore

        return PostgresStore(
            PostgresConfig(dsn=parsed.target, read_only=read_only, connect_timeout=connect_timeout)
        )
    if read_only:
        check_store_file(parsed.target, database=parsed.target)
    return SqliteStore(SqliteConfig(path=parsed.target, latency=LatencyModel.zero(), read_only=read_only))
