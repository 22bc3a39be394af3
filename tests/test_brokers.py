"""One conformance suite for every :class:`~channels.broker.Broker`, then Redis resilience.

Every behaviour the hub relies on is checked over every implementation through one
parametrized fixture (``"memory"``, ``"redis"``, ``"redis-cluster"``: sharded pub/sub on a
Redis Cluster); what only a network broker can do (several nodes) is parametrized over the
two Redis kinds. Redis is the machine's shared server (``COEDIT_TEST_REDIS``) under a channel
prefix of the test's own, or a private server when that is unset; restarts always use a
private server, and failovers a private cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from channels.broker import Broker, MemoryBroker, ReconnectHandler
from channels.frames import Frame
from channels.hub import Hub
from channels.redis_broker import RedisBroker
from channels.redis_cluster_broker import RedisClusterBroker
from channels.transport import redis_broker
from persistence.audit import Actor, AuditContext
from persistence.database import Database
from persistence.documents import DocumentStore
from server.messages import delta_message
from server.service import StoreDeltaLog
from tests.redis_server import (  # noqa: F401  (fixtures register under their names)
    RedisCluster,
    RedisServer,
    private_redis_cluster_fixture,
    private_redis_fixture,
    redis_cluster_url_fixture,
    redis_url_fixture,
)
from tests.redis_server import command as _cluster_command

TIMEOUT = 5.0
CTX = AuditContext(Actor("u1", "Ann"), "acme")


@dataclass
class Inbox:
    """A broker's message handler that records what arrived, in arrival order."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def __call__(self, channel: str, data: bytes) -> None:
        self.messages.append((channel, data))

    def on(self, channel: str) -> list[bytes]:
        return [data for name, data in self.messages if name == channel]

    async def wait_for(self, channel: str, count: int, timeout: float = TIMEOUT) -> list[bytes]:
        """The first ``count`` messages on ``channel``; fails if they do not all arrive."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.on(channel)) < count:
                    await asyncio.sleep(0.005)
        except TimeoutError:
            raise AssertionError(
                f"{len(self.on(channel))} of {count} messages on {channel} within {timeout}s"
            ) from None
        return self.on(channel)[:count]


class Cluster:
    """Brokers of one kind sharing one transport: each broker made here is a node."""

    def __init__(self, kind: str, redis_url: str | None) -> None:
        self.kind = kind
        self.redis_url = redis_url
        self.prefix = f"coedit-test-{uuid.uuid4().hex[:10]}"
        self._brokers: list[Broker] = []

    def channel(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def broker(self) -> Broker:
        """A new, not yet started broker (stopped with the cluster)."""
        made: Broker
        if self.kind == "memory":
            made = MemoryBroker()
        elif self.redis_url is None:
            raise RuntimeError("a redis cluster needs a Redis URL")
        elif self.kind == "redis-cluster":
            made = RedisClusterBroker.from_url(self.redis_url)
        else:
            made = RedisBroker.from_url(self.redis_url)
        self._brokers.append(made)
        return made

    async def node(
        self, on_reconnect: ReconnectHandler | None = None
    ) -> tuple[Broker, Inbox]:
        """A started broker and the inbox its messages land in."""
        broker, inbox = self.broker(), Inbox()
        await asyncio.wait_for(broker.start(inbox, on_reconnect), TIMEOUT)
        return broker, inbox

    async def close(self) -> None:
        for broker in self._brokers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(broker.stop(), TIMEOUT)


URL_FIXTURES = {"redis": "redis_url", "redis-cluster": "redis_cluster_url"}


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def cluster(broker_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    url = (request.getfixturevalue(URL_FIXTURES[broker_kind]) if broker_kind in URL_FIXTURES
           else None)
    made = Cluster(broker_kind, url)
    try:
        yield made
    finally:
        await made.close()


redis_only = pytest.mark.parametrize("broker_kind", ["redis", "redis-cluster"], indirect=True)


# -- the conformance suite --------------------------------------------------------------------


async def test_subscribed_channel_delivers_the_exact_bytes(cluster: Cluster) -> None:
    """A message published on a subscribed channel reaches the handler byte for byte."""
    broker, inbox = await cluster.node()
    channel = cluster.channel("doc")
    payloads = [b"\x00\xff\x80binary\r\n", b"", "héllo ✓".encode(), bytes(range(256)) * 64]
    await asyncio.wait_for(broker.subscribe(channel), TIMEOUT)
    for payload in payloads:
        await asyncio.wait_for(broker.publish(channel, payload), TIMEOUT)
    assert await inbox.wait_for(channel, len(payloads)) == payloads


async def test_unsubscribed_channels_are_not_delivered(cluster: Cluster) -> None:
    """Messages on a channel nobody subscribed to never reach the handler."""
    broker, inbox = await cluster.node()
    followed, other = cluster.channel("followed"), cluster.channel("other")
    await asyncio.wait_for(broker.subscribe(followed), TIMEOUT)
    await asyncio.wait_for(broker.publish(other, b"not for you"), TIMEOUT)
    await asyncio.wait_for(broker.publish(followed, b"barrier"), TIMEOUT)
    await inbox.wait_for(followed, 1)
    await asyncio.sleep(0.05)
    assert inbox.messages == [(followed, b"barrier")]


async def test_unsubscribe_stops_delivery(cluster: Cluster) -> None:
    """After unsubscribe() a channel's messages stop while other channels keep flowing."""
    broker, inbox = await cluster.node()
    left, kept = cluster.channel("left"), cluster.channel("kept")
    await asyncio.wait_for(broker.subscribe(left), TIMEOUT)
    await asyncio.wait_for(broker.subscribe(kept), TIMEOUT)
    await asyncio.wait_for(broker.publish(left, b"before"), TIMEOUT)
    await inbox.wait_for(left, 1)
    await asyncio.wait_for(broker.unsubscribe(left), TIMEOUT)
    await asyncio.wait_for(broker.publish(left, b"after"), TIMEOUT)
    await asyncio.wait_for(broker.publish(kept, b"barrier"), TIMEOUT)
    await inbox.wait_for(kept, 1)
    await asyncio.sleep(0.05)
    assert inbox.on(left) == [b"before"]


