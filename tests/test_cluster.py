"""Several real ``coedit serve`` processes on one PostgreSQL and one Redis behave as one server.

The shared-cluster tests run twice: on one Redis server and on a Redis Cluster (three masters
with a replica each, sharded pub/sub), named by a ``redis+cluster://`` URL.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from redis.asyncio import Redis

from channels.redis_client import connect
from server.auth import TokenIssuer
from tests.conftest import PostgresDatabases
from tests.processes import NodeProcess, clean_env
from tests.redis_server import (
    RedisCluster,
    RedisServer,
    private_redis_cluster_fixture,
    redis_cluster_url_fixture,
)

# Importing the fixtures registers them under their names.
__all__ = ["private_redis_cluster_fixture", "redis_cluster_url_fixture"]
from tests.support import TIMEOUT, WsClient

SECRET = "cluster-test-secret-long-enough-for-hs256-signing"
HEARTBEAT_MS = 1000  # short enough for fast death detection, long enough under load
REDIS_URL = os.environ.get("COEDIT_TEST_REDIS", "redis://127.0.0.1:6379/0")


class Cluster:
    def __init__(self, nodes: list[NodeProcess], redis_url: str = REDIS_URL) -> None:
        self.nodes = nodes
        self.redis_url = redis_url
        self.issuer = TokenIssuer(SECRET, dev_auth=False)

    def token(self, user: str, *, roles: list[str] | None = None) -> str:
        return self.issuer.mint(user=user, name=user.title(), roles=roles or ["analyst"],
                                tenant="acme")

    async def connect(self, node: int, token: str) -> WsClient:
        conn = await asyncio.wait_for(
            websockets.connect(f"{self.nodes[node].ws_url}?token={token}", max_size=None),
            TIMEOUT,
        )
        client = WsClient(conn)
        client.welcome = await client.recv_type("welcome")
        client.keep_alive(HEARTBEAT_MS / 3000)
        return client


def node_env(database_url: str, prefix: str, index: int,
             redis_url: str = REDIS_URL) -> dict[str, str]:
    return clean_env(
        COEDIT_DATABASE_URL=database_url, COEDIT_REDIS_URL=redis_url, COEDIT_SECRET=SECRET,
        COEDIT_AUTH="token", COEDIT_KEY_PREFIX=prefix, COEDIT_NODE_ID=f"node{index}",
        COEDIT_HEARTBEAT_MS=str(HEARTBEAT_MS),
    )


@pytest.fixture(params=["redis", "redis-cluster"])
async def cluster(
    postgres: PostgresDatabases, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Cluster]:
    url = await postgres.fresh()
    prefix = f"coedit-cluster-{uuid.uuid4().hex[:8]}"
    redis_url = (request.getfixturevalue("redis_cluster_url") if request.param == "redis-cluster"
                 else REDIS_URL)
    nodes = [NodeProcess(node_env(url, prefix, i, redis_url), tmp_path) for i in range(3)]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield Cluster(nodes, redis_url)
    finally:
        await asyncio.gather(*(node.kill() for node in nodes), return_exceptions=True)


async def _create(client: WsClient, state: dict[str, Any]) -> str:
    reply = await client.ok("create", kind="memo", title="Cluster memo", state=state)
    return str(reply["document"]["id"])


async def test_deltas_from_every_node_reach_every_node_once_in_order(cluster: Cluster) -> None:
    """Writers on three nodes; subscribers on three nodes each see 2..N exactly once, in order."""
    token = cluster.token("ann")
    writers = [await cluster.connect(i, token) for i in range(3)]
    watchers = [await cluster.connect(i % 3, token) for i in range(6)]
    per_writer = 20
    try:
        doc = await _create(writers[0], {f"w{i}": 0 for i in range(3)})
        for watcher in watchers:
            await watcher.ok("subscribe", doc=doc)

        async def write(index: int, client: WsClient) -> None:
            base = 1
            for n in range(per_writer):
                reply = await client.ok("patch", doc=doc, base=base,
                                        ops=[{"op": "replace", "path": f"/w{index}",
                                              "value": n + 1}])
                base = reply["version"]

        await asyncio.wait_for(asyncio.gather(*(write(i, c) for i, c in enumerate(writers))),
                               60)
        total = 3 * per_writer
        for watcher in watchers:
            deltas = await watcher.deltas(doc, total, timeout=20)
            assert [d["version"] for d in deltas] == list(range(2, total + 2))
            assert await watcher.nothing_more(0.3) == []
        final = await watchers[0].ok("subscribe", doc=doc)
        assert final["state"] == {f"w{i}": per_writer for i in range(3)}
    finally:
        for client in writers + watchers:
            await client.close()


async def test_presence_is_shared_across_nodes(cluster: Cluster) -> None:
    """A session on node 1 joins, updates and leaves in the view of a subscriber on node 0."""
    alice = await cluster.connect(0, cluster.token("alice"))
    bob = await cluster.connect(1, cluster.token("bob"))
    try:
        doc = await _create(alice, {})
        await alice.ok("subscribe", doc=doc)
        reply = await bob.ok("subscribe", doc=doc)
        assert [e["user"]["id"] for e in reply["presence"]] == ["alice"]
        join = await _presence_with(alice, "joins", "bob")
        assert join["node"] == "node1" and join["state"] == {"status": "viewing"}
        await bob.ok("presence", doc=doc, state={"status": "editing", "focus": "/a"})
        update = await _presence_with(alice, "updates", "bob")
        assert update["state"] == {"status": "editing", "focus": "/a"}
        await bob.ok("unsubscribe", doc=doc)
        await _presence_with(alice, "leaves", "bob")
    finally:
        await alice.close()
        await bob.close()


async def _presence_with(client: WsClient, group: str, user: str,
                         timeout: float = TIMEOUT) -> dict[str, Any]:
    """The entry of ``user`` in the next presence diff that lists it under ``group``."""
    async with asyncio.timeout(timeout):
        while True:
            message = await client.recv_type("presence")
            for entry in message[group]:
                if entry["user"]["id"] == user:
                    return entry  # type: ignore[no-any-return]


async def test_locks_are_consistent_across_nodes(cluster: Cluster) -> None:
    """A lock taken on node 1 blocks locks and writes on node 0; tokens grow across nodes."""
    alice = await cluster.connect(0, cluster.token("alice"))
    bob = await cluster.connect(1, cluster.token("bob"))
    try:
        doc = await _create(alice, {"a": 1, "b": 1})
        await alice.ok("subscribe", doc=doc)
        granted = (await bob.ok("lock", doc=doc, path="/a"))["lock"]
        announced = await alice.recv_type("locked")
        assert announced["token"] == granted["token"] and announced["path"] == "/a"
        refused = await alice.request("lock", doc=doc, path="")
        assert refused["code"] == "locked" and refused["lock"]["token"] == granted["token"]
        write = await alice.request("patch", doc=doc, base=1,
                                    ops=[{"op": "replace", "path": "/a", "value": 2}])
        assert write["code"] == "locked"
        mine = (await alice.ok("lock", doc=doc, path="/b"))["lock"]
        assert mine["token"] > granted["token"]
    finally:
        await alice.close()
        await bob.close()


async def test_a_killed_node_frees_its_presence_and_locks(cluster: Cluster) -> None:
    """SIGKILL of node 1: its session leaves within 3 intervals and its lock expires in its ttl."""
    alice = await cluster.connect(0, cluster.token("alice"))
    bob = await cluster.connect(1, cluster.token("bob"))
    try:
        doc = await _create(alice, {"a": 1})
        await alice.ok("subscribe", doc=doc)
        await bob.ok("subscribe", doc=doc)
        await _presence_with(alice, "joins", "bob")
        ttl_ms = 2000
        await bob.ok("lock", doc=doc, path="/a", ttl_ms=ttl_ms)
        await alice.recv_type("locked")
        if bob._heartbeat is not None:
            bob._heartbeat.cancel()
        await bob.send({"type": "heartbeat"})
        last_sign_of_life = time.monotonic()
        await cluster.nodes[1].kill()
        await _presence_with(alice, "leaves", "bob", timeout=10)
        left_after = time.monotonic() - last_sign_of_life
        unlocked = await alice.recv_type("unlocked", timeout=10)
        unlocked_after = time.monotonic() - last_sign_of_life
        assert left_after <= 3 * HEARTBEAT_MS / 1000 + 0.5, left_after
        assert unlocked["reason"] == "expired" and unlocked["path"] == "/a"
        assert unlocked_after <= ttl_ms / 1000 + 1.5, unlocked_after
        retaken = await alice.ok("lock", doc=doc, path="/a")
        assert retaken["lock"]["holder"]["user"]["id"] == "alice"
    finally:
        await alice.close()
        await bob.close()


async def test_a_stopping_node_releases_and_closes_with_1001(cluster: Cluster) -> None:
    """SIGTERM of node 1: its client gets 1001 after its presence and locks were released."""
    alice = await cluster.connect(0, cluster.token("alice"))
    bob = await cluster.connect(1, cluster.token("bob"))
    try:
        doc = await _create(alice, {"a": 1})
        await alice.ok("subscribe", doc=doc)
        await bob.ok("subscribe", doc=doc)
        await bob.ok("lock", doc=doc, path="/a", ttl_ms=60_000)
        await alice.recv_type("locked")
        stopping = asyncio.create_task(cluster.nodes[1].stop())
        assert await bob.closed_with(timeout=15) == 1001
        unlocked = await alice.recv_type("unlocked")
        assert unlocked["reason"] == "disconnected"
        await _presence_with(alice, "leaves", "bob")
        assert await asyncio.wait_for(stopping, 20) in (0, -15)  # uvicorn re-raises SIGTERM
        # Bob resumes on another node from the version he had.
        bob = await cluster.connect(2, cluster.token("bob"))
        reply = await bob.ok("subscribe", doc=doc, since=1)
        assert reply["version"] == 1
    finally:
        await alice.close()
        await bob.close()


async def test_a_stopping_node_withdraws_all_its_presence_at_once(cluster: Cluster) -> None:
    """SIGTERM of a node with 150 sessions: one diff per document announces every leave on
    node 0, and Redis keeps none of them."""
    alice = await cluster.connect(0, cluster.token("alice"))
    bobs = list(await asyncio.wait_for(
        asyncio.gather(*(cluster.connect(1, cluster.token(f"bob{i}")) for i in range(150))), 60))
    prefix = cluster.nodes[1].env["COEDIT_KEY_PREFIX"]
    redis = connect(cluster.redis_url)
    try:
        docs = [await _create(alice, {}) for _ in range(3)]
        await alice.ok("subscribe", doc=docs[0])
        await asyncio.wait_for(asyncio.gather(
            *(bob.ok("subscribe", doc=docs[i % 3]) for i, bob in enumerate(bobs))), 60)
        with_alice = {bob.welcome["session"] for bob in bobs[::3]}
        await _presence_diffs(alice, "joins", with_alice)
        assert await asyncio.wait_for(cluster.nodes[1].stop(), 20) in (0, -15)
        leaves = await _presence_diffs(alice, "leaves", with_alice)
        assert len(leaves) == 1, [len(diff["leaves"]) for diff in leaves]
        node_hash = f"{prefix}:presence:node:node1"
        assert await asyncio.wait_for(redis.hlen(node_hash), TIMEOUT) == 0
        assert not await asyncio.wait_for(redis.sismember(f"{prefix}:nodes", "node1"), TIMEOUT)
        for doc in docs:
            left = await asyncio.wait_for(redis.hkeys(f"{prefix}:presence:doc:{doc}"), TIMEOUT)
            assert [k.decode() if isinstance(k, bytes) else k for k in left] == (
                [alice.welcome["session"]] if doc == docs[0] else [])
    finally:
        await asyncio.wait_for(redis.aclose(), TIMEOUT)
        await asyncio.gather(*(client.close() for client in [alice, *bobs]))


async def _presence_diffs(client: WsClient, group: str, sessions: set[str],
                          timeout: float = 20.0) -> list[dict[str, Any]]:
    """The presence diffs that list ``sessions`` under ``group``, read until all were."""
    seen: set[str] = set()
    diffs = []
    async with asyncio.timeout(timeout):
        while not sessions <= seen:
            message = await client.recv_type("presence")
            listed = {entry["session"] for entry in message[group]} & sessions
            if listed:
                diffs.append(message)
                seen |= listed
    return diffs


@pytest.fixture
async def redis_cluster(
    postgres: PostgresDatabases, tmp_path: Path
) -> AsyncIterator[tuple[Cluster, RedisServer]]:
    """Two nodes on a Redis of the test's own, which the test may stop and restart."""
    redis = RedisServer(workdir=tmp_path)
    await redis.astart()
    url = await postgres.fresh()
    prefix = f"coedit-cluster-{uuid.uuid4().hex[:8]}"
    nodes = []
    for i in range(2):
        env = node_env(url, prefix, i)
        env["COEDIT_REDIS_URL"] = redis.url
        nodes.append(NodeProcess(env, tmp_path))
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield Cluster(nodes), redis
    finally:
        await asyncio.gather(*(node.kill() for node in nodes), return_exceptions=True)
        await redis.astop()


