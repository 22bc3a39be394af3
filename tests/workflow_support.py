"""Helpers of the workflow tests: a template of every action type, and short HTTP calls."""

from __future__ import annotations

from typing import Any

from tests.support import RunningServer

__all__ = ["COMMITTEE", "Calls"]

# memo (document) → memo_review (review) and numbers (checklist) → committee (approval);
# monitoring (checklist, optional) after the committee.
COMMITTEE: list[dict[str, Any]] = [
    {"key": "memo", "title": "Draft the memo", "action": "document", "role": "analyst",
     "config": {"stage": "memo"}},
    {"key": "numbers", "title": "Normalize the numbers", "action": "checklist",
     "role": "analyst", "config": {"items": ["revenue", "margins"]}},
    {"key": "memo_review", "title": "Review the memo", "action": "review", "role": "reviewer",
     "after": ["memo"], "config": {"stage": "memo"}},
    {"key": "committee", "title": "Committee sign-off", "action": "approval", "role": "admin",
     "after": ["memo_review", "numbers"]},
    {"key": "monitoring", "title": "Start monitoring", "action": "checklist",
     "role": "analyst", "required": False, "after": ["committee"],
     "config": {"items": ["alerts"]}},
]


class Calls:
    """The workflow routes as one-line calls for one server."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server

    async def post(self, token: str, path: str, body: Any = None) -> Any:
        async with self.server.http(token) as http:
            if body is None:
                return await http.post(path)
            return await http.post(path, json=body)

    async def get(self, token: str, path: str, **params: Any) -> Any:
        async with self.server.http(token) as http:
            return await http.get(path, params=params)

    async def patch(self, token: str, path: str, body: Any) -> Any:
        async with self.server.http(token) as http:
            return await http.patch(path, json=body)

    async def idea(self, token: str, title: str = "Acme Corp") -> str:
        answer = await self.post(token, "/api/ideas", {"title": title, "ticker": "ACME"})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    async def document(self, token: str, idea: str, kind: str) -> dict[str, Any]:
        answer = await self.post(token, "/api/documents",
                                 {"kind": kind, "title": f"The {kind}", "idea": idea})
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def published(self, admin: str, steps: list[dict[str, Any]] | None = None,
                        name: str = "Committee path") -> dict[str, Any]:
        made = await self.post(admin, "/api/workflows/templates",
                               {"name": name, "steps": steps or COMMITTEE})
        assert made.status_code == 201, made.text
        published = await self.post(admin, f"/api/workflows/templates/{made.json()['id']}/publish")
        assert published.status_code == 200, published.text
        return published.json()  # type: ignore[no-any-return]

    async def start(self, token: str, template: str, idea: str) -> dict[str, Any]:
        answer = await self.post(token, f"/api/workflows/templates/{template}/instantiate",
                                 {"idea": idea})
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def instance(self, token: str, instance: str) -> dict[str, Any]:
        answer = await self.get(token, f"/api/workflows/instances/{instance}")
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def step(self, token: str, step: str, verb: str, payload: Any = None) -> Any:
        return await self.post(token, f"/api/workflows/steps/{step}/{verb}", payload)

    async def events(self, token: str, **params: Any) -> list[dict[str, Any]]:
        answer = await self.get(token, "/api/events", limit=1000, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()["events"]  # type: ignore[no-any-return]

    @staticmethod
    def by_key(instance: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {step["key"]: step for step in instance["steps"]}
