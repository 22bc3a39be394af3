"""Live delivery of notifications (docs/protocol.md section 14): per-user and per-role
channels of a tenant on a real Redis broker, the throttle, the switch, and the subscriptions
a node holds only while it has sessions of that person.

Most tests hand a ``Notified`` fact in where the stores' triggers do
(``Coedit.after_commit``, or the delivery component itself), so each case needs no review to
set it up; everything after that is real: hubs, Redis, servers, sockets. One test goes
through the real trigger (a review assigned over HTTP), and tests/test_notifications.py and
tests/test_cluster_trail.py do too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis

from channels.frames import Frame
from channels.hub import Hub
from channels.people import People
from channels.redis_broker import RedisBroker
from channels.redis_limits import RedisWindows
from persistence.facts import Notified
from server.auth import Identity
from server.config import ConfigError, Settings
from server.metrics import Metrics
from server.notifications import LiveNotifications
from tests.conftest import make_settings
from tests.redis_server import redis_url_fixture
from tests.support import TIMEOUT, RunningServer, WsClient, start_server

__all__ = ["redis_url_fixture"]


class NoLog:
    """The hub's log, never asked: people's channels are topics, not documents."""

    async def deltas(self, tenant: str, doc: str, since: int,
                     until: int | None) -> list[dict[str, Any]] | None:
        raise AssertionError("a topic never reads the log")

    async def document(self, tenant: str, doc: str) -> dict[str, Any]:
        raise AssertionError("a topic never reads the log")


@dataclass(eq=False)
class Receiver:
    """A session's outbox, as the hub sees it: it keeps what it is given."""

    identity: Identity
    got: list[dict[str, Any]] = field(default_factory=list)

    def put(self, frame: Frame) -> bool:
        self.got.append(frame.message)
        return True

    def titles(self) -> list[str]:
        return [m["notification"]["title"] for m in self.got if m["type"] == "notification"]


@dataclass
class Node:
    hub: Hub
    delivery: LiveNotifications
    metrics: Metrics

    async def arrive(self, user: str, *roles: str, tenant: str = "acme") -> Receiver:
        receiver = Receiver(Identity(user, user.title(), roles or ("analyst",), tenant))
        await asyncio.wait_for(self.delivery.arrive(receiver, receiver.identity), TIMEOUT)
        return receiver

    async def depart(self, receiver: Receiver) -> None:
        await asyncio.wait_for(self.delivery.depart(receiver, receiver.identity), TIMEOUT)

    def outcome(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "coedit_notifications_live_total", {"outcome": outcome})
        return value or 0.0


def _fact(title: str, *, tenant: str = "acme", user: str | None = None,
          role: str | None = None) -> Notified:
    notification = {"id": str(uuid.uuid4()), "type": "review.assigned", "title": title,
                    "body": "", "doc": None, "idea": None,
                    "created_at": "2026-12-02T00:00:00.000000Z", "read": False}
    return Notified(tenant, notification, user=user, role=role)


@pytest.fixture
def prefix() -> str:
    return f"coedit-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis(redis_url: str, prefix: str) -> AsyncIterator[Redis]:
    """A client for looking at Redis from outside; removes the test's keys at the end."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await asyncio.wait_for(client.delete(*keys), TIMEOUT)
        await asyncio.wait_for(client.aclose(), TIMEOUT)


NodeFactory = Callable[..., "contextlib.AbstractAsyncContextManager[Node]"]


@pytest.fixture
def node(redis_url: str, prefix: str) -> NodeFactory:
    """Start a node's hub and delivery on Redis, as a server process would wire them."""

    @contextlib.asynccontextmanager
    async def start(*, enabled: bool = True, per_minute: int = 30,
                    window_ms: int = 60_000) -> AsyncIterator[Node]:
        hub = Hub(RedisBroker.from_url(redis_url), NoLog(), prefix=prefix)
        metrics = Metrics()
        counters = RedisWindows(Redis.from_url(redis_url), prefix=prefix)
        delivery = LiveNotifications(People(hub), counters, metrics, enabled=enabled,
                                     per_minute=per_minute, window_ms=window_ms)
        await asyncio.wait_for(hub.start(), TIMEOUT)
        try:
            yield Node(hub, delivery, metrics)
        finally:
            await asyncio.wait_for(delivery.stop(), TIMEOUT)
            await asyncio.wait_for(hub.stop(), TIMEOUT)
            await asyncio.wait_for(counters.stop(), TIMEOUT)

    return start


