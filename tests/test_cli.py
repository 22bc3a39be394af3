"""The ``coedit`` command as a user runs it: real processes, real ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.migrate import head_revision
from tests.conftest import PostgresDatabases
from tests.processes import COEDIT, NodeProcess, clean_env, free_port


async def _run(*args: str, env: dict[str, str], cwd: Path | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        COEDIT, *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


@asynccontextmanager
async def _serve(env: dict[str, str], cwd: Path) -> AsyncIterator[str]:
    node = NodeProcess(env, cwd)
    try:
        await node.start()
        yield node.url
    finally:
        await node.stop()


async def test_serve_runs_on_the_embedded_default(tmp_path: Path) -> None:
    """With no configuration, serve creates ./coedit.db, answers health checks and dev login."""
    async with _serve(clean_env(), tmp_path) as url, httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(f"{url}/readyz")).json()["ok"] is True
        login = await http.post(f"{url}/api/dev/login", json={"name": "ann", "role": "analyst"})
        assert login.status_code == 200
        token = login.json()["token"]
        created = await http.post(f"{url}/api/documents", json={"kind": "memo", "title": "x"},
                                  headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 201
        page = await http.get(f"{url}/")
        assert page.status_code == 200 and "coedit" in page.text
    assert (tmp_path / "coedit.db").exists()


async def test_two_nodes_starting_at_once_migrate_one_postgres_safely(
    postgres: PostgresDatabases, tmp_path: Path
) -> None:
    """Two serve processes on an empty database both come up; the schema is at head once."""
    url = await postgres.empty()
    env = clean_env(COEDIT_DATABASE_URL=url)
    async with AsyncExitStack() as stack:
        nodes = await asyncio.gather(  # both processes race to migrate the empty database
            stack.enter_async_context(_serve(env, tmp_path)),
            stack.enter_async_context(_serve(env, tmp_path)),
        )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=5))
        for node in nodes:
            assert (await http.get(f"{node}/readyz")).status_code == 200
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    finally:
        await engine.dispose()
    assert [row[0] for row in versions] == [head_revision()]


async def test_migrate_brings_an_empty_database_to_head_and_is_repeatable(tmp_path: Path) -> None:
    """``coedit migrate`` creates the schema and running it again changes nothing."""
    env = clean_env(COEDIT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/m.db")
    for _ in range(2):
        code, out = await _run("migrate", env=env)
        assert code == 0, out
        assert head_revision() in out


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("COEDIT_HEARTBEAT_MS", "often"),
        ("COEDIT_DATABASE_URL", "mysql://root@localhost/x"),
        ("COEDIT_REDIS_URL", "localhost:6379"),
        ("COEDIT_REDIS_URL", "redis+cluster://10.0.0.1"),
        ("COEDIT_REDIS_URL", "http://user:s3cret-pw@cache:6379"),
        ("COEDIT_DATABASE_URL", "postgresql+asyncpg://u:s3cret-pw@db:notaport/x"),
        ("COEDIT_DATABASE_URL", "://u:s3cret-pw@db"),
        ("COEDIT_AUTH", "ldap"),
        ("COEDIT_SNAPSHOT_EVERY", "0"),
    ],
)
async def test_bad_configuration_stops_start_up_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    """A malformed setting exits non-zero with a message that names the variable to fix."""
    code, out = await _run("serve", "--port", str(free_port()), env=clean_env(**{variable: value}),
                           cwd=tmp_path)
    assert code != 0
    assert variable in out
    assert "s3cret-pw" not in out  # a password in a refused URL is never repeated
    assert not (tmp_path / "coedit.db").exists()
