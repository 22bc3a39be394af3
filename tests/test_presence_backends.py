"""One conformance suite for every :class:`~channels.presence_backend.PresenceBackend`.

Every backend runs the same tests through one parametrized fixture (``"memory"``,
``"redis"``, ``"redis-cluster"``: the Redis backend on a Redis Cluster, where one change
spans several shards). Node liveness and reaping only mean something where nodes can die
apart from each other, so those tests are parametrized over the two Redis kinds alone. Redis
is the machine's shared server (``COEDIT_TEST_REDIS``) or a private one, the cluster one of
this run's own (``COEDIT_TEST_REDIS_CLUSTER`` names another), under a key prefix of the test's
own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster

from channels.presence_backend import MemoryPresence, PresenceBackend, PresenceEntry
from channels.redis_client import connect
from channels.redis_presence import PARSED_FROM, RedisPresence
from tests.redis_server import (  # noqa: F401  (registers the fixtures under their names)
    redis_cluster_url_fixture,
    redis_url_fixture,
)

TIMEOUT = 5.0


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def presence_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def presence(
    presence_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[PresenceBackend]:
    backend: PresenceBackend
    prefix = f"coedit-test-{uuid.uuid4().hex[:10]}"
    client: Redis | RedisCluster | None = None
    if presence_kind == "memory":
        backend = MemoryPresence()
    else:
        fixture = "redis_cluster_url" if presence_kind == "redis-cluster" else "redis_url"
        client = connect(request.getfixturevalue(fixture))
        backend = RedisPresence(client, prefix=prefix)
    try:
        yield backend
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
                for key in keys:  # one by one: a cluster's keys sit in many slots
                    await asyncio.wait_for(client.delete(key), TIMEOUT)
        await asyncio.wait_for(backend.close(), TIMEOUT)


redis_only = pytest.mark.parametrize("presence_kind", ["redis", "redis-cluster"],
                                     indirect=True)
single_redis_only = pytest.mark.parametrize("presence_kind", ["redis"], indirect=True)


def _entry(session: str, doc: str = "doc-1", *, kind: str = "memo", tenant: str = "acme",
           node: str = "node-a", status: str = "viewing") -> PresenceEntry:
    return PresenceEntry(
        session=session, user={"id": f"user-{session}", "name": session.title()}, doc=doc,
        kind=kind, node=node, state={"status": status}, since="2024-05-01T12:00:00.000Z",
        tenant=tenant,
    )


def _sessions(entries: list[PresenceEntry]) -> list[str]:
    return sorted(e.session for e in entries)


async def _put(backend: PresenceBackend, *entries: PresenceEntry) -> None:
    for entry in entries:
        await asyncio.wait_for(backend.put(entry), TIMEOUT)


# -- the conformance suite --------------------------------------------------------------------


async def test_for_doc_lists_the_entries_put_on_that_document(
    presence: PresenceBackend,
) -> None:
    """for_doc() returns exactly the entries put on that document, unchanged."""
    ann, bob, other = _entry("ann"), _entry("bob"), _entry("cid", doc="doc-2")
    await _put(presence, ann, bob, other)
    found = await asyncio.wait_for(presence.for_doc("doc-1"), TIMEOUT)
    assert sorted(found, key=lambda e: e.session) == [ann, bob]
    assert found[0].tenant == "acme"
    assert await asyncio.wait_for(presence.for_doc("nobody-here"), TIMEOUT) == []


async def test_put_again_replaces_the_sessions_entry(presence: PresenceBackend) -> None:
    """Putting a session's entry again updates it in place instead of adding a second one."""
    await _put(presence, _entry("ann"), _entry("ann", status="editing"))
    for found in (await asyncio.wait_for(presence.for_doc("doc-1"), TIMEOUT),
                  await asyncio.wait_for(presence.for_kind("acme", "memo"), TIMEOUT)):
        assert [e.state for e in found] == [{"status": "editing"}]


