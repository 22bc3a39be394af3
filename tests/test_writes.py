"""Versioned writes (docs/protocol.md section 4) over real WebSocket connections.

Every write goes through a ``patch`` request; what the server ended up storing is read back
over HTTP (the document, and its audit history), so a test sees the state a client would.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.support import RunningServer, WsClient, replace

BUDGET = 60.0  # seconds for a whole concurrent scenario


async def _document(server: RunningServer, token: str, doc: str) -> dict[str, Any]:
    async with server.http(token) as http:
        response = await http.get(f"/api/documents/{doc}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _applied(server: RunningServer, token: str, doc: str) -> list[dict[str, Any]]:
    """The document's ``patch.applied`` events, in ``seq`` order."""
    async with server.http(token) as http:
        response = await http.get(f"/api/documents/{doc}/history", params={"limit": 1000})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next"] is None
    return [e for e in page["events"] if e["type"] == "patch.applied"]


async def _unchanged(server: RunningServer, token: str, doc: str, version: int,
                     state: dict[str, Any], applied: int) -> None:
    """The document is still at ``version`` with ``state`` and ``applied`` patch events."""
    document = await _document(server, token, doc)
    assert document["version"] == version
    assert document["state"] == state
    assert len(await _applied(server, token, doc)) == applied


async def _error(client: WsClient, code: str, **fields: Any) -> dict[str, Any]:
    reply = await client.request("patch", **fields)
    assert reply["type"] == "error", reply
    assert reply["code"] == code, reply
    assert isinstance(reply["message"], str) and reply["message"]
    return reply


# -- accepted writes ----------------------------------------------------------------------------