async def test_publish_before_start_fails_loudly(cluster: Cluster) -> None:
    """Publishing on a broker that was never started raises RuntimeError naming start()."""
    broker = cluster.broker()
    with pytest.raises(RuntimeError, match=r"start\(\)"):
        await asyncio.wait_for(broker.publish(cluster.channel("doc"), b"x"), TIMEOUT)


async def test_subscribe_before_start_fails_loudly(cluster: Cluster) -> None:
    """Subscribing on a broker that was never started raises RuntimeError naming start()."""
    broker = cluster.broker()
    with pytest.raises(RuntimeError, match=r"start\(\)"):
        await asyncio.wait_for(broker.subscribe(cluster.channel("doc")), TIMEOUT)


async def test_ping_answers_on_a_started_broker(cluster: Cluster) -> None:
    """ping() returns normally on a started broker that can carry messages."""
    broker, _ = await cluster.node()
    assert broker.started
    assert await asyncio.wait_for(broker.ping(), TIMEOUT) is None


async def test_one_publisher_keeps_its_order_on_a_channel(cluster: Cluster) -> None:
    """Messages from one publisher on one channel arrive in the order they were published."""
    broker, inbox = await cluster.node()
    channel = cluster.channel("ordered")
    await asyncio.wait_for(broker.subscribe(channel), TIMEOUT)
    sent = [f"message {n}".encode() for n in range(300)]
    for payload in sent:
        await asyncio.wait_for(broker.publish(channel, payload), TIMEOUT)
    assert await inbox.wait_for(channel, len(sent)) == sent


async def test_publish_many_keeps_the_order_of_a_burst(cluster: Cluster) -> None:
    """A burst published with publish_many() arrives whole and in order on every channel it
    names, interleaved channels included."""
    broker, inbox = await cluster.node()
    first, second = cluster.channel("burst-1"), cluster.channel("burst-2")
    for channel in (first, second):
        await asyncio.wait_for(broker.subscribe(channel), TIMEOUT)
    burst = [(first if n % 3 else second, f"m{n}".encode()) for n in range(200)]
    await asyncio.wait_for(broker.publish_many(burst), TIMEOUT)
    for channel in (first, second):
        expected = [data for name, data in burst if name == channel]
        assert await inbox.wait_for(channel, len(expected)) == expected


