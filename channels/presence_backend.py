"""Where presence entries live: the entry, the backend interface, and the in-memory backend.

A backend stores entries and answers who is on a document or a stage; it decides nothing.
Joins, diffs, liveness and reaping belong to :class:`~channels.presence.Presence`, which
drives one backend per node. The Redis backend (for a cluster) is in
:mod:`channels.redis_presence`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from channels.frames import encode_json, encode_msgpack

__all__ = ["MemoryPresence", "PresenceBackend", "PresenceEntry"]


@dataclass(slots=True)
class PresenceEntry:
    """One session on one document. Never changed once made: a new state is a new entry.

    Its public form is encoded at most once per wire format, since a subscribe reply lists
    every other session on the document: with thousands of subscribers, encoding the same
    entries again for each reply made filling one document cost the square of its size in
    encoding (a frame splices these texts, see :class:`~channels.frames.Frame`).
    """

    session: str
    user: dict[str, str]
    doc: str
    kind: str
    node: str
    state: dict[str, Any]
    since: str
    tenant: str = field(default="", repr=False)
    idea: str | None = field(default=None, repr=False)  # the document's idea, for its topic
    _json: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _msgpack: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def public(self) -> dict[str, Any]:
        return {"session": self.session, "user": self.user, "doc": self.doc, "kind": self.kind,
                "node": self.node, "state": self.state, "since": self.since}

    def json_bytes(self) -> bytes:
        if self._json is None:
            self._json = encode_json(self.public()).encode()
        return self._json

    def msgpack_bytes(self) -> bytes:
        if self._msgpack is None:
            self._msgpack = encode_msgpack(self.public())
        return self._msgpack

    def dumps(self) -> str:
        return json.dumps({**self.public(), "tenant": self.tenant, "idea": self.idea},
                          separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | bytes) -> PresenceEntry:
        data = json.loads(text)
        return cls(**data)


class PresenceBackend(ABC):
    """Where entries live; implementations move entries, the
    :class:`~channels.presence.Presence` decides."""

    @abstractmethod
    async def write(self, *, put: Sequence[PresenceEntry] = (),
                    remove: Sequence[PresenceEntry] = ()) -> None:
        """Store ``put`` and delete ``remove`` together, in one round trip where it matters.

        No (document, session) may appear twice in one call: the order between them is not
        kept. Removing an entry that is not there is no error.
        """

    async def put(self, entry: PresenceEntry) -> None:
        await self.write(put=[entry])

    @abstractmethod
    async def remove(self, doc: str, session: str) -> PresenceEntry | None:
        """Remove one entry known only by its key; returns it, or None if it was not there."""

    @abstractmethod
    async def for_doc(self, doc: str) -> list[PresenceEntry]: ...

    @abstractmethod
    async def for_kind(self, tenant: str, kind: str) -> list[PresenceEntry]: ...

    @abstractmethod
    async def node_alive(self, node: str, ttl_ms: int) -> bool:
        """Refresh ``node``'s liveness for ``ttl_ms``; False if its entries may be gone (the
        liveness had lapsed, the node was reaped or the store restarted since the last call),
        and the caller should write them again."""

    @abstractmethod
    async def dead_nodes(self) -> list[str]: ...

    @abstractmethod
    async def reap(self, node: str) -> list[PresenceEntry]:
        """Remove every entry of a dead node; only one caller gets them (the others none)."""

    @abstractmethod
    async def withdraw(self, node: str) -> list[PresenceEntry]:
        """Remove every entry of ``node`` and the node itself (its own graceful stop).

        Returns the entries removed; nobody will reap the node afterwards.
        """

    async def close(self) -> None:
        return None


class MemoryPresence(PresenceBackend):
    """One process: nodes never die without the process, so there is nothing to reap."""

    def __init__(self) -> None:
        self._by_doc: dict[str, dict[str, PresenceEntry]] = {}

    async def write(self, *, put: Sequence[PresenceEntry] = (),
                    remove: Sequence[PresenceEntry] = ()) -> None:
        for entry in put:
            self._by_doc.setdefault(entry.doc, {})[entry.session] = entry
        for entry in remove:
            self._pop(entry.doc, entry.session)

    def _pop(self, doc: str, session: str) -> PresenceEntry | None:
        entries = self._by_doc.get(doc)
        if not entries:
            return None
        entry = entries.pop(session, None)
        if not entries:
            del self._by_doc[doc]
        return entry

    async def remove(self, doc: str, session: str) -> PresenceEntry | None:
        return self._pop(doc, session)

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

    async def withdraw(self, node: str) -> list[PresenceEntry]:
        gone = [e for entries in self._by_doc.values() for e in entries.values()
                if e.node == node]
        await self.write(remove=gone)
        return gone