async def test_patch_at_current_version_bumps_the_version_by_exactly_one(
    server: RunningServer,
) -> None:
    """Each patch at the current version is applied and answered with version base + 1."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as client:
        for base in range(1, 6):
            reply = await client.request("patch", doc=doc["id"], base=base,
                                         ops=replace("/n", base))
            assert reply["type"] == "ok" and reply["re"] is not None
            assert reply["version"] == base + 1
            assert reply.get("rebased") is not True and reply.get("duplicate") is not True
    document = await _document(server, token, doc["id"])
    assert document["version"] == 6 and document["state"] == {"n": 5}
    assert [e["version"] for e in await _applied(server, token, doc["id"])] == [2, 3, 4, 5, 6]


async def test_stale_base_without_overlap_is_rebased_onto_the_current_state(
    server: RunningServer,
) -> None:
    """A stale patch whose units do not overlap later writes applies with rebased: true."""
    token = server.token()
    doc = await server.create(token, state={"a": 0, "b": 0})
    async with await server.connect(token) as first, await server.connect(token) as second:
        await first.ok("patch", doc=doc["id"], base=1, ops=replace("/a", 1))
        await first.ok("patch", doc=doc["id"], base=2, ops=replace("/a", 2))
        reply = await second.ok("patch", doc=doc["id"], base=1, ops=replace("/b", 9))
        assert reply["version"] == 4 and reply["rebased"] is True
    document = await _document(server, token, doc["id"])
    assert document["version"] == 4
    assert document["state"] == {"a": 2, "b": 9}


async def test_stale_base_with_overlap_is_a_conflict_that_applies_nothing(
    server: RunningServer,
) -> None:
    """An overlapping stale patch gets conflict with versions, its overlapping units and every
    later delta, and changes nothing."""
    token = server.token()
    doc = await server.create(token, state={"a": 0, "b": 0, "c": 0})
    later = [replace("/a", 1), replace("/c", 1), replace("/a", 2)]
    async with await server.connect(token) as writer, await server.connect(token) as stale:
        for base, ops in enumerate(later, start=1):
            await writer.ok("patch", doc=doc["id"], base=base, ops=ops)
        ops = [{"op": "replace", "path": "/b", "value": 5},
               {"op": "replace", "path": "/a", "value": 7},
               {"op": "add", "path": "/d", "value": 1}]
        reply = await _error(stale, "conflict", doc=doc["id"], base=2, ops=ops)
    assert reply["current_version"] == 4
    assert reply["your_version"] == 2
    assert reply["paths"] == ["/a"]
    deltas = reply["deltas"]
    assert [d["version"] for d in deltas] == [3, 4]
    assert [d["ops"] for d in deltas] == later[1:]
    writer_id = writer.welcome["user"]["id"]
    for delta in deltas:
        assert set(delta) >= {"type", "doc", "version", "ops", "actor", "ts", "event"}
        assert delta["type"] == "delta" and delta["doc"] == doc["id"]
        assert delta["actor"]["id"] == writer_id and isinstance(delta["actor"]["name"], str)
        assert isinstance(delta["event"], int) and isinstance(delta["ts"], str)
    events = await _applied(server, token, doc["id"])
    assert [d["event"] for d in deltas] == [e["seq"] for e in events[1:]]
    await _unchanged(server, token, doc["id"], 4, {"a": 2, "b": 0, "c": 1}, 3)


async def test_conflict_deltas_include_non_overlapping_versions_in_order(
    server: RunningServer,
) -> None:
    """``deltas`` lists every version after the base, overlapping or not, in version order."""
    token = server.token()
    doc = await server.create(token, state={"x": 0, "y": 0})
    async with await server.connect(token) as client:
        writes = [replace("/y", 1), replace("/y", 2), replace("/x", 3), replace("/y", 4)]
        for base, ops in enumerate(writes, start=1):
            await client.ok("patch", doc=doc["id"], base=base, ops=ops)
        reply = await _error(client, "conflict", doc=doc["id"], base=1, ops=replace("/x", 9))
    assert reply["paths"] == ["/x"]
    assert [d["version"] for d in reply["deltas"]] == [2, 3, 4, 5]
    assert [d["ops"] for d in reply["deltas"]] == writes
    await _unchanged(server, token, doc["id"], 5, {"x": 3, "y": 4}, 4)


# -- the write-unit rule ------------------------------------------------------------------------


# (name, initial state, earlier write at base 1, later write at base 1, overlapping units)
OVERLAPPING: list[tuple[str, dict[str, Any], list[dict[str, Any]], list[dict[str, Any]],
                        list[str]]] = [
    # An array element's unit is the array: any two writes into one array overlap.
    ("array-elements", {"items": [{"x": 0}, {"x": 1}, {"x": 2}, {"x": 3}]},
     replace("/items/0", {"x": 9}), replace("/items/3/x", 9), ["/items"]),
    ("array-append-remove", {"items": [1, 2, 3]},
     [{"op": "add", "path": "/items/-", "value": 4}],
     [{"op": "remove", "path": "/items/0"}], ["/items"]),
    ("nested-array", {"a": {"rows": [[1], [2]]}},
     replace("/a/rows/0/0", 5), [{"op": "add", "path": "/a/rows/1/-", "value": 3}],
     ["/a/rows"]),
    # A parent and its child overlap, whichever was written first.
    ("parent-then-child", {"a": {"b": 0}}, replace("/a", {"b": 1}), replace("/a/b", 2),
     ["/a/b"]),
    ("child-then-parent", {"a": {"b": 0}}, replace("/a/b", 1), replace("/a", {"b": 2}),
     ["/a"]),
    # The root overlaps everything, in both directions.
    ("root-later", {"a": 0}, replace("/a", 1), replace("", {"a": 2}), [""]),
    ("root-earlier", {"a": 0}, replace("", {"a": 1}), replace("/a", 2), ["/a"]),
    # Only this patch's overlapping units are listed, once each.
    ("only-overlapping-listed", {"a": 0, "b": 0, "c": 0}, replace("/b", 1),
     [{"op": "replace", "path": "/a", "value": 1}, {"op": "replace", "path": "/b", "value": 2},
      {"op": "replace", "path": "/b", "value": 3}, {"op": "replace", "path": "/c", "value": 1}],
     ["/b"]),
    # Pointer escapes are compared as segments.
    ("escaped-segment", {"a/b": 0}, replace("/a~1b", 1), replace("/a~1b", 2), ["/a~1b"]),
]

# (name, initial state, earlier write at base 1, later write at base 1, final state)
DISJOINT: list[tuple[str, dict[str, Any], list[dict[str, Any]], list[dict[str, Any]],
                     dict[str, Any]]] = [
    # Siblings in an object are separate units.
    ("object-siblings", {"a": {"b": 0, "c": 0}}, replace("/a/b", 1), replace("/a/c", 2),
     {"a": {"b": 1, "c": 2}}),
    # "/a" is not a prefix of "/ab": prefixes are compared segment by segment.
    ("a-vs-ab", {"a": 0, "ab": 0}, replace("/a", 1), replace("/ab", 2), {"a": 1, "ab": 2}),
    ("ab-vs-a", {"a": 0, "ab": 0}, replace("/ab", 1), replace("/a", 2), {"a": 2, "ab": 1}),
    # Different arrays are different units.
    ("two-arrays", {"xs": [1], "ys": [1]}, [{"op": "add", "path": "/xs/-", "value": 2}],
     [{"op": "add", "path": "/ys/0", "value": 0}], {"xs": [1, 2], "ys": [0, 1]}),
    # A new key beside an existing one.
    ("new-sibling-key", {"a": {"b": 0}}, replace("/a/b", 1),
     [{"op": "add", "path": "/a/n", "value": 1}], {"a": {"b": 1, "n": 1}}),
]


async def test_overlapping_units_conflict(server: RunningServer) -> None:
    """Units that are segment-wise prefixes of each other (arrays cut at the array) conflict."""
    token = server.token()
    async with await server.connect(token) as client:
        for name, state, earlier, later, overlapping in OVERLAPPING:
            doc = await server.create(token, title=name, state=state)
            await client.ok("patch", doc=doc["id"], base=1, ops=earlier)
            after = (await _document(server, token, doc["id"]))["state"]
            reply = await client.request("patch", doc=doc["id"], base=1, ops=later)
            assert reply["type"] == "error" and reply["code"] == "conflict", (name, reply)
            assert reply["paths"] == overlapping, (name, reply)
            assert reply["current_version"] == 2 and reply["your_version"] == 1, (name, reply)
            await _unchanged(server, token, doc["id"], 2, after, 1)


async def test_non_overlapping_units_rebase(server: RunningServer) -> None:
    """Units that are not segment-wise prefixes of each other rebase instead of conflicting."""
    token = server.token()
    async with await server.connect(token) as client:
        for name, state, earlier, later, expected in DISJOINT:
            doc = await server.create(token, title=name, state=state)
            await client.ok("patch", doc=doc["id"], base=1, ops=earlier)
            reply = await client.request("patch", doc=doc["id"], base=1, ops=later)
            assert reply["type"] == "ok", (name, reply)
            assert reply["version"] == 3 and reply["rebased"] is True, (name, reply)
            document = await _document(server, token, doc["id"])
            assert document["state"] == expected and document["version"] == 3, name


async def test_move_source_is_a_write_unit(server: RunningServer) -> None:
    """A stale ``move`` conflicts when a later write touched its ``from``, not just its path."""
    token = server.token()
    doc = await server.create(token, state={"a": 1, "z": 0})
    async with await server.connect(token) as client:
        await client.ok("patch", doc=doc["id"], base=1, ops=replace("/a", 2))
        reply = await _error(client, "conflict", doc=doc["id"], base=1,
                             ops=[{"op": "move", "from": "/a", "path": "/b"}])
        assert reply["paths"] == ["/a"]
        await _unchanged(server, token, doc["id"], 2, {"a": 2, "z": 0}, 1)
        # A later write at the move's target overlaps too.
        await client.ok("patch", doc=doc["id"], base=2,
                        ops=[{"op": "add", "path": "/b", "value": 0}])
        reply = await _error(client, "conflict", doc=doc["id"], base=2,
                             ops=[{"op": "move", "from": "/z", "path": "/b"}])
        assert reply["paths"] == ["/b"]
        # The move's source as seen by the *earlier* write: removing it conflicts with a move.
        await client.ok("patch", doc=doc["id"], base=3,
                        ops=[{"op": "move", "from": "/z", "path": "/y"}])
        reply = await _error(client, "conflict", doc=doc["id"], base=3,
                             ops=[{"op": "add", "path": "/z", "value": 5}])
        assert reply["paths"] == ["/z"]
    await _unchanged(server, token, doc["id"], 4, {"a": 2, "b": 0, "y": 0}, 3)


async def test_copy_source_is_not_a_write_unit(server: RunningServer) -> None:
    """A stale ``copy`` only writes its target, so a later write to its ``from`` rebases."""
    token = server.token()
    doc = await server.create(token, state={"a": 1})
    async with await server.connect(token) as client:
        await client.ok("patch", doc=doc["id"], base=1, ops=replace("/a", 2))
        reply = await client.ok("patch", doc=doc["id"], base=1,
                                ops=[{"op": "copy", "from": "/a", "path": "/b"}])
    assert reply["rebased"] is True and reply["version"] == 3
    assert (await _document(server, token, doc["id"]))["state"] == {"a": 2, "b": 2}


# -- test ops -----------------------------------------------------------------------------------


async def test_failing_test_op_is_a_conflict_and_applies_nothing(server: RunningServer) -> None:
    """A ``test`` op that does not hold on the current state answers conflict, all ops undone."""
    token = server.token()
    doc = await server.create(token, state={"a": 1, "b": 1})
    async with await server.connect(token) as client:
        await _error(client, "conflict", doc=doc["id"], base=1, ops=[
            {"op": "replace", "path": "/b", "value": 2},
            {"op": "test", "path": "/a", "value": 99},
        ])
    await _unchanged(server, token, doc["id"], 1, {"a": 1, "b": 1}, 0)


async def test_test_ops_are_checked_against_the_state_the_patch_is_applied_to(
    server: RunningServer,
) -> None:
    """On a rebase, ``test`` sees the current state, not the state at the client's base."""
    token = server.token()
    doc = await server.create(token, state={"a": 1, "b": 1})
    async with await server.connect(token) as client:
        await client.ok("patch", doc=doc["id"], base=1, ops=replace("/a", 2))
        # True at the base version, false now: conflict.
        await _error(client, "conflict", doc=doc["id"], base=1, ops=[
            {"op": "test", "path": "/a", "value": 1},
            {"op": "replace", "path": "/b", "value": 5},
        ])
        await _unchanged(server, token, doc["id"], 2, {"a": 2, "b": 1}, 1)
        # False at the base version, true now: applied (a test reads, it is not a write unit).
        reply = await client.ok("patch", doc=doc["id"], base=1, ops=[
            {"op": "test", "path": "/a", "value": 2},
            {"op": "replace", "path": "/b", "value": 5},
        ])
        assert reply["version"] == 3 and reply["rebased"] is True
    await _unchanged(server, token, doc["id"], 3, {"a": 2, "b": 5}, 2)