@redis_only
async def test_every_node_receives_what_any_node_publishes(cluster: Cluster) -> None:
    """Two nodes on one Redis both receive a message published by either of them."""
    first, first_inbox = await cluster.node()
    second, second_inbox = await cluster.node()
    channel = cluster.channel("shared")
    await asyncio.wait_for(first.subscribe(channel), TIMEOUT)
    await asyncio.wait_for(second.subscribe(channel), TIMEOUT)
    await asyncio.wait_for(first.publish(channel, b"from first"), TIMEOUT)
    await asyncio.wait_for(second.publish(channel, b"from second"), TIMEOUT)
    for inbox in (first_inbox, second_inbox):
        assert sorted(await inbox.wait_for(channel, 2)) == [b"from first", b"from second"]


@redis_only
async def test_subscribe_returns_only_once_the_subscription_is_live(cluster: Cluster) -> None:
    """A message another node publishes right after subscribe() returns is received."""
    publisher, _ = await cluster.node()
    subscriber, inbox = await cluster.node()
    for n in range(25):
        channel = cluster.channel(f"fresh-{n}")
        await asyncio.wait_for(subscriber.subscribe(channel), TIMEOUT)
        await asyncio.wait_for(publisher.publish(channel, b"first"), TIMEOUT)
        assert await inbox.wait_for(channel, 1) == [b"first"]


# -- Redis going away and coming back ---------------------------------------------------------


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_redis_broker_recovers_from_a_redis_restart(
    private_redis: RedisServer, how: str
) -> None:
    """After Redis restarts the broker re-subscribes, then calls on_reconnect, then delivers."""
    cluster = Cluster("redis", private_redis.url)
    probe = Redis.from_url(private_redis.url)
    channel = cluster.channel("doc")
    subscribers_seen: list[int] = []

    async def on_reconnect() -> None:
        # Redis counts a subscriber only once it processed SUBSCRIBE: the count seen here
        # says whether the subscription was confirmed before the callback ran.
        numsub = await asyncio.wait_for(probe.pubsub_numsub(channel), TIMEOUT)
        subscribers_seen.append(int(numsub[0][1]))

    try:
        broker, inbox = await cluster.node(on_reconnect)
        await asyncio.wait_for(broker.subscribe(channel), TIMEOUT)
        await asyncio.wait_for(broker.publish(channel, b"before"), TIMEOUT)
        await inbox.wait_for(channel, 1)

        if how == "kill":
            await asyncio.to_thread(private_redis.kill)
        else:
            await private_redis.astop()
        await asyncio.sleep(0.3)  # the reader notices and starts retrying against nothing
        await private_redis.astart()

        async with asyncio.timeout(15):
            while not subscribers_seen:
                await asyncio.sleep(0.02)
        assert subscribers_seen and all(n == 1 for n in subscribers_seen)

        publisher, _ = await cluster.node()
        await asyncio.wait_for(publisher.publish(channel, b"after"), TIMEOUT)
        assert await inbox.wait_for(channel, 2) == [b"before", b"after"]
    finally:
        await cluster.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(probe.aclose(), TIMEOUT)


