"""The hub's ordering guarantees, driven directly against a real store and the memory broker.

The broker is the part that misbehaves in production (reorders across nodes, loses messages
on reconnects); here we play that part by publishing out of order or not at all, and check
that a subscriber still sees every version once, in order.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from channels.broker import MemoryBroker
from channels.frames import Frame, WireFormat, encode_msgpack
from channels.hub import Hub, Subscription
from persistence.audit import Actor, AuditContext
from persistence.database import Database
from persistence.documents import DocumentStore
from server.messages import delta_message
from server.service import StoreDeltaLog

CTX = AuditContext(Actor("u1", "Ann"), "acme")
TIMEOUT = 5.0


@dataclass
class Collector:
    """A sink that records frames, as a connection's outbox would queue them."""

    frames: list[Frame]

    def put(self, frame: Frame) -> bool:
        self.frames.append(frame)
        return True

    def versions(self) -> list[int]:
        return [f.message["version"] for f in self.frames if f.message["type"] == "delta"]

    async def reached(self, version: int) -> None:
        """Wait until ``version`` arrived (a gap before it shows in the caller's assertion)."""
        async with asyncio.timeout(5):
            while version not in self.versions():
                await asyncio.sleep(0.01)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.versions()) < count:
                await asyncio.sleep(0.01)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[DocumentStore]:
    db = Database(database_url)
    try:
        yield DocumentStore(db)
    finally:
        await db.dispose()


@pytest.fixture
async def hub(store: DocumentStore) -> AsyncIterator[Hub]:
    hub = Hub(MemoryBroker(), StoreDeltaLog(store), prefix="test", gap_wait=0.02)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def _writes(store: DocumentStore, doc: str, count: int) -> list[dict[str, Any]]:
    deltas = []
    for version in range(1, count + 1):
        result = await store.apply_patch(
            CTX, doc, base=version, ops=[{"op": "add", "path": f"/k{version}", "value": version}]
        )
        assert result.delta is not None
        deltas.append(delta_message(result.delta))
    return deltas


async def _subscribe(hub: Hub, store: DocumentStore, doc: str) -> Collector:
    sink = Collector([])
    sub = await hub.join(sink, "acme", doc)
    current = (await store.get("acme", doc))["version"]
    await hub.activate(sub, current=current, since=None)
    return sink


async def test_out_of_order_publishes_are_delivered_in_order(
    hub: Hub, store: DocumentStore
) -> None:
    """Versions published as 4, 2, 3 reach the subscriber as 2, 3, 4, each once."""
    document, _ = await store.create(CTX, kind="memo", title="t")
    sink = await _subscribe(hub, store, document["id"])
    deltas = await _writes(store, document["id"], 3)
    for delta in (deltas[2], deltas[0], deltas[1], deltas[0]):
        await hub.publish(delta)
    await sink.wait_for(3)
    await asyncio.sleep(0.1)
    assert sink.versions() == [2, 3, 4]


async def test_lost_messages_are_filled_from_the_log(hub: Hub, store: DocumentStore) -> None:
    """When the broker never brings versions 2 and 3, the hub reads them from the log."""
    document, _ = await store.create(CTX, kind="memo", title="t")
    sink = await _subscribe(hub, store, document["id"])
    deltas = await _writes(store, document["id"], 3)
    await hub.publish(deltas[2])
    await sink.wait_for(3)
    assert sink.versions() == [2, 3, 4]
    assert [f.message["ops"][0]["value"] for f in sink.frames] == [1, 2, 3]


async def test_reconnect_catches_up_every_channel_from_the_log(
    hub: Hub, store: DocumentStore
) -> None:
    """After a broker reconnect, versions published while it was away arrive from the log."""
    document, _ = await store.create(CTX, kind="memo", title="t")
    sink = await _subscribe(hub, store, document["id"])
    await _writes(store, document["id"], 2)  # committed, never published
    await hub._on_reconnect()
    await sink.wait_for(2)
    assert sink.versions() == [2, 3]


async def test_joining_subscriber_gets_buffered_deltas_after_its_catch_up(
    hub: Hub, store: DocumentStore
) -> None:
    """Deltas fanned out while a subscriber is joining follow its catch-up without repeats."""
    document, _ = await store.create(CTX, kind="memo", title="t")
    early = await _subscribe(hub, store, document["id"])
    sink = Collector([])
    sub = await hub.join(sink, "acme", document["id"])
    deltas = await _writes(store, document["id"], 2)
    await hub.publish(deltas[0])  # v2 reaches the joining subscriber's buffer
    await hub.activate(sub, current=2, since=1)  # it read version 2 before v3 committed
    await hub.publish(deltas[1])
    await sink.wait_for(2)
    await early.wait_for(2)
    await asyncio.sleep(0.05)
    assert sink.versions() == [2, 3]
    assert early.versions() == [2, 3]


