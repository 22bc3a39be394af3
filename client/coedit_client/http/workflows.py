"""Workflows (PROTOCOL.md section 13).

Tested against a real server in tests/test_client_trail.py."""

from __future__ import annotations

from typing import Any

from coedit_client.http.transport import Transport

__all__ = ["STEP_VERBS", "Workflows"]

STEP_VERBS = frozenset({"claim", "start", "complete", "fail", "block", "unblock", "skip",
                        "retry"})


class Workflows:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def create_template(self, template: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self._t.json(
            "POST", "/api/workflows/templates", json_body=template)
        return created

    async def update_template(self, template: str, changes: dict[str, Any]) -> dict[str, Any]:
        updated: dict[str, Any] = await self._t.json(
            "PATCH", f"/api/workflows/templates/{template}", json_body=changes)
        return updated

    async def publish(self, template: str) -> dict[str, Any]:
        published: dict[str, Any] = await self._t.json(
            "POST", f"/api/workflows/templates/{template}/publish")
        return published

    async def templates(self, *, q: str | None = None,
                        status: str | None = None) -> dict[str, Any]:
        page: dict[str, Any] = await self._t.json(
            "GET", "/api/workflows/templates", params={"q": q, "status": status})
        return page

    async def instantiate(self, template: str, idea: str) -> dict[str, Any]:
        instance: dict[str, Any] = await self._t.json(
            "POST", f"/api/workflows/templates/{template}/instantiate", json_body={"idea": idea})
        return instance

    async def instances(self, *, idea: str | None = None,
                        status: str | None = None) -> dict[str, Any]:
        page: dict[str, Any] = await self._t.json(
            "GET", "/api/workflows/instances", params={"idea": idea, "status": status})
        return page

    async def instance(self, instance: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._t.json("GET", f"/api/workflows/instances/{instance}")
        return found

    async def set_status(self, instance: str, status: str) -> dict[str, Any]:
        changed: dict[str, Any] = await self._t.json(
            "PATCH", f"/api/workflows/instances/{instance}", json_body={"status": status})
        return changed

    async def step(self, step: str, verb: str,
                   payload: dict[str, Any] | None = None) -> dict[str, Any]:
        if verb not in STEP_VERBS:
            raise ValueError(f"unknown step verb {verb!r}; one of {sorted(STEP_VERBS)}")
        moved: dict[str, Any] = await self._t.json(
            "POST", f"/api/workflows/steps/{step}/{verb}", json_body=payload or {})
        return moved