# -- invalid patches ----------------------------------------------------------------------------


async def test_patch_is_all_or_nothing(server: RunningServer) -> None:
    """When a later op cannot apply, the patch is bad_request and the earlier ops are undone."""
    token = server.token()
    doc = await server.create(token, state={"a": 1, "list": [1]})
    failing = [
        [{"op": "replace", "path": "/a", "value": 2}, {"op": "remove", "path": "/missing"}],
        [{"op": "add", "path": "/new", "value": 1}, {"op": "replace", "path": "/nope", "value": 1}],
        [{"op": "add", "path": "/list/-", "value": 2},
         {"op": "add", "path": "/list/9", "value": 3}],
        [{"op": "remove", "path": "/a"}, {"op": "move", "from": "/a", "path": "/b"}],
        [{"op": "replace", "path": "/a", "value": 2}, {"op": "add", "path": "/a/b/c", "value": 1}],
        # A state must stay a JSON object.
        [{"op": "replace", "path": "/a", "value": 2}, {"op": "replace", "path": "", "value": [1]}],
    ]
    async with await server.connect(token) as client:
        for ops in failing:
            await _error(client, "bad_request", doc=doc["id"], base=1, ops=ops)
        reply = await client.ok("patch", doc=doc["id"], base=1, ops=replace("/a", 3))
        assert reply["version"] == 2
    await _unchanged(server, token, doc["id"], 2, {"a": 3, "list": [1]}, 1)


