"""Workflows (section 13): templates, instances, every step verb and its refusals, automatic
completions, dependents becoming ready, instance completion, pause/resume/cancel, step.ready
notifications, tenant isolation and refusals on the record, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support import RunningServer
from tests.workflow_support import COMMITTEE, Calls


async def test_templates_are_drafted_validated_published_and_versioned(
        server: RunningServer) -> None:
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    calls = Calls(server)
    refused = await calls.post(ann, "/api/workflows/templates", {"name": "x", "steps": []})
    assert refused.status_code == 403
    for steps, fault in [
        ([{"key": "a", "action": "telepathy"}], "steps[0].action"),
        ([{"key": "a", "action": "checklist", "config": {"items": []}}], "steps[0].config"),
        ([{"key": "a", "action": "review", "config": {}}], "steps[0].config"),
        ([{"key": "A b", "action": "approval"}], "steps[0].key"),
        ([{"key": "a", "action": "approval", "role": "king"}], "steps[0].role"),
    ]:
        bad = await calls.post(admin, "/api/workflows/templates", {"name": "x", "steps": steps})
        assert bad.status_code == 400, (steps, bad.text)
        assert fault in bad.json()["error"]["message"]
    made = await calls.post(admin, "/api/workflows/templates",
                            {"name": "Empty for now", "description": "later"})
    assert made.status_code == 201, made.text
    template = made.json()
    assert template["status"] == "draft" and template["version"] == 1
    assert template["created_by"] == {"id": "ada", "name": "Ada"}
    path = f"/api/workflows/templates/{template['id']}"
    empty = await calls.post(admin, f"{path}/publish")
    assert empty.status_code == 400 and "at least one step" in empty.json()["error"]["message"]
    for steps, fault in [
        ([{"key": "a", "action": "approval"}, {"key": "a", "action": "approval"}],
         "steps[1].key 'a' is used by an earlier step"),
        ([{"key": "a", "action": "approval", "after": ["b"]}, {"key": "b", "action": "approval"}],
         "steps[0].after names 'b'"),
    ]:
        changed = await calls.patch(admin, path, {"steps": steps})
        assert changed.status_code == 200, changed.text
        refused_publish = await calls.post(admin, f"{path}/publish")
        assert refused_publish.status_code == 400
        assert fault in refused_publish.json()["error"]["message"]
    assert (await calls.patch(admin, path, {"steps": COMMITTEE})).status_code == 200
    published = await calls.post(admin, f"{path}/publish")
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published" and published.json()["version"] == 1
    again = await calls.post(admin, f"{path}/publish")
    assert again.status_code == 409 and again.json()["error"]["state"] == "published"
    steps = published.json()["steps"]
    assert steps[0] == {"key": "memo", "title": "Draft the memo", "action": "document",
                        "role": "analyst", "required": True, "after": [],
                        "config": {"stage": "memo"}}
    edited = await calls.patch(admin, path, {"name": "Committee path v2"})
    assert edited.json()["status"] == "draft" and edited.json()["version"] == 2
    assert (await calls.patch(ann, path, {"name": "mine"})).status_code == 403
    listed = (await calls.get(ann, "/api/workflows/templates", q="committee",
                              status="draft")).json()
    assert [t["id"] for t in listed["items"]] == [template["id"]]
    assert (await calls.get(ann, "/api/workflows/templates", status="published")).json()[
        "items"] == []
    assert (await calls.get(ann, "/api/workflows/templates", status="nope")).status_code == 400
    events = await calls.events(admin, type="workflow.*")
    assert "workflow.template_published" in [e["type"] for e in events]
    denied = await calls.events(admin, type="access.denied")
    assert len(denied) == 2


async def test_an_instance_copies_the_template_and_readies_the_first_steps(
        server: RunningServer) -> None:
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    calls = Calls(server)
    idea = await calls.idea(ann)
    draft = (await calls.post(admin, "/api/workflows/templates",
                              {"name": "Draft", "steps": COMMITTEE})).json()
    refused = await calls.post(ann, f"/api/workflows/templates/{draft['id']}/instantiate",
                               {"idea": idea})
    assert refused.status_code == 409 and refused.json()["error"]["state"] == "draft"
    template = await calls.published(admin)
    assert (await calls.post(rita, f"/api/workflows/templates/{template['id']}/instantiate",
                             {"idea": idea})).status_code == 403
    assert (await calls.post(ann, f"/api/workflows/templates/{template['id']}/instantiate",
                             {"idea": "nope"})).status_code == 404
    instance = await calls.start(ann, template["id"], idea)
    assert instance["template"] == {"id": template["id"], "version": 1,
                                    "name": "Committee path"}
    assert instance["idea"] == idea and instance["status"] == "active"
    assert instance["created_by"] == {"id": "ann", "name": "Ann"}
    states = {s["key"]: s["state"] for s in instance["steps"]}
    assert states == {"memo": "ready", "numbers": "ready", "memo_review": "pending",
                      "committee": "pending", "monitoring": "pending"}
    first = instance["steps"][0]
    assert set(first) == {"id", "key", "title", "action", "role", "required", "after",
                          "config", "state", "assignee", "data", "started_at",
                          "completed_at"}
    # A later version of the template does not change the running instance.
    await calls.patch(admin, f"/api/workflows/templates/{template['id']}",
                      {"steps": COMMITTEE[:1]})
    assert len((await calls.instance(ann, instance["id"]))["steps"]) == 5
    # Each ready step told its role.
    async with server.http(ann) as http:
        notes = (await http.get("/api/notifications")).json()["items"]
    ready = [n for n in notes if n["type"] == "step.ready"]
    assert sorted(n["title"] for n in ready) == ["Step ready: Draft the memo",
                                                 "Step ready: Normalize the numbers"]
    assert all(n["idea"] == idea for n in ready)
    async with server.http(rita) as http:
        assert [n for n in (await http.get("/api/notifications")).json()["items"]
                if n["type"] == "step.ready"] == []
    detail = (await calls.get(ann, f"/api/ideas/{idea}")).json()
    assert [w["id"] for w in detail["workflows"]] == [instance["id"]]
    listed = (await calls.get(ann, "/api/workflows/instances", idea=idea,
                              status="active")).json()
    assert [i["id"] for i in listed["items"]] == [instance["id"]]
    events = await calls.events(ann, idea=idea)
    assert [e["type"] for e in events].count("workflow.step_transitioned") == 2
    assert "workflow.instantiated" in [e["type"] for e in events]


async def test_the_whole_path_runs_with_automatic_completions(server: RunningServer) -> None:
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    calls = Calls(server)
    idea = await calls.idea(ann)
    template = await calls.published(admin)
    instance = await calls.start(ann, template["id"], idea)
    steps = Calls.by_key(instance)
    # A hand-made complete of a step that completes by itself is refused.
    assert (await calls.step(ann, steps["memo"]["id"], "start")).status_code == 200
    hand = await calls.step(ann, steps["memo"]["id"], "complete", {})
    assert hand.status_code == 409 and hand.json()["error"]["state"] == "in_progress"
    memo = await calls.document(ann, idea, "memo")
    now = Calls.by_key(await calls.instance(ann, instance["id"]))
    assert now["memo"]["state"] == "completed"
    assert now["memo"]["data"] == {"automatic": True, "trigger": "document.created"}
    assert now["memo_review"]["state"] == "ready"
    # The checklist needs every item.
    numbers = steps["numbers"]["id"]
    assert (await calls.step(ann, numbers, "start")).status_code == 200
    partial = await calls.step(ann, numbers, "complete", {"checked": ["revenue"]})
    assert partial.status_code == 400 and "margins" in partial.json()["error"]["message"]
    done = await calls.step(ann, numbers, "complete", {"checked": ["revenue", "margins"]})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "completed" and done.json()["instance"] == instance["id"]
    assert done.json()["assignee"] == {"id": "ann", "name": "Ann"}
    # The memo review completes when its review is approved.
    async with server.http(ann) as http:
        review = (await http.post(f"/api/documents/{memo['id']}/reviews",
                                  json={"reviewer": {"id": "rita", "name": "Rita"}})).json()
    async with server.http(rita) as http:
        for to in ("in_progress", "approved"):
            moved = await http.post(f"/api/reviews/{review['id']}/transition", json={"to": to})
            assert moved.status_code == 200, moved.text
    now = Calls.by_key(await calls.instance(ann, instance["id"]))
    assert now["memo_review"]["state"] == "completed"
    assert now["committee"]["state"] == "ready"
    committee = now["committee"]["id"]
    assert (await calls.step(ann, committee, "start")).status_code == 403
    assert (await calls.step(admin, committee, "start")).status_code == 200
    bad = await calls.step(admin, committee, "complete", {"approved": "yes"})
    assert bad.status_code == 400
    signed = await calls.step(admin, committee, "complete", {"approved": True, "comment": "Go"})
    assert signed.status_code == 200 and signed.json()["state"] == "completed"
    final = await calls.instance(ann, instance["id"])
    # Monitoring is optional: the instance completes without it.
    assert final["status"] == "completed" and final["completed_at"] is not None
    assert Calls.by_key(final)["monitoring"]["state"] == "ready"
    late = await calls.step(ann, Calls.by_key(final)["monitoring"]["id"], "start")
    assert late.status_code == 409 and late.json()["error"]["instance_status"] == "completed"
    events = await calls.events(ann, idea=idea)
    types = [e["type"] for e in events]
    assert types.count("workflow.completed") == 1
    moves = [(e["data"]["key"], e["data"]["from"], e["data"]["to"]) for e in events
             if e["type"] == "workflow.step_transitioned"]
    assert ("memo_review", "ready", "completed") in moves
    assert ("committee", "in_progress", "completed") in moves
    metrics = (await calls.get(ann, "/metrics")).text
    assert 'coedit_workflow_step_transitions_total{action="review",to="completed"} 1.0' \
        in metrics
    assert 'coedit_workflow_step_cycle_seconds_count{action="checklist"} 1.0' in metrics


async def test_every_verb_moves_as_section_13_says_and_refuses_the_rest(
        server: RunningServer) -> None:
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    bob = server.token(user="bob", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    calls = Calls(server)
    idea = await calls.idea(ann)
    steps = [{"key": "first", "action": "approval", "role": "analyst"},
             {"key": "second", "action": "approval", "role": "analyst", "after": ["first"]}]
    template = await calls.published(admin, steps, name="Two approvals")
    instance = await calls.start(ann, template["id"], idea)
    first, second = (s["id"] for s in instance["steps"])
    unknown = await calls.step(ann, first, "teleport")
    assert unknown.status_code == 400
    # pending: nothing but skip moves it.
    for verb in ("claim", "start"):
        refused = await calls.step(ann, second, verb)
        assert refused.status_code == 409 and refused.json()["error"]["state"] == "pending"
    # The step's role first, before any state.
    assert (await calls.step(rita, first, "claim")).status_code == 403
    assert (await calls.step(rita, second, "claim")).status_code == 403
    claimed = await calls.step(ann, first, "claim")
    assert claimed.status_code == 200
    assert claimed.json()["state"] == "ready"
    assert claimed.json()["assignee"] == {"id": "ann", "name": "Ann"}
    # Once assigned, only the assignee or an admin starts, completes, fails or blocks.
    assert (await calls.step(bob, first, "start")).status_code == 403
    assert (await calls.step(ann, first, "start", {"extra": 1})).status_code == 400
    started = await calls.step(ann, first, "start")
    assert started.json()["state"] == "in_progress" and started.json()["started_at"]
    for verb, payload in [("fail", {"reason": "x"}), ("block", {"reason": "x"}),
                          ("complete", {"approved": True})]:
        assert (await calls.step(bob, first, verb, payload)).status_code == 403
    assert (await calls.step(ann, first, "block", {})).status_code == 400
    blocked = await calls.step(ann, first, "block", {"reason": "waiting for data"})
    assert blocked.json()["state"] == "blocked"
    assert blocked.json()["data"] == {"reason": "waiting for data"}
    for verb, payload in [("start", None), ("complete", {"approved": True}),
                          ("fail", {"reason": "x"}), ("retry", None)]:
        refused = await calls.step(admin, first, verb, payload)
        assert refused.status_code == 409, (verb, refused.text)
        assert refused.json()["error"]["state"] == "blocked"
    assert (await calls.step(bob, first, "unblock")).json()["state"] == "in_progress"
    # approved: false fails the step; only an admin retries, keeping the assignee.
    failed = await calls.step(ann, first, "complete", {"approved": False, "comment": "no"})
    assert failed.json()["state"] == "failed"
    assert (await calls.step(ann, first, "retry")).status_code == 403
    retried = await calls.step(admin, first, "retry")
    assert retried.json()["state"] == "ready"
    assert retried.json()["assignee"] == {"id": "ann", "name": "Ann"}
    assert (await calls.step(ann, first, "start")).status_code == 200
    failed = await calls.step(ann, first, "fail", {"reason": "numbers wrong"})
    assert failed.json()["state"] == "failed"
    assert Calls.by_key(await calls.instance(ann, instance["id"]))["second"]["state"] \
        == "pending"
    # skip: admin only, with a reason, from any state but completed and skipped.
    assert (await calls.step(ann, first, "skip", {"reason": "x"})).status_code == 403
    assert (await calls.step(admin, first, "skip")).status_code == 400
    skipped = await calls.step(admin, first, "skip", {"reason": "not needed"})
    assert skipped.json()["state"] == "skipped"
    again = await calls.step(admin, first, "skip", {"reason": "again"})
    assert again.status_code == 409 and again.json()["error"]["state"] == "skipped"
    # Skipping readies what comes after; the assignee of the retried step got step.ready.
    view = Calls.by_key(await calls.instance(ann, instance["id"]))
    assert view["second"]["state"] == "ready"
    assert (await calls.step(bob, second, "start")).json()["assignee"]["id"] == "bob"
    done = await calls.step(bob, second, "complete", {"approved": True})
    assert done.json()["state"] == "completed"
    assert (await calls.instance(ann, instance["id"]))["status"] == "completed"
    async with server.http(ann) as http:
        notes = (await http.get("/api/notifications")).json()["items"]
    # The retried step went to its assignee (ann); the role's ones to every analyst.
    mine = [n for n in notes if n["type"] == "step.ready"]
    assert len(mine) == 3  # first (role), first retried (ann), second (role)
    async with server.http(bob) as http:
        bobs = [n for n in (await http.get("/api/notifications")).json()["items"]
                if n["type"] == "step.ready"]
    assert len(bobs) == 2
    denied = await calls.events(admin, type="access.denied")
    assert len(denied) == 8
    assert all(e["data"]["reason"] for e in denied)


async def test_pause_resume_and_cancel(server: RunningServer) -> None:
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    bob = server.token(user="bob", roles=["analyst"])
    rita = server.token(user="rita", roles=["reviewer"])
    calls = Calls(server)
    idea = await calls.idea(ann)
    template = await calls.published(admin)
    instance = await calls.start(ann, template["id"], idea)
    path = f"/api/workflows/instances/{instance['id']}"
    steps = Calls.by_key(instance)
    assert (await calls.patch(rita, path, {"status": "paused"})).status_code == 403
    assert (await calls.patch(bob, path, {"status": "paused"})).status_code == 403
    assert (await calls.patch(ann, path, {"status": "sleeping"})).status_code == 400
    same = await calls.patch(ann, path, {"status": "active"})
    assert same.status_code == 409 and same.json()["error"]["state"] == "active"
    paused = await calls.patch(ann, path, {"status": "paused"})
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    refused = await calls.step(ann, steps["numbers"]["id"], "start")
    assert refused.status_code == 409
    assert refused.json()["error"]["instance_status"] == "paused"
    # A memo created while paused completes its step on resume.
    await calls.document(ann, idea, "memo")
    assert Calls.by_key(await calls.instance(ann, instance["id"]))["memo"]["state"] == "ready"
    resumed = await calls.patch(admin, path, {"status": "active"})
    assert resumed.json()["status"] == "active"
    assert Calls.by_key(resumed.json())["memo"]["state"] == "completed"
    assert Calls.by_key(resumed.json())["memo_review"]["state"] == "ready"
    canceled = await calls.patch(ann, path, {"status": "canceled"})
    assert canceled.json()["status"] == "canceled"
    final = await calls.patch(admin, path, {"status": "active"})
    assert final.status_code == 409 and final.json()["error"]["state"] == "canceled"
    assert (await calls.step(admin, steps["numbers"]["id"], "skip",
                             {"reason": "x"})).status_code == 409
    changes = [(e["data"]["from"], e["data"]["to"])
               for e in await calls.events(ann, type="workflow.status_changed")]
    assert changes == [("active", "paused"), ("paused", "active"), ("active", "canceled")]
    assert len(await calls.events(admin, type="access.denied")) == 2


async def test_two_people_starting_one_step_at_once_one_wins(server: RunningServer) -> None:
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    bob = server.token(user="bob", roles=["analyst"])
    calls = Calls(server)
    template = await calls.published(admin, [
        {"key": f"s{i}", "action": "approval", "role": "analyst"} for i in range(8)],
        name="Eight")
    idea = await calls.idea(ann)
    instance = await calls.start(ann, template["id"], idea)
    for step in instance["steps"]:
        answers = await asyncio.wait_for(asyncio.gather(
            calls.step(ann, step["id"], "start"), calls.step(bob, step["id"], "start")), 20)
        codes = sorted(a.status_code for a in answers)
        assert codes[0] == 200 and codes[1] in (403, 409), [a.text for a in answers]
        winner = "ann" if answers[0].status_code == 200 else "bob"
        now = Calls.by_key(await calls.instance(ann, instance["id"]))[step["key"]]
        assert now["state"] == "in_progress" and now["assignee"]["id"] == winner
    moves = await calls.events(ann, type="workflow.step_transitioned")
    assert len([e for e in moves if e["data"]["to"] == "in_progress"]) == 8


async def test_every_route_keeps_tenants_apart(server: RunningServer) -> None:
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    eve = server.token(user="eve", roles=["admin"], tenant="globex")
    calls = Calls(server)
    idea = await calls.idea(ann)
    template = await calls.published(admin)
    instance = await calls.start(ann, template["id"], idea)
    step = instance["steps"][1]["id"]
    tpath = f"/api/workflows/templates/{template['id']}"
    ipath = f"/api/workflows/instances/{instance['id']}"
    answers: list[Any] = [
        await calls.get(eve, tpath),
        await calls.patch(eve, tpath, {"name": "mine"}),
        await calls.post(eve, f"{tpath}/publish"),
        await calls.post(eve, f"{tpath}/instantiate", {"idea": idea}),
        await calls.get(eve, ipath),
        await calls.patch(eve, ipath, {"status": "paused"}),
        await calls.step(eve, step, "start"),
        await calls.step(eve, step, "skip", {"reason": "x"}),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers), [a.text for a in answers]
    own = await calls.published(eve, name="Globex path")
    assert (await calls.post(eve, f"/api/workflows/templates/{own['id']}/instantiate",
                             {"idea": idea})).status_code == 404
    assert (await calls.get(eve, "/api/workflows/templates")).json()["items"][0]["id"] \
        == own["id"]
    assert (await calls.get(eve, "/api/workflows/instances")).json()["items"] == []
    assert (await calls.get(eve, "/api/workflows/instances", idea=idea)).json()["items"] == []
    assert Calls.by_key(await calls.instance(ann, instance["id"]))["numbers"]["state"] \
        == "ready"
