"""Documents over HTTP (PROTOCOL.md sections 4, 7 and 9): create, read now or in the past,
list, patch with ``If-Match``, history, the hash-chain check, locks and presence."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncIterator
from typing import Any

from coedit_client.http.transport import Transport

__all__ = ["Documents"]


class Documents:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def create(self, kind: str, title: str, state: dict[str, Any] | None = None, *,
                     idea: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind, "title": title, "state": state or {}}
        if idea is not None:
            body["idea"] = idea
        document: dict[str, Any] = await self._t.json("POST", "/api/documents", json_body=body)
        return document

    async def get(self, doc: str, *, version: int | None = None,
                  at: str | None = None) -> dict[str, Any]:
        """The document now, or as it was at ``version`` or at the ISO time ``at``."""
        document: dict[str, Any] = await self._t.json(
            "GET", f"/api/documents/{doc}", params={"version": version, "at": at})
        return document

    async def list(self, *, kind: str | None = None, q: str | None = None,
                   limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """One page: ``{"items": [...], "next": cursor or None}``."""
        page: dict[str, Any] = await self._t.json(
            "GET", "/api/documents", params={"kind": kind, "q": q, "limit": limit,
                                             "cursor": cursor})
        return page

    async def iterate(self, *, kind: str | None = None, q: str | None = None,
                      page_size: int = 100) -> AsyncIterator[dict[str, Any]]:
        """Every matching document, page after page."""
        cursor: str | None = None
        while True:
            page = await self.list(kind=kind, q=q, limit=page_size, cursor=cursor)
            for item in page["items"]:
                yield item
            cursor = page.get("next")
            if not cursor:
                return

    async def patch(self, doc: str, ops: builtins.list[dict[str, Any]], *, base: int,
                    key: str | None = None, lock_token: int | None = None) -> dict[str, Any]:
        """Apply ``ops`` written against version ``base``: ``{"version", "rebased"?,
        "duplicate"?}``. A key is generated when none is given, so the retries this
        transport makes on 503 never apply the patch twice."""
        headers = {"If-Match": f'"{base}"', "Idempotency-Key": key or uuid.uuid4().hex}
        if lock_token is not None:
            headers["Lock-Token"] = str(lock_token)
        reply: dict[str, Any] = await self._t.json(
            "PATCH", f"/api/documents/{doc}", json_body=ops, headers=headers)
        return reply

    async def history(self, doc: str, *, since: int | None = None, limit: int | None = None,
                      cursor: str | None = None) -> dict[str, Any]:
        """One page of the document's events: ``{"events": [...], "next": ...}``."""
        page: dict[str, Any] = await self._t.json(
            "GET", f"/api/documents/{doc}/history",
            params={"since": since, "limit": limit, "cursor": cursor})
        return page

    async def iterate_history(self, doc: str, *, since: int | None = None,
                              page_size: int = 1000) -> AsyncIterator[dict[str, Any]]:
        """Every event of the document after ``since``, in ``seq`` order."""
        cursor: str | None = None
        while True:
            page = await self.history(doc, since=since, limit=page_size, cursor=cursor)
            for event in page["events"]:
                yield event
            cursor = page.get("next")
            if not cursor:
                return

    async def verify(self, doc: str) -> dict[str, Any]:
        """``{"ok": true, "events": N}`` or ``{"ok": false, "seq": S, ...}``."""
        result: dict[str, Any] = await self._t.json("GET", f"/api/documents/{doc}/verify")
        return result

    async def take_lock(self, doc: str, path: str, *, ttl_ms: int | None = None
                        ) -> dict[str, Any]:
        """An HTTP lock, held for its ttl (post again to renew); present its ``token`` as
        ``lock_token`` to :meth:`patch`."""
        body: dict[str, Any] = {"path": path}
        if ttl_ms is not None:
            body["ttl_ms"] = ttl_ms
        reply: dict[str, Any] = await self._t.json(
            "POST", f"/api/documents/{doc}/locks", json_body=body)
        lock: dict[str, Any] = reply["lock"]
        return lock

    async def release_lock(self, doc: str, path: str) -> None:
        await self._t.send("DELETE", f"/api/documents/{doc}/locks", params={"path": path})

    async def locks(self, doc: str) -> builtins.list[dict[str, Any]]:
        reply = await self._t.json("GET", "/api/locks", params={"doc": doc})
        locks: builtins.list[dict[str, Any]] = reply["locks"] if isinstance(reply, dict) else reply
        return locks

    async def presence(self, *, doc: str | None = None,
                       kind: str | None = None) -> builtins.list[dict[str, Any]]:
        reply = await self._t.json("GET", "/api/presence", params={"doc": doc, "kind": kind})
        entries: builtins.list[dict[str, Any]] = reply["presence"]
        return entries