async def _until(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _quiet(receivers: Iterable[Receiver], wait: float = 0.3) -> None:
    """Give stray messages time to arrive, then check that none did."""
    await asyncio.sleep(wait)
    for receiver in receivers:
        assert receiver.got == [], (receiver.identity, receiver.got)


async def _subscribers(redis: Redis, hub: Hub, topic: str) -> int:
    """How many connections Redis counts on ``topic``'s channel (one per listening node)."""
    name = hub.topic_name(topic)
    counts = await asyncio.wait_for(redis.pubsub_numsub(name), TIMEOUT)
    return int(dict(counts).get(name.encode(), 0))


# -- over real hubs on Redis -------------------------------------------------------------------


async def test_every_session_of_the_user_hears_it_on_any_node_in_order(
    node: NodeFactory
) -> None:
    """Sent by node A, a user's notifications reach that user's sessions on both nodes,
    each once and in the order sent; nobody else hears them."""
    async with node() as a, node() as b:
        on_a, on_b = await a.arrive("bob"), await b.arrive("bob")
        carol = await b.arrive("carol")
        for title in ("first", "second", "third"):
            a.delivery.send_soon(_fact(title, user="bob"))
        await _until(lambda: len(on_a.got) == 3 and len(on_b.got) == 3, "bob's sessions")
        assert on_a.titles() == on_b.titles() == ["first", "second", "third"]
        assert set(on_b.got[0]) == {"type", "notification"}
        assert on_b.got[0]["notification"]["type"] == "review.assigned"
        await _quiet([carol])
        assert len(on_a.got) == len(on_b.got) == 3
        assert a.outcome("sent") == 3


async def test_a_role_reaches_each_session_with_that_role_in_the_tenant_and_nobody_else(
    node: NodeFactory
) -> None:
    """A notification for reviewers of acme reaches every acme session whose roles include
    reviewer, on either node, once; analysts and other tenants' reviewers hear nothing."""
    async with node() as a, node() as b:
        reviewers = [await a.arrive("rita", "reviewer"),
                     await b.arrive("rex", "analyst", "reviewer"),
                     await b.arrive("rita", "reviewer")]
        others = [await b.arrive("ann", "analyst"),
                  await a.arrive("gus", "reviewer", tenant="globex"),
                  await a.arrive("reviewer", "analyst")]  # a user named like the role
        a.delivery.send_soon(_fact("please review", role="reviewer"))
        await _until(lambda: all(r.got for r in reviewers), "every reviewer")
        await _quiet(others)
        assert [r.titles() for r in reviewers] == [["please review"]] * 3


async def test_another_tenant_with_the_same_user_id_hears_nothing(node: NodeFactory) -> None:
    """Ids are per tenant: acme's bob hears acme's notification, globex's bob does not, and
    ids that contain the channel names' separator cannot pose as another tenant's."""
    async with node() as a, node() as b:
        acme_bob = await b.arrive("bob")
        globex_bob = await b.arrive("bob", tenant="globex")
        # Unescaped, both would be people:acme:user:x:user:bob.
        tricky = await b.arrive("bob", tenant="acme:user:x")
        a.delivery.send_soon(_fact("acme only", user="bob"))
        a.delivery.send_soon(_fact("for acme's x:user:bob", user="x:user:bob"))
        await _until(lambda: bool(acme_bob.got), "acme's bob")
        await _quiet([globex_bob, tricky])
        assert acme_bob.titles() == ["acme only"]


async def test_the_throttle_holds_back_the_excess_cluster_wide_until_the_window_renews(
    node: NodeFactory
) -> None:
    """With 3 a window, the fourth and fifth notifications for bob (sent by the other node)
    are held back and counted; a role has a budget of its own; once the window renewed bob
    hears again."""
    window_ms = 1500
    async with (node(per_minute=3, window_ms=window_ms) as a,
                node(per_minute=3, window_ms=window_ms) as b):
        bob = await a.arrive("bob", "reviewer")
        started = time.monotonic()
        for n in range(3):
            a.delivery.send_soon(_fact(f"a{n}", user="bob"))
        await _until(lambda: len(bob.got) == 3, "the first three")
        for n in range(2):
            b.delivery.send_soon(_fact(f"b{n}", user="bob"))
        b.delivery.send_soon(_fact("to reviewers", role="reviewer"))
        await _until(lambda: len(bob.got) == 4, "the role's notification")
        await _until(lambda: b.outcome("throttled") == 2, "two held back")
        assert bob.titles() == ["a0", "a1", "a2", "to reviewers"]
        assert time.monotonic() - started < window_ms / 1000, "the test ran too slowly"
        await asyncio.sleep(window_ms / 1000 + 0.2)
        b.delivery.send_soon(_fact("after the window", user="bob"))
        await _until(lambda: len(bob.got) == 5, "a notification in the new window")
        assert bob.titles()[-1] == "after the window"
        assert (a.outcome("sent"), b.outcome("sent")) == (3, 2)


async def test_with_notifications_off_nothing_is_sent_and_nobody_listens(
    node: NodeFactory, redis: Redis
) -> None:
    """COEDIT_NOTIFICATIONS off: sessions join no channel and committed notifications are
    dropped (and counted as such)."""
    async with node(enabled=False) as a, node(enabled=False) as b:
        bob = await b.arrive("bob", "reviewer")
        assert await _subscribers(redis, b.hub, People.user_topic("acme", "bob")) == 0
        a.delivery.send_soon(_fact("nobody hears", user="bob"))
        a.delivery.send_soon(_fact("nobody hears either", role="reviewer"))
        await _quiet([bob])
        assert (a.outcome("disabled"), a.outcome("sent")) == (2, 0)


async def test_a_node_listens_to_a_person_only_while_it_has_a_session_of_theirs(
    node: NodeFactory, redis: Redis
) -> None:
    """Redis counts one subscriber per node that has sessions of bob (or of a reviewer);
    a node unsubscribes after its last such session leaves, not before."""
    bob_topic = People.user_topic("acme", "bob")
    role_topic = People.role_topic("acme", "reviewer")
    async with node() as a, node() as b:
        first, second = await a.arrive("bob", "reviewer"), await a.arrive("bob", "reviewer")
        elsewhere = await b.arrive("bob", "analyst")
        assert await _subscribers(redis, a.hub, bob_topic) == 2
        assert await _subscribers(redis, a.hub, role_topic) == 1
        await a.depart(first)
        assert await _subscribers(redis, a.hub, bob_topic) == 2
        assert a.delivery.people.followers("acme", user="bob") == 1
        await a.depart(second)
        assert await _subscribers(redis, a.hub, bob_topic) == 1
        assert await _subscribers(redis, a.hub, role_topic) == 0
        b.delivery.send_soon(_fact("still here", user="bob"))
        await _until(lambda: bool(elsewhere.got), "the session left on node B")
        assert first.got == second.got == []
        await b.depart(elsewhere)
        assert await _subscribers(redis, a.hub, bob_topic) == 0
        await a.depart(first)  # departing twice changes nothing


# -- end to end: real servers, real sockets ----------------------------------------------------


@pytest.fixture
async def two_servers(
    database_url: str, redis_url: str, prefix: str, redis: Redis
) -> AsyncIterator[list[RunningServer]]:
    """Two coedit servers on one database and one Redis: a cluster of two nodes."""
    async with contextlib.AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(start_server(make_settings(
            database_url, redis_url=redis_url, key_prefix=prefix, node_id=f"node{i}")))
            for i in range(2)]
        yield servers