# (name, ops): patches that are not valid JSON Patches of 1 to 1000 operations.
INVALID_OPS: list[tuple[str, Any]] = [
    ("null", None),
    ("object", {"op": "add", "path": "/a", "value": 1}),
    ("string", "[]"),
    ("empty", []),
    ("1001-ops", [{"op": "add", "path": f"/k{i}", "value": i} for i in range(1001)]),
    ("unknown-op", [{"op": "increment", "path": "/a", "value": 1}]),
    ("no-op-name", [{"path": "/a", "value": 1}]),
    ("add-no-value", [{"op": "add", "path": "/a"}]),
    ("replace-no-value", [{"op": "replace", "path": "/a"}]),
    ("test-no-value", [{"op": "test", "path": "/a"}]),
    ("move-no-from", [{"op": "move", "path": "/a"}]),
    ("copy-no-from", [{"op": "copy", "path": "/b"}]),
    ("remove-no-path", [{"op": "remove"}]),
    ("pointer-no-slash", [{"op": "add", "path": "a", "value": 1}]),
    ("pointer-bad-escape", [{"op": "add", "path": "/a~2", "value": 1}]),
    ("pointer-not-string", [{"op": "add", "path": 5, "value": 1}]),
    ("from-no-slash", [{"op": "move", "from": "a", "path": "/b"}]),
    ("op-not-object", ["add /a 1"]),
    ("second-op-not-object", [{"op": "replace", "path": "/a", "value": 1}, 7]),
]


