"""The client library's review-trail methods against a real server: ideas, reviews, comment
threads, notifications and bulk, with the contract's errors as typed exceptions."""

from __future__ import annotations

import coedit_client
import pytest
from coedit_client.errors import Forbidden, InvalidTransition

from tests.support import RunningServer


async def test_review_trail_through_the_client(server: RunningServer) -> None:
    ann, rita = server.token(user="ann"), server.token(user="rita", roles=["reviewer"])
    async with coedit_client.Api(server.http_url, token=ann) as api, \
            coedit_client.Api(server.http_url, token=rita) as reviewer:
        idea = await api.ideas.create("Acme long", ticker="ACME")
        doc = (await api.documents.create("valuation", "Acme DCF", state={},
                                          idea=idea["id"]))["id"]
        assert [d["id"] for d in (await api.ideas.get(idea["id"]))["documents"]] == [doc]
        assert [i["id"] for i in (await api.ideas.list(q="acme"))["items"]] == [idea["id"]]
        review = await api.reviews.assign(doc, {"id": "rita", "name": "Rita"},
                                          due="2030-01-01T00:00:00Z")
        with pytest.raises(InvalidTransition) as refused:
            await api.reviews.assign(doc, {"id": "rita", "name": "Rita"})
        assert refused.value.state == "assigned"
        with pytest.raises(Forbidden):
            await api.reviews.transition(review["id"], "in_progress")
        await reviewer.reviews.transition(review["id"], "in_progress")
        thread = await reviewer.comments.add(doc, "Source for WACC?", path="/wacc")
        await api.comments.add(doc, "Bloomberg", parent=thread["id"])
        with pytest.raises(InvalidTransition) as blocked:
            await reviewer.reviews.transition(review["id"], "approved")
        assert blocked.value.fields["open_threads"] == 1
        assert (await reviewer.comments.resolve(thread["id"]))["resolved"] is True
        approved = await reviewer.reviews.transition(review["id"], "approved")
        assert approved["status"] == "approved"
        assert [c["body"] for c in await api.comments.list(doc)] == ["Source for WACC?",
                                                                      "Bloomberg"]
        notes = (await api.notifications.list())["items"]
        assert [n["type"] for n in notes] == ["review.decided"]
        await api.notifications.read(notes[0]["id"])
        assert (await api.notifications.list(unread=True))["items"] == []
        others = [(await api.documents.create("valuation", f"V{i}", state={}))["id"]
                  for i in range(3)]
        checked = await api.bulk.run("review.assign", others, {"reviewer": {"id": "rita"}},
                                     dry_run=True)
        assert checked["succeeded"] == 3 and checked["dry_run"] is True
        done = await api.bulk.run("review.assign", others, {"reviewer": {"id": "rita"}})
        assert done["succeeded"] == 3 and done["rolled_back"] is False
        mine = await reviewer.reviews.list(reviewer="me", status="assigned")
        assert sorted(r["doc"] for r in mine["items"]) == sorted(others)


async def test_workflows_and_search_through_the_client(server: RunningServer) -> None:
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    async with coedit_client.Api(server.http_url, token=admin) as boss, \
            coedit_client.Api(server.http_url, token=ann) as api:
        template = await boss.workflows.create_template({"name": "Short path", "steps": [
            {"key": "draft", "title": "Draft", "action": "checklist", "role": "analyst",
             "config": {"items": ["thesis", "risks"]}},
            {"key": "sign", "title": "Sign off", "action": "approval", "role": "admin",
             "after": ["draft"]}]})
        await boss.workflows.publish(template["id"])
        assert [t["id"] for t in (await boss.workflows.templates(status="published"))[
            "items"]] == [template["id"]]
        idea = await api.ideas.create("Initech turnaround")
        instance = await api.workflows.instantiate(template["id"], idea["id"])
        draft = next(s for s in instance["steps"] if s["key"] == "draft")
        await api.workflows.step(draft["id"], "start")
        with pytest.raises(coedit_client.errors.BadRequest):
            await api.workflows.step(draft["id"], "complete", {"checked": ["thesis"]})
        await api.workflows.step(draft["id"], "complete", {"checked": ["thesis", "risks"]})
        sign = next(s for s in (await api.workflows.instance(instance["id"]))["steps"]
                    if s["key"] == "sign")
        assert sign["state"] == "ready"
        with pytest.raises(Forbidden):
            await api.workflows.step(sign["id"], "start")
        await boss.workflows.step(sign["id"], "start")
        await boss.workflows.step(sign["id"], "complete", {"approved": True})
        done = await api.workflows.instance(instance["id"])
        assert done["status"] == "completed"
        await api.documents.create("memo", "Initech memo",
                                   state={"thesis": "Margins recover with pricing"},
                                   idea=idea["id"])
        found = await api.search("pricing margns")  # one edit away, five letters or more
        assert [i["document"]["title"] for i in found["items"]] == ["Initech memo"]
        assert found["items"][0]["matches"]


@pytest.mark.parametrize("settings_overrides", [{"http_rate_limit": 3}])
async def test_the_client_waits_out_a_rate_limit(server: RunningServer) -> None:
    """Past the limit the server answers 429 with Retry-After; a client that may not wait
    that long raises RateLimited carrying retry_after_ms (waiting within ``max_wait`` is
    tested against a scripted transport in tests/test_client_http.py: the window here is a
    minute)."""
    token = server.token(user="ann")
    async with coedit_client.Api(server.http_url, token=token, retries=0) as impatient:
        for _ in range(3):
            await impatient.ideas.list()
        with pytest.raises(coedit_client.errors.RateLimited) as limited:
            await impatient.ideas.list()
        assert 0 < limited.value.retry_after_ms <= 60_000