async def test_broker_channel_follows_first_and_last_subscriber(
    hub: Hub, store: DocumentStore
) -> None:
    """The broker subscription opens with the first local subscriber and closes after the last."""
    document, _ = await store.create(CTX, kind="memo", title="t")
    broker = hub.broker
    assert isinstance(broker, MemoryBroker)
    name = hub.channel_name(document["id"])
    first = await hub.join(Collector([]), "acme", document["id"])
    second = await hub.join(Collector([]), "acme", document["id"])
    assert name in broker._channels
    await hub.leave(first)
    assert name in broker._channels
    await hub.leave(second)
    assert name not in broker._channels


async def test_a_delta_is_encoded_once_for_all_subscribers(
    hub: Hub, store: DocumentStore
) -> None:
    """Every subscriber is handed the same frame, so each wire format is encoded only once."""
    document, _ = await store.create(CTX, kind="memo", title="t")
    sinks = [await _subscribe(hub, store, document["id"]) for _ in range(50)]
    (delta,) = await _writes(store, document["id"], 1)
    encodings = 0
    original = Frame.encoded

    def counting(frame: Frame, wire: WireFormat) -> str | bytes:
        nonlocal encodings
        if frame._json is None and frame._msgpack is None:
            encodings += 1
        return original(frame, wire)

    await hub.publish(delta)
    for sink in sinks:
        await sink.wait_for(1)
    frames = {id(sink.frames[0]) for sink in sinks}
    assert len(frames) == 1
    frame = sinks[0].frames[0]
    Frame.encoded = counting  # type: ignore[method-assign]
    try:
        payloads = {frame.encoded(WireFormat.JSON) for _ in sinks}
    finally:
        Frame.encoded = original  # type: ignore[method-assign]
    assert encodings == 1 and len(payloads) == 1


# -- the broker subscription of a channel ----------------------------------------------------


class GatedBroker(MemoryBroker):
    """A memory broker that confirms subscriptions only once the test opens ``gate``."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.fail = fail
        self.subscribes = 0

    async def subscribe(self, channel: str) -> None:
        self.subscribes += 1
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("the broker went away")
        await super().subscribe(channel)


class Follower:
    """A topic's follower; the hub keeps those in a set, so unlike Collector it is hashable."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def put(self, frame: Frame) -> bool:
        self.frames.append(frame)
        return True


@pytest.fixture
async def gated_hub(store: DocumentStore) -> AsyncIterator[Hub]:
    hub = Hub(GatedBroker(), StoreDeltaLog(store), prefix="test")
    await asyncio.wait_for(hub.start(), TIMEOUT)
    try:
        yield hub
    finally:
        assert isinstance(hub.broker, GatedBroker)
        hub.broker.gate.set()
        await asyncio.wait_for(hub.stop(), TIMEOUT)


async def test_every_joiner_waits_until_the_broker_carries_the_channel(gated_hub: Hub) -> None:
    """A second joiner does not return before the broker confirmed the first one's subscription."""
    broker = gated_hub.broker
    assert isinstance(broker, GatedBroker)
    first = asyncio.create_task(gated_hub.join(Collector([]), "acme", "doc-1"))
    second = asyncio.create_task(gated_hub.join(Collector([]), "acme", "doc-1"))
    await asyncio.sleep(0.05)
    assert not first.done() and not second.done()
    assert broker.subscribes == 1
    broker.gate.set()
    joined = await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
    assert gated_hub.subscriber_count("doc-1") == 2
    assert all(sub.doc == "doc-1" for sub in joined)


async def test_every_follower_of_a_topic_waits_until_the_broker_carries_it(
    gated_hub: Hub,
) -> None:
    """A second follower of a stage topic does not return before the broker confirmed it."""
    broker = gated_hub.broker
    assert isinstance(broker, GatedBroker)
    sinks = [Follower(), Follower()]
    first = asyncio.create_task(gated_hub.join_topic(sinks[0], "stage:acme:memo"))
    second = asyncio.create_task(gated_hub.join_topic(sinks[1], "stage:acme:memo"))
    await asyncio.sleep(0.05)
    assert not first.done() and not second.done()
    broker.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
    await asyncio.wait_for(gated_hub.publish_topic("stage:acme:memo", {"type": "presence"}),
                           TIMEOUT)
    async with asyncio.timeout(TIMEOUT):
        while not all(sink.frames for sink in sinks):
            await asyncio.sleep(0.01)
    assert broker.subscribes == 1


