"""The app's lifespan: a start that fails midway stops what had started, and a stop that
raises does not keep the later parts from stopping.

The lifespan runs here as Starlette runs it (``app.router.lifespan_context``) over real parts:
SQLite or PostgreSQL, and Redis. A part is broken by configuration where it can be (a Redis or
database URL on a port nobody listens on); a part's stop cannot be made to fail that way, so
those tests wrap the real stop and raise after it ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from channels.hub import Hub
from channels.presence import Presence
from channels.streams import EventStreams
from persistence.database import Database
from server.app import create_app
from server.lifecycle import StartupError
from server.service import Coedit
from tests.conftest import PG_ADMIN, PostgresDatabases, make_settings
from tests.redis_server import free_port, redis_url_fixture  # noqa: F401  (registers the fixture)
from tests.support import TIMEOUT


def _tasks_left(before: set[asyncio.Task[Any]]) -> list[str]:
    """The names of tasks still running that were not running before the lifespan."""
    return sorted(task.get_name() for task in asyncio.all_tasks()
                  if task not in before and task is not asyncio.current_task()
                  and not task.done())


async def _connections_to(database_url: str) -> int:
    """How many sessions PostgreSQL has open on the database of ``database_url``."""
    name = database_url.rsplit("/", 1)[1]
    engine = create_async_engine(PG_ADMIN, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name})
    finally:
        await engine.dispose()
    return int(found or 0)


async def _no_connections_to(database_url: str) -> None:
    """Wait (bounded) until PostgreSQL has closed every session on the database: a backend
    leaves pg_stat_activity a moment after its client hung up."""
    async with asyncio.timeout(TIMEOUT):
        while await _connections_to(database_url):
            await asyncio.sleep(0.05)


async def test_a_broker_that_cannot_be_reached_stops_what_had_started(
    database_url: str, backend: str
) -> None:
    """With Redis on a closed port the start fails at presence, raises a StartupError naming
    presence and the Redis error, and leaves no task of the hub or its broker running."""
    settings = make_settings(database_url, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings)
    before = asyncio.all_tasks()
    with pytest.raises(StartupError,
                       match=r"^coedit could not start: presence failed \(ConnectionError: "):
        async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app):
            pytest.fail("the lifespan started without its broker")
    assert _tasks_left(before) == []
    if backend == "postgres":
        await _no_connections_to(database_url)


async def test_a_database_that_cannot_be_reached_fails_the_start_before_anything_runs() -> None:
    """With the database URL on a closed port the migration fails first, with a StartupError
    naming it, and nothing is left running."""
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/coedit"
    app = create_app(make_settings(url))
    before = asyncio.all_tasks()
    with pytest.raises(StartupError, match=r"^coedit could not start: migrating the database "):
        async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app):
            pytest.fail("the lifespan started without its database")
    assert _tasks_left(before) == []


# Each stop step as the lifespan names it, and the method that does it.
STOPS: dict[str, tuple[type[Any], str]] = {
    "open sessions": (Coedit, "close_sessions"),
    "background jobs": (Coedit, "stop_background"),
    "event streams": (EventStreams, "stop"),
    "presence": (Presence, "stop"),
    "the hub": (Hub, "stop"),
    "database": (Database, "dispose"),
}


class StopFailed(Exception):
    pass


def _fail_after_stopping(monkeypatch: pytest.MonkeyPatch, failing: set[str],
                         stopped: list[str]) -> None:
    """Make the stops of the ``failing`` parts raise after the real stop ran; every stop
    records in ``stopped`` that it ran."""
    for name, (owner, method) in STOPS.items():
        real: Callable[..., Awaitable[Any]] = getattr(owner, method)

        async def recorded(self: Any, *args: Any, _name: str = name,
                           _real: Callable[..., Awaitable[Any]] = real, **kwargs: Any) -> None:
            await _real(self, *args, **kwargs)
            stopped.append(_name)
            if _name in failing:
                raise StopFailed(f"{_name} refused to stop")

        monkeypatch.setattr(owner, method, recorded)


def _serving(app: Starlette, state: dict[str, Any]) -> ASGIApp:
    """``app`` with the lifespan's state in every request's scope, as uvicorn passes it."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = dict(state)
        await app(scope, receive, send)

    return serve


async def _write_a_document(app: Starlette, state: dict[str, Any]) -> None:
    """A create and a patch over HTTP, so that both database pools hold connections."""
    transport = httpx.ASGITransport(app=_serving(app, state))
    async with httpx.AsyncClient(transport=transport, base_url="http://coedit",
                                 timeout=TIMEOUT) as http:
        login = await http.post("/api/dev/login", json={"name": "Ada"})
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"
        created = await http.post("/api/documents", json={"kind": "memo", "title": "Plan"})
        assert created.status_code == 201, created.text
        patched = await http.patch(f"/api/documents/{created.json()['id']}",
                                   json=[{"op": "add", "path": "/a", "value": 1}],
                                   headers={"If-Match": created.headers["ETag"]})
        assert patched.status_code == 200, patched.text
    # Event streams tell other nodes of a commit a few milliseconds later, from a task that
    # their stop does not wait for; let that notice go out before the parts stop.
    await asyncio.sleep(0.05)


@pytest.mark.parametrize("part", list(STOPS))
async def test_a_stop_that_raises_does_not_keep_the_later_parts_from_stopping(
    part: str, postgres: PostgresDatabases, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When one part's stop raises, every part still stops in order, the failure is logged
    with the part's name and raised once all stopped, and no task or connection is left."""
    database_url = await postgres.fresh()
    app = create_app(make_settings(database_url, redis_url=redis_url))
    stopped: list[str] = []
    _fail_after_stopping(monkeypatch, {part}, stopped)
    before = asyncio.all_tasks()
    with pytest.raises(StopFailed, match=f"^{part} refused to stop$"):
        async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app) as state:
            await _write_a_document(app, state)
    assert stopped == list(STOPS)
    assert [r.getMessage() for r in caplog.records if r.name == "server.lifecycle"] == [
        f"stopping {part} failed; stopping the other parts anyway"]
    assert _tasks_left(before) == []
    await _no_connections_to(database_url)


async def test_when_several_stops_raise_the_first_failure_is_raised(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two failing stops: both are logged by name, every part still stops, and the error
    raised is the first one's."""
    app = create_app(make_settings(database_url))
    stopped: list[str] = []
    _fail_after_stopping(monkeypatch, {"background jobs", "the hub"}, stopped)
    with pytest.raises(StopFailed, match=r"^background jobs refused to stop$"):
        async with asyncio.timeout(TIMEOUT), app.router.lifespan_context(app) as state:
            await _write_a_document(app, state)
    assert stopped == list(STOPS)
    assert [r.getMessage() for r in caplog.records if r.name == "server.lifecycle"] == [
        "stopping background jobs failed; stopping the other parts anyway",
        "stopping the hub failed; stopping the other parts anyway",
    ]
