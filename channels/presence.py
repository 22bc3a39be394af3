"""Presence: who is on which document right now, across every node.

Presence is ephemeral and never touches the database. Each node writes its own sessions'
entries to a :class:`PresenceBackend` (Redis in a cluster, memory when embedded) and keeps one
liveness key for itself. Heartbeats cost nothing per connection: a session that stops
heartbeating is closed by its own node (4408), which removes its entries; a node that stops
refreshing its liveness key (crash, SIGKILL, network split) is reaped by whichever other node
notices first, which removes all its entries and announces the leaves.

Timing: the liveness key lives 1.5 intervals and is refreshed every half interval; every node
looks for dead nodes every half interval. A dead node's sessions therefore leave everyone's view
at most about 2 intervals after its last refresh, inside the 3 intervals the protocol allows.

Diffs go out as ``presence`` messages with ``joins``, ``updates`` and ``leaves`` on the
document's channel (for its subscribers) and on the stage topic of the document's kind.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from channels.hub import Hub
from channels.tasks import cancel_and_wait

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "MemoryPresence",
    "Presence",
    "PresenceBackend",
    "PresenceEntry",
    "RedisPresence",
    "stage_topic",
]

log = logging.getLogger(__name__)


def stage_topic(tenant: str, kind: str) -> str:
    return f"stage:{tenant}:{kind}"


@dataclass(slots=True)
class PresenceEntry:
    session: str
    user: dict[str, str]
    doc: str
    kind: str
    node: str
    state: dict[str, Any]
    since: str
    tenant: str = field(default="", repr=False)

    def public(self) -> dict[str, Any]:
        return {"session": self.session, "user": self.user, "doc": self.doc, "kind": self.kind,
                "node": self.node, "state": self.state, "since": self.since}

    def dumps(self) -> str:
        return json.dumps({**self.public(), "tenant": self.tenant}, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | bytes) -> PresenceEntry:
        data = json.loads(text)
        return cls(**data)


class PresenceBackend(ABC):
    """Where entries live; implementations move entries, the :class:`Presence` decides."""

    @abstractmethod
    async def put(self, entry: PresenceEntry) -> None: ...

    @abstractmethod
    async def remove(self, doc: str, session: str) -> PresenceEntry | None: ...

    @abstractmethod
    async def for_doc(self, doc: str) -> list[PresenceEntry]: ...

    @abstractmethod
    async def for_kind(self, tenant: str, kind: str) -> list[PresenceEntry]: ...

    @abstractmethod
    async def node_alive(self, node: str, ttl_ms: int) -> bool:
        """Refresh ``node``'s liveness for ``ttl_ms``; False if it had lapsed (or was lost)."""

    @abstractmethod
    async def dead_nodes(self) -> list[str]: ...

    @abstractmethod
    async def reap(self, node: str) -> list[PresenceEntry]:
        """Remove every entry of a dead node; only one caller gets them (the others none)."""

    async def close(self) -> None:
        return None


class MemoryPresence(PresenceBackend):
    """One process: nodes never die without the process, so there is nothing to reap."""

    def __init__(self) -> None:
        self._by_doc: dict[str, dict[str, PresenceEntry]] = {}

    async def put(self, entry: PresenceEntry) -> None:
        self._by_doc.setdefault(entry.doc, {})[entry.session] = entry

    async def remove(self, doc: str, session: str) -> PresenceEntry | None:
        entries = self._by_doc.get(doc)
        if not entries:
            return None
        entry = entries.pop(session, None)
        if not entries:
            del self._by_doc[doc]
        return entry

    async def for_doc(self, doc: str) -> list[PresenceEntry]:
        return list(self._by_doc.get(doc, {}).values())

    async def for_kind(self, tenant: str, kind: str) -> list[PresenceEntry]:
        return [e for entries in self._by_doc.values() for e in entries.values()
                if e.kind == kind and e.tenant == tenant]

    async def node_alive(self, node: str, ttl_ms: int) -> bool:
        return True

    async def dead_nodes(self) -> list[str]:
        return []

    async def reap(self, node: str) -> list[PresenceEntry]:
        return []


