"""The review workflow: comments, reviews, archiving; each change is a typed audit event."""

from __future__ import annotations

from typing import Any

from tests.support import RunningServer


async def _events(server: RunningServer, token: str, doc: str) -> list[dict[str, Any]]:
    async with server.http(token) as http:
        return (await http.get(f"/api/documents/{doc}/history")).json()[  # type: ignore[no-any-return]
            "events"]


async def test_comments_are_added_listed_and_resolved(server: RunningServer) -> None:
    """Analysts and reviewers comment; the author resolves; viewers are refused and audited."""
    analyst = server.token(user="ann", roles=["analyst"])
    reviewer = server.token(user="rita", roles=["reviewer"])
    viewer = server.token(user="vic", roles=["viewer"])
    doc = (await server.create(analyst, state={"price": 1}))["id"]
    async with server.http(analyst, **{"X-Correlation-ID": "c-42"}) as http:
        added = await http.post(f"/api/documents/{doc}/comments",
                                json={"body": "Check the price", "path": "/price"})
        assert added.status_code == 201
        comment = added.json()["comment"]
        assert comment["author"] == {"id": "ann", "name": "Ann"}
        assert comment["path"] == "/price" and comment["resolved_at"] is None
    async with server.http(reviewer) as http:
        assert (await http.post(f"/api/documents/{doc}/comments",
                                json={"body": "Agreed"})).status_code == 201
        listed = (await http.get(f"/api/documents/{doc}/comments")).json()["comments"]
        assert [c["body"] for c in listed] == ["Check the price", "Agreed"]
    async with server.http(viewer) as http:
        refused = await http.post(f"/api/documents/{doc}/comments", json={"body": "hi"})
        assert refused.status_code == 403
        bad = await http.post(f"/api/documents/{doc}/comments/{comment['id']}/resolve")
        assert bad.status_code == 403
    other_analyst = server.token(user="bob", roles=["analyst"])
    async with server.http(other_analyst) as http:
        not_author = await http.post(f"/api/documents/{doc}/comments/{comment['id']}/resolve")
        assert not_author.status_code == 403
        empty = await http.post(f"/api/documents/{doc}/comments", json={"body": "  "})
        assert empty.status_code == 400
    async with server.http(analyst) as http:
        done = await http.post(f"/api/documents/{doc}/comments/{comment['id']}/resolve")
        assert done.status_code == 200 and done.json()["comment"]["resolved_by"] == "ann"
        again = await http.post(f"/api/documents/{doc}/comments/{comment['id']}/resolve")
        assert again.status_code == 409
    history = await _events(server, analyst, doc)
    types = [e["type"] for e in history]
    assert types.count("comment.added") == 2 and types.count("comment.resolved") == 1
    assert types.count("access.denied") == 3
    first = next(e for e in history if e["type"] == "comment.added")
    assert first["correlation_id"] == "c-42" and first["data"]["comment"] == comment["id"]


async def test_review_is_assigned_and_moves_through_its_states(server: RunningServer) -> None:
    """Reviewers assign and decide; only the assigned reviewer (or an admin) moves it."""
    analyst = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    rob = server.token(user="rob", roles=["reviewer"])
    admin = server.token(user="ada", roles=["admin"])
    doc = (await server.create(analyst))["id"]
    async with server.http(analyst) as http:
        assert (await http.put(f"/api/documents/{doc}/review",
                               json={"reviewer": {"id": "rita"}})).status_code == 403
        assert (await http.get(f"/api/documents/{doc}/review")).json()["review"] is None
    async with server.http(rita) as http:
        assigned = await http.put(f"/api/documents/{doc}/review",
                                  json={"reviewer": {"id": "rita", "name": "Rita"}})
        assert assigned.status_code == 200
        assert assigned.json()["review"]["state"] == "in_review"
        bad = await http.post(f"/api/documents/{doc}/review/transition", json={"to": "done"})
        assert bad.status_code == 400
    async with server.http(rob) as http:
        assert (await http.post(f"/api/documents/{doc}/review/transition",
                                json={"to": "approved"})).status_code == 403
    async with server.http(rita) as http:
        changes = await http.post(f"/api/documents/{doc}/review/transition",
                                  json={"to": "changes_requested", "note": "fix /price"})
        assert changes.json()["review"]["state"] == "changes_requested"
        skip = await http.post(f"/api/documents/{doc}/review/transition",
                               json={"to": "approved"})
        assert skip.status_code == 409
    async with server.http(admin) as http:
        for state in ("in_review", "approved"):
            moved = await http.post(f"/api/documents/{doc}/review/transition",
                                    json={"to": state})
            assert moved.json()["review"]["state"] == state
    history = await _events(server, analyst, doc)
    transitions = [(e["data"]["from"], e["data"]["to"]) for e in history
                   if e["type"] == "review.transitioned"]
    assert transitions == [("in_review", "changes_requested"),
                           ("changes_requested", "in_review"), ("in_review", "approved")]
    assert [e["type"] for e in history].count("review.assigned") == 1


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
        assert (await http.post(f"/api/documents/{doc}/archive")).status_code == 409
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
