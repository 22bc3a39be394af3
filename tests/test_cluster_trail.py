"""The review trail across a cluster: a review, a comment or a notification made through one
node reaches the people on another, through Redis, once."""

from __future__ import annotations

import httpx

from tests.redis_server import redis_cluster_url_fixture
from tests.support import TIMEOUT
from tests.test_cluster import Cluster, cluster

# The fixtures, shared with the cluster tests (which run on one Redis and on a Redis Cluster).
__all__ = ["cluster", "redis_cluster_url_fixture"]


async def test_review_comment_and_notification_reach_another_node(cluster: Cluster) -> None:
    ann = cluster.token("ann")
    rita = cluster.token("rita", roles=["reviewer"])
    author = await cluster.connect(0, ann)
    reviewer = await cluster.connect(1, rita)
    watcher = await cluster.connect(2, ann)
    try:
        created = await author.ok("create", kind="memo", title="Across nodes", state={})
        doc = created["document"]["id"]
        await watcher.ok("subscribe", doc=doc)
        async with httpx.AsyncClient(base_url=cluster.nodes[0].url, timeout=TIMEOUT,
                                     headers={"Authorization": f"Bearer {ann}"}) as http:
            review = (await http.post(f"/api/documents/{doc}/reviews",
                                      json={"reviewer": {"id": "rita", "name": "Rita"}})).json()
        told = await reviewer.recv_type("notification", timeout=TIMEOUT)
        assert told["notification"]["type"] == "review.assigned"
        assert told["notification"]["doc"] == doc
        seen = await watcher.recv_type("review", timeout=TIMEOUT)
        assert seen["review"]["id"] == review["id"]
        async with httpx.AsyncClient(base_url=cluster.nodes[1].url, timeout=TIMEOUT,
                                     headers={"Authorization": f"Bearer {rita}"}) as http:
            comment = (await http.post(f"/api/documents/{doc}/comments",
                                       json={"body": "Which comps?"})).json()
        pushed = await watcher.recv_type("comment", timeout=TIMEOUT)
        assert pushed["comment"]["id"] == comment["id"]
        extra = await watcher.nothing_more(0.5)
        assert [m["type"] for m in extra] == []
    finally:
        for client in (author, reviewer, watcher):
            await client.close()