async def test_restarting_redis_mid_stream_loses_no_delta(
    redis_cluster: tuple[Cluster, RedisServer],
) -> None:
    """Redis stops and restarts while both nodes take writes; every subscriber gets them all."""
    cluster, redis = redis_cluster
    token = cluster.token("ann")
    writers = [await cluster.connect(i, token) for i in range(2)]
    watchers = [await cluster.connect(i % 2, token) for i in range(4)]
    try:
        doc = await _create(writers[0], {"w0": 0, "w1": 0})
        for watcher in watchers:
            await watcher.ok("subscribe", doc=doc)
        restarted = asyncio.Event()

        async def restart() -> None:
            await asyncio.sleep(0.2)
            await redis.astop()
            await asyncio.sleep(1.0)
            await redis.astart()
            restarted.set()

        per_writer = 60
        await asyncio.wait_for(
            asyncio.gather(restart(), *(_write_own_field(c, doc, i, per_writer, 0.01)
                                 for i, c in enumerate(writers))),
            60,
        )
        assert restarted.is_set()
        total = 2 * per_writer
        await _every_watcher_got_each_version_once(watchers, doc, total)
    finally:
        for client in writers + watchers:
            await client.close()


@pytest.fixture
async def nodes_on_redis_cluster(
    postgres: PostgresDatabases, tmp_path: Path, private_redis_cluster: RedisCluster
) -> AsyncIterator[tuple[Cluster, RedisCluster, str]]:
    """Two nodes on a Redis Cluster of the test's own, whose masters the test may kill; and
    the nodes' key prefix."""
    url = await postgres.fresh()
    prefix = f"coedit-cluster-{uuid.uuid4().hex[:8]}"
    nodes = [NodeProcess(node_env(url, prefix, i, private_redis_cluster.url), tmp_path)
             for i in range(2)]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield Cluster(nodes, private_redis_cluster.url), private_redis_cluster, prefix
    finally:
        await asyncio.gather(*(node.kill() for node in nodes), return_exceptions=True)


