"""The storage connection: one async engine, and write transactions that serialize correctly.

PostgreSQL serializes writers on a document with ``SELECT ... FOR UPDATE``. SQLite has no row
locks: a deferred transaction that reads and then writes can fail with "database is locked"
when another writer got there first, so every write transaction starts with ``BEGIN
IMMEDIATE`` and, inside this process, waits its turn on an asyncio lock instead of spinning
on SQLite's busy handler in a worker thread.

PostgreSQL connections are not pinged before use: a dead connection fails its first statement,
SQLAlchemy invalidates it, and the caller answers ``unavailable`` (a pre-ping was one more round
trip on every transaction). ``pool_recycle`` replaces connections before servers or proxies
that drop idle ones are likely to have done so.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["Database", "sqlite_path"]


def sqlite_path(url: str) -> str | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database
    return database if database and database != ":memory:" else None


def _is_loopback(host: str) -> bool:
    """A unix socket's directory, ``localhost`` or a loopback address, with or without port."""
    if host.startswith("/"):
        return True
    for candidate in (host, host.rsplit(":", 1)[0]):  # the query's host= may carry a port
        name = candidate.strip("[]")
        if name == "localhost":
            return True
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(name).is_loopback:
                return True
    return False


def _local_without_tls_choice(url: URL) -> bool:
    """True when every host the URL names is this machine and it says nothing about TLS.

    asyncpg's default (like libpq's ``sslmode=prefer``) offers TLS on every new connection and
    falls back to plain when refused: a wasted round trip, and the TLS set-up itself when a
    local server accepts it. On loopback TLS protects nothing; elsewhere, and for a URL that
    names no host (asyncpg then follows ``PGHOST`` or its own defaults), the default stays.
    """
    if "ssl" in url.query or "sslmode" in url.query:
        return False
    hosts = [url.host] if url.host else []
    extra = url.query.get("host")
    if extra:
        hosts += [extra] if isinstance(extra, str) else list(extra)
    return bool(hosts) and all(_is_loopback(host) for host in hosts)


class Database:
    """Owns the engine; hands out read connections and write transactions."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        max_overflow: int = 10,
        pool_recycle: float = 1800.0,
        echo: bool = False,
    ) -> None:
        """``pool_size`` connections stay open (PostgreSQL only), ``max_overflow`` more are
        opened under load and closed again; a pool smaller than the node's concurrent
        transactions opens and closes connections continuously."""
        if pool_size < 1 or max_overflow < 0:
            raise ValueError("pool_size must be at least 1 and max_overflow at least 0")
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        options: dict[str, Any] = {"echo": echo}
        if self.dialect == "postgresql":
            connect_args: dict[str, Any] = {
                # asyncpg prepares every statement; after five runs PostgreSQL may switch a
                # prepared event query to a generic plan that ignores the tenant's size and
                # scans the whole log (measured: 5 ms became 900 ms). Planning each time
                # costs a fraction of a millisecond.
                "server_settings": {"plan_cache_mode": "force_custom_plan"},
            }
            if _local_without_tls_choice(parsed):
                connect_args["ssl"] = False
            options.update(
                pool_size=pool_size, max_overflow=max_overflow, pool_recycle=pool_recycle,
                connect_args=connect_args,
            )
        else:
            options.update(connect_args={"timeout": 30})
        self.engine: AsyncEngine = create_async_engine(url, **options)
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        if self.dialect == "sqlite":
            self._configure_sqlite()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _configure_sqlite(self) -> None:
        sync_engine = self.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the sqlite3 module so "begin" below decides.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            # Writers take SQLite's write lock up front; readers keep a deferred snapshot.
            immediate = connection.get_execution_options().get("coedit_write", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.connect() as conn:
            conn = await conn.execution_options(coedit_write=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (a snapshot per transaction on both databases)."""
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