async def test_a_session_on_another_node_receives_the_notification(
    two_servers: list[RunningServer], redis: Redis
) -> None:
    """A notification committed on node 0 reaches the addressee's WebSocket session on node
    1, and a role's notification every session with that role, without subscribing; when
    the session closes its node stops listening."""
    first, second = two_servers
    bob = await second.connect(second.token(user="bob", roles=["reviewer"]))
    carol = await first.connect(first.token(user="carol", roles=["reviewer"]))
    dave = await second.connect(second.token(user="dave", roles=["analyst"]))
    try:
        await bob.ok("heartbeat")  # any reply: the session hears its channels
        first.coedit.after_commit([_fact("for bob", user="bob")])
        message = await bob.recv_type("notification")
        assert message["notification"]["title"] == "for bob"
        first.coedit.after_commit([_fact("for reviewers", role="reviewer")])
        for client in (bob, carol):
            message = await client.recv_type("notification")
            assert message["notification"]["title"] == "for reviewers"
        for client in (bob, carol, dave):
            assert await client.nothing_more(0.3) == []
    finally:
        await asyncio.gather(*(c.close() for c in (bob, carol, dave)))
    hub = second.coedit.hub
    await _until_async(lambda: _subscribers(redis, hub, People.user_topic("acme", "bob")),
                       0, "node 1 to drop bob's channel")


