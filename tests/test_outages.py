"""Outages answer ``unavailable``, never ``internal`` (docs/protocol.md section 3), on every path:
Redis stopped or restarted under a node, PostgreSQL connections cut while idle or in the
middle of a read. The read pool recovers by itself, so the first read after a cut succeeds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import make_settings
from tests.redis_server import RedisServer, private_redis_fixture  # noqa: F401
from tests.support import TIMEOUT, RunningServer, start_server

postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.fixture
async def redis_node(
    database_url: str, private_redis: RedisServer
) -> AsyncIterator[RunningServer]:
    """A node whose broker and presence live on a Redis the test may stop."""
    settings = make_settings(database_url, redis_url=private_redis.url)
    async with start_server(settings) as running:
        yield running


async def _admin(database_url: str) -> asyncpg.Connection:
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    return await asyncio.wait_for(asyncpg.connect(dsn), TIMEOUT)


async def _cut_server_connections(admin: asyncpg.Connection) -> int:
    """End every other connection to the test's database: the node's pools."""
    return int(await asyncio.wait_for(admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"), TIMEOUT))


async def test_subscribes_while_redis_is_down_or_restarting_answer_unavailable(
    redis_node: RunningServer, private_redis: RedisServer
) -> None:
    """With Redis stopped, a subscribe answers unavailable (the connection stays open);
    after Redis is back, subscribes answer ok again, and nothing in between says internal."""
    token = redis_node.token()
    docs = [(await redis_node.create(token))["id"] for _ in range(3)]
    async with await redis_node.connect(token) as client:
        await client.ok("subscribe", doc=docs[0])  # pools and pub/sub connections in use
        await private_redis.astop()
        reply = await client.request("subscribe", doc=docs[1], timeout=TIMEOUT * 2)
        assert reply["type"] == "error" and reply["code"] == "unavailable", reply
        presence = await client.request("presence", doc=docs[0],
                                        state={"status": "editing"})
        assert presence["type"] == "ok" or presence["code"] == "unavailable", presence
        await private_redis.astart()
        codes: list[str] = []
        # Generous: under CPU load the broker's reconnect has taken over 20 s (see the
        # issue 17 note); what this test pins down is that no answer meanwhile is internal.
        async with asyncio.timeout(TIMEOUT * 6):
            while True:
                reply = await client.request("subscribe", doc=docs[2])
                if reply["type"] == "ok":
                    break
                codes.append(reply["code"])
                await asyncio.sleep(0.2)
        assert set(codes) <= {"unavailable"}, codes
        assert (await client.request("heartbeat"))["type"] == "ok"


@postgres_only
async def test_the_first_read_after_every_connection_was_cut_succeeds(
    server: RunningServer, database_url: str
) -> None:
    """After PostgreSQL ended every pooled connection (a restart, a proxy), the next reads
    over HTTP and WebSocket succeed at once: the pool replaces dead connections itself."""
    token = server.token()
    doc = (await server.create(token, state={"n": 1}))["id"]
    async with server.http(token) as http:
        for _ in range(3):
            assert (await http.get(f"/api/documents/{doc}")).status_code == 200
        admin = await _admin(database_url)
        try:
            assert await _cut_server_connections(admin) > 0
        finally:
            await asyncio.wait_for(admin.close(), TIMEOUT)
        response = await http.get(f"/api/documents/{doc}")
        assert response.status_code == 200, response.text
    async with await server.connect(token) as client:
        assert (await client.ok("subscribe", doc=doc))["version"] == 1


@postgres_only
async def test_reads_cut_in_the_middle_answer_unavailable(
    server: RunningServer, database_url: str
) -> None:
    """A subscribe and an HTTP read whose connection PostgreSQL ends while they wait answer
    unavailable (503), and the next ones succeed."""
    token = server.token()
    doc = (await server.create(token, state={"n": 1}))["id"]
    admin = await _admin(database_url)
    try:
        async with await server.connect(token) as client, server.http(token) as http:
            transaction = admin.transaction()
            await asyncio.wait_for(transaction.start(), TIMEOUT)
            await asyncio.wait_for(
                admin.execute("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE"), TIMEOUT)
            read = asyncio.create_task(http.get(f"/api/documents/{doc}"))
            await client.send({"type": "subscribe", "id": "s", "doc": doc})
            await _wait_for_waiting_reads(admin, 2)
            await _cut_server_connections(admin)
            await asyncio.wait_for(transaction.rollback(), TIMEOUT)
            reply = await client.recv()
            assert (reply["type"], reply.get("code")) == ("error", "unavailable"), reply
            response = await asyncio.wait_for(read, TIMEOUT)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "unavailable"
            assert (await client.ok("subscribe", doc=doc))["version"] == 1
            assert (await http.get(f"/api/documents/{doc}")).status_code == 200
    finally:
        await asyncio.wait_for(admin.close(), TIMEOUT)


async def _wait_for_waiting_reads(admin: asyncpg.Connection, count: int) -> None:
    """Until ``count`` other sessions of the database wait for a lock. (Activity statistics
    are a snapshot per transaction, and ``admin`` is inside one: clear it each time.)"""
    query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
             " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'")
    waiting: Any = 0
    async with asyncio.timeout(TIMEOUT):
        while waiting < count:
            await admin.execute("SELECT pg_stat_clear_snapshot()")
            waiting = await admin.fetchval(query)
            await asyncio.sleep(0.05)
