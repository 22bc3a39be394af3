"""Bulk operations (section 15): each item checked as its single call, dry runs, all or
nothing, per-item results, one correlation id, bulk.completed, live messages."""

from __future__ import annotations

from typing import Any

from tests.support import RunningServer

TIMEOUT = 10


async def _bulk(server: RunningServer, token: str, **body: Any) -> Any:
    async with server.http(token, **{"X-Correlation-ID": "bulk-1"}) as http:
        return await http.post("/api/bulk", json=body)


async def _events(server: RunningServer, token: str, **params: Any) -> list[dict[str, Any]]:
    async with server.http(token) as http:
        return (await http.get("/api/events", params=params)).json()[  # type: ignore[no-any-return]
            "events"]


async def test_bulk_assign_applies_every_item_with_one_correlation_id(
        server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    docs = [(await server.create(ann, title=f"Memo {i}"))["id"] for i in range(5)]
    assert rita
    async with await server.connect(ann) as watcher:
        await watcher.ok("subscribe", doc=docs[0])
        answer = await _bulk(server, ann, operation="review.assign", ids=docs,
                             params={"reviewer": {"id": "rita", "name": "Rita"}})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body == {"operation": "review.assign", "total": 5, "succeeded": 5, "failed": 0,
                        "results": [{"id": d, "ok": True} for d in docs], "dry_run": False,
                        "rolled_back": False, "correlation_id": "bulk-1"}
        pushed = await watcher.recv_type("review", timeout=TIMEOUT)
        assert pushed["review"]["reviewer"]["id"] == "rita"
    events = await _events(server, ann, type="review.assigned")
    assert len(events) == 5
    assert all(e["source"] == "bulk" and e["correlation_id"] == "bulk-1" for e in events)
    (completed,) = await _events(server, ann, type="bulk.completed")
    assert completed["data"] == {"operation": "review.assign", "total": 5, "succeeded": 5,
                                 "failed": 0}
    async with server.http(rita) as http:
        notes = (await http.get("/api/notifications")).json()["items"]
    assert len(notes) == 5


async def test_one_bad_item_changes_nothing_by_default(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rival = server.token(user="eve", roles=["analyst"], tenant="globex")
    docs = [(await server.create(ann))["id"] for _ in range(3)]
    foreign = (await server.create(rival))["id"]
    # The third already has an open review by rita: that item fails as its single call would.
    async with server.http(ann) as http:
        await http.post(f"/api/documents/{docs[2]}/reviews", json={"reviewer": {"id": "rita"}})
    before = await _events(server, ann)
    answer = (await _bulk(server, ann, operation="review.assign",
                          ids=[docs[0], docs[1], docs[2], foreign],
                          params={"reviewer": {"id": "rita"}})).json()
    assert answer["rolled_back"] is True and answer["succeeded"] == 0 and answer["failed"] == 2
    results = {r["id"]: r for r in answer["results"]}
    assert results[docs[0]] == {"id": docs[0], "ok": True}
    assert results[docs[2]]["error"]["code"] == "invalid_transition"
    assert results[foreign]["error"]["code"] == "not_found"  # another tenant's: not there
    assert await _events(server, ann) == before  # no event at all, not even bulk.completed
    async with server.http(ann) as http:
        reviews = (await http.get("/api/reviews")).json()["items"]
    assert len(reviews) == 1
    # Without all_or_nothing the good items are applied and the bad ones reported.
    partial = (await _bulk(server, ann, operation="review.assign",
                           ids=[docs[0], docs[2], docs[1]], all_or_nothing=False,
                           params={"reviewer": {"id": "rita"}})).json()
    assert partial["succeeded"] == 2 and partial["failed"] == 1
    assert partial["rolled_back"] is False
    assert [r["ok"] for r in partial["results"]] == [True, False, True]
    async with server.http(ann) as http:
        assert len((await http.get("/api/reviews")).json()["items"]) == 3


async def test_dry_run_checks_every_item_and_stores_nothing(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    docs = [(await server.create(ann))["id"] for _ in range(3)]
    before = await _events(server, ann)
    # The same document twice: the second would fail after the first, and the dry run says so.
    answer = (await _bulk(server, ann, operation="review.assign", dry_run=True,
                          ids=[docs[0], docs[1], docs[0]],
                          params={"reviewer": {"id": "rita"}})).json()
    assert answer["dry_run"] is True and answer["rolled_back"] is False
    assert answer["succeeded"] == 2 and answer["failed"] == 1
    assert answer["results"][2]["error"]["code"] == "invalid_transition"
    assert await _events(server, ann) == before
    async with server.http(ann) as http:
        assert (await http.get("/api/reviews")).json()["items"] == []
        assert (await http.get("/api/notifications")).json()["items"] == []


async def test_bulk_transitions_and_archive_follow_their_single_calls(
        server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    admin = server.token(user="ada", roles=["admin"])
    docs = [(await server.create(ann))["id"] for _ in range(3)]
    assigned = (await _bulk(server, ann, operation="review.assign", ids=docs,
                            params={"reviewer": {"id": "rita"}})).json()
    assert assigned["succeeded"] == 3
    async with server.http(ann) as http:
        reviews = [r["id"] for r in (await http.get("/api/reviews")).json()["items"]]
    started = (await _bulk(server, rita, operation="review.transition", ids=reviews,
                           params={"to": "in_progress"})).json()
    assert started["succeeded"] == 3
    # Approving needs no open threads: one document has one, so that item fails.
    async with server.http(rita) as http:
        await http.post(f"/api/documents/{docs[0]}/comments", json={"body": "open"})
    approved = (await _bulk(server, rita, operation="review.transition", ids=reviews,
                            all_or_nothing=False, params={"to": "approved"})).json()
    assert approved["succeeded"] == 2
    failure = next(r for r in approved["results"] if not r["ok"])
    assert failure["error"]["code"] == "invalid_transition"
    assert failure["error"]["open_threads"] == 1
    # Analysts lack the reviewer's role: the whole request is refused and recorded.
    refused = await _bulk(server, ann, operation="review.transition", ids=reviews,
                          params={"to": "approved"})
    assert refused.status_code == 403
    assert (await _bulk(server, ann, operation="document.archive", ids=docs)).status_code == 403
    archived = (await _bulk(server, admin, operation="document.archive", ids=docs)).json()
    assert archived["succeeded"] == 3
    again = (await _bulk(server, admin, operation="document.archive", ids=docs[:1])).json()
    assert again["results"][0]["error"]["code"] == "invalid_transition"
    denied = await _events(server, admin, type="access.denied")
    assert len(denied) == 2


async def test_malformed_bulk_requests_are_refused(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    doc = (await server.create(ann))["id"]
    bad_bodies: list[Any] = [
        [], {"operation": "nope", "ids": [doc]}, {"operation": "review.assign", "ids": []},
        {"operation": "review.assign", "ids": "x"}, {"operation": "review.assign", "ids": [1]},
        {"operation": "review.assign", "ids": [doc], "params": {"reviewer": "rita"}},
        {"operation": "review.assign", "ids": [doc], "params": {"reviewer": {"id": "r"}},
         "dry_run": "yes"},
        {"operation": "review.transition", "ids": [doc], "params": {"to": "done"}},
        {"operation": "document.archive", "ids": [doc], "extra": 1},
    ]
    async with server.http(ann) as http:
        for body in bad_bodies:
            response = await http.post("/api/bulk", json=body)
            assert response.status_code == 400, (body, response.text)
        too_many = await http.post("/api/bulk", json={
            "operation": "review.assign", "ids": [f"d{i}" for i in range(1001)],
            "params": {"reviewer": {"id": "rita"}}})
        assert too_many.status_code == 413
        assert too_many.json()["error"]["code"] == "too_large"