async def test_cluster_broker_resubscribes_when_a_master_drops_its_connection(
    private_redis_cluster: RedisCluster,
) -> None:
    """When the master of a channel closes the broker's pub/sub connection, the broker
    subscribes again, calls on_reconnect only once the master confirmed, then delivers."""
    redis = private_redis_cluster
    cluster = Cluster("redis-cluster", redis.url)
    channel = cluster.channel("doc")
    subscribers_seen: list[str] = []
    master = await asyncio.to_thread(redis.owner_of, channel)

    async def on_reconnect() -> None:
        numsub = await asyncio.to_thread(
            _cluster_command, master.port, "PUBSUB", "SHARDNUMSUB", channel)
        subscribers_seen.append(numsub.rsplit("\r\n", 2)[-2])

    try:
        broker, inbox = await cluster.node(on_reconnect)
        await asyncio.wait_for(broker.subscribe(channel), TIMEOUT)
        await asyncio.wait_for(broker.publish(channel, b"before"), TIMEOUT)
        await inbox.wait_for(channel, 1)
        killed = await asyncio.to_thread(
            _cluster_command, master.port, "CLIENT", "KILL", "TYPE", "pubsub")
        assert killed.startswith(":1"), killed
        async with asyncio.timeout(10):
            while not subscribers_seen:
                await asyncio.sleep(0.02)
        assert subscribers_seen == [":1"]
        await asyncio.wait_for(broker.publish(channel, b"after"), TIMEOUT)
        assert await inbox.wait_for(channel, 2) == [b"before", b"after"]
    finally:
        await cluster.close()


# -- two hubs over Redis ----------------------------------------------------------------------


@dataclass
class Collector:
    """A sink that records frames, as a connection's outbox would queue them."""

    frames: list[Frame] = field(default_factory=list)

    def put(self, frame: Frame) -> bool:
        self.frames.append(frame)
        return True

    def versions(self) -> list[int]:
        return [f.message["version"] for f in self.frames if f.message["type"] == "delta"]

    async def wait_for_version(self, version: int, timeout: float = TIMEOUT) -> None:
        try:
            async with asyncio.timeout(timeout):
                while version not in self.versions():
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(
                f"version {version} did not arrive within {timeout}s; got {self.versions()}"
            ) from None


@dataclass
class Node:
    """One hub with a store of its own, as one server process would have."""

    database: Database
    store: DocumentStore
    hub: Hub


@contextlib.asynccontextmanager
async def _node(database_url: str, redis_url: str, prefix: str) -> AsyncIterator[Node]:
    database = Database(database_url)
    store = DocumentStore(database)
    hub = Hub(redis_broker(redis_url), StoreDeltaLog(store), prefix=prefix, gap_wait=0.02)
    try:
        await asyncio.wait_for(hub.start(), TIMEOUT)
        yield Node(database, store, hub)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(hub.stop(), TIMEOUT)
        await asyncio.wait_for(database.dispose(), TIMEOUT)


async def _write_and_publish(node: Node, doc: str, base: int) -> int:
    """Commit one write on ``node`` and publish its delta there; the new version."""
    result = await asyncio.wait_for(node.store.apply_patch(
        CTX, doc, base=base, ops=[{"op": "add", "path": f"/k{base}", "value": base}]
    ), TIMEOUT)
    assert result.delta is not None
    await asyncio.wait_for(node.hub.publish(delta_message(result.delta)), TIMEOUT)
    return base + 1


async def _followed_on(b: Node, *, created_on: Node) -> tuple[str, Collector, int]:
    """A document created through node ``created_on``, followed by a subscriber on hub ``b``
    from its current version: the document, the subscriber and that version."""
    document, _ = await asyncio.wait_for(
        created_on.store.create(CTX, kind="memo", title="t"), TIMEOUT)
    doc = document["id"]
    sink = Collector()
    sub = await asyncio.wait_for(b.hub.join(sink, "acme", doc), TIMEOUT)
    current = (await asyncio.wait_for(b.store.get("acme", doc), TIMEOUT))["version"]
    await asyncio.wait_for(b.hub.activate(sub, current=current, since=None), TIMEOUT)
    return doc, sink, current


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_delta_from_another_node_drops_the_row_kept_for_the_next_write(
    database_url: str, redis_url: str,
) -> None:
    """Node A keeps the row its write left (persistence/head_cache.py). When node B's delta of
    the document reaches node A's hub, that row is dropped, so node A's next write reads the
    document instead of trying a write that the row's check would undo."""
    prefix = f"coedit-test-{uuid.uuid4().hex[:10]}"
    async with (_node(database_url, redis_url, prefix) as a,
                _node(database_url, redis_url, prefix) as b):
        doc, sink, version = await _followed_on(a, created_on=a)
        version = await _write_and_publish(a, doc, version)
        heads = a.store.writer.committer.heads
        assert heads is not None and heads.get(doc) is not None
        await sink.wait_for_version(version)
        await asyncio.sleep(0.1)  # Redis hands node A its own delta back: not newer
        assert heads.get(doc) is not None
        version = await _write_and_publish(b, doc, version)
        await sink.wait_for_version(version)
        assert heads.get(doc) is None
        version = await _write_and_publish(a, doc, version)
        assert a.store.moved_retries == 0
        assert (await asyncio.wait_for(b.store.get("acme", doc), TIMEOUT))["version"] == version