async def test_invalid_ops_are_bad_request(server: RunningServer) -> None:
    """Malformed JSON Patches answer bad_request, change nothing and keep the connection open."""
    token = server.token()
    doc = await server.create(token, state={"a": 0})
    async with await server.connect(token) as client:
        for name, ops in INVALID_OPS:
            reply = await client.request("patch", doc=doc["id"], base=1, ops=ops)
            assert reply["type"] == "error" and reply["code"] == "bad_request", (name, reply)
        await _unchanged(server, token, doc["id"], 1, {"a": 0}, 0)
        reply = await client.ok("patch", doc=doc["id"], base=1, ops=replace("/a", 1))
        assert reply["version"] == 2
    await _unchanged(server, token, doc["id"], 2, {"a": 1}, 1)


async def test_a_thousand_ops_are_accepted(server: RunningServer) -> None:
    """A patch of exactly 1000 operations is within the limit and applies as one version."""
    token = server.token()
    doc = await server.create(token)
    ops = [{"op": "add", "path": f"/k{i}", "value": i} for i in range(1000)]
    async with await server.connect(token) as client:
        reply = await client.ok("patch", doc=doc["id"], base=1, ops=ops)
    assert reply["version"] == 2
    document = await _document(server, token, doc["id"])
    assert len(document["state"]) == 1000 and document["state"]["k999"] == 999


async def test_bad_base_is_bad_request(server: RunningServer) -> None:
    """A base that is missing, not an integer or ahead of the current version is bad_request."""
    token = server.token()
    doc = await server.create(token, state={"a": 0})
    cases: list[tuple[str, dict[str, Any]]] = [
        ("missing", {}), ("string", {"base": "1"}), ("float", {"base": 1.5}),
        ("bool", {"base": True}), ("null", {"base": None}), ("list", {"base": [1]}),
        ("object", {"base": {"v": 1}}), ("ahead", {"base": 2}), ("far-ahead", {"base": 10**9}),
    ]
    async with await server.connect(token) as client:
        for name, fields in cases:
            reply = await client.request("patch", doc=doc["id"], ops=replace("/a", 1), **fields)
            assert reply["type"] == "error" and reply["code"] == "bad_request", (name, reply)
    await _unchanged(server, token, doc["id"], 1, {"a": 0}, 0)


