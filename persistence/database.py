"""The storage connection: one async engine, and write transactions that serialize correctly.

PostgreSQL serializes writers on a document with ``SELECT ... FOR UPDATE``. SQLite has no row
locks: a deferred transaction that reads and then writes can fail with "database is locked"
when another writer got there first, so every write transaction starts with ``BEGIN
IMMEDIATE`` and, inside this process, waits its turn on an asyncio lock instead of spinning
on SQLite's busy handler in a worker thread.

Read connections are pinged when they leave the pool (``pool_pre_ping``): after PostgreSQL
restarts or a proxy cuts idle connections, the first read on each old connection would
otherwise fail instead of quietly opening a fresh one. The ping costs a round trip per read
transaction; the write path, which runs for every edit, does not use this pool (below) and
is not pinged. ``pool_recycle`` replaces connections before servers or proxies that drop
idle ones are likely to have done so.

On PostgreSQL the versioned write, the one statement path that runs for every edit, also has a
small pool of plain asyncpg connections (:meth:`Database.driver_connection`,
:meth:`Database.driver_transaction`). Measured on one write per transaction, SQLAlchemy's
layers (pool checkout, execution context, the greenlet hop per statement) cost about 1.5 ms
of CPU where asyncpg alone costs 0.26 ms; everything else keeps SQLAlchemy Core and runs the
same on both databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from persistence.errors import Unavailable

__all__ = ["Database", "DatabaseTraits", "sqlite_path", "storage_unavailable",
           "text_not_storable", "traits_of"]

# The connection itself failed (its protocol state is unknown afterwards), as opposed to the
# server refusing a statement.
_CONNECTION_FAILED = (
    asyncpg.InterfaceError,  # includes ConnectionDoesNotExistError: the socket closed
    asyncpg.InternalClientError,  # seen when the server ended a connection mid-statement
    OSError,
    TimeoutError,
)
# asyncpg's ways of saying the server or the connection is gone: the caller may retry these
# (SQLAlchemy's equivalents are its OperationalError and InterfaceError, which the server
# maps the same way).
_DRIVER_UNAVAILABLE = (
    *_CONNECTION_FAILED,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


@dataclass(frozen=True, slots=True)
class DatabaseTraits:
    """What differs between the databases coedit runs on, for the modules that must care.

    Which database a URL names is asked here and nowhere else: :class:`Database` looks its
    traits up once, and other modules ask for the behaviour they depend on, never for the
    database's name.
    """

    # One write transaction at a time (BEGIN IMMEDIATE, and the in-process lock), so
    # transactions commit in the order they drew their event seqs: every visible event is
    # final, and no write can move a row another write has read.
    one_writer: bool
    # The versioned write has a pool of plain asyncpg connections (driver_connection,
    # driver_transaction) and its own SQL, and tries a batch optimistically first.
    driver_writes: bool
    # Nodes migrating at once queue on a session-level advisory lock.
    advisory_locks: bool
    # The driver reports how many rows an executemany UPDATE changed.
    counts_multi_row_updates: bool


_TRAITS = {
    "sqlite": DatabaseTraits(one_writer=True, driver_writes=False, advisory_locks=False,
                             counts_multi_row_updates=True),
    "postgresql": DatabaseTraits(one_writer=False, driver_writes=True, advisory_locks=True,
                                 counts_multi_row_updates=False),
}


def traits_of(url: str) -> DatabaseTraits:
    """The traits of the database ``url`` names; ``ValueError`` for one coedit cannot use."""
    backend = make_url(url).get_backend_name()
    if backend not in _TRAITS:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return _TRAITS[backend]


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
    """Owns the engine; hands out read connections and write transactions, and says in
    :attr:`traits` what the other modules may rely on of this database."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        max_overflow: int = 10,
        pool_recycle: float = 1800.0,
        driver_pool_size: int = 4,
        echo: bool = False,
    ) -> None:
        """``pool_size`` connections stay open (PostgreSQL only), ``max_overflow`` more are
        opened under load and closed again; a pool smaller than the node's concurrent
        transactions opens and closes connections continuously. ``driver_pool_size`` bounds
        the asyncpg connections of :meth:`driver_transaction` (PostgreSQL only)."""
        if pool_size < 1 or max_overflow < 0:
            raise ValueError("pool_size must be at least 1 and max_overflow at least 0")
        if driver_pool_size < 1:
            raise ValueError("driver_pool_size must be at least 1")
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        options: dict[str, Any] = {"echo": echo}
        self._driver_dsn = ""
        self._driver_args: dict[str, Any] = {}
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
                pool_pre_ping=True, connect_args=connect_args,
            )
            self._driver_dsn = parsed.set(drivername="postgresql").render_as_string(
                hide_password=False)
            # The write path's statements keep one plan shape whatever their arrays hold, so
            # PostgreSQL may reuse a generic plan instead of planning the batch's large
            # statement on every execution. The name shows in pg_stat_activity.
            self._driver_args = {**connect_args,
                                 "server_settings": {"application_name": "coedit-writes"}}
        else:
            options.update(connect_args={"timeout": 30})
        self.engine: AsyncEngine = create_async_engine(url, **options)
        # Write transactions ended, for metrics and tests: committed, and rolled back (or
        # failed while committing).
        self.commits = 0
        self.rollbacks = 0
        self._driver_pool: asyncpg.Pool | None = None
        self._driver_pool_size = driver_pool_size
        self._driver_pool_recycle = pool_recycle
        self._driver_pool_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        if self.dialect == "sqlite":
            self._configure_sqlite()
        self.traits = _TRAITS[self.dialect]

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
        committed = False
        try:
            if self._write_lock is None:
                async with self.engine.begin() as conn:
                    yield conn
            else:
                async with self._write_lock, self.engine.connect() as conn:
                    conn = await conn.execution_options(coedit_write=True)
                    async with conn.begin():
                        yield conn
            committed = True
        finally:
            self._count(committed)

    def driver_transaction(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A PostgreSQL write transaction on a plain asyncpg connection.

        Committed when the block ends, rolled back if it raises. A connection that broke is
        closed and dropped by the pool (the next transaction opens a fresh one), so a
        restarted database costs the transactions that were using it, not the ones after.
        """
        return self._driver(transaction=True)

    def driver_connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A PostgreSQL connection outside any transaction block: each statement commits by
        itself. For writes that are one statement; counted as committed when the block ends
        without an error."""
        return self._driver(transaction=False)

    @asynccontextmanager
    async def _driver(self, *, transaction: bool) -> AsyncIterator[asyncpg.Connection]:
        committed = False
        try:
            pool = self._driver_pool or await self._open_driver_pool()
            async with pool.acquire() as conn:
                try:
                    if transaction:
                        async with conn.transaction():
                            yield conn
                    else:
                        yield conn
                except BaseException as exc:
                    if _connection_broke(exc):
                        # Its protocol state is unknown: it must not serve another write.
                        # The pool opens a fresh connection in its place. (A connection
                        # asyncpg saw close is already detached: nothing left to end.)
                        with contextlib.suppress(asyncpg.InterfaceError):
                            conn.terminate()
                    raise
            committed = True
        except _DRIVER_UNAVAILABLE as exc:
            raise Unavailable("storage is unavailable; retry shortly") from exc
        finally:
            self._count(committed)

    def _count(self, committed: bool) -> None:
        if committed:
            self.commits += 1
        else:
            self.rollbacks += 1

    async def _open_driver_pool(self) -> asyncpg.Pool:
        if not self.traits.driver_writes:
            raise RuntimeError("this database has no driver pool; use transaction()")
        async with self._driver_pool_lock:
            if self._driver_pool is None:
                self._driver_pool = await asyncpg.create_pool(
                    self._driver_dsn, min_size=1, max_size=self._driver_pool_size,
                    max_inactive_connection_lifetime=self._driver_pool_recycle,
                    reset=_rollback_only, **self._driver_args)
            return self._driver_pool

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
        pool, self._driver_pool = self._driver_pool, None
        if pool is not None:
            await pool.close()
        await self.engine.dispose()


# SQLAlchemy's ways of saying the same: the database could not be reached, the connection
# was lost, or no pooled connection came free in time.
_ENGINE_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                       sa_exc.TimeoutError)


