"""Reviews (section 11) and archiving: the review state machine, who may make each move,
the guards, the listing filters, live messages and the audit trail, on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import RunningServer

TIMEOUT = 10


async def _events(server: RunningServer, token: str, doc: str) -> list[dict[str, Any]]:
    async with server.http(token) as http:
        return (await http.get(f"/api/documents/{doc}/history")).json()[  # type: ignore[no-any-return]
            "events"]


async def _assign(server: RunningServer, token: str, doc: str, reviewer: str,
                  **extra: Any) -> Any:
    async with server.http(token) as http:
        return await http.post(f"/api/documents/{doc}/reviews",
                               json={"reviewer": {"id": reviewer, "name": reviewer.title()},
                                     **extra})


async def _move(server: RunningServer, token: str, review: str, to: str,
                note: str | None = None) -> Any:
    body: dict[str, Any] = {"to": to}
    if note is not None:
        body["note"] = note
    async with server.http(token) as http:
        return await http.post(f"/api/reviews/{review}/transition", json=body)


async def test_a_review_is_assigned_with_a_due_date_and_moves_to_approved(
        server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    doc = (await server.create(ann, kind="valuation"))["id"]
    due = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    assigned = await _assign(server, ann, doc, "rita", due=due.isoformat())
    assert assigned.status_code == 201, assigned.text
    review = assigned.json()
    assert review["status"] == "assigned" and review["stage"] == "valuation"
    assert review["reviewer"] == {"id": "rita", "name": "Rita"}
    assert review["assigned_by"] == {"id": "ann", "name": "Ann"}
    assert review["due"].startswith(due.strftime("%Y-%m-%dT%H:%M:%S"))
    assert review["doc"] == doc and review["idea"] is None
    for to in ("in_progress", "approved"):
        moved = await _move(server, rita, review["id"], to)
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == to
    final = await _move(server, rita, review["id"], "in_progress")
    assert final.status_code == 409
    assert final.json()["error"] == {
        "code": "invalid_transition", "state": "approved",
        "message": final.json()["error"]["message"]}
    history = await _events(server, ann, doc)
    moves = [(e["data"]["from"], e["data"]["to"]) for e in history
             if e["type"] == "review.transitioned"]
    assert moves == [("assigned", "in_progress"), ("in_progress", "approved")]
    assigned_event = next(e for e in history if e["type"] == "review.assigned")
    assert assigned_event["data"]["review"] == review["id"]
    async with server.http(ann) as http:
        verify = (await http.get(f"/api/documents/{doc}/verify")).json()
        assert verify["ok"] is True


async def test_every_refused_move_says_why_and_changes_nothing(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    bob = server.token(user="bob", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    rob = server.token(user="rob", roles=["reviewer"])
    viewer = server.token(user="vic", roles=["viewer"])
    admin = server.token(user="ada", roles=["admin"])
    doc = (await server.create(ann))["id"]
    # Who may ask: analysts and admins, not reviewers or viewers.
    assert (await _assign(server, rita, doc, "rita")).status_code == 403
    assert (await _assign(server, viewer, doc, "rita")).status_code == 403
    review = (await _assign(server, ann, doc, "rita")).json()
    # One open review per reviewer.
    second = await _assign(server, bob, doc, "rita")
    assert second.status_code == 409 and second.json()["error"]["code"] == "invalid_transition"
    assert second.json()["error"]["state"] == "assigned"
    # Bad input: unknown target, bad reviewer, bad due.
    assert (await _move(server, rita, review["id"], "done")).status_code == 400
    assert (await _assign(server, ann, doc, "")).status_code == 400
    assert (await _assign(server, ann, doc, "rob", due="next week")).status_code == 400
    # Only the reviewer starts; another reviewer is refused (forbidden), analysts lack the role.
    assert (await _move(server, rob, review["id"], "in_progress")).status_code == 403
    assert (await _move(server, ann, review["id"], "in_progress")).status_code == 403
    # Illegal order: approve before starting.
    early = await _move(server, rita, review["id"], "approved")
    assert early.status_code == 409 and early.json()["error"]["state"] == "assigned"
    assert (await _move(server, rita, review["id"], "in_progress")).status_code == 200
    # changes_requested needs a note.
    assert (await _move(server, rita, review["id"], "changes_requested")).status_code == 400
    assert (await _move(server, rita, review["id"], "changes_requested", "  ")).status_code == 400
    asked = await _move(server, rita, review["id"], "changes_requested", "Fix the WACC")
    assert asked.json()["status"] == "changes_requested" and asked.json()["note"] == "Fix the WACC"
    # Only who assigned it (or an admin) withdraws.
    assert (await _move(server, bob, review["id"], "withdrawn")).status_code == 403
    assert (await _move(server, rita, review["id"], "withdrawn")).status_code == 403
    assert (await _move(server, admin, review["id"], "in_progress")).status_code == 200
    assert (await _move(server, ann, review["id"], "withdrawn")).json()["status"] == "withdrawn"
    # Final: nothing moves a withdrawn review, and a new one may be asked for.
    assert (await _move(server, admin, review["id"], "in_progress")).status_code == 409
    assert (await _assign(server, ann, doc, "rita")).status_code == 201
    history = await _events(server, ann, doc)
    types = [e["type"] for e in history]
    assert types.count("review.transitioned") == 4
    assert types.count("review.assigned") == 2
    denied = [e for e in history if e["type"] == "access.denied"]
    assert len(denied) == 2  # the document-scoped refusals: rita and vic asking for reviews
    async with server.http(admin) as http:
        tenant_events = (await http.get("/api/events", params={"type": "access.denied"})).json()
    assert len(tenant_events["events"]) == 6  # and rob, ann, bob, rita on the review


async def test_approval_waits_for_open_threads(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    doc = (await server.create(ann))["id"]
    review = (await _assign(server, ann, doc, "rita")).json()
    await _move(server, rita, review["id"], "in_progress")
    async with server.http(rita) as http:
        thread = (await http.post(f"/api/documents/{doc}/comments",
                                  json={"body": "Source for the margin?", "path": "/m"})).json()
        await http.post(f"/api/documents/{doc}/comments",
                        json={"body": "Also the tax rate", "parent": thread["id"]})
        await http.post(f"/api/documents/{doc}/comments", json={"body": "Typo in title"})
    blocked = await _move(server, rita, review["id"], "approved")
    assert blocked.status_code == 409
    error = blocked.json()["error"]
    assert error["code"] == "invalid_transition" and error["open_threads"] == 2
    assert error["state"] == "in_progress"
    async with server.http(rita) as http:
        listed = (await http.get(f"/api/documents/{doc}/comments")).json()["items"]
        for first in (c for c in listed if c["parent"] is None):
            assert (await http.post(f"/api/comments/{first['id']}/resolve")).status_code == 200
    assert (await _move(server, rita, review["id"], "approved")).json()["status"] == "approved"


async def test_listing_filters_and_overdue(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    other = server.token(user="ann", roles=["analyst"], tenant="globex")
    docs = [(await server.create(ann, title=f"Memo {i}"))["id"] for i in range(3)]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    late = (await _assign(server, ann, docs[0], "rita", due=past)).json()
    (await _assign(server, ann, docs[1], "rita", due=future)).json()
    done = (await _assign(server, ann, docs[2], "rob", due=past)).json()
    await _move(server, server.token(user="rob", roles=["reviewer"]), done["id"], "in_progress")
    await _move(server, server.token(user="rob", roles=["reviewer"]), done["id"], "approved")
    async with server.http(rita) as http:
        mine = (await http.get("/api/reviews", params={"reviewer": "me"})).json()
        assert {r["doc"] for r in mine["items"]} == {docs[0], docs[1]}
        overdue = (await http.get("/api/reviews", params={"overdue": "true"})).json()
        assert [r["id"] for r in overdue["items"]] == [late["id"]]
        by_doc = (await http.get("/api/reviews", params={"doc": docs[2]})).json()
        assert [r["status"] for r in by_doc["items"]] == ["approved"]
        approved = (await http.get("/api/reviews", params={"status": "approved"})).json()
        assert [r["id"] for r in approved["items"]] == [done["id"]]
        first = (await http.get("/api/reviews", params={"limit": 2})).json()
        rest = (await http.get("/api/reviews", params={"cursor": first["next"]})).json()
        assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next"] is None
        assert (await http.get("/api/reviews", params={"status": "bogus"})).status_code == 400
        assert (await http.get(f"/api/reviews/{late['id']}")).json()["id"] == late["id"]
    async with server.http(other) as http:
        assert (await http.get("/api/reviews")).json()["items"] == []
        assert (await http.get(f"/api/reviews/{late['id']}")).status_code == 404
        assert (await _move(server, other, late["id"], "withdrawn")).status_code == 404
        assert (await _assign(server, other, docs[0], "rita")).status_code == 404


async def test_subscribers_see_review_changes_live(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    doc = (await server.create(ann))["id"]
    async with await server.connect(ann) as watcher:
        await watcher.ok("subscribe", doc=doc)
        review = (await _assign(server, ann, doc, "rita")).json()
        pushed = await watcher.recv_type("review", timeout=TIMEOUT)
        assert pushed["doc"] == doc and pushed["review"]["status"] == "assigned"
        await _move(server, rita, review["id"], "in_progress")
        pushed = await watcher.recv_type("review", timeout=TIMEOUT)
        assert pushed["review"]["status"] == "in_progress"
        assert pushed["review"]["id"] == review["id"]


async def test_archived_documents_are_read_only_until_reopened(server: RunningServer) -> None:
    """Only admins archive; an archived document refuses patches and locks; reopen restores."""
    analyst = server.token(user="ann", roles=["analyst"])
    admin = server.token(user="ada", roles=["admin"])
    doc = (await server.create(analyst, state={"n": 0}))["id"]
    async with server.http(analyst) as http:
        assert (await http.post(f"/api/documents/{doc}/archive")).status_code == 403
    async with server.http(admin) as http:
        archived = await http.post(f"/api/documents/{doc}/archive")
        assert archived.status_code == 200 and archived.json()["id"] == doc
        again = await http.post(f"/api/documents/{doc}/archive")
        assert again.status_code == 409 and again.json()["error"]["state"] == "archived"
    async with await server.connect(analyst) as client:
        refused = await client.request("patch", doc=doc, base=1,
                                       ops=[{"op": "replace", "path": "/n", "value": 1}])
        assert refused["code"] == "conflict" and refused["archived"] is True
        locked = await client.request("lock", doc=doc, path="/n")
        assert locked["code"] == "conflict"
        async with server.http(admin) as http:
            assert (await http.post(f"/api/documents/{doc}/reopen")).status_code == 200
        reply = await client.ok("patch", doc=doc, base=1,
                                ops=[{"op": "replace", "path": "/n", "value": 1}])
        assert reply["version"] == 2
    types = [e["type"] for e in await _events(server, analyst, doc)]
    assert "document.archived" in types and "document.reopened" in types
    assert types.index("document.archived") < types.index("document.reopened")


async def test_review_metrics_count_transitions(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    doc = (await server.create(ann))["id"]
    review = (await _assign(server, ann, doc, "rita")).json()
    await _move(server, rita, review["id"], "in_progress")
    async with server.http(ann) as http:
        text = await asyncio.wait_for(http.get("/metrics"), TIMEOUT)
    assert 'coedit_review_transitions_total{to="assigned"} 1.0' in text.text
    assert 'coedit_review_transitions_total{to="in_progress"} 1.0' in text.text