async def test_patch_of_unknown_or_foreign_document_is_not_found(server: RunningServer) -> None:
    """A document id that does not exist, or belongs to another tenant, answers not_found."""
    token = server.token(tenant="acme")
    foreign_token = server.token(tenant="globex")
    foreign = await server.create(foreign_token, state={"a": 0})
    async with await server.connect(token) as client:
        await _error(client, "not_found", doc=str(uuid.uuid4()), base=1, ops=replace("/a", 1))
        await _error(client, "not_found", doc=foreign["id"], base=1, ops=replace("/a", 1))
    await _unchanged(server, foreign_token, foreign["id"], 1, {"a": 0}, 0)


# -- idempotency keys ---------------------------------------------------------------------------


async def test_repeated_key_replays_the_first_reply_without_writing(
    server: RunningServer,
) -> None:
    """The same key from the same user on the same document answers the first reply plus
    duplicate: true, and writes nothing more."""
    token = server.token(user="writer")
    doc = await server.create(token, state={"n": 0})
    ops = replace("/n", 1)
    async with await server.connect(token) as client:
        first = await client.ok("patch", doc=doc["id"], base=1, ops=ops, key="k-1")
        assert first["version"] == 2 and first.get("duplicate") is not True
        again = await client.ok("patch", doc=doc["id"], base=1, ops=ops, key="k-1")
    assert again["duplicate"] is True
    assert {k: v for k, v in again.items() if k not in ("re", "duplicate")} == {
        k: v for k, v in first.items() if k != "re"}
    # The retry came over a new connection (a client that reconnected) after another write.
    async with await server.connect(token) as client:
        await client.ok("patch", doc=doc["id"], base=2,
                        ops=[{"op": "add", "path": "/m", "value": 1}])
        late = await client.ok("patch", doc=doc["id"], base=1, ops=ops, key="k-1")
    assert late["duplicate"] is True and late["version"] == 2
    applied = await _applied(server, token, doc["id"])
    assert [e["version"] for e in applied] == [2, 3]
    document = await _document(server, token, doc["id"])
    assert document["version"] == 3 and document["state"] == {"n": 1, "m": 1}


async def test_duplicate_of_a_rebased_write_repeats_rebased(server: RunningServer) -> None:
    """A duplicate answers the first reply, ``rebased`` included."""
    token = server.token()
    doc = await server.create(token, state={"a": 0, "b": 0})
    async with await server.connect(token) as client:
        await client.ok("patch", doc=doc["id"], base=1, ops=replace("/a", 1))
        first = await client.ok("patch", doc=doc["id"], base=1, ops=replace("/b", 1), key="r")
        again = await client.ok("patch", doc=doc["id"], base=1, ops=replace("/b", 1), key="r")
    assert first["rebased"] is True and first["version"] == 3
    assert again["rebased"] is True and again["version"] == 3 and again["duplicate"] is True
    assert len(await _applied(server, token, doc["id"])) == 2


async def test_same_key_from_another_user_or_on_another_document_applies(
    server: RunningServer,
) -> None:
    """Keys are scoped to user and document: another user's or document's equal key writes."""
    alice = server.token(user="alice")
    bob = server.token(user="bob")
    doc = await server.create(alice, state={"n": 0})
    other = await server.create(alice, state={"n": 0})
    async with await server.connect(alice) as a, await server.connect(bob) as b:
        first = await a.ok("patch", doc=doc["id"], base=1, ops=replace("/n", 1), key="same")
        second = await b.ok("patch", doc=doc["id"], base=2, ops=replace("/n", 2), key="same")
        third = await a.ok("patch", doc=other["id"], base=1, ops=replace("/n", 3), key="same")
    assert first["version"] == 2 and second["version"] == 3 and third["version"] == 2
    assert second.get("duplicate") is not True and third.get("duplicate") is not True
    assert len(await _applied(server, alice, doc["id"])) == 2
    assert (await _document(server, alice, doc["id"]))["state"] == {"n": 2}
    assert (await _document(server, alice, other["id"]))["state"] == {"n": 3}


