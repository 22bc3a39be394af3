"""``workflow.step`` in bulk (section 15): each step checked as its single call, dry runs,
all or nothing, per-item refusals on the record, on both databases."""

from __future__ import annotations

from typing import Any

from tests.support import RunningServer
from tests.workflow_support import Calls

PARALLEL = [{"key": f"s{i}", "action": "approval", "role": "analyst"} for i in range(4)]


async def _bulk(calls: Calls, token: str, **body: Any) -> Any:
    async with calls.server.http(token, **{"X-Correlation-ID": "bulk-wf"}) as http:
        return await http.post("/api/bulk", json=body)


async def _setup(server: RunningServer) -> tuple[Calls, str, str, dict[str, Any]]:
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    calls = Calls(server)
    template = await calls.published(admin, PARALLEL, name="Four at once")
    instance = await calls.start(ann, template["id"], await calls.idea(ann))
    return calls, admin, ann, instance


async def test_bulk_starts_every_step_with_one_correlation_id(server: RunningServer) -> None:
    calls, _admin, ann, instance = await _setup(server)
    ids = [s["id"] for s in instance["steps"]]
    dry = await _bulk(calls, ann, operation="workflow.step", ids=ids,
                      params={"verb": "start"}, dry_run=True)
    assert dry.status_code == 200, dry.text
    assert dry.json()["succeeded"] == 4 and dry.json()["rolled_back"] is False
    assert {s["state"] for s in (await calls.instance(ann, instance["id"]))["steps"]} \
        == {"ready"}
    before = await calls.events(ann, type="workflow.step_transitioned")
    answer = await _bulk(calls, ann, operation="workflow.step", ids=ids,
                         params={"verb": "start"})
    body = answer.json()
    assert body["succeeded"] == 4 and body["failed"] == 0 and body["rolled_back"] is False
    assert body["results"] == [{"id": i, "ok": True} for i in ids]
    after = await calls.events(ann, type="workflow.step_transitioned")
    fresh = after[len(before):]
    assert len(fresh) == 4
    assert all(e["source"] == "bulk" and e["correlation_id"] == "bulk-wf" for e in fresh)
    (completed,) = await calls.events(ann, type="bulk.completed")
    assert completed["data"] == {"operation": "workflow.step", "total": 4, "succeeded": 4,
                                 "failed": 0}
    done = await _bulk(calls, ann, operation="workflow.step", ids=ids,
                       params={"verb": "complete", "payload": {"approved": True}})
    assert done.json()["succeeded"] == 4
    assert (await calls.instance(ann, instance["id"]))["status"] == "completed"


async def test_one_refused_step_changes_nothing_unless_asked(server: RunningServer) -> None:
    calls, admin, ann, instance = await _setup(server)
    ids = [s["id"] for s in instance["steps"]]
    bob = server.token(user="bob", roles=["analyst"])
    rival = server.token(user="eve", roles=["analyst"], tenant="globex")
    assert (await calls.step(ann, ids[3], "start")).status_code == 200
    foreign = await _bulk(calls, rival, operation="workflow.step", ids=ids[:1],
                          params={"verb": "start"})
    assert foreign.json()["results"][0]["error"]["code"] == "not_found"
    before = await calls.events(admin)
    answer = await _bulk(calls, ann, operation="workflow.step", ids=[*ids, "missing"],
                         params={"verb": "start"})
    body = answer.json()
    assert body["rolled_back"] is True and body["succeeded"] == 0 and body["failed"] == 2
    codes = {r["id"]: r.get("error", {}).get("code") for r in body["results"]}
    assert codes == {ids[0]: None, ids[1]: None, ids[2]: None,
                     ids[3]: "invalid_transition", "missing": "not_found"}
    assert [e["seq"] for e in await calls.events(admin)] == [e["seq"] for e in before]
    assert {s["key"]: s["state"] for s in (await calls.instance(ann, instance["id"]))[
        "steps"]} == {"s0": "ready", "s1": "ready", "s2": "ready", "s3": "in_progress"}
    # Without all-or-nothing the others go ahead; bob may not block ann's step, and that
    # refusal is recorded.
    partial = await _bulk(calls, ann, operation="workflow.step", ids=ids[:3],
                          params={"verb": "start"}, all_or_nothing=False)
    assert partial.json()["succeeded"] == 3
    blocked = await _bulk(calls, bob, operation="workflow.step", ids=[ids[0], "missing"],
                          params={"verb": "block", "payload": {"reason": "y"}},
                          all_or_nothing=False)
    results = blocked.json()["results"]
    assert [r["error"]["code"] for r in results] == ["forbidden", "not_found"]
    denied = await calls.events(admin, type="access.denied")
    assert [e["data"]["action"] for e in denied] == [f"workflow.step {ids[0]}"]
    mine = await _bulk(calls, ann, operation="workflow.step", ids=[ids[0], ids[1]],
                       params={"verb": "block", "payload": {"reason": "y"}},
                       all_or_nothing=False)
    assert mine.json()["succeeded"] == 2
    # Skipping is an admin's, for the whole request; bad params are refused whole.
    refused = await _bulk(calls, ann, operation="workflow.step", ids=ids,
                          params={"verb": "skip", "payload": {"reason": "x"}})
    assert refused.status_code == 403
    bad = await _bulk(calls, ann, operation="workflow.step", ids=ids, params={"verb": "fly"})
    assert bad.status_code == 400
    odd = await _bulk(calls, ann, operation="workflow.step", ids=ids,
                      params={"verb": "start", "extra": 1})
    assert odd.status_code == 400
    skipped = await _bulk(calls, admin, operation="workflow.step", ids=ids,
                          params={"verb": "skip", "payload": {"reason": "not needed"}})
    assert skipped.json()["succeeded"] == 4
    assert (await calls.instance(ann, instance["id"]))["status"] == "completed"
