"""Shared fixtures: one fresh database per test on each backend, and real servers.

``backend`` is parametrized over ``sqlite`` and ``postgres``, so every test that asks for a
``server`` or a ``database_url`` runs on both. PostgreSQL databases are cloned from a
template migrated once per run (``CREATE DATABASE ... TEMPLATE``), which costs a few
milliseconds instead of a migration per test; every database of the run is dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from persistence.migrate import upgrade
from server.config import Settings
from tests.support import RunningServer, start_server

RUN_ID = uuid.uuid4().hex[:8]
PG_ADMIN = os.environ.get(
    "COEDIT_TEST_PG_ADMIN", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_SERVICES = os.environ.get("COEDIT_TEST_REQUIRE_SERVICES") == "1"


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _pg_url(database: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{database}"


async def _admin(sql: str) -> None:
    conn = await asyncio.wait_for(asyncpg.connect(_dsn(PG_ADMIN)), 10)
    try:
        await asyncio.wait_for(conn.execute(sql), 60)
    finally:
        await conn.close()


class PostgresDatabases:
    """Creates and drops this run's databases through the admin connection."""

    def __init__(self) -> None:
        self.template = f"coedit_t_{RUN_ID}_tpl"
        self.created: list[str] = []
        self.ready = False
        self._lock = asyncio.Lock()

    async def fresh(self) -> str:
        async with self._lock:
            if not self.ready:
                await _admin(f'CREATE DATABASE "{self.template}"')
                self.created.append(self.template)
                await upgrade(_pg_url(self.template))
                self.ready = True
            name = f"coedit_t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
            await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            self.created.append(name)
        return _pg_url(name)

    async def empty(self) -> str:
        """A database with no schema at all (for migration tests)."""
        name = f"coedit_t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
        await _admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return _pg_url(name)

    def drop_all(self) -> None:
        async def drop() -> None:
            for name in reversed(self.created):
                await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        if self.created:
            asyncio.run(drop())


def _postgres_available() -> bool:
    url = make_url(PG_ADMIN)
    try:
        socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=5).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    if not _postgres_available():
        message = f"PostgreSQL is not reachable at {PG_ADMIN}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    databases = PostgresDatabases()
    _TO_DROP.append(databases)
    yield databases


# The run's databases are dropped when the session ends, not in the last test's teardown:
# each DROP DATABASE waits for a checkpoint, and a few hundred of them on a busy machine
# once took longer than that test's timeout.
_TO_DROP: list[PostgresDatabases] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    while _TO_DROP:
        _TO_DROP.pop().drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> str:
    """A migrated database of the test's own."""
    if backend == "sqlite":
        path = tmp_path / "coedit.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    databases: PostgresDatabases = request.getfixturevalue("postgres")
    return await databases.fresh()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret": "test-secret-that-is-long-enough-for-hs256-keys",
        "dev_auth": True,
        "key_prefix": f"coedit-test-{uuid.uuid4().hex[:8]}",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to run its servers with other settings."""
    return {}


@pytest.fixture
async def server(
    database_url: str, settings_overrides: dict[str, Any], uvicorn_ws: str | None
) -> AsyncIterator[RunningServer]:
    """A real coedit server (uvicorn, real sockets) on its own database."""
    async with start_server(make_settings(database_url, **settings_overrides),
                            ws=uvicorn_ws) as running:
        yield running


@pytest.fixture
def uvicorn_ws() -> str | None:
    """Which of uvicorn's WebSocket implementations serves (None: the one coedit picks)."""
    return None
