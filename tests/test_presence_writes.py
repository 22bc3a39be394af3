"""How a node writes its sessions' presence: in batches, and all at once when it stops.

A :class:`~channels.presence.Presence` over a real Redis (a key prefix of the test's own) and
a hub on the memory broker, whose subscribers stand in for the connections that receive the
diffs. The Redis client has redis-py's default pool of 100 connections, as a node's has.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from channels.broker import MemoryBroker
from channels.frames import Frame
from channels.hub import Hub
from channels.presence import Presence
from channels.presence_backend import PresenceEntry
from channels.redis_presence import RedisPresence
from tests.redis_server import redis_url_fixture  # noqa: F401  (registers ``redis_url``)

TIMEOUT = 10.0


class NoLog:
    """The hub's delta log; presence never needs it."""

    async def deltas(
        self, tenant: str, doc: str, since: int, until: int | None
    ) -> list[dict[str, Any]] | None:
        raise AssertionError("presence does not read the log")

    async def document(self, tenant: str, doc: str) -> dict[str, Any]:
        raise AssertionError("presence does not read the log")


class CountingPresence(RedisPresence):
    """The Redis backend, counting the writes it is asked for."""

    def __init__(self, client: Redis, *, prefix: str) -> None:
        super().__init__(client, prefix=prefix)
        self.writes = 0

    async def write(self, *, put: Sequence[PresenceEntry] = (),
                    remove: Sequence[PresenceEntry] = ()) -> None:
        self.writes += 1
        await super().write(put=put, remove=remove)


