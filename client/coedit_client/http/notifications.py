"""Notifications (PROTOCOL.md section 14).

Tested against a real server in tests/test_client_trail.py."""

from __future__ import annotations

from typing import Any

from coedit_client.http.transport import Transport

__all__ = ["Notifications"]


class Notifications:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def list(self, *, unread: bool = False, limit: int | None = None,
                   cursor: str | None = None) -> dict[str, Any]:
        page: dict[str, Any] = await self._t.json("GET", "/api/notifications", params={
            "unread": "true" if unread else None, "limit": limit, "cursor": cursor})
        return page

    async def read(self, notification: str) -> None:
        await self._t.send("POST", f"/api/notifications/{notification}/read")

    async def read_all(self) -> None:
        await self._t.send("POST", "/api/notifications/read-all")
