"""Bring a database's schema up to date, safely when several nodes start at once.

Every node runs this before it listens. On PostgreSQL the nodes queue on a session-level
advisory lock, so the first one migrates and the others find nothing left to do. SQLite
databases are files on one machine, so the lock is an exclusive ``flock`` on a file next
to the database.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.database import sqlite_path, traits_of

__all__ = ["current_revision", "head_revision", "upgrade"]

# An arbitrary constant both sides agree on: "coedit migrations" as a 63-bit number.
_ADVISORY_LOCK_KEY = 0x636F_6564_6974_6D67 & 0x7FFF_FFFF_FFFF_FFFF
_SCRIPT_LOCATION = str(Path(__file__).parent / "migrations")


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", _SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found: the package is incomplete")
    return head


def _upgrade_sync(connection: Connection, target: str = "head") -> None:
    command.upgrade(_config(connection), target)


def _current_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _file_lock(path: str) -> Iterator[None]:
    lock_path = f"{path}.lock"
    directory = os.path.dirname(os.path.abspath(lock_path))
    os.makedirs(directory, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def upgrade(url: str, target: str = "head") -> str:
    """Migrate ``url`` to the newest revision (or to ``target``, for tests of a migration);
    returns the newest revision."""
    advisory_lock = traits_of(url).advisory_locks
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        path = sqlite_path(url)
        if path is not None:
            with _file_lock(path):
                async with engine.connect() as conn:
                    await conn.run_sync(_upgrade_sync, target)
                    await conn.commit()
        else:
            async with engine.connect() as conn:
                if advisory_lock:
                    await conn.execute(
                        text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                    )
                    await conn.commit()
                try:
                    await conn.run_sync(_upgrade_sync, target)
                    await conn.commit()
                finally:
                    if advisory_lock:
                        await conn.execute(
                            text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                        )
                        await conn.commit()
    finally:
        await engine.dispose()
    return head_revision()


async def current_revision(url: str) -> str | None:
    """The revision the database is at (None when it was never migrated)."""
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current_sync)
    finally:
        await engine.dispose()