async def test_an_entry_read_again_is_the_same_object_until_it_changes(
    presence: PresenceBackend,
) -> None:
    """On a crowded document, reading the entries again hands back the same objects, so
    each is encoded once for all the subscribe replies that list it; a new state is a new
    entry."""
    crowd = [_entry(f"s{i}") for i in range(PARSED_FROM)]
    await _put(presence, _entry("ann"), _entry("bob"))
    await asyncio.wait_for(presence.write(put=crowd), TIMEOUT)
    first = {e.session: e for e in await asyncio.wait_for(presence.for_doc("doc-1"), TIMEOUT)}
    text = first["ann"].json_bytes()
    await _put(presence, _entry("bob", status="editing"))
    again = {e.session: e for e in await asyncio.wait_for(presence.for_doc("doc-1"), TIMEOUT)}
    assert len(again) == PARSED_FROM + 2
    assert again["ann"] is first["ann"] and again["ann"].json_bytes() is text
    assert again["bob"] is not first["bob"] and again["bob"].state == {"status": "editing"}
    assert json.loads(again["bob"].json_bytes())["state"] == {"status": "editing"}


async def test_for_kind_lists_one_tenants_entries_of_that_kind(
    presence: PresenceBackend,
) -> None:
    """for_kind() spans documents but never other kinds or other tenants."""
    await _put(
        presence,
        _entry("ann", "doc-1"), _entry("bob", "doc-2"),
        _entry("cid", "doc-3", kind="valuation"),
        _entry("dan", "doc-4", tenant="globex"),
    )
    memos = await asyncio.wait_for(presence.for_kind("acme", "memo"), TIMEOUT)
    assert _sessions(memos) == ["ann", "bob"]
    assert {e.doc for e in memos} == {"doc-1", "doc-2"}
    assert _sessions(await asyncio.wait_for(presence.for_kind("globex", "memo"), TIMEOUT)) == [
        "dan"]
    assert _sessions(
        await asyncio.wait_for(presence.for_kind("acme", "valuation"), TIMEOUT)) == ["cid"]
    assert await asyncio.wait_for(presence.for_kind("initech", "memo"), TIMEOUT) == []


async def test_remove_returns_the_entry_and_forgets_it(presence: PresenceBackend) -> None:
    """remove() hands back the removed entry and it leaves both the doc and kind views."""
    ann, bob = _entry("ann"), _entry("bob")
    await _put(presence, ann, bob)
    assert await asyncio.wait_for(presence.remove("doc-1", "ann"), TIMEOUT) == ann
    assert _sessions(await asyncio.wait_for(presence.for_doc("doc-1"), TIMEOUT)) == ["bob"]
    assert _sessions(await asyncio.wait_for(presence.for_kind("acme", "memo"), TIMEOUT)) == [
        "bob"]


async def test_remove_of_an_absent_entry_returns_none(presence: PresenceBackend) -> None:
    """Removing what is not there (twice, or never put) returns None and changes nothing."""
    await _put(presence, _entry("ann"))
    assert await asyncio.wait_for(presence.remove("doc-1", "ghost"), TIMEOUT) is None
    assert await asyncio.wait_for(presence.remove("doc-9", "ann"), TIMEOUT) is None
    assert await asyncio.wait_for(presence.remove("doc-1", "ann"), TIMEOUT) is not None
    assert await asyncio.wait_for(presence.remove("doc-1", "ann"), TIMEOUT) is None
    assert await asyncio.wait_for(presence.for_doc("doc-1"), TIMEOUT) == []