async def _until_async(probe: Callable[[], Any], expected: Any, what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while await probe() != expected:
            await asyncio.sleep(0.02)


async def test_notifications_off_on_a_real_server(database_url: str) -> None:
    """COEDIT_NOTIFICATIONS off: a connected session joins no channel and is sent nothing."""
    async with start_server(make_settings(database_url, notifications=False)) as server:
        client: WsClient = await server.connect(server.token(user="bob"))
        try:
            await client.ok("heartbeat")
            assert server.coedit.notifications.people.followers("acme", user="bob") == 0
            server.coedit.after_commit([_fact("dropped", user="bob")])
            assert await client.nothing_more(0.3) == []
        finally:
            await client.close()


async def test_an_embedded_server_delivers_and_throttles_in_memory(database_url: str) -> None:
    """Without Redis one node is the cluster: a user's sessions hear its notifications, and
    the throttle (2 a minute here) holds back the third, counting it."""
    settings = make_settings(database_url, notifications_per_minute=2)
    async with start_server(settings) as server:
        token = server.token(user="bob")
        sessions = [await server.connect(token) for _ in range(2)]
        try:
            for session in sessions:
                await session.ok("heartbeat")
            server.coedit.after_commit([_fact(f"n{i}", user="bob") for i in range(3)])
            for session in sessions:
                got = [(await session.recv_type("notification"))["notification"]["title"]
                       for _ in range(2)]
                assert got == ["n0", "n1"]
                assert await session.nothing_more(0.3) == []
            registry = server.coedit.metrics.registry
            assert registry.get_sample_value("coedit_notifications_live_total",
                                             {"outcome": "throttled"}) == 1
        finally:
            await asyncio.gather(*(session.close() for session in sessions))


def test_the_settings_are_read_and_checked_at_start_up() -> None:
    """COEDIT_NOTIFICATIONS is on unless off (or 0, false, no); the per-minute throttle
    defaults to 30; bad values name their variable."""
    assert Settings.from_env({}).notifications is True
    assert Settings.from_env({}).notifications_per_minute == 30
    for off in ("off", "0", "False", " no "):
        assert Settings.from_env({"COEDIT_NOTIFICATIONS": off}).notifications is False
    for on in ("on", "1", "true"):
        assert Settings.from_env({"COEDIT_NOTIFICATIONS": on}).notifications is True
    with pytest.raises(ConfigError, match="COEDIT_NOTIFICATIONS"):
        Settings.from_env({"COEDIT_NOTIFICATIONS": "sometimes"})
    with pytest.raises(ConfigError, match="COEDIT_NOTIFICATIONS_PER_MINUTE"):
        Settings.from_env({"COEDIT_NOTIFICATIONS_PER_MINUTE": "-3"})


async def test_throttled_notifications_are_stored_but_not_pushed(database_url: str) -> None:
    """Through the real trigger (a review assigned over HTTP), with a throttle of 2 a
    minute: the reviewer's session is pushed the first two of three, and all three are
    listed for her."""
    settings = make_settings(database_url, notifications_per_minute=2)
    async with start_server(settings) as server:
        ann = server.token(user="ann", roles=["analyst"])
        rita = server.token(user="rita", roles=["reviewer"])
        docs = [(await server.create(ann, title=f"Memo {i}"))["id"] for i in range(3)]
        session = await server.connect(rita)
        try:
            await session.ok("heartbeat")
            async with server.http(ann) as http:
                for doc in docs:
                    response = await http.post(f"/api/documents/{doc}/reviews",
                                               json={"reviewer": {"id": "rita"}})
                    assert response.status_code == 201, response.text
            pushed = [(await session.recv_type("notification"))["notification"]["doc"]
                      for _ in range(2)]
            assert pushed == docs[:2]
            assert await session.nothing_more(0.5, ignore=("presence", "review")) == []
            async with server.http(rita) as http:
                listed = (await http.get("/api/notifications")).json()["items"]
            assert sorted(n["doc"] for n in listed) == sorted(docs)
        finally:
            await session.close()