async def test_a_redis_master_dying_mid_stream_loses_no_delta(
    nodes_on_redis_cluster: tuple[Cluster, RedisCluster, str],
) -> None:
    """The master carrying a document's channel is killed while both nodes take writes; its
    replica takes over and every subscriber on both nodes gets every version once, in order."""
    cluster, redis, prefix = nodes_on_redis_cluster
    token = cluster.token("ann")
    writers = [await cluster.connect(i, token) for i in range(2)]
    watchers = [await cluster.connect(i % 2, token) for i in range(4)]
    try:
        doc = await _create(writers[0], {"w0": 0, "w1": 0})
        for watcher in watchers:
            await watcher.ok("subscribe", doc=doc)
        master = await asyncio.to_thread(redis.owner_of, f"{prefix}:doc:{doc}")
        replica = await asyncio.to_thread(redis.replica_of, master)
        killed = asyncio.Event()

        async def kill() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(master.kill)
            killed.set()

        per_writer = 100
        await asyncio.wait_for(
            asyncio.gather(kill(), *(_write_own_field(c, doc, i, per_writer, 0.02)
                               for i, c in enumerate(writers))),
            90,
        )
        assert killed.is_set()
        total = 2 * per_writer
        await _every_watcher_got_each_version_once(watchers, doc, total)
        owner = await asyncio.to_thread(redis.owner_of, f"{prefix}:doc:{doc}")
        assert owner is replica
        # And live again: one more write reaches every watcher through the new master.
        await writers[0].ok("patch", doc=doc, base=total + 1,
                            ops=[{"op": "replace", "path": "/w0", "value": 0}])
        for watcher in watchers:
            (delta,) = await watcher.deltas(doc, 1, timeout=5)
            assert delta["version"] == total + 2
    finally:
        for client in writers + watchers:
            await client.close()


