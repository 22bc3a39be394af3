"""The acceptance property of versioned writes: random concurrent patches from several
WebSocket clients, many on stale bases, always leave a dense, replayable, exactly-once log.

Hypothesis cannot drive an ``async def`` test, so the property runs in a worker thread and
hands each example's scenario to the test's event loop, where the ``server`` fixture lives
(and so runs on both database backends). Every example works on a fresh document.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support import RunningServer, WsClient

INITIAL = {"a": {"x": 0}, "b": {}, "c": 0, "list": [0]}
# Disjoint object paths (/a/x, /a/y, /b/x, /b/y, /c) rebase; array paths share the unit /list.
PATHS = ("/a/x", "/a/y", "/b/x", "/b/y", "/c", "/list/0", "/list/1", "/list/-")
EXAMPLE_TIMEOUT = 30.0
PROPERTY_TIMEOUT = 100.0

Ops = list[dict[str, Any]]


def make_op(kind: str, path: str, value: int) -> dict[str, Any]:
    return {"op": kind, "path": path} if kind == "remove" else {
        "op": kind, "path": path, "value": value}


KINDS = ("add", "add", "add", "replace", "replace", "remove", "test")  # mostly applicable
OPS = st.builds(make_op, st.sampled_from(KINDS), st.sampled_from(PATHS), st.integers(0, 9))
# A patch: how many versions behind the client's latest knowledge its base is, and its ops.
PATCHES = st.tuples(st.integers(0, 3), st.lists(OPS, min_size=1, max_size=3))
PLANS = st.lists(st.lists(PATCHES, min_size=1, max_size=6), min_size=2, max_size=3)


@dataclass
class Attempt:
    user: str
    base: int
    ops: Ops
    reply: dict[str, Any]


# -- an independent model of section 4 ------------------------------------------------------


def segments(path: str) -> list[str]:
    return [] if path == "" else path[1:].split("/")


def written(ops: Ops) -> list[str]:
    return [op["path"] for op in ops if op["op"] != "test"]


def unit_of(path: str, state: Any) -> tuple[str, ...]:
    """The path cut just before its first segment that addresses an array element."""
    parts = segments(path)
    node = state
    for depth, part in enumerate(parts):
        if isinstance(node, list):
            return tuple(parts[:depth])
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        break
    return tuple(parts)


def units(ops: Ops, state: Any) -> set[tuple[str, ...]]:
    return {unit_of(path, state) for path in written(ops)}


def overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def apply(state: dict[str, Any], ops: Ops) -> dict[str, Any]:
    return jsonpatch.apply_patch(state, ops)  # type: ignore[no-any-return]


def fails(state: dict[str, Any], ops: Ops, *, test_only: bool) -> bool:
    try:
        apply(state, ops)
    except jsonpatch.JsonPatchTestFailed:
        return True
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
        return not test_only
    return False


# -- the scenario -----------------------------------------------------------------------------


async def drive(client: WsClient, user: str, doc: str, plan: list[tuple[int, Ops]]
                ) -> list[Attempt]:
    """Send the plan's patches one after another, each on a base that lags what this client
    last knew (from its replies and the deltas it received) by the planned amount."""
    known = 1
    attempts = []
    for lag, ops in plan:
        seen = [m["version"] for m in client.pushes if m.get("type") == "delta"]
        known = max([known, *seen])
        base = max(1, known - lag)
        reply = await client.request("patch", doc=doc, base=base, ops=ops)
        attempts.append(Attempt(user, base, ops, reply))
        if reply["type"] == "ok":
            known = max(known, reply["version"])
    return attempts


async def all_history(server: RunningServer, token: str, doc: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    async with server.http(token) as http:
        while True:
            params: dict[str, Any] = {"limit": 50}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get(f"/api/documents/{doc}/history", params=params)).json()
            found.extend(page["events"])
            cursor = page["next"]
            if cursor is None:
                return found
            assert len(found) < 10_000, "history does not end"


async def scenario(server: RunningServer, plans: list[list[tuple[int, Ops]]]) -> None:
    owner = server.token()
    doc = (await server.create(owner, state=copy.deepcopy(INITIAL)))["id"]
    users = [f"writer-{index}" for index in range(len(plans))]
    clients = [await server.connect(server.token(user=user)) for user in users]
    try:
        for client in clients:
            subscribed = await client.ok("subscribe", doc=doc)
            assert subscribed["version"] == 1 and subscribed["state"] == INITIAL
        runs = await asyncio.gather(*(
            drive(client, user, doc, plan)
            for client, user, plan in zip(clients, users, plans, strict=True)))
        attempts = list(itertools.chain.from_iterable(runs))
        accepted = {a.reply["version"]: a for a in attempts if a.reply["type"] == "ok"}
        rejected = [a for a in attempts if a.reply["type"] != "ok"]

        # Versions are dense: accepted writes got 2..N, each once; rejected ones took none.
        async with server.http(owner) as http:
            head = (await http.get(f"/api/documents/{doc}")).json()
        last = head["version"]
        # No version was handed to two writes (the dict above would have merged them).
        assert len(accepted) == len([a for a in attempts if a.reply["type"] == "ok"])
        assert sorted(accepted) == list(range(2, last + 1))
        assert len(accepted) == last - 1
        for attempt in rejected:
            assert attempt.reply["code"] in ("conflict", "bad_request"), attempt

        # The model: each version is the previous state with that write's ops applied.
        states = {1: copy.deepcopy(INITIAL)}
        for version in range(2, last + 1):
            states[version] = apply(states[version - 1], accepted[version].ops)
        assert head["state"] == states[last]

        # Rebase rules: a stale write was accepted only when nothing after its base overlapped;
        # an overlap conflict names the overlapping units and every delta after the base.
        later_units = {v: units(accepted[v].ops, states[v - 1]) for v in accepted}
        for version, attempt in accepted.items():
            assert attempt.reply.get("rebased", False) == (attempt.base < version - 1), attempt
            mine = units(attempt.ops, states[version - 1])
            for other in range(attempt.base + 1, version):
                assert not any(overlap(u, w) for u in mine for w in later_units[other]), (
                    f"version {version} (base {attempt.base}) overlaps version {other}")
        for attempt in rejected:
            reply = attempt.reply
            if reply["code"] == "conflict" and "your_version" in reply:
                current = reply["current_version"]
                assert reply["your_version"] == attempt.base < current <= last, reply
                mine = units(attempt.ops, states[current])
                clashing = {u for u in mine if any(
                    overlap(u, w) for v in range(attempt.base + 1, current + 1)
                    for w in later_units[v])}
                assert clashing, f"conflict without an overlap: {attempt}"
                assert {tuple(segments(p)) for p in reply["paths"]} == clashing, reply
                assert [d["version"] for d in reply["deltas"]] == list(
                    range(attempt.base + 1, current + 1))
                assert [d["ops"] for d in reply["deltas"]] == [
                    accepted[v].ops for v in range(attempt.base + 1, current + 1)]
            else:
                test_only = reply["code"] == "conflict"
                assert any(fails(states[v], attempt.ops, test_only=test_only)
                           for v in range(attempt.base, last + 1)), (
                    f"{reply['code']} for a patch that applies to every state: {attempt}")

        # Every accepted write appears exactly once in the audit log, in version order.
        events = await all_history(server, owner, doc)
        assert [e["type"] for e in events] == ["document.created"] + ["patch.applied"] * (
            last - 1)
        assert [e["version"] for e in events] == list(range(1, last + 1))
        for event in events[1:]:
            attempt = accepted[event["version"]]
            assert event["data"]["ops"] == attempt.ops
            assert event["actor"]["id"] == attempt.user
            assert event["source"] == "ws"
        async with server.http(owner) as http:
            verified = (await http.get(f"/api/documents/{doc}/verify")).json()
        assert verified == {"ok": True, "events": last}

        # Every subscriber saw every delta once, in order, with the ops as applied.
        for client in clients:
            deltas = await client.deltas(doc, last - 1)
            assert [d["version"] for d in deltas] == list(range(2, last + 1))
            assert [d["ops"] for d in deltas] == [accepted[v].ops for v in range(2, last + 1)]
        extra = await asyncio.gather(*(client.nothing_more(0.05) for client in clients))
        assert [m for messages in extra for m in messages if m.get("type") == "delta"] == []

        # Replaying the log from scratch gives every version's state, and so does time travel.
        async with await server.connect(owner) as late:
            await late.ok("subscribe", doc=doc, since=0)
            replayed: dict[str, Any] = {}
            for delta in await late.deltas(doc, last):
                replayed = apply(replayed, delta["ops"])
                assert replayed == states[delta["version"]], delta
        async with server.http(owner) as http:
            for version in range(1, last + 1):
                document = (await http.get(f"/api/documents/{doc}",
                                           params={"version": version})).json()
                assert document["state"] == states[version], f"version {version}"
    finally:
        await asyncio.gather(*(client.close() for client in clients))


async def test_concurrent_patches_leave_a_dense_replayable_log(server: RunningServer) -> None:
    """Random concurrent patches on stale bases from several clients give versions 1..N
    without gaps, each accepted patch exactly once in the log and in every subscriber's
    deltas, a final state equal to the replayed log, and no trace of a rejected patch."""
    loop = asyncio.get_running_loop()
    examples = 0

    @settings(max_examples=30, deadline=None, database=None,
              phases=(Phase.explicit, Phase.generate),
              suppress_health_check=[HealthCheck.too_slow])
    @given(plans=PLANS)
    def property_holds(plans: list[list[tuple[int, Ops]]]) -> None:
        nonlocal examples
        future = asyncio.run_coroutine_threadsafe(scenario(server, plans), loop)
        try:
            future.result(timeout=EXAMPLE_TIMEOUT)
        finally:
            future.cancel()
        examples += 1

    await asyncio.wait_for(asyncio.to_thread(property_holds), PROPERTY_TIMEOUT)
    assert examples >= 1