async def test_write_puts_and_removes_many_entries_at_once(presence: PresenceBackend) -> None:
    """One write() stores some sessions' entries and deletes others', across documents."""
    ann, bob = _entry("ann", "doc-1"), _entry("bob", "doc-2")
    cid, dan = _entry("cid", "doc-1", kind="valuation"), _entry("dan", "doc-2")
    await _put(presence, ann, bob)
    await asyncio.wait_for(presence.write(put=[cid, dan], remove=[ann, bob]), TIMEOUT)
    assert _sessions(await asyncio.wait_for(presence.for_doc("doc-1"), TIMEOUT)) == ["cid"]
    assert _sessions(await asyncio.wait_for(presence.for_doc("doc-2"), TIMEOUT)) == ["dan"]
    assert _sessions(await asyncio.wait_for(presence.for_kind("acme", "memo"), TIMEOUT)) == [
        "dan"]
    await asyncio.wait_for(presence.write(remove=[ann, cid]), TIMEOUT)  # ann is gone already
    assert await asyncio.wait_for(presence.for_doc("doc-1"), TIMEOUT) == []
    assert await asyncio.wait_for(presence.remove("doc-1", "cid"), TIMEOUT) is None


async def test_withdraw_removes_exactly_one_nodes_entries(presence: PresenceBackend) -> None:
    """withdraw() hands back and removes a node's entries on every document, no one else's."""
    mine = [_entry("ann", "doc-1", node="node-a"), _entry("bob", "doc-2", node="node-a")]
    theirs = _entry("cid", "doc-1", node="node-b")
    await _put(presence, *mine, theirs)
    gone = await asyncio.wait_for(presence.withdraw("node-a"), TIMEOUT)
    assert sorted(gone, key=lambda e: e.session) == mine
    assert await asyncio.wait_for(presence.for_doc("doc-1"), TIMEOUT) == [theirs]
    assert await asyncio.wait_for(presence.for_doc("doc-2"), TIMEOUT) == []
    assert await asyncio.wait_for(presence.for_kind("acme", "memo"), TIMEOUT) == [theirs]
    assert await asyncio.wait_for(presence.withdraw("node-a"), TIMEOUT) == []


async def test_live_nodes_are_not_reported_dead(presence: PresenceBackend) -> None:
    """A node that refreshed its liveness recently is not among dead_nodes()."""
    await asyncio.wait_for(presence.node_alive("node-a", 10_000), TIMEOUT)
    await _put(presence, _entry("ann", node="node-a"))
    assert "node-a" not in await asyncio.wait_for(presence.dead_nodes(), TIMEOUT)


# -- node liveness and reaping (Redis) --------------------------------------------------------


async def _wait_dead(presence: PresenceBackend, node: str, timeout: float = 3.0) -> list[str]:
    """dead_nodes() once it includes ``node``; fails if it never does within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while node not in (dead := await presence.dead_nodes()):
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"{node} was not reported dead within {timeout}s") from None
    return dead


@redis_only
async def test_a_node_whose_liveness_expired_is_reported_dead(
    presence: PresenceBackend,
) -> None:
    """dead_nodes() names a node once its liveness key expired, and only that node."""
    await asyncio.wait_for(presence.node_alive("node-gone", 100), TIMEOUT)
    await asyncio.wait_for(presence.node_alive("node-here", 30_000), TIMEOUT)
    assert "node-gone" not in await asyncio.wait_for(presence.dead_nodes(), TIMEOUT)
    assert await _wait_dead(presence, "node-gone") == ["node-gone"]


@redis_only
async def test_reap_hands_a_dead_nodes_entries_to_one_caller(
    presence: PresenceBackend,
) -> None:
    """reap() returns a dead node's entries once, removes them everywhere, spares live nodes."""
    gone_1 = _entry("ann", "doc-1", node="node-gone")
    gone_2 = _entry("bob", "doc-2", node="node-gone")
    kept = _entry("cid", "doc-1", node="node-here")
    await asyncio.wait_for(presence.node_alive("node-gone", 100), TIMEOUT)
    await asyncio.wait_for(presence.node_alive("node-here", 30_000), TIMEOUT)
    await _put(presence, gone_1, gone_2, kept)
    await _wait_dead(presence, "node-gone")

    reaped = await asyncio.wait_for(presence.reap("node-gone"), TIMEOUT)
    assert sorted(reaped, key=lambda e: e.session) == [gone_1, gone_2]
    assert await asyncio.wait_for(presence.reap("node-gone"), TIMEOUT) == []

    assert _sessions(await asyncio.wait_for(presence.for_doc("doc-1"), TIMEOUT)) == ["cid"]
    assert await asyncio.wait_for(presence.for_doc("doc-2"), TIMEOUT) == []
    assert _sessions(await asyncio.wait_for(presence.for_kind("acme", "memo"), TIMEOUT)) == [
        "cid"]
    assert "node-gone" not in await asyncio.wait_for(presence.dead_nodes(), TIMEOUT)