async def test_concurrent_requests_with_one_key_write_once(server: RunningServer) -> None:
    """Two connections of one user racing with the same key apply it once; the other is the
    duplicate."""
    token = server.token(user="racer")
    doc = await server.create(token, state={"n": 0})
    rounds = 5
    async with await server.connect(token) as a, await server.connect(token) as b:
        for n in range(rounds):
            ops = [{"op": "add", "path": f"/k{n}", "value": n}]
            replies = await asyncio.wait_for(asyncio.gather(
                a.request("patch", doc=doc["id"], base=1 + n, ops=ops, key=f"race-{n}"),
                b.request("patch", doc=doc["id"], base=1 + n, ops=ops, key=f"race-{n}"),
            ), BUDGET)
            assert [r["type"] for r in replies] == ["ok", "ok"], replies
            assert [r["version"] for r in replies] == [2 + n, 2 + n], replies
            assert sorted(r.get("duplicate") is True for r in replies) == [False, True], replies
    applied = await _applied(server, token, doc["id"])
    assert [e["version"] for e in applied] == list(range(2, 2 + rounds))
    assert (await _document(server, token, doc["id"]))["version"] == 1 + rounds


async def test_key_longer_than_128_characters_is_bad_request(server: RunningServer) -> None:
    """A 129-character key is refused with bad_request; 128 characters are accepted."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as client:
        await _error(client, "bad_request", doc=doc["id"], base=1, ops=replace("/n", 1),
                     key="k" * 129)
        await _unchanged(server, token, doc["id"], 1, {"n": 0}, 0)
        reply = await client.ok("patch", doc=doc["id"], base=1, ops=replace("/n", 1),
                                key="k" * 128)
        assert reply["version"] == 2
        again = await client.ok("patch", doc=doc["id"], base=1, ops=replace("/n", 1),
                                key="k" * 128)
        assert again["duplicate"] is True and again["version"] == 2


async def test_failed_write_does_not_consume_its_key(server: RunningServer) -> None:
    """A key whose write was refused is free: the corrected retry with that key applies."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as client:
        await _error(client, "bad_request", doc=doc["id"], base=1,
                     ops=[{"op": "remove", "path": "/missing"}], key="retry")
        reply = await client.ok("patch", doc=doc["id"], base=1, ops=replace("/n", 1),
                                key="retry")
    assert reply["version"] == 2 and reply.get("duplicate") is not True
    await _unchanged(server, token, doc["id"], 2, {"n": 1}, 1)


# -- size limit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"max_state_bytes": 4096}], ids=["4KiB"])
async def test_state_larger_than_the_limit_is_too_large(server: RunningServer) -> None:
    """A patch that would make the state larger than max_state_bytes answers too_large and
    applies nothing; one that stays well under the limit applies."""
    token = server.token()
    doc = await server.create(token, state={"a": 0})
    async with await server.connect(token) as client:
        await _error(client, "too_large", doc=doc["id"], base=1, ops=[
            {"op": "replace", "path": "/a", "value": 1},
            {"op": "add", "path": "/s", "value": "x" * 4200},
        ])
        await _unchanged(server, token, doc["id"], 1, {"a": 0}, 0)
        reply = await client.ok("patch", doc=doc["id"], base=1,
                                ops=[{"op": "add", "path": "/s", "value": "x" * 3900}])
        assert reply["version"] == 2
        # Growing past the limit step by step is refused at the step that crosses it.
        await _error(client, "too_large", doc=doc["id"], base=2,
                     ops=[{"op": "add", "path": "/t", "value": "y" * 300}])
    await _unchanged(server, token, doc["id"], 2, {"a": 0, "s": "x" * 3900}, 1)


async def test_default_state_limit_is_one_mebibyte(server: RunningServer) -> None:
    """With default settings a state over 1 MiB as JSON is too_large and one under it is not."""
    token = server.token()
    half = "h" * (600 * 1024)
    doc = await server.create(token, state={"first": half})
    async with await server.connect(token) as client:
        await _error(client, "too_large", doc=doc["id"], base=1,
                     ops=[{"op": "add", "path": "/second", "value": half}])
        await _unchanged(server, token, doc["id"], 1, {"first": half}, 0)
        filler = "f" * (1024 * 1024 - len(half) - 1024)
        reply = await client.ok("patch", doc=doc["id"], base=1,
                                ops=[{"op": "add", "path": "/second", "value": filler}])
        assert reply["version"] == 2