async def _redis_calls(url: str) -> int:
    client = Redis.from_url(url)
    try:
        stats = await asyncio.wait_for(client.info("commandstats"), TIMEOUT)
    finally:
        await client.aclose()
    return sum(int(value["calls"]) for value in stats.values())


async def test_heartbeats_cost_no_redis_round_trip_per_client(
    redis_cluster: tuple[Cluster, RedisServer],
) -> None:
    """Thirty heartbeating clients make Redis work per node, not per heartbeat."""
    cluster, redis = redis_cluster
    token = cluster.token("ann")
    clients = [await cluster.connect(i % 2, token) for i in range(30)]
    try:
        doc = await _create(clients[0], {})
        for client in clients:
            await client.ok("subscribe", doc=doc)
        before = await _redis_calls(redis.url)
        started = time.monotonic()
        sent = 0
        async with asyncio.timeout(TIMEOUT):
            for _ in range(20):
                for client in clients:
                    await client.send({"type": "heartbeat"})
                    sent += 1
                await asyncio.sleep(0.1)
        used = await _redis_calls(redis.url) - before
        elapsed = time.monotonic() - started
        # Per node and half interval: one liveness refresh (one pipeline of five commands:
        # the liveness key, the node set, and the store epoch and reap counter that tell a
        # node it was reaped) and one dead-node scan (two); nothing per client.
        per_node_budget = 7 * (elapsed / (HEARTBEAT_MS / 2000) + 2)
        assert sent == 600
        assert used <= 2 * per_node_budget, (used, elapsed)
        assert used < sent / 4, (used, sent)
    finally:
        for client in clients:
            await client.close()


async def _write_own_field(client: WsClient, doc: str, index: int, count: int,
                           pause: float) -> None:
    """``count`` writes of field ``/w{index}``, each on the version the last one answered
    (the writers of a test write different fields, so stale bases rebase)."""
    base = 1
    for n in range(count):
        reply = await client.ok("patch", doc=doc, base=base,
                                ops=[{"op": "replace", "path": f"/w{index}", "value": n + 1}])
        base = reply["version"]
        await asyncio.sleep(pause)


async def _every_watcher_got_each_version_once(watchers: list[WsClient], doc: str,
                                               total: int) -> None:
    """Versions 2 to ``total + 1`` reached every watcher in order, and nothing more did."""
    for watcher in watchers:
        deltas = await watcher.deltas(doc, total, timeout=30)
        assert [d["version"] for d in deltas] == list(range(2, total + 2))
        assert await watcher.nothing_more(0.5) == []
