"""Redis as the presence backend of a cluster, shared by every node.

Unlike memory, Redis outlives any one node, so this is where liveness keys expire and a dead
node's entries are reaped by the others.

On a Redis Cluster every command here names one key, or keys of one hash slot, so each runs on
one shard. A change that touches several hashes (a document's, a kind's, a node's) cannot be
one ``MULTI`` there, as their keys live on different shards; it runs in steps ordered so that
whatever a failure leaves behind can still be cleaned up: a node's own hash (the index that
``withdraw`` and ``reap`` read) gains an entry before the views do and loses it after them,
so no entry is ever visible in a view without being found by its node's reaper.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from redis.asyncio.cluster import RedisCluster as _Cluster

from channels.presence_backend import PresenceBackend, PresenceEntry
from channels.redis_client import is_cluster

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline
    from redis.asyncio.cluster import ClusterPipeline, RedisCluster
    from redis.typing import EncodableT, FieldT

    AnyPipeline = Pipeline | ClusterPipeline

__all__ = ["RedisPresence"]

# A node that was reaped learns it within a few refreshes; a day keeps the counter of a node
# id that never comes back from staying forever.
REAPS_TTL_MS = 24 * 3600 * 1000
# Parsed entries kept for reuse (about 1.5 KB each with their text and encodings), and
# from how many entries on one document (or kind) on: below, parsing anew costs less than
# the memory of a second copy of every entry, about a tenth of a connection's.
PARSED_LIMIT = 20_000
PARSED_FROM = 64


class RedisPresence(PresenceBackend):
    """Keys (all under ``prefix``): ``presence:doc:{doc}`` and ``presence:kind:{tenant}:{kind}``
    and ``presence:node:{node}`` hashes of entries, ``nodes`` (set of node ids) and
    ``alive:{node}`` (a key that expires unless the node refreshes it).

    A write of many entries is one ``MULTI`` pipeline with one ``HSET`` or ``HDEL`` per hash
    touched, however many entries it carries.

    redis-py's pool raises ``MaxConnectionsError`` at once when all its connections are busy
    (100 by default), which a burst of subscribes reading presence would hit. At most
    ``max_in_flight`` round trips (default: the pool's size) are made at once; the others
    wait for one to finish."""

    def __init__(self, client: Redis | RedisCluster, *, prefix: str,
                 max_in_flight: int | None = None) -> None:
        self._r = client
        self._p = prefix
        self._cluster = is_cluster(client)
        pool_size = getattr(getattr(client, "connection_pool", None), "max_connections", None)
        if max_in_flight is None:
            max_in_flight = pool_size if isinstance(pool_size, int) else 100
        self._slots = asyncio.Semaphore(max(1, min(max_in_flight, 10_000)))
        # node -> (store epoch, reap counter) at its last refresh
        self._marks: dict[str, tuple[bytes | None, bytes | None]] = {}
        self._parsed: dict[bytes | str, PresenceEntry] = {}  # stored text -> entry (_parse)

    def _doc(self, doc: str) -> str:
        return f"{self._p}:presence:doc:{doc}"

    def _kind(self, tenant: str, kind: str) -> str:
        return f"{self._p}:presence:kind:{tenant}:{kind}"

    def _node(self, node: str) -> str:
        return f"{self._p}:presence:node:{node}"

    def _reaps(self, node: str) -> str:
        """How many times the node's entries were removed by a reap (or its withdrawal)."""
        return f"{self._p}:presence:reaps:{node}"

    async def write(self, *, put: Sequence[PresenceEntry] = (),
                    remove: Sequence[PresenceEntry] = ()) -> None:
        if not put and not remove:
            return
        views_put, index_put, nodes = self._put_maps(put)
        views_del, index_del = self._delete_fields(remove)
        if not self._cluster:
            async with self._slots, self._r.pipeline(transaction=True) as pipe:
                self._queue_hset(pipe, {**views_put, **index_put}, nodes)
                self._queue_hdel(pipe, {**views_del, **index_del})
                await pipe.execute()
            return
        # Cluster: the index first and last, see the module's docstring.
        if index_put:
            await self._run(lambda pipe: self._queue_hset(pipe, index_put, nodes))
        if views_put or views_del:
            def views(pipe: AnyPipeline) -> None:
                self._queue_hset(pipe, views_put, set())
                self._queue_hdel(pipe, views_del)

            await self._run(views)
        if index_del:
            await self._run(lambda pipe: self._queue_hdel(pipe, index_del))

    async def _run(self, queue: Callable[[AnyPipeline], object]) -> None:
        """One pipeline of commands (on a cluster: one round trip per shard it touches)."""
        async with self._slots, self._r.pipeline(transaction=False) as pipe:
            queue(pipe)
            await pipe.execute()

    def _put_maps(self, entries: Iterable[PresenceEntry]) -> tuple[
            dict[str, dict[FieldT, EncodableT]], dict[str, dict[FieldT, EncodableT]], set[str]]:
        """The views' hashes (per document, per tenant and kind), the nodes' hashes, and the
        nodes named, with the fields ``entries`` set in each."""
        views: dict[str, dict[FieldT, EncodableT]] = {}
        index: dict[str, dict[FieldT, EncodableT]] = {}
        nodes: set[str] = set()
        for entry in entries:
            text = entry.dumps()
            field_name = f"{entry.doc}/{entry.session}"
            views.setdefault(self._doc(entry.doc), {})[entry.session] = text
            views.setdefault(self._kind(entry.tenant, entry.kind), {})[field_name] = text
            index.setdefault(self._node(entry.node), {})[field_name] = text
            nodes.add(entry.node)
        return views, index, nodes

    def _delete_fields(self, entries: Iterable[PresenceEntry]) -> tuple[
            dict[str, list[str]], dict[str, list[str]]]:
        views: dict[str, list[str]] = {}
        index: dict[str, list[str]] = {}
        for entry in entries:
            field_name = f"{entry.doc}/{entry.session}"
            views.setdefault(self._doc(entry.doc), []).append(entry.session)
            views.setdefault(self._kind(entry.tenant, entry.kind), []).append(field_name)
            index.setdefault(self._node(entry.node), []).append(field_name)
        return views, index

    def _queue_hset(self, pipe: AnyPipeline, hashes: dict[str, dict[FieldT, EncodableT]],
                    nodes: set[str]) -> None:
        for key, mapping in hashes.items():
            pipe.hset(key, mapping=mapping)
        if nodes:
            pipe.sadd(f"{self._p}:nodes", *nodes)

    @staticmethod
    def _queue_hdel(pipe: AnyPipeline, hashes: dict[str, list[str]]) -> None:
        for key, fields in hashes.items():
            pipe.hdel(key, *fields)

    async def remove(self, doc: str, session: str) -> PresenceEntry | None:
        async with self._slots:
            raw = await self._r.hget(self._doc(doc), session)
        if raw is None:
            return None
        entry = PresenceEntry.loads(raw)
        await self.write(remove=[entry])
        return entry

    async def for_doc(self, doc: str) -> list[PresenceEntry]:
        async with self._slots:
            raw = await self._r.hgetall(self._doc(doc))
        return self._parse(raw.values())

    def _parse(self, values: Collection[bytes | str]) -> list[PresenceEntry]:
        """Entries as stored, parsed once each while they last (on a crowded document).

        Every subscribe reads all the entries of its document. Parsed afresh, each would be
        a new object, to be encoded afresh into the reply; kept, an entry is parsed and
        encoded once however many subscribers list it. An entry is never changed in place
        (a new state is a new entry, stored as a new text), so its text names it.
        """
        if len(values) < PARSED_FROM:
            return [PresenceEntry.loads(value) for value in values]
        parsed = self._parsed
        entries = []
        for value in values:
            entry = parsed.get(value)
            if entry is None:
                entry = PresenceEntry.loads(value)
                if len(parsed) >= PARSED_LIMIT:
                    parsed.clear()
                parsed[value] = entry
            entries.append(entry)
        return entries

    async def for_kind(self, tenant: str, kind: str) -> list[PresenceEntry]:
        async with self._slots:
            raw = await self._r.hgetall(self._kind(tenant, kind))
        return self._parse(raw.values())

    async def node_alive(self, node: str, ttl_ms: int) -> bool:
        """One round trip: refresh, and read what says whether the node's entries survived.

        The previous value of the liveness key alone cannot say it: the first refresh after
        a reap (or a restart of Redis) finds the key gone, but when its reply is lost (a cut
        link; redis-py then sends the command again) the retry finds the key the lost attempt
        set, and the node would never write its entries back. So the refresh also reads two
        values that only a reap or a restart change: the node's reap counter and the store's
        epoch (a random value the first refresh after a restart sets). Reading them changes
        nothing, so a lost reply only delays the news to the next refresh.
        """
        async with self._slots, self._r.pipeline(transaction=False) as pipe:
            pipe.set(f"{self._p}:alive:{node}", b"1", px=ttl_ms, get=True)
            pipe.sadd(f"{self._p}:nodes", node)
            pipe.set(f"{self._p}:presence:epoch", uuid.uuid4().hex.encode(), nx=True)
            pipe.get(f"{self._p}:presence:epoch")
            pipe.get(self._reaps(node))
            previous, _, _, epoch, reaps = await pipe.execute()
        marks = (epoch, reaps)
        changed = node in self._marks and self._marks[node] != marks
        self._marks[node] = marks
        return previous is not None and not changed

    async def dead_nodes(self) -> list[str]:
        async with self._slots:
            members = await self._r.smembers(f"{self._p}:nodes")
        nodes = [n.decode() if isinstance(n, bytes) else str(n) for n in members]
        if not nodes:
            return []
        keys = [f"{self._p}:alive:{n}" for n in nodes]
        async with self._slots:
            # The liveness keys are spread over the cluster's slots: one MGET per slot there.
            alive = await (self._r.mget_nonatomic(keys) if isinstance(self._r, _Cluster)
                           else self._r.mget(keys))
        return [n for n, flag in zip(nodes, alive, strict=True) if flag is None]

    async def reap(self, node: str) -> list[PresenceEntry]:
        # Several nodes may notice the same death; a short-lived claim lets one of them reap.
        async with self._slots:
            claimed = await self._r.set(f"{self._p}:reap:{node}", b"1", nx=True, px=5000)
        if not claimed:
            return []
        return await self._remove_node(node)

    async def withdraw(self, node: str) -> list[PresenceEntry]:
        return await self._remove_node(node)

    async def _remove_node(self, node: str) -> list[PresenceEntry]:
        """Two round trips for any number of entries: read the node's hash, delete it all
        (on a cluster, the views' fields before the node's own keys)."""
        async with self._slots:
            raw = await self._r.hgetall(self._node(node))
        entries = [PresenceEntry.loads(v) for v in raw.values()]
        views, index = self._delete_fields(entries)

        def drop_node(pipe: AnyPipeline) -> None:
            pipe.delete(self._node(node))
            pipe.delete(f"{self._p}:alive:{node}")
            pipe.srem(f"{self._p}:nodes", node)
            pipe.incr(self._reaps(node))
            pipe.pexpire(self._reaps(node), REAPS_TTL_MS)

        if not self._cluster:
            async with self._slots, self._r.pipeline(transaction=True) as pipe:
                self._queue_hdel(pipe, {**views, **index})
                drop_node(pipe)
                await pipe.execute()
            return entries
        if views:
            await self._run(lambda pipe: self._queue_hdel(pipe, views))
        await self._run(drop_node)
        return entries

    async def close(self) -> None:
        await self._r.aclose()