async def test_a_failed_broker_subscription_fails_every_joiner(store: DocumentStore) -> None:
    """When the broker refuses the subscription, every waiting joiner fails and none is left."""
    broker = GatedBroker(fail=True)
    hub = Hub(broker, StoreDeltaLog(store), prefix="test")
    await asyncio.wait_for(hub.start(), TIMEOUT)
    try:
        joins = [asyncio.create_task(hub.join(Collector([]), "acme", "doc-1")) for _ in range(3)]
        await asyncio.sleep(0.05)
        broker.gate.set()
        results = await asyncio.wait_for(asyncio.gather(*joins, return_exceptions=True),
                                         TIMEOUT)
        assert [type(r) for r in results] == [ConnectionError] * 3
        assert hub.subscriber_count("doc-1") == 0
        broker.fail = False
        await asyncio.wait_for(hub.join(Collector([]), "acme", "doc-1"), TIMEOUT)
        assert broker.subscribes == 2 and hub.subscriber_count("doc-1") == 1
    finally:
        await asyncio.wait_for(hub.stop(), TIMEOUT)


# -- a hole the log never fills ----------------------------------------------------------------


class CountingLog:
    """The store's delta log, counting how often the hub reads it."""

    def __init__(self, inner: StoreDeltaLog) -> None:
        self.inner = inner
        self.reads = 0

    async def deltas(
        self, tenant: str, doc: str, since: int, until: int | None
    ) -> list[dict[str, Any]] | None:
        self.reads += 1
        return await self.inner.deltas(tenant, doc, since, until)

    async def document(self, tenant: str, doc: str) -> dict[str, Any]:
        return await self.inner.document(tenant, doc)

    def version_seen(self, doc: str, version: int) -> None:
        self.inner.version_seen(doc, version)