def storage_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is out of reach (the client may retry), rather
    than that it refused a statement or that our code failed.

    SQLAlchemy wraps what the driver raised, sometimes in a plain ``DBAPIError`` (a
    connection closed in the middle of a statement), so the chain of causes is followed too.
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, (*_ENGINE_UNAVAILABLE, *_DRIVER_UNAVAILABLE)):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
        seen += 1
    return False


_CHARACTERS_REFUSED = (asyncpg.exceptions.CharacterNotInRepertoireError,
                       asyncpg.exceptions.UntranslatableCharacterError)


def text_not_storable(exc: BaseException) -> bool:
    """Whether PostgreSQL refused a value's characters: the NUL character (``\\x00``, or
    ``\\u0000`` inside JSON) that no text column can hold. That is the request's fault, and
    the statement's transaction is rolled back, so the caller answers ``bad_request``."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, _CHARACTERS_REFUSED):
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
        seen += 1
    return False


def _connection_broke(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the connection failed, rather than that the
    server refused a statement."""
    return isinstance(exc, _CONNECTION_FAILED) or isinstance(exc.__cause__, _CONNECTION_FAILED)


async def _rollback_only(conn: asyncpg.Connection) -> None:
    """Reset a write connection on its way back to the pool.

    asyncpg's default reset sends four statements (advisory unlocks, CLOSE ALL, UNLISTEN,
    RESET ALL) after every transaction: a round trip each time for state the write path never
    creates (its advisory locks are transaction-level). Only an open transaction, left by a
    cancelled caller, needs ending.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")