class RedisPresence(PresenceBackend):
    """Keys (all under ``prefix``): ``presence:doc:{doc}`` and ``presence:kind:{tenant}:{kind}``
    and ``presence:node:{node}`` hashes of entries, ``nodes`` (set of node ids) and
    ``alive:{node}`` (a key that expires unless the node refreshes it)."""

    def __init__(self, client: Redis, *, prefix: str) -> None:
        self._r = client
        self._p = prefix

    def _doc(self, doc: str) -> str:
        return f"{self._p}:presence:doc:{doc}"

    def _kind(self, tenant: str, kind: str) -> str:
        return f"{self._p}:presence:kind:{tenant}:{kind}"

    def _node(self, node: str) -> str:
        return f"{self._p}:presence:node:{node}"

    async def put(self, entry: PresenceEntry) -> None:
        text = entry.dumps()
        field_name = f"{entry.doc}/{entry.session}"
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(self._doc(entry.doc), entry.session, text)
            pipe.hset(self._kind(entry.tenant, entry.kind), field_name, text)
            pipe.hset(self._node(entry.node), field_name, text)
            pipe.sadd(f"{self._p}:nodes", entry.node)
            await pipe.execute()

    async def remove(self, doc: str, session: str) -> PresenceEntry | None:
        raw = await self._r.hget(self._doc(doc), session)
        if raw is None:
            return None
        entry = PresenceEntry.loads(raw)
        await self._delete([entry])
        return entry

    async def _delete(self, entries: Iterable[PresenceEntry]) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            for entry in entries:
                field_name = f"{entry.doc}/{entry.session}"
                pipe.hdel(self._doc(entry.doc), entry.session)
                pipe.hdel(self._kind(entry.tenant, entry.kind), field_name)
                pipe.hdel(self._node(entry.node), field_name)
            await pipe.execute()

    async def for_doc(self, doc: str) -> list[PresenceEntry]:
        raw = await self._r.hgetall(self._doc(doc))
        return [PresenceEntry.loads(v) for v in raw.values()]

    async def for_kind(self, tenant: str, kind: str) -> list[PresenceEntry]:
        raw = await self._r.hgetall(self._kind(tenant, kind))
        return [PresenceEntry.loads(v) for v in raw.values()]

    async def node_alive(self, node: str, ttl_ms: int) -> bool:
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.set(f"{self._p}:alive:{node}", b"1", px=ttl_ms, get=True)
            pipe.sadd(f"{self._p}:nodes", node)
            previous, _ = await pipe.execute()
        return previous is not None

    async def dead_nodes(self) -> list[str]:
        nodes = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in await self._r.smembers(f"{self._p}:nodes")]
        if not nodes:
            return []
        alive = await self._r.mget([f"{self._p}:alive:{n}" for n in nodes])
        return [n for n, flag in zip(nodes, alive, strict=True) if flag is None]

    async def reap(self, node: str) -> list[PresenceEntry]:
        # Several nodes may notice the same death; a short-lived claim lets one of them reap.
        if not await self._r.set(f"{self._p}:reap:{node}", b"1", nx=True, px=5000):
            return []
        raw = await self._r.hgetall(self._node(node))
        entries = [PresenceEntry.loads(v) for v in raw.values()]
        await self._delete(entries)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(self._node(node))
            pipe.srem(f"{self._p}:nodes", node)
            await pipe.execute()
        return entries

    async def close(self) -> None:
        await self._r.aclose()


class Presence:
    """This node's presence: entries of its sessions, diffs, liveness and reaping."""

    def __init__(self, backend: PresenceBackend, hub: Hub, *, node: str, heartbeat_ms: int
                 ) -> None:
        self.backend = backend
        self.hub = hub
        self.node = node
        self.heartbeat_ms = heartbeat_ms
        self._tasks: list[asyncio.Task[None]] = []
        # This node's own entries, to write back if the backend lost them (Redis restarted,
        # or other nodes reaped this one during a long pause).
        self._local: dict[tuple[str, str], PresenceEntry] = {}

    async def start(self) -> None:
        await self.backend.node_alive(self.node, self._liveness_ms)
        self._tasks = [asyncio.create_task(self._keep_alive(), name="presence-alive"),
                       asyncio.create_task(self._reap_dead(), name="presence-reaper")]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.backend.close()

    @property
    def _liveness_ms(self) -> int:
        return self.heartbeat_ms * 3 // 2

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_ms / 2000)
            try:
                if not await self.backend.node_alive(self.node, self._liveness_ms):
                    for entry in list(self._local.values()):
                        await self.backend.put(entry)
            except Exception:
                log.warning("could not refresh this node's presence liveness", exc_info=True)

    async def _reap_dead(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_ms / 2000)
            try:
                for node in await self.backend.dead_nodes():
                    if node == self.node:
                        continue
                    entries = await self.backend.reap(node)
                    if entries:
                        log.info("node %s stopped answering; %d sessions left", node,
                                 len(entries))
                    await self._announce(leaves=entries)
            except Exception:
                log.warning("presence reaping failed; will retry", exc_info=True)

    async def join(self, entry: PresenceEntry) -> None:
        self._local[(entry.doc, entry.session)] = entry
        await self.backend.put(entry)
        await self._announce(joins=[entry])

    async def update(self, entry: PresenceEntry) -> None:
        self._local[(entry.doc, entry.session)] = entry
        await self.backend.put(entry)
        await self._announce(updates=[entry])

    async def leave(self, doc: str, session: str) -> None:
        known = self._local.pop((doc, session), None)
        entry = await self.backend.remove(doc, session) or known
        if entry is not None:
            await self._announce(leaves=[entry])

    async def _announce(
        self, *, joins: Iterable[PresenceEntry] = (), updates: Iterable[PresenceEntry] = (),
        leaves: Iterable[PresenceEntry] = (),
    ) -> None:
        """One diff per document (and per stage) touched."""
        grouped: dict[str, dict[str, list[PresenceEntry]]] = {}
        for name, entries in (("joins", joins), ("updates", updates), ("leaves", leaves)):
            for entry in entries:
                grouped.setdefault(entry.doc, {"joins": [], "updates": [], "leaves": []})[
                    name].append(entry)
        for doc, diff in grouped.items():
            first = next(e for group in diff.values() for e in group)
            message = {"type": "presence", "doc": doc,
                       **{k: [e.public() for e in v] for k, v in diff.items()}}
            await self.hub.publish_notice(doc, message)
            await self.hub.publish_topic(stage_topic(first.tenant, first.kind),
                                         {**message, "stage": first.kind})
