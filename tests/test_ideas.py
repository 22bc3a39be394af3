"""Ideas (section 10): create, list and read them; documents join an idea when created; the
idea's timeline and the presence of its documents; nothing crosses tenants."""

from __future__ import annotations

from typing import Any

from tests.support import RunningServer, replace

TIMEOUT = 10


async def _idea(server: RunningServer, token: str, title: str,
                ticker: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title}
    if ticker is not None:
        body["ticker"] = ticker
    async with server.http(token) as http:
        response = await http.post("/api/ideas", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_ideas_are_created_listed_and_read_with_their_documents(
        server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    idea = await _idea(server, ann, "Acme Robotics long", "ACME")
    assert idea["created_by"] == {"id": "ann", "name": "Ann"}
    assert idea["ticker"] == "ACME" and idea["title"] == "Acme Robotics long"
    await _idea(server, ann, "Globex short")
    async with server.http(ann) as http:
        memo = await http.post("/api/documents", json={
            "kind": "memo", "title": "Acme memo", "state": {}, "idea": idea["id"]})
        assert memo.status_code == 201 and memo.json()["idea"] == idea["id"]
        plain = (await http.post("/api/documents", json={"kind": "memo", "title": "x"})).json()
        assert plain["idea"] is None
        read = (await http.get(f"/api/ideas/{idea['id']}")).json()
        assert [d["id"] for d in read["documents"]] == [memo.json()["id"]]
        assert "state" not in read["documents"][0]
        assert read["reviews"] == [] and read["workflows"] == []
        assert (await http.get(f"/api/documents/{memo.json()['id']}")).json()["idea"] == idea["id"]
        by_word = (await http.get("/api/ideas", params={"q": "robot"})).json()
        assert [i["id"] for i in by_word["items"]] == [idea["id"]]
        by_ticker = (await http.get("/api/ideas", params={"q": "acme"})).json()
        assert [i["id"] for i in by_ticker["items"]] == [idea["id"]]
        assert (await http.get("/api/ideas", params={"q": "nothing"})).json()["items"] == []
        page = (await http.get("/api/ideas", params={"limit": 1})).json()
        rest = (await http.get("/api/ideas", params={"cursor": page["next"]})).json()
        assert len(page["items"]) == 1 and len(rest["items"]) == 1
        assert page["items"][0]["title"] == "Globex short"  # newest first


async def test_bad_ideas_and_unknown_ideas_are_refused(server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    viewer = server.token(user="vic", roles=["viewer"])
    rival = server.token(user="ann", roles=["analyst"], tenant="globex")
    theirs = await _idea(server, rival, "Their idea")
    async with server.http(ann) as http:
        for body in ({}, {"title": ""}, {"title": "x" * 201}, {"title": "ok", "ticker": 5},
                     {"title": "ok", "extra": 1}, []):
            assert (await http.post("/api/ideas", json=body)).status_code == 400, body
        # Another tenant's idea does not exist here: not by id, not as a document's idea.
        assert (await http.get(f"/api/ideas/{theirs['id']}")).status_code == 404
        joined = await http.post("/api/documents", json={
            "kind": "memo", "title": "x", "idea": theirs["id"]})
        assert joined.status_code == 404
        assert (await http.get("/api/ideas")).json()["items"] == []
        assert (await http.get("/api/ideas", params={"cursor": "junk"})).status_code == 400
    async with server.http(viewer) as http:
        assert (await http.post("/api/ideas", json={"title": "Mine"})).status_code == 403
        assert (await http.get("/api/ideas")).status_code == 200


async def test_every_event_of_an_idea_carries_it_and_forms_its_timeline(
        server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    idea = await _idea(server, ann, "Initech turnaround", "INTC")
    async with await server.connect(ann) as client:
        created = await client.ok("create", kind="valuation", title="Initech DCF",
                                  state={"wacc": 0.09}, idea=idea["id"])
        doc = created["document"]["id"]
        assert created["document"]["idea"] == idea["id"]
        stream = await client.ok("subscribe", stream={"ideas": [idea["id"]]}, since=0)
        await client.ok("patch", doc=doc, base=1, ops=replace("/wacc", 0.1))
        other = (await server.create(ann, title="unrelated", state={"x": 0}))["id"]
        await client.ok("patch", doc=other, base=1, ops=replace("/x", 1))
        async with server.http(ann) as http:
            review = (await http.post(f"/api/documents/{doc}/reviews",
                                      json={"reviewer": {"id": "rita"}})).json()
        async with server.http(rita) as http:
            await http.post(f"/api/documents/{doc}/comments", json={"body": "WACC source?"})
        seen: list[dict[str, Any]] = []
        while len(seen) < 5:
            message = await client.recv_type("event", timeout=TIMEOUT)
            assert message["stream"] == stream["stream"]
            seen.append(message["event"])
    types = [e["type"] for e in seen]
    assert types == ["idea.created", "document.created", "patch.applied", "review.assigned",
                     "comment.added"]
    assert all(e["idea"] == idea["id"] for e in seen)
    assert seen[3]["data"]["review"] == review["id"]
    async with server.http(ann) as http:
        timeline = (await http.get("/api/events", params={"idea": idea["id"]})).json()
        assert [e["type"] for e in timeline["events"]] == types
        everything = (await http.get("/api/events")).json()["events"]
        unrelated = [e for e in everything if e["doc"] == other]
        assert unrelated and all(e["idea"] is None for e in unrelated)
        # The chain covers the idea field: the document's chain still verifies.
        assert (await http.get(f"/api/documents/{doc}/verify")).json() == {
            "ok": True, "events": 4}


async def test_an_idea_subscription_gets_presence_of_all_its_documents(
        server: RunningServer) -> None:
    ann = server.token(user="ann", roles=["analyst"])
    bob = server.token(user="bob", roles=["analyst"])
    rival = server.token(user="eve", roles=["analyst"], tenant="globex")
    idea = await _idea(server, ann, "Umbrella", "UMB")
    async with server.http(ann) as http:
        memo = (await http.post("/api/documents", json={
            "kind": "memo", "title": "m", "idea": idea["id"]})).json()["id"]
        valuation = (await http.post("/api/documents", json={
            "kind": "valuation", "title": "v", "idea": idea["id"]})).json()["id"]
    async with await server.connect(ann) as watcher, await server.connect(bob) as walker:
        await walker.ok("subscribe", doc=memo)
        reply = await watcher.ok("subscribe", idea=idea["id"])
        assert reply["idea"] == idea["id"]
        assert [(e["doc"], e["user"]["id"]) for e in reply["presence"]] == [(memo, "bob")]
        await walker.ok("subscribe", doc=valuation)
        joined = await watcher.recv_type("presence", timeout=TIMEOUT)
        assert joined["idea"] == idea["id"] and joined["doc"] == valuation
        assert [e["user"]["id"] for e in joined["joins"]] == ["bob"]
        await walker.ok("presence", doc=valuation, state={"status": "editing", "focus": "/wacc"})
        updated = await watcher.recv_type("presence", timeout=TIMEOUT)
        assert updated["updates"][0]["state"]["focus"] == "/wacc"
        await watcher.ok("unsubscribe", idea=idea["id"])
        async with await server.connect(rival) as outsider:
            refused = await outsider.request("subscribe", idea=idea["id"])
            assert refused["code"] == "not_found"