async def test_hubs_deliver_every_version_once_across_a_redis_restart(
    database_url: str, private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscriber on hub B gets every version written through hub A exactly once, in order,
    even when Redis restarts while hub A publishes."""
    prefix = f"coedit-test-{uuid.uuid4().hex[:10]}"
    caplog.set_level(logging.ERROR, logger="channels.hub")
    async with (_node(database_url, private_redis.url, prefix) as a,
                _node(database_url, private_redis.url, prefix) as b):
        doc, sink, current = await _followed_on(b, created_on=a)

        version = current
        for _ in range(5):
            version = await _write_and_publish(a, doc, version)
        await sink.wait_for_version(version)
        assert sink.versions() == list(range(current + 1, version + 1))

        await private_redis.astop()
        for _ in range(5):  # durable, but the broker cannot carry them
            version = await _write_and_publish(a, doc, version)
        assert any("failed" in r.getMessage() for r in caplog.records)
        await private_redis.astart()
        # Nothing is published now: only hub B's catch-up on reconnect can bring these.
        await sink.wait_for_version(version, timeout=20)
        assert sink.versions() == list(range(current + 1, version + 1))

        for _ in range(3):  # and the live path carries new writes again
            version = await _write_and_publish(a, doc, version)
        await sink.wait_for_version(version)
        await asyncio.sleep(0.2)  # room for a duplicate to show up
        assert sink.versions() == list(range(current + 1, version + 1))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("how", ["failover", "kill"])
async def test_hubs_deliver_every_version_once_across_a_cluster_failover(
    database_url: str, private_redis_cluster: RedisCluster, how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a Redis Cluster, the master of a document's channel hands over to its replica
    (CLUSTER FAILOVER, or SIGKILL) while hub A keeps writing: a subscriber on hub B gets every
    version exactly once, in order, and new writes reach it live on the new master."""
    redis = private_redis_cluster
    prefix = f"coedit-test-{uuid.uuid4().hex[:10]}"
    caplog.set_level(logging.ERROR, logger="channels.hub")
    async with (_node(database_url, redis.url, prefix) as a,
                _node(database_url, redis.url, prefix) as b):
        doc, sink, current = await _followed_on(b, created_on=a)
        master = await asyncio.to_thread(redis.owner_of, b.hub.channel_name(doc))
        replica = await asyncio.to_thread(redis.replica_of, master)

        version = current
        for _ in range(5):
            version = await _write_and_publish(a, doc, version)
        await sink.wait_for_version(version)

        if how == "kill":
            await asyncio.to_thread(master.kill)
        else:
            reply = await asyncio.to_thread(_cluster_command, replica.port, "CLUSTER", "FAILOVER")
            assert reply.startswith("+OK"), reply
        async with asyncio.timeout(20):  # keep writing until the replica took over
            while True:
                version = await _write_and_publish(a, doc, version)
                owner = await asyncio.to_thread(redis.owner_of, b.hub.channel_name(doc))
                if owner is replica:
                    break
                await asyncio.sleep(0.05)
        for _ in range(5):
            version = await _write_and_publish(a, doc, version)
        await sink.wait_for_version(version, timeout=20)
        assert sink.versions() == list(range(current + 1, version + 1))

        # The live path runs on the new master: one write, nothing after it to reveal a gap.
        version = await _write_and_publish(a, doc, version)
        await sink.wait_for_version(version, timeout=3)
        await asyncio.sleep(0.2)  # room for a duplicate to show up
        assert sink.versions() == list(range(current + 1, version + 1))
