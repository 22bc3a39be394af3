"""Alembic environment: runs on the connection coedit hands over, or on ``sqlalchemy.url``.

coedit calls alembic from ``persistence.migrate`` with an open connection (holding the
migration lock) in ``config.attributes["connection"]``; the plain ``alembic`` command line
works too, given ``-x url=...`` or ``COEDIT_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


given = config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "COEDIT_DATABASE_URL", "sqlite+aiosqlite:///coedit.db"
    )
    asyncio.run(_run_standalone(url))
