"""Notifications (section 14), stored side: what triggers them, who sees them, read marks per
user, the flag that turns them off. Live delivery to sessions is tested with it below and in
tests/test_notification_delivery.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from persistence.database import Database
from persistence.notifications import NotificationStore
from tests.support import RunningServer

TIMEOUT = 10


async def _notes(server: RunningServer, token: str, **params: Any) -> dict[str, Any]:
    async with server.http(token) as http:
        response = await http.get("/api/notifications", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_reviews_and_replies_notify_the_right_people(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    bob = server.token(user="bob", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    doc = (await server.create(ann, title="Acme memo"))["id"]
    async with server.http(ann) as http:
        review = (await http.post(f"/api/documents/{doc}/reviews", json={
            "reviewer": {"id": "rita", "name": "Rita"}, "due": "2030-01-02T00:00:00Z"})).json()
    (assigned,) = (await _notes(server, rita))["items"]
    assert assigned["type"] == "review.assigned" and assigned["doc"] == doc
    assert assigned["read"] is False and "Acme memo" in assigned["title"]
    assert (await _notes(server, ann))["items"] == []
    async with server.http(rita) as http:
        await http.post(f"/api/reviews/{review['id']}/transition", json={"to": "in_progress"})
        await http.post(f"/api/reviews/{review['id']}/transition",
                        json={"to": "changes_requested", "note": "Fix the bridge"})
    (decided,) = (await _notes(server, ann))["items"]
    assert decided["type"] == "review.decided" and "Fix the bridge" in decided["body"]
    # A reply notifies the thread's other authors, never the replier.
    async with server.http(ann) as http:
        root = (await http.post(f"/api/documents/{doc}/comments", json={"body": "Q1?"})).json()
    async with server.http(bob) as http:
        await http.post(f"/api/documents/{doc}/comments", json={"body": "+1", "parent": root["id"]})
    async with server.http(rita) as http:
        await http.post(f"/api/documents/{doc}/comments", json={"body": "A", "parent": root["id"]})
    ann_notes = [n["type"] for n in (await _notes(server, ann))["items"]]
    assert ann_notes == ["comment.reply", "comment.reply", "review.decided"]  # newest first
    assert [n["type"] for n in (await _notes(server, bob))["items"]] == ["comment.reply"]
    assert [n["type"] for n in (await _notes(server, rita))["items"]] == ["review.assigned"]


async def test_read_marks_belong_to_each_reader(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    docs = [(await server.create(ann, title=f"Doc {i}"))["id"] for i in range(3)]
    async with server.http(ann) as http:
        for doc in docs:
            await http.post(f"/api/documents/{doc}/reviews", json={"reviewer": {"id": "rita"}})
    items = (await _notes(server, rita))["items"]
    assert len(items) == 3
    async with server.http(rita) as http:
        marked = await http.post(f"/api/notifications/{items[1]['id']}/read")
        assert marked.status_code == 200 and marked.json()["read"] is True
        # Marking twice is fine; marking another's is not_found.
        assert (await http.post(f"/api/notifications/{items[1]['id']}/read")).status_code == 200
    async with server.http(ann) as http:
        assert (await http.post(f"/api/notifications/{items[0]['id']}/read")).status_code == 404
    unread = (await _notes(server, rita, unread="true"))["items"]
    assert [n["id"] for n in unread] == [items[0]["id"], items[2]["id"]]
    async with server.http(rita) as http:
        assert (await http.post("/api/notifications/read-all")).status_code == 200
    assert (await _notes(server, rita, unread="true"))["items"] == []
    # Later notifications are unread again; paging walks newest first.
    async with server.http(ann) as http:
        late = (await server.create(ann, title="Late"))["id"]
        await http.post(f"/api/documents/{late}/reviews", json={"reviewer": {"id": "rita"}})
    unread = (await _notes(server, rita, unread="true"))["items"]
    assert len(unread) == 1 and "Late" in unread[0]["title"]
    page = await _notes(server, rita, limit=3)
    rest = await _notes(server, rita, cursor=page["next"])
    assert len(page["items"]) == 3 and len(rest["items"]) == 1 and rest["next"] is None
    async with server.http(rita) as http:
        assert (await http.get("/api/notifications", params={"unread": "x"})).status_code == 400
        assert (await http.get("/api/notifications", params={"cursor": "x"})).status_code == 400


async def test_role_notifications_reach_every_holder_of_the_role_in_the_tenant(
        database_url: str) -> None:
    """Role addressing (the workflow trigger uses it): each reader reads for itself."""
    db = Database(database_url)
    try:
        store = NotificationStore(db)
        async with db.transaction() as conn:
            fact = await store.add(conn, tenant="acme", type="step.ready", role="reviewer",
                                   title="Valuation ready", body="Review the DCF")
            await store.add(conn, tenant="globex", type="step.ready", role="reviewer",
                            title="Elsewhere", body="")
        assert fact is not None and fact.role == "reviewer" and fact.user is None
        rita = await store.list("acme", "rita", ("reviewer",), unread=False, limit=None,
                                cursor=None)
        rob = await store.list("acme", "rob", ("reviewer", "analyst"), unread=False,
                               limit=None, cursor=None)
        ann = await store.list("acme", "ann", ("analyst",), unread=False, limit=None,
                               cursor=None)
        assert [n["title"] for n in rita["items"]] == ["Valuation ready"]
        assert [n["title"] for n in rob["items"]] == ["Valuation ready"]
        assert ann["items"] == []
        await store.mark_read("acme", "rita", ("reviewer",), rita["items"][0]["id"])
        again = await store.list("acme", "rob", ("reviewer",), unread=True, limit=None,
                                 cursor=None)
        assert len(again["items"]) == 1  # rita's mark is hers alone
        off = NotificationStore(db, enabled=False)
        async with db.transaction() as conn:
            assert await off.add(conn, tenant="acme", type="step.ready", user="rita",
                                 title="t", body="b") is None
        with pytest.raises(ValueError):
            async with db.transaction() as conn:
                await store.add(conn, tenant="acme", type="step.ready", title="t", body="b")
    finally:
        await asyncio.wait_for(db.dispose(), TIMEOUT)


async def test_the_reviewer_is_told_live_on_every_session(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    doc = (await server.create(ann, title="Live memo"))["id"]
    async with await server.connect(rita) as phone, await server.connect(rita) as laptop, \
            await server.connect(ann) as author:
        async with server.http(ann) as http:
            await http.post(f"/api/documents/{doc}/reviews", json={"reviewer": {"id": "rita"}})
        for session in (phone, laptop):
            message = await session.recv_type("notification", timeout=TIMEOUT)
            assert message["notification"]["type"] == "review.assigned"
            assert message["notification"]["doc"] == doc
        assert await author.nothing_more(0.3) == []
