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
