"""Reviews (PROTOCOL.md section 11).

Tested against a real server in tests/test_client_trail.py."""

from __future__ import annotations

from typing import Any

from coedit_client.http.transport import Transport

__all__ = ["Reviews"]


class Reviews:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def assign(self, doc: str, reviewer: dict[str, str], *,
                     due: str | None = None) -> dict[str, Any]:
        """Ask ``reviewer`` (``{"id","name"}``) to review ``doc``, due at the ISO time ``due``."""
        body: dict[str, Any] = {"reviewer": reviewer}
        if due is not None:
            body["due"] = due
        review: dict[str, Any] = await self._t.json(
            "POST", f"/api/documents/{doc}/reviews", json_body=body)
        return review

    async def transition(self, review: str, to: str, *,
                         note: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"to": to}
        if note is not None:
            body["note"] = note
        moved: dict[str, Any] = await self._t.json(
            "POST", f"/api/reviews/{review}/transition", json_body=body)
        return moved

    async def list(self, *, reviewer: str | None = None, status: str | None = None,
                   doc: str | None = None, idea: str | None = None,
                   overdue: bool | None = None, limit: int | None = None,
                   cursor: str | None = None) -> dict[str, Any]:
        page: dict[str, Any] = await self._t.json("GET", "/api/reviews", params={
            "reviewer": reviewer, "status": status, "doc": doc, "idea": idea,
            "overdue": "true" if overdue else None, "limit": limit, "cursor": cursor})
        return page
