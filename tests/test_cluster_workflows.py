"""Two people starting the same workflow step through different nodes at the same time:
exactly one wins, because every move locks in the shared database, not in a node."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.redis_server import redis_cluster_url_fixture
from tests.support import TIMEOUT
from tests.test_cluster import Cluster, cluster

# The fixtures, shared with the cluster tests (which run on one Redis and on a Redis Cluster).
__all__ = ["cluster", "redis_cluster_url_fixture"]


async def _call(cluster: Cluster, node: int, token: str, method: str, path: str,
                body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=cluster.nodes[node].url, timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        return await http.request(method, path, json=body)


async def test_two_starters_on_two_nodes_one_wins(cluster: Cluster) -> None:
    admin = cluster.token("ada", roles=["admin"])
    ann = cluster.token("ann", roles=["analyst"])
    bob = cluster.token("bob", roles=["analyst"])
    made = await _call(cluster, 0, admin, "POST", "/api/workflows/templates", {
        "name": "Ten at once",
        "steps": [{"key": f"s{i}", "action": "approval", "role": "analyst"}
                  for i in range(10)]})
    template = made.json()["id"]
    assert (await _call(cluster, 1, admin, "POST",
                        f"/api/workflows/templates/{template}/publish")).status_code == 200
    idea = (await _call(cluster, 2, ann, "POST", "/api/ideas", {"title": "Shared"})).json()["id"]
    instance = (await _call(cluster, 0, ann, "POST",
                            f"/api/workflows/templates/{template}/instantiate",
                            {"idea": idea})).json()
    for step in instance["steps"]:
        path = f"/api/workflows/steps/{step['id']}/start"
        answers = await asyncio.wait_for(asyncio.gather(
            _call(cluster, 0, ann, "POST", path), _call(cluster, 1, bob, "POST", path)),
            TIMEOUT * 2)
        codes = sorted(a.status_code for a in answers)
        assert codes[0] == 200 and codes[1] in (403, 409), [a.text for a in answers]
    seen = (await _call(cluster, 2, ann, "GET",
                        f"/api/workflows/instances/{instance['id']}")).json()
    assert {s["state"] for s in seen["steps"]} == {"in_progress"}
    events = (await _call(cluster, 1, ann, "GET",
                          "/api/events?type=workflow.step_transitioned&limit=1000")).json()
    assert len([e for e in events["events"] if e["data"]["to"] == "in_progress"]) == 10
