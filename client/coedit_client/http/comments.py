"""Comments (PROTOCOL.md section 12).

Tested against a real server in tests/test_client_trail.py."""

from __future__ import annotations

import builtins
from typing import Any

from coedit_client.http.transport import Transport

__all__ = ["Comments"]


class Comments:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def add(self, doc: str, body: str, *, path: str | None = None,
                  parent: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"body": body}
        if path is not None:
            payload["path"] = path
        if parent is not None:
            payload["parent"] = parent
        comment: dict[str, Any] = await self._t.json(
            "POST", f"/api/documents/{doc}/comments", json_body=payload)
        return comment

    async def edit(self, comment: str, body: str) -> dict[str, Any]:
        edited: dict[str, Any] = await self._t.json(
            "PATCH", f"/api/comments/{comment}", json_body={"body": body})
        return edited

    async def resolve(self, comment: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._t.json("POST", f"/api/comments/{comment}/resolve")
        return result

    async def reopen(self, comment: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._t.json("POST", f"/api/comments/{comment}/reopen")
        return result

    async def list(self, doc: str, *, resolved: bool | None = None,
                   path: str | None = None) -> builtins.list[dict[str, Any]]:
        reply = await self._t.json("GET", f"/api/documents/{doc}/comments", params={
            "resolved": None if resolved is None else str(resolved).lower(), "path": path})
        items: builtins.list[dict[str, Any]] = reply["items"]
        return items