# -- concurrency --------------------------------------------------------------------------------


async def _write_with_retry(client: WsClient, doc: str, base: int, ops: list[dict[str, Any]],
                            conflicts: list[int]) -> int:
    """Send ``ops`` until accepted, re-reading the version after each conflict."""
    for _ in range(500):
        reply = await client.request("patch", doc=doc, base=base, ops=ops)
        if reply["type"] == "ok":
            return int(reply["version"])
        assert reply["code"] == "conflict", reply
        conflicts.append(reply["current_version"])
        base = reply["current_version"]
    raise AssertionError(f"patch never accepted on {doc}")


async def test_concurrent_writers_on_separate_keys_lose_no_update(server: RunningServer) -> None:
    """Eight clients incrementing their own counters concurrently all rebase and none is lost."""
    clients_count, per_client = 8, 6
    token = server.token()
    doc = await server.create(token, state={f"c{i}": 0 for i in range(clients_count)})
    conflicts: list[int] = []

    async def run(index: int) -> list[int]:
        versions = []
        async with await server.connect(server.token()) as client:
            base = 1
            for n in range(1, per_client + 1):
                ops = [{"op": "test", "path": f"/c{index}", "value": n - 1},
                       {"op": "replace", "path": f"/c{index}", "value": n}]
                base = await _write_with_retry(client, doc["id"], base, ops, conflicts)
                versions.append(base)
        return versions

    results = await asyncio.wait_for(
        asyncio.gather(*(run(i) for i in range(clients_count))), BUDGET)
    accepted = clients_count * per_client
    assert conflicts == []
    assert sorted(v for versions in results for v in versions) == list(range(2, 2 + accepted))
    document = await _document(server, token, doc["id"])
    assert document["version"] == 1 + accepted
    assert document["state"] == {f"c{i}": per_client for i in range(clients_count)}
    applied = await _applied(server, token, doc["id"])
    assert [e["version"] for e in applied] == list(range(2, 2 + accepted))


async def test_concurrent_writers_on_one_array_conflict_but_apply_each_write_once(
    server: RunningServer,
) -> None:
    """Eight clients appending to one array conflict and retry; every accepted append is in
    the document and in the history exactly once."""
    clients_count, per_client = 8, 4
    token = server.token()
    doc = await server.create(token, state={"items": []})
    conflicts: list[int] = []

    async def run(index: int) -> list[int]:
        versions = []
        async with await server.connect(server.token()) as client:
            base = 1
            for n in range(per_client):
                ops = [{"op": "add", "path": "/items/-", "value": {"client": index, "n": n}}]
                base = await _write_with_retry(client, doc["id"], base, ops, conflicts)
                versions.append(base)
        return versions

    results = await asyncio.wait_for(
        asyncio.gather(*(run(i) for i in range(clients_count))), BUDGET)
    accepted = clients_count * per_client
    # Every client's first write was based on version 1; only one of them can have won there.
    assert len(conflicts) >= clients_count - 1
    assert sorted(v for versions in results for v in versions) == list(range(2, 2 + accepted))
    document = await _document(server, token, doc["id"])
    assert document["version"] == 1 + accepted
    items = document["state"]["items"]
    expected = sorted((i, n) for i in range(clients_count) for n in range(per_client))
    assert sorted((item["client"], item["n"]) for item in items) == expected
    for index in range(clients_count):  # each client's appends kept their order
        assert [item["n"] for item in items if item["client"] == index] == list(range(per_client))
    applied = await _applied(server, token, doc["id"])
    assert [e["version"] for e in applied] == list(range(2, 2 + accepted))
    written = sorted((e["data"]["ops"][0]["value"]["client"], e["data"]["ops"][0]["value"]["n"])
                     for e in applied)
    assert written == expected