class Subscriber:
    """A connection following one document: keeps the presence diffs it is handed."""

    def __init__(self) -> None:
        self.diffs: list[dict[str, Any]] = []

    def put(self, frame: Frame) -> bool:
        if frame.message.get("type") == "presence":
            self.diffs.append(frame.message)
        return True

    def sessions(self, group: str) -> list[str]:
        return [e["session"] for diff in self.diffs for e in diff[group]]

    async def wait_for(self, group: str, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while len(self.sessions(group)) < count:
                await asyncio.sleep(0.01)


@pytest.fixture
async def backend(redis_url: str) -> AsyncIterator[CountingPresence]:
    prefix = f"coedit-test-{uuid.uuid4().hex[:10]}"
    client = Redis.from_url(redis_url)
    try:
        yield CountingPresence(client, prefix=prefix)
    finally:
        cleaner = Redis.from_url(redis_url)
        with contextlib.suppress(Exception):
            keys = [k async for k in cleaner.scan_iter(match=f"{prefix}:*")]
            if keys:
                await asyncio.wait_for(cleaner.delete(*keys), TIMEOUT)
        await asyncio.wait_for(cleaner.aclose(), TIMEOUT)
        await asyncio.wait_for(client.aclose(), TIMEOUT)  # again is harmless


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    hub = Hub(MemoryBroker(), NoLog(), prefix="test")
    await asyncio.wait_for(hub.start(), TIMEOUT)
    try:
        yield hub
    finally:
        await asyncio.wait_for(hub.stop(), TIMEOUT)


def _presence(backend: CountingPresence, hub: Hub, *, batch_limit: int = 2000,
              burst_interval: float = 0.1) -> Presence:
    return Presence(backend, hub, node="node-a", heartbeat_ms=10_000, batch_limit=batch_limit,
                    burst_interval=burst_interval)


async def _follow(hub: Hub, docs: Sequence[str]) -> dict[str, Subscriber]:
    followers = {}
    for doc in docs:
        followers[doc] = Subscriber()
        sub = await asyncio.wait_for(hub.join(followers[doc], "acme", doc), TIMEOUT)
        await asyncio.wait_for(hub.activate(sub, current=0, since=None), TIMEOUT)
    return followers


def _entry(session: str, doc: str, node: str = "node-a") -> PresenceEntry:
    return PresenceEntry(
        session=session, user={"id": f"user-{session}", "name": session}, doc=doc, kind="memo",
        node=node, state={"status": "viewing"}, since="2024-05-01T12:00:00.000Z", tenant="acme",
    )


async def test_a_thousand_sessions_leaving_at_once_take_a_few_writes(
    backend: CountingPresence, hub: Hub
) -> None:
    """A thousand leaves at once are written in a few batches and each one is announced."""
    docs = [f"doc-{i}" for i in range(10)]
    followers = await _follow(hub, docs)
    entries = [_entry(f"s{i}", docs[i % 10]) for i in range(1000)]
    presence = _presence(backend, hub)
    try:
        await asyncio.wait_for(asyncio.gather(*(presence.join(e) for e in entries)), TIMEOUT)
        written = backend.writes
        await asyncio.wait_for(
            asyncio.gather(*(presence.leave(e.doc, e.session) for e in entries)), TIMEOUT)
        assert backend.writes - written <= 5
        for doc, follower in followers.items():
            await follower.wait_for("leaves", 100)
            assert sorted(follower.sessions("leaves")) == sorted(
                e.session for e in entries if e.doc == doc)
            assert await asyncio.wait_for(backend.for_doc(doc), TIMEOUT) == []
    finally:
        await asyncio.wait_for(presence.stop(), TIMEOUT)


@pytest.mark.parametrize("interval", [0.1, 0.0])
async def test_a_crowd_arriving_one_by_one_is_announced_in_a_few_diffs(
    backend: CountingPresence, hub: Hub, interval: float
) -> None:
    """Sessions opening one document a few milliseconds apart: the first join goes out
    alone and at once, the rest in batches a tenth of a second apart, each to everyone
    present. Without the interval (0.0) nearly every join is a diff of its own."""
    (follower,) = (await _follow(hub, ["doc-1"])).values()
    presence = _presence(backend, hub, burst_interval=interval)
    joins: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        for i in range(120):
            joins.append(asyncio.create_task(presence.join(_entry(f"s{i}", "doc-1"))))
            await asyncio.sleep(0.003)
        await asyncio.wait_for(asyncio.gather(*joins), TIMEOUT)
        took = loop.time() - started
        await follower.wait_for("joins", 120)
        assert sorted(follower.sessions("joins")) == sorted(f"s{i}" for i in range(120))
        assert follower.diffs[0]["joins"][0]["session"] == "s0"
        if interval:
            assert [e["session"] for e in follower.diffs[0]["joins"]] == ["s0"]
            assert len(follower.diffs) <= took / interval + 2  # one at once, then 0.1 s apart
        else:
            assert len(follower.diffs) > 40
    finally:
        for task in joins:
            task.cancel()
        await asyncio.wait_for(presence.stop(), TIMEOUT)


async def test_a_leave_right_after_a_join_is_written_after_it(
    backend: CountingPresence, hub: Hub
) -> None:
    """A session that joins and leaves while both wait to be written ends up absent."""
    (follower,) = (await _follow(hub, ["doc-1"])).values()
    presence = _presence(backend, hub)
    try:
        ann = _entry("ann", "doc-1")
        await asyncio.wait_for(
            asyncio.gather(presence.join(ann), presence.leave("doc-1", "ann")), TIMEOUT)
        assert await asyncio.wait_for(backend.for_doc("doc-1"), TIMEOUT) == []
        await follower.wait_for("leaves", 1)
        assert follower.sessions("joins") == ["ann"] and follower.sessions("leaves") == ["ann"]
        assert [bool(d["joins"]) for d in follower.diffs] == [True, False]
    finally:
        await asyncio.wait_for(presence.stop(), TIMEOUT)


async def test_withdraw_removes_the_node_at_once_and_announces_each_document(
    backend: CountingPresence, hub: Hub
) -> None:
    """withdraw() deletes all this node's entries, one diff per document, and ends its writes."""
    docs = ["doc-0", "doc-1", "doc-2"]
    followers = await _follow(hub, docs)
    theirs = _entry("other", "doc-0", node="node-b")
    await asyncio.wait_for(backend.put(theirs), TIMEOUT)
    mine = [_entry(f"s{i}", docs[i % 3]) for i in range(30)]
    presence = _presence(backend, hub)
    await asyncio.wait_for(presence.start(), TIMEOUT)
    try:
        await asyncio.wait_for(asyncio.gather(*(presence.join(e) for e in mine)), TIMEOUT)
        for follower in followers.values():
            await follower.wait_for("joins", 10)
            follower.diffs.clear()
        written = backend.writes
        await asyncio.wait_for(presence.withdraw(), TIMEOUT)
        for doc, follower in followers.items():
            await follower.wait_for("leaves", 10)
            assert len(follower.diffs) == 1
            assert sorted(follower.sessions("leaves")) == sorted(
                e.session for e in mine if e.doc == doc)
        assert await asyncio.wait_for(backend.for_doc("doc-0"), TIMEOUT) == [theirs]
        assert await asyncio.wait_for(backend.for_kind("acme", "memo"), TIMEOUT) == [theirs]
        # The sessions are closing: what they do now changes nothing.
        await asyncio.wait_for(presence.join(_entry("late", "doc-1")), TIMEOUT)
        await asyncio.wait_for(presence.leave("doc-0", "other"), TIMEOUT)
        assert backend.writes == written
        assert await asyncio.wait_for(backend.for_doc("doc-1"), TIMEOUT) == []
        assert await asyncio.wait_for(backend.for_doc("doc-0"), TIMEOUT) == [theirs]
    finally:
        await asyncio.wait_for(presence.stop(), TIMEOUT)


async def test_withdraw_covers_changes_still_waiting_to_be_written(
    backend: CountingPresence, hub: Hub
) -> None:
    """Leaves still queued when the node withdraws return, and each is announced just once."""
    (follower,) = (await _follow(hub, ["doc-1"])).values()
    entries = [_entry(f"s{i}", "doc-1") for i in range(200)]
    presence = _presence(backend, hub, batch_limit=10)
    try:
        await asyncio.wait_for(asyncio.gather(*(presence.join(e) for e in entries)), TIMEOUT)
        written = backend.writes
        leaving = [asyncio.create_task(presence.leave("doc-1", e.session)) for e in entries]
        async with asyncio.timeout(TIMEOUT):
            while backend.writes == written:  # until the first batch of ten is on its way
                await asyncio.sleep(0)
        await asyncio.wait_for(presence.withdraw(), TIMEOUT)
        assert backend.writes == written + 1
        await asyncio.wait_for(asyncio.gather(*leaving), TIMEOUT)
        await follower.wait_for("leaves", 200)
        await asyncio.sleep(0.05)
        assert sorted(follower.sessions("leaves")) == sorted(e.session for e in entries)
        assert await asyncio.wait_for(backend.for_doc("doc-1"), TIMEOUT) == []
    finally:
        await asyncio.wait_for(presence.stop(), TIMEOUT)
