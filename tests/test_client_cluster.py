"""The Python client against a cluster: a replica and an event stream stay exact when the node
they are connected to is killed (the client moves to the other node) and when the cluster's
Redis restarts under them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import coedit_client
import httpx
import pytest
from coedit_client import Delta, Document

from server.auth import TokenIssuer
from tests.conftest import PostgresDatabases, make_settings
from tests.processes import NodeProcess, clean_env
from tests.redis_server import (  # noqa: F401
    RedisServer,
    private_redis_fixture,
    redis_url_fixture,
)
from tests.support import TIMEOUT, RunningServer, start_server

SECRET = "client-cluster-secret-long-enough-for-hs256-signing"
HEARTBEAT_MS = 1000


@pytest.fixture
async def nodes(
    postgres: PostgresDatabases, redis_url: str, tmp_path: Path
) -> AsyncIterator[list[NodeProcess]]:
    """Two ``coedit serve`` processes on one PostgreSQL database and one Redis."""
    url = await postgres.fresh()
    prefix = f"coedit-client-{uuid.uuid4().hex[:8]}"
    started = [NodeProcess(clean_env(
        COEDIT_DATABASE_URL=url, COEDIT_REDIS_URL=redis_url, COEDIT_SECRET=SECRET,
        COEDIT_AUTH="token", COEDIT_KEY_PREFIX=prefix, COEDIT_NODE_ID=f"node{i}",
        COEDIT_HEARTBEAT_MS=str(HEARTBEAT_MS)), tmp_path) for i in range(2)]
    try:
        await asyncio.gather(*(node.start() for node in started))
        yield started
    finally:
        await asyncio.gather(*(node.kill() for node in started), return_exceptions=True)


def _token(user: str) -> str:
    return TokenIssuer(SECRET, dev_auth=False).mint(user=user, name=user.title(),
                                                    roles=["analyst"], tenant="acme")


async def _read_deltas(doc: Document, until: int, into: list[int]) -> None:
    async for change in doc:
        assert isinstance(change, Delta), change
        into.append(change.version)
        if change.version >= until:
            return


async def _read_events(stream: coedit_client.EventStream, count: int,
                       into: list[dict[str, Any]]) -> None:
    async for event in stream:
        into.append(event)
        if len(into) == count:
            return


async def _write(doc: Document, count: int) -> None:
    for n in range(count):
        await doc.patch([{"op": "replace", "path": f"/n{n % 4}", "value": n}])
        await asyncio.sleep(0.01)


async def _get(url: str, token: str, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("end", ["kill", "stop"])
async def test_a_node_that_goes_away_loses_nothing(nodes: list[NodeProcess], end: str) -> None:
    """A replica and an event stream on node 0 while a writer on node 1 writes; node 0 is
    killed (SIGKILL) or stopped (SIGTERM: it closes with 1001); the client moves to node 1
    and both see every version and event exactly once."""
    token = _token("ann")
    total = 60
    async with coedit_client.connect([nodes[0].url, nodes[1].url], token=token) as watcher, \
            coedit_client.connect(nodes[1].url, token=token) as writer_client:
        created = await writer_client.create("memo", "Cluster", {f"n{i}": 0 for i in range(4)})
        doc_id = created["id"]
        doc = await watcher.open(doc_id)
        assert watcher.node == "node0"
        stream = await watcher.events(types=["patch.applied"], docs=[doc_id]).start()
        deltas: list[int] = []
        events: list[dict[str, Any]] = []
        readers = [asyncio.create_task(_read_deltas(doc, total + 1, deltas)),
                   asyncio.create_task(_read_events(stream, total, events))]
        writer_doc = await writer_client.open(doc_id)
        writes = asyncio.create_task(_write(writer_doc, total))
        async with asyncio.timeout(TIMEOUT):
            while doc.version < total // 3:
                await asyncio.sleep(0.02)
        await (nodes[0].kill() if end == "kill" else nodes[0].stop())
        await asyncio.wait_for(writes, TIMEOUT * 3)
        await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT * 3)
        assert watcher.node == "node1" and watcher.connections >= 2
        assert deltas == list(range(2, total + 2))
        server = await _get(nodes[1].url, token, f"/api/documents/{doc_id}")
        assert doc.state == server["state"] and doc.version == server["version"]
        stored = await _get(nodes[1].url, token, "/api/events", doc=doc_id,
                            type="patch.applied", limit=1000)
        assert [e["seq"] for e in events] == [e["seq"] for e in stored["events"]]


@pytest.fixture
async def redis_node(
    database_url: str, private_redis: RedisServer
) -> AsyncIterator[RunningServer]:
    """A node whose broker and presence live on a Redis the test restarts."""
    settings = make_settings(database_url, redis_url=private_redis.url, heartbeat_ms=2000)
    async with start_server(settings) as running:
        yield running


async def test_a_replica_stays_exact_through_a_redis_restart(
    redis_node: RunningServer, private_redis: RedisServer
) -> None:
    """Redis stops and starts again while a client writes (retrying what answers
    unavailable, with its keys) and another follows: the follower ends equal to the server,
    every version seen once, and no write applied twice."""
    token = redis_node.token()
    total = 40
    doc_id = (await redis_node.create(token, state={f"n{i}": 0 for i in range(4)}))["id"]
    async with coedit_client.connect(redis_node.http_url, token=token) as follower, \
            coedit_client.connect(redis_node.http_url, token=token) as writer:
        doc = await follower.open(doc_id)
        deltas: list[int] = []
        reader = asyncio.create_task(_read_deltas(doc, total + 1, deltas))
        writer_doc = await writer.open(doc_id)
        writes = asyncio.create_task(_write(writer_doc, total))
        async with asyncio.timeout(TIMEOUT):
            while doc.version < 10:
                await asyncio.sleep(0.02)
        await private_redis.astop()
        await asyncio.sleep(1.0)
        await private_redis.astart()
        await asyncio.wait_for(writes, TIMEOUT * 6)
        await asyncio.wait_for(reader, TIMEOUT * 6)
        assert deltas == list(range(2, total + 2))
        async with redis_node.http(token) as http:
            server = (await http.get(f"/api/documents/{doc_id}")).json()
            history = (await http.get(f"/api/documents/{doc_id}/history",
                                      params={"limit": 1000})).json()["events"]
        assert server["version"] == total + 1 and doc.state == server["state"]
        assert [e["type"] for e in history].count("patch.applied") == total