async def test_a_version_the_log_never_holds_is_given_up_after_a_bound(
    store: DocumentStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed delta far ahead is dropped after a few fruitless reads, not polled forever."""
    caplog.set_level(logging.WARNING, logger="channels.hub")
    log = CountingLog(StoreDeltaLog(store))
    hub = Hub(MemoryBroker(), log, prefix="test", gap_wait=0.01, fill_attempts=5)
    async with asyncio.timeout(TIMEOUT):
        await hub.start()
        try:
            document, _ = await store.create(CTX, kind="memo", title="t")
            doc = document["id"]
            sink = await _subscribe(hub, store, doc)
            bogus = {"type": "delta", "doc": doc, "version": 7, "ops": [], "event": 0}
            await hub.broker.publish(hub.channel_name(doc), encode_msgpack(bogus))
            while not any("cannot follow on" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.01)
            reads = log.reads
            assert reads <= 6
            await asyncio.sleep(0.2)
            assert log.reads == reads  # the filler stopped
            (delta,) = await _writes(store, doc, 1)
            await hub.publish(delta)
            await sink.wait_for(1)
            await asyncio.sleep(0.05)
            assert sink.versions() == [2]
        finally:
            await hub.stop()


# -- several sessions joining one channel at once ---------------------------------------------


async def test_a_joiner_that_read_a_lower_version_than_the_first_activation_misses_nothing(
    hub: Hub, store: DocumentStore
) -> None:
    """Two sessions join a new channel; the one whose read came first activates second and
    still gets the version between its read and the other's (the gap of issue 17)."""
    document, _ = await store.create(CTX, kind="memo", title="t")
    doc = document["id"]
    early, late = Collector([]), Collector([])
    early_sub = await hub.join(early, "acme", doc)
    late_sub = await hub.join(late, "acme", doc)
    early_read = (await store.get("acme", doc))["version"]  # 1
    deltas = await _writes(store, doc, 2)
    await hub.publish(deltas[0])  # v2: the channel has no version yet, it waits in pending
    late_read = (await store.get("acme", doc))["version"]  # 3
    await hub.activate(late_sub, current=late_read, since=None)  # the channel starts at 3
    await hub.activate(early_sub, current=early_read, since=None)
    await hub.publish(deltas[1])
    (delta,) = await _writes_from(store, doc, 3, 1)
    await hub.publish(delta)
    await early.wait_for(3)
    await late.wait_for(1)
    await asyncio.sleep(0.05)
    assert early.versions() == [2, 3, 4]
    assert late.versions() == [4]


async def test_a_channel_reset_while_a_session_joins_reaches_that_session(
    store: DocumentStore,
) -> None:
    """When the log cannot fill a hole while a session is joining, that session gets the reset
    too, and then every later version in order."""
    log = ForgetfulLog(StoreDeltaLog(store))
    hub = Hub(MemoryBroker(), log, prefix="test", gap_wait=0.01)
    async with asyncio.timeout(TIMEOUT):
        await hub.start()
        try:
            document, _ = await store.create(CTX, kind="memo", title="t")
            doc = document["id"]
            live = await _subscribe(hub, store, doc)
            joining = Collector([])
            sub = await hub.join(joining, "acme", doc)
            read = (await store.get("acme", doc))["version"]  # 1
            deltas = await _writes(store, doc, 3)
            log.forget = True  # v2 and v3 are lost by the broker and the log
            await hub.publish(deltas[2])
            while not any(f.message["type"] == "reset" for f in live.frames):
                await asyncio.sleep(0.01)
            log.forget = False
            await hub.activate(sub, current=read, since=None)
            (delta,) = await _writes_from(store, doc, 4, 1)
            await hub.publish(delta)
            await joining.wait_for(1)
            kinds = [(f.message["type"], f.message["version"]) for f in joining.frames]
            assert kinds == [("reset", 4), ("delta", 5)]
        finally:
            await hub.stop()


async def test_many_sessions_joining_together_under_writes_see_no_gap(
    hub: Hub, store: DocumentStore
) -> None:
    """Rounds of ten sessions joining a channel nobody follows, while a writer commits and
    publishes, with random delays between each session's steps: every session receives every
    version after the one it read, once and in order."""
    rng = random.Random(17)
    document, _ = await store.create(CTX, kind="memo", title="t")
    doc = document["id"]
    stop = asyncio.Event()

    async def writer() -> None:
        version = (await store.get("acme", doc))["version"]
        while not stop.is_set():
            result = await store.apply_patch(
                CTX, doc, base=version, ops=[{"op": "add", "path": "/n", "value": version}])
            assert result.delta is not None
            version += 1
            hub.publish_soon(delta_message(result.delta))
            await asyncio.sleep(rng.random() * 0.004)

    async def session(since_lag: int | None) -> tuple[Collector, Subscription, int]:
        sink = Collector([])
        sub = await hub.join(sink, "acme", doc)
        await asyncio.sleep(rng.random() * 0.01)
        current = (await store.get("acme", doc))["version"]
        await asyncio.sleep(rng.random() * 0.01)
        since = None if since_lag is None else max(1, current - since_lag)
        await hub.activate(sub, current=current, since=since)
        return sink, sub, current if since is None else since

    writing = asyncio.create_task(writer())
    try:
        async with asyncio.timeout(60):
            for _round in range(15):
                joined = await asyncio.gather(*(
                    session(rng.choice([None, 0, 2, 5])) for _ in range(10)))
                await asyncio.sleep(0.03)
                stop.set()
                await writing
                last = (await store.get("acme", doc))["version"]
                for sink, _sub, start in joined:
                    await sink.reached(last)
                    assert sink.versions() == list(range(start + 1, last + 1))
                for _sink, sub, _start in joined:
                    await hub.leave(sub)
                assert hub.subscriber_count(doc) == 0
                stop.clear()
                writing = asyncio.create_task(writer())
    finally:
        stop.set()
        await asyncio.wait_for(writing, TIMEOUT)


class ForgetfulLog(CountingLog):
    """A delta log that, while ``forget`` is set, no longer serves old versions."""

    def __init__(self, inner: StoreDeltaLog) -> None:
        super().__init__(inner)
        self.forget = False

    async def deltas(
        self, tenant: str, doc: str, since: int, until: int | None
    ) -> list[dict[str, Any]] | None:
        if self.forget:
            return None
        return await super().deltas(tenant, doc, since, until)


async def _writes_from(
    store: DocumentStore, doc: str, base: int, count: int
) -> list[dict[str, Any]]:
    deltas = []
    for version in range(base, base + count):
        result = await store.apply_patch(
            CTX, doc, base=version, ops=[{"op": "add", "path": f"/m{version}", "value": version}]
        )
        assert result.delta is not None
        deltas.append(delta_message(result.delta))
    return deltas
