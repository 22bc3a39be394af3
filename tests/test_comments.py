"""Comment threads (section 12): add, reply, edit, resolve and reopen a thread; who may do
each; live messages; events with bodies redacted like any event data."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import RunningServer

TIMEOUT = 10


async def _comment(server: RunningServer, token: str, doc: str, **body: Any) -> Any:
    async with server.http(token) as http:
        return await http.post(f"/api/documents/{doc}/comments", json=body)


async def test_threads_replies_and_resolution(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    bob = server.token(user="bob", roles=["analyst"])
    doc = (await server.create(ann, state={"thesis": "cheap"}))["id"]
    first = await _comment(server, ann, doc, body="Is it cheap?", path="/thesis")
    assert first.status_code == 201, first.text
    root = first.json()
    assert root["thread"] == root["id"] and root["parent"] is None
    assert root["author"] == {"id": "ann", "name": "Ann"} and root["resolved"] is False
    reply = (await _comment(server, rita, doc, body="Yes, 8x", parent=root["id"])).json()
    assert reply["thread"] == root["id"] and reply["parent"] == root["id"]
    assert reply["path"] == "/thesis"  # a reply sits where its thread does
    nested = (await _comment(server, bob, doc, body="Agreed", parent=reply["id"])).json()
    assert nested["thread"] == root["id"]
    other = (await _comment(server, bob, doc, body="Check margins", path="/margins")).json()
    async with server.http(bob) as http:
        # Not the thread's author, not a reviewer: refused and recorded.
        refused = await http.post(f"/api/comments/{reply['id']}/resolve")
        assert refused.status_code == 403
    async with server.http(rita) as http:
        resolved = await http.post(f"/api/comments/{nested['id']}/resolve")
        assert resolved.status_code == 200, resolved.text
        head = resolved.json()
        assert head["id"] == root["id"] and head["resolved"] is True
        assert head["resolved_by"] == {"id": "rita", "name": "Rita"} and head["resolved_at"]
        again = await http.post(f"/api/comments/{root['id']}/resolve")
        assert again.status_code == 409
        assert again.json()["error"] == {"code": "invalid_transition", "state": "resolved",
                                         "message": again.json()["error"]["message"]}
        listed = (await http.get(f"/api/documents/{doc}/comments")).json()["items"]
        assert [c["id"] for c in listed] == [root["id"], reply["id"], nested["id"], other["id"]]
        assert [c["resolved"] for c in listed] == [True, True, True, False]
        open_ones = (await http.get(f"/api/documents/{doc}/comments",
                                    params={"resolved": "false"})).json()["items"]
        assert [c["id"] for c in open_ones] == [other["id"]]
        on_thesis = (await http.get(f"/api/documents/{doc}/comments",
                                    params={"path": "/thesis"})).json()["items"]
        assert len(on_thesis) == 3
    async with server.http(ann) as http:  # the thread's author reopens it
        reopened = await http.post(f"/api/comments/{reply['id']}/reopen")
        assert reopened.status_code == 200
        assert reopened.json()["resolved"] is False and reopened.json()["resolved_by"] is None
        listed = (await http.get(f"/api/documents/{doc}/comments")).json()["items"]
        assert not any(c["resolved"] for c in listed)
        assert (await http.post(f"/api/comments/{root['id']}/reopen")).status_code == 409
        history = (await http.get(f"/api/documents/{doc}/history")).json()["events"]
    types = [e["type"] for e in history]
    assert types.count("comment.added") == 4
    assert types.count("comment.resolved") == 1 and types.count("comment.reopened") == 1


async def test_only_the_author_edits_and_the_event_keeps_before_and_after(
        server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    doc = (await server.create(ann))["id"]
    comment = (await _comment(server, ann, doc, body="Frist draft")).json()
    async with server.http(rita) as http:
        assert (await http.patch(f"/api/comments/{comment['id']}",
                                 json={"body": "hijack"})).status_code == 403
    async with server.http(ann, **{"X-Correlation-ID": "fix-typo"}) as http:
        edited = await http.patch(f"/api/comments/{comment['id']}", json={"body": "First draft"})
        assert edited.status_code == 200 and edited.json()["body"] == "First draft"
        assert edited.json()["edited_at"] is not None
        for bad in ({"body": ""}, {"body": "x" * 10_001}, {}, {"body": "ok", "path": "/a"}):
            assert (await http.patch(f"/api/comments/{comment['id']}",
                                     json=bad)).status_code == 400
        history = (await http.get(f"/api/documents/{doc}/history")).json()["events"]
    event = next(e for e in history if e["type"] == "comment.edited")
    assert event["data"]["before"] == "Frist draft" and event["data"]["after"] == "First draft"
    assert event["correlation_id"] == "fix-typo"
    denied = [e for e in history if e["type"] == "access.denied"]
    assert denied == []  # the refusal named a comment, not the document: it is tenant-wide
    async with server.http(ann) as http:
        tenant = (await http.get("/api/events", params={"type": "access.denied"})).json()
    assert len(tenant["events"]) == 1


async def test_bad_comments_are_refused_and_change_nothing(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    viewer = server.token(user="vic", roles=["viewer"])
    rival = server.token(user="eve", roles=["analyst"], tenant="globex")
    doc = (await server.create(ann))["id"]
    elsewhere = (await server.create(ann))["id"]
    foreign = (await _comment(server, ann, elsewhere, body="elsewhere")).json()
    for body in ({"body": ""}, {"body": "   "}, {"body": "x" * 10_001}, {"body": 7},
                 {"body": "ok", "path": "no-slash"}, {"body": "ok", "parent": foreign["id"]},
                 {"body": "ok", "parent": "missing"}, {"body": "ok", "color": "red"}):
        assert (await _comment(server, ann, doc, **body)).status_code == 400, body
    assert (await _comment(server, ann, doc, body="x" * 10_000)).status_code == 201
    assert (await _comment(server, viewer, doc, body="hi")).status_code == 403
    assert (await _comment(server, rival, doc, body="hi")).status_code == 404
    async with server.http(rival) as http:
        assert (await http.post(f"/api/comments/{foreign['id']}/resolve")).status_code == 404
        assert (await http.get(f"/api/documents/{doc}/comments")).status_code == 404
    async with server.http(ann) as http:
        listed = (await http.get(f"/api/documents/{doc}/comments")).json()["items"]
        assert len(listed) == 1
        assert (await http.get(f"/api/documents/{doc}/comments",
                               params={"resolved": "maybe"})).status_code == 400


async def test_subscribers_see_comments_live(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    doc = (await server.create(ann))["id"]
    async with await server.connect(ann) as watcher:
        await watcher.ok("subscribe", doc=doc)
        added = (await _comment(server, rita, doc, body="Where is the bridge?")).json()
        pushed = await watcher.recv_type("comment", timeout=TIMEOUT)
        assert pushed == {"type": "comment", "doc": doc, "comment": added}
        async with server.http(rita) as http:
            await http.post(f"/api/comments/{added['id']}/resolve")
        pushed = await watcher.recv_type("comment", timeout=TIMEOUT)
        assert pushed["comment"]["resolved"] is True


@pytest.mark.parametrize("settings_overrides", [{"redact": frozenset({"body", "note"})}])
async def test_comment_bodies_and_review_notes_are_redacted_in_events(
        server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    doc = (await server.create(ann))["id"]
    comment = (await _comment(server, ann, doc, body="client SSN 123")).json()
    assert comment["body"] == "client SSN 123"  # the comment itself keeps it
    async with server.http(ann) as http:
        review = (await http.post(f"/api/documents/{doc}/reviews",
                                  json={"reviewer": {"id": "rita"}})).json()
    async with server.http(rita) as http:
        await http.post(f"/api/reviews/{review['id']}/transition", json={"to": "in_progress"})
        await http.post(f"/api/reviews/{review['id']}/transition",
                        json={"to": "changes_requested", "note": "secret note"})
        history = (await http.get(f"/api/documents/{doc}/history")).json()["events"]
        assert (await http.get(f"/api/documents/{doc}/verify")).json()["ok"] is True
    added = next(e for e in history if e["type"] == "comment.added")
    assert added["data"]["body"] == "[redacted]"
    moved = [e for e in history if e["type"] == "review.transitioned"][-1]
    assert moved["data"]["note"] == "[redacted]"
