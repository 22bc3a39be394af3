"""One lock order for every change that may move a workflow: the tenant's event chain first,
then rows. A bulk request approving two reviews of an idea, while a single approval of the
second runs alongside, used to deadlock on PostgreSQL (the bulk held the chain and waited for
the second document's row; the single held that row and waited for the chain)."""

from __future__ import annotations

import asyncio

import pytest

from persistence.audit import Actor, AuditContext
from persistence.errors import InvalidTransition
from tests.support import RunningServer
from tests.workflow_support import Calls

TIMEOUT = 30
REVIEW_STEP = [{"key": "review", "title": "Review the memo", "action": "review",
                "role": "reviewer", "config": {"stage": "memo"}}]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_bulk_approval_and_a_single_one_do_not_deadlock(server: RunningServer) -> None:
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    calls = Calls(server)
    idea = await calls.idea(ann)
    docs = [(await calls.document(ann, idea, "memo"))["id"] for _ in range(2)]
    template = await calls.published(admin, REVIEW_STEP, name="Review only")
    await calls.start(ann, template["id"], idea)
    reviews = []
    async with server.http(ann) as http, server.http(rita) as reviewer:
        for doc in docs:
            review = (await http.post(f"/api/documents/{doc}/reviews",
                                      json={"reviewer": {"id": "rita"}})).json()
            await reviewer.post(f"/api/reviews/{review['id']}/transition",
                                json={"to": "in_progress"})
            reviews.append(review["id"])
    store = server.coedit.trail_stores.reviews
    ctx = AuditContext(Actor("rita", "Rita"), "acme", "bulk")
    approve = {"to": "approved"}
    async with asyncio.timeout(TIMEOUT):
        async with server.coedit.db.transaction() as conn:  # the bulk request's transaction
            await store.transition_in(conn, ctx, reviews[0], approve, admin=False)
            single = asyncio.create_task(store.transition(
                AuditContext(Actor("rita", "Rita"), "acme", "http"), reviews[1], approve,
                admin=False))
            await asyncio.sleep(0.5)  # let the single approval take what it takes first
            await store.transition_in(conn, ctx, reviews[1], approve, admin=False)
        with pytest.raises(InvalidTransition) as lost:
            await single
    assert lost.value.extra["state"] == "approved"
    async with server.http(ann) as http:
        statuses = [(await http.get(f"/api/reviews/{r}")).json()["status"] for r in reviews]
    assert statuses == ["approved", "approved"]