@redis_only
async def test_concurrent_reapers_share_nothing_twice(presence: PresenceBackend) -> None:
    """When several nodes reap the same dead node at once, exactly one gets its entries."""
    await asyncio.wait_for(presence.node_alive("node-gone", 100), TIMEOUT)
    await _put(presence, _entry("ann", node="node-gone"), _entry("bob", node="node-gone"))
    await _wait_dead(presence, "node-gone")
    results = await asyncio.wait_for(
        asyncio.gather(*(presence.reap("node-gone") for _ in range(5))), TIMEOUT)
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, 2]


@redis_only
async def test_a_withdrawn_node_is_never_reaped(presence: PresenceBackend) -> None:
    """After withdraw() the node is neither alive nor listed: nobody finds it dead later."""
    await asyncio.wait_for(presence.node_alive("node-a", 100), TIMEOUT)
    await _put(presence, _entry("ann", node="node-a"))
    await asyncio.wait_for(presence.withdraw("node-a"), TIMEOUT)
    await asyncio.sleep(0.3)  # the liveness key would have expired by now
    assert "node-a" not in await asyncio.wait_for(presence.dead_nodes(), TIMEOUT)


@pytest.mark.parametrize("presence_kind", ["redis-cluster"], indirect=True)
async def test_a_change_cut_between_shards_leaves_nothing_withdraw_misses(
    presence: PresenceBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cluster, a put or a removal that fails after its first shard step leaves its
    entries where the node's withdraw still finds and removes them: no orphan in any view."""
    assert isinstance(presence, RedisPresence)
    steps = presence._run
    done: list[int] = []

    async def cut_after_first(queue: Any) -> None:
        if done:
            raise ConnectionError("the next shard is gone")
        done.append(1)
        await steps(queue)

    ann, bob = _entry("ann", "doc-1", node="node-a"), _entry("bob", "doc-2", node="node-a")
    await _put(presence, bob)
    monkeypatch.setattr(presence, "_run", cut_after_first)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(presence.put(ann), TIMEOUT)  # in the index, not in the views
    done.clear()
    with pytest.raises(ConnectionError):  # out of the views, still in the index (goes last)
        await asyncio.wait_for(presence.write(remove=[bob]), TIMEOUT)
    monkeypatch.setattr(presence, "_run", steps)
    assert _sessions(await asyncio.wait_for(presence.for_doc("doc-2"), TIMEOUT)) == []
    gone = await asyncio.wait_for(presence.withdraw("node-a"), TIMEOUT)
    assert _sessions(gone) == ["ann", "bob"]
    for doc in ("doc-1", "doc-2"):
        assert await asyncio.wait_for(presence.for_doc(doc), TIMEOUT) == []
    assert await asyncio.wait_for(presence.for_kind("acme", "memo"), TIMEOUT) == []


@single_redis_only
async def test_bulk_changes_are_one_or_two_round_trips(
    presence: PresenceBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write() of a thousand entries is one pipeline; withdraw() one read and one pipeline."""
    calls: list[str] = []
    execute_command = Redis.execute_command
    pipeline_execute = Pipeline.execute

    async def command(self: Redis, *args: Any, **options: Any) -> Any:
        calls.append(str(args[0]))
        return await execute_command(self, *args, **options)  # type: ignore[no-untyped-call]

    async def pipeline(self: Pipeline, raise_on_error: bool = True) -> list[Any]:
        calls.append("pipeline")
        return await pipeline_execute(self, raise_on_error)

    monkeypatch.setattr(Redis, "execute_command", command)
    monkeypatch.setattr(Pipeline, "execute", pipeline)
    entries = [_entry(f"s{i}", f"doc-{i % 50}", node="node-a") for i in range(1000)]
    await asyncio.wait_for(presence.write(put=entries[:500]), TIMEOUT)
    await asyncio.wait_for(presence.write(put=entries[500:], remove=entries[:250]), TIMEOUT)
    assert calls == ["pipeline", "pipeline"]
    calls.clear()
    gone = await asyncio.wait_for(presence.withdraw("node-a"), TIMEOUT)
    assert len(gone) == 750
    assert calls == ["HGETALL", "pipeline"]


async def test_a_burst_larger_than_the_pool_waits_for_connections(redis_url: str) -> None:
    """More calls at once than the Redis client's pool has connections wait, none fails."""
    prefix = f"coedit-test-{uuid.uuid4().hex[:10]}"
    backend = RedisPresence(Redis.from_url(redis_url, max_connections=4), prefix=prefix)
    try:
        entries = [_entry(f"s{i}") for i in range(50)]
        await asyncio.wait_for(asyncio.gather(*(backend.put(e) for e in entries)), TIMEOUT)
        found = await asyncio.wait_for(
            asyncio.gather(*(backend.for_doc("doc-1") for _ in range(50))), TIMEOUT)
        assert [len(f) for f in found] == [50] * 50
        await asyncio.wait_for(
            asyncio.gather(*(backend.remove("doc-1", e.session) for e in entries)), TIMEOUT)
        assert await asyncio.wait_for(backend.for_doc("doc-1"), TIMEOUT) == []
    finally:
        await asyncio.wait_for(backend.withdraw("node-a"), TIMEOUT)
        await asyncio.wait_for(backend.close(), TIMEOUT)


async def test_a_reaped_node_learns_it_even_when_its_first_refresh_lost_its_reply(
    redis_url: str,
) -> None:
    """After other nodes reaped a node, its refresh answers False even if the first refresh
    after the reap ran on Redis but lost its reply (redis-py then sends it again, and the
    retry finds the liveness key set): the node then writes its entries back. The chaos run
    found nodes that stayed alive with none of their sessions present after such a cut."""
    prefix = f"coedit-test-{uuid.uuid4().hex[:10]}"
    client = Redis.from_url(redis_url)
    node = RedisPresence(client, prefix=prefix)          # the node's own view
    elsewhere = RedisPresence(client, prefix=prefix)     # the reaper, and the lost attempt
    entry = _entry("ann", node="node-a")
    try:
        assert await asyncio.wait_for(node.node_alive("node-a", 10_000), TIMEOUT) is False
        await _put(node, entry)
        assert await asyncio.wait_for(node.node_alive("node-a", 10_000), TIMEOUT) is True
        assert await asyncio.wait_for(elsewhere.reap("node-a"), TIMEOUT) == [entry]
        # The attempt whose reply was lost: it ran, and nobody told the node what it found.
        await asyncio.wait_for(elsewhere.node_alive("node-a", 10_000), TIMEOUT)
        assert await asyncio.wait_for(node.node_alive("node-a", 10_000), TIMEOUT) is False
        assert await asyncio.wait_for(node.node_alive("node-a", 10_000), TIMEOUT) is True
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await asyncio.wait_for(client.delete(*keys), TIMEOUT)
        await asyncio.wait_for(client.aclose(), TIMEOUT)
