"""Edit locks (docs/protocol.md section 7) over real WebSocket and HTTP connections.

Locks are taken by WebSocket sessions (renewed while they heartbeat) and by HTTP clients
(never renewed, which is how expiry is tested without killing a node). What the server holds
is read back over ``GET /api/locks`` and the document's audit history.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.support import TIMEOUT, RunningServer, WsClient, replace

LOCK_FIELDS = {"doc", "path", "holder", "token", "expires_at"}


def _when(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _same_lock(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two views of one grant (``expires_at`` moves with renewals, the rest does not)."""
    return all(a[k] == b[k] for k in ("doc", "path", "holder", "token"))


def _holder_of(client: WsClient) -> dict[str, Any]:
    user = client.welcome["user"]
    return {"session": client.welcome["session"],
            "user": {"id": user["id"], "name": user["name"]}}


async def _lock(client: WsClient, doc: str, path: str, **fields: Any) -> dict[str, Any]:
    reply = await client.ok("lock", doc=doc, path=path, **fields)
    lock: dict[str, Any] = reply["lock"]
    return lock


async def _refused(client: WsClient, kind: str, code: str, **fields: Any) -> dict[str, Any]:
    reply = await client.request(kind, **fields)
    assert reply["type"] == "error", reply
    assert reply["code"] == code, reply
    assert isinstance(reply["message"], str) and reply["message"]
    return reply


async def _get(server: RunningServer, token: str, url: str, **params: Any) -> Any:
    async with server.http(token) as http:
        response = await asyncio.wait_for(http.get(url, params=params), TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


async def _live_locks(server: RunningServer, token: str, doc: str) -> list[dict[str, Any]]:
    body = await _get(server, token, "/api/locks", doc=doc)
    locks: list[dict[str, Any]] = body["locks"]
    return locks


async def _events(server: RunningServer, token: str, doc: str) -> list[dict[str, Any]]:
    page = await _get(server, token, f"/api/documents/{doc}/history", limit=1000)
    assert page["next"] is None
    events: list[dict[str, Any]] = page["events"]
    return events


async def _event_types(server: RunningServer, token: str, doc: str) -> list[str]:
    return [e["type"] for e in await _events(server, token, doc)]


async def _push(client: WsClient, kind: str, match: Callable[[dict[str, Any]], bool],
                timeout: float = TIMEOUT) -> dict[str, Any]:
    """The first pushed message of ``kind`` that ``match``es; others of that kind are dropped."""
    async with asyncio.timeout(timeout):
        while True:
            message = await client.recv_type(kind, timeout)
            if match(message):
                return message


async def _document(server: RunningServer, token: str, doc: str) -> dict[str, Any]:
    document: dict[str, Any] = await _get(server, token, f"/api/documents/{doc}")
    return document


# -- granting -----------------------------------------------------------------------------------


async def test_lock_is_granted_with_holder_token_and_expiry(server: RunningServer) -> None:
    """A lock request is answered with the lock: doc, path, holder (session and user), an
    integer fencing token and an expiry about ttl_ms ahead."""
    token = server.token(user="alice", name="Alice")
    doc = await server.create(token, state={"a": {"b": 1}})
    async with await server.connect(token) as client:
        before = time.time()
        lock = await _lock(client, doc["id"], "/a/b", ttl_ms=20_000)
        assert set(lock) >= LOCK_FIELDS
        assert lock["doc"] == doc["id"] and lock["path"] == "/a/b"
        assert lock["holder"] == _holder_of(client)
        assert lock["holder"]["user"] == {"id": "alice", "name": "Alice"}
        assert isinstance(lock["token"], int) and not isinstance(lock["token"], bool)
        ahead = _when(lock["expires_at"]).timestamp() - before
        assert 15 <= ahead <= 25, lock["expires_at"]
        listed = await _live_locks(server, token, doc["id"])
        assert len(listed) == 1 and _same_lock(listed[0], lock)


async def test_default_ttl_is_thirty_seconds(server: RunningServer) -> None:
    """Without ttl_ms a lock expires about 30 s after it is granted."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as client:
        before = time.time()
        lock = await _lock(client, doc["id"], "/x")
        ahead = _when(lock["expires_at"]).timestamp() - before
        assert 25 <= ahead <= 35, lock["expires_at"]


async def test_empty_path_locks_the_whole_document(server: RunningServer) -> None:
    """A lock on "" covers every path: nobody else may lock or write anywhere in it."""
    holder_token, other_token = server.token(), server.token()
    doc = await server.create(holder_token, state={"x": 1, "y": {"z": 2}})
    async with await server.connect(holder_token) as holder, \
            await server.connect(other_token) as other:
        lock = await _lock(holder, doc["id"], "")
        assert lock["path"] == ""
        for path in ("", "/x", "/y/z"):
            refused = await _refused(other, "lock", "locked", doc=doc["id"], path=path)
            assert _same_lock(refused["lock"], lock)
        refused = await _refused(other, "patch", "locked", doc=doc["id"], base=1,
                                 ops=replace("/x", 2))
        assert _same_lock(refused["lock"], lock)
        await holder.ok("patch", doc=doc["id"], base=1, ops=replace("/x", 3))


async def test_overlapping_paths_are_refused_and_disjoint_ones_granted(
    server: RunningServer,
) -> None:
    """Another session's lock on the same path, a parent or a child is refused with ``locked``
    and the holder's lock; a sibling (even one sharing a name prefix) is granted."""
    holder_token, other_token = server.token(), server.token()
    doc = await server.create(holder_token, state={"a": {"b": {"c": 1}, "bb": 2, "d": 3}})
    async with await server.connect(holder_token) as holder, \
            await server.connect(other_token) as other:
        lock = await _lock(holder, doc["id"], "/a/b")
        for path in ("/a/b", "/a", "", "/a/b/c"):
            refused = await _refused(other, "lock", "locked", doc=doc["id"], path=path)
            assert set(refused["lock"]) >= LOCK_FIELDS
            assert _same_lock(refused["lock"], lock), refused
        for path in ("/a/d", "/a/bb"):
            granted = await _lock(other, doc["id"], path)
            assert granted["path"] == path
            assert granted["holder"] == _holder_of(other)
        listed = await _live_locks(server, holder_token, doc["id"])
        assert sorted(item["path"] for item in listed) == ["/a/b", "/a/bb", "/a/d"]


async def test_fencing_tokens_grow_and_renewal_keeps_the_token(server: RunningServer) -> None:
    """Every grant on a document gets a larger token than all before it (also after a release
    and re-grant); locking again what one holds renews it: later expiry, same token."""
    a_token, b_token = server.token(), server.token()
    doc = await server.create(a_token)
    async with await server.connect(a_token) as a, await server.connect(b_token) as b:
        first = await _lock(a, doc["id"], "/a", ttl_ms=5_000)
        second = await _lock(a, doc["id"], "/b", ttl_ms=5_000)
        assert second["token"] > first["token"]
        await a.ok("unlock", doc=doc["id"], path="/a")
        third = await _lock(b, doc["id"], "/a")
        assert third["token"] > second["token"]
        await b.ok("unlock", doc=doc["id"], path="/a")
        fourth = await _lock(a, doc["id"], "/a")
        assert fourth["token"] > third["token"]

        renewed = await _lock(a, doc["id"], "/b", ttl_ms=60_000)
        assert renewed["token"] == second["token"]
        assert renewed["holder"] == second["holder"]
        assert _when(renewed["expires_at"]) > _when(second["expires_at"])
        listed = {item["path"]: item for item in await _live_locks(server, a_token, doc["id"])}
        assert listed["/b"]["token"] == second["token"]
        assert _when(listed["/b"]["expires_at"]) >= _when(renewed["expires_at"])

        async with server.http(a_token) as http:
            response = await asyncio.wait_for(
                http.post(f"/api/documents/{doc['id']}/locks", json={"path": "/c"}), TIMEOUT)
        assert response.status_code == 201, response.text
        assert response.json()["lock"]["token"] > fourth["token"]


# -- releasing ----------------------------------------------------------------------------------


async def test_unlock_releases_and_unlocking_what_one_does_not_hold_is_not_found(
    server: RunningServer,
) -> None:
    """After unlock another session may lock the path; unlocking a lock one does not hold
    (another's, or none at all) is ``not_found`` and changes nothing."""
    a_token, b_token = server.token(), server.token()
    doc = await server.create(a_token)
    async with await server.connect(a_token) as a, await server.connect(b_token) as b:
        held = await _lock(a, doc["id"], "/a")
        await _refused(b, "unlock", "not_found", doc=doc["id"], path="/a")
        await _refused(b, "unlock", "not_found", doc=doc["id"], path="/nothing")
        listed = await _live_locks(server, a_token, doc["id"])
        assert len(listed) == 1 and _same_lock(listed[0], held)
        await _refused(b, "lock", "locked", doc=doc["id"], path="/a")

        await a.ok("unlock", doc=doc["id"], path="/a")
        assert await _live_locks(server, a_token, doc["id"]) == []
        await _refused(a, "unlock", "not_found", doc=doc["id"], path="/a")
        taken = await _lock(b, doc["id"], "/a")
        assert taken["holder"] == _holder_of(b)


# -- writes against locks -----------------------------------------------------------------------


async def test_writes_inside_another_holders_lock_are_refused(server: RunningServer) -> None:
    """A patch by another session touching the locked region (inside it or a parent of it) is
    ``locked`` with the lock and applies nothing; outside the region it succeeds, and the
    holder may write inside it."""
    holder_token, other_token = server.token(), server.token()
    doc = await server.create(holder_token, state={"a": {"b": 1, "c": 1}, "d": 1})
    async with await server.connect(holder_token) as holder, \
            await server.connect(other_token) as other:
        lock = await _lock(holder, doc["id"], "/a/b")
        for ops in (
            replace("/a/b", 2),
            replace("/a", {"b": 2}),
            [{"op": "replace", "path": "/d", "value": 2},
             {"op": "replace", "path": "/a/b", "value": 2}],
            [{"op": "remove", "path": "/a/b"}],
            [{"op": "move", "from": "/a/b", "path": "/moved"}],
        ):
            refused = await _refused(other, "patch", "locked", doc=doc["id"], base=1, ops=ops)
            assert _same_lock(refused["lock"], lock), refused
        document = await _document(server, holder_token, doc["id"])
        assert document["version"] == 1
        assert document["state"] == {"a": {"b": 1, "c": 1}, "d": 1}

        outside = await other.ok("patch", doc=doc["id"], base=1, ops=replace("/a/c", 2))
        assert outside["version"] == 2
        inside = await holder.ok("patch", doc=doc["id"], base=2, ops=replace("/a/b", 3))
        assert inside["version"] == 3
        document = await _document(server, holder_token, doc["id"])
        assert document["state"] == {"a": {"b": 3, "c": 2}, "d": 1}


async def test_released_lock_no_longer_blocks_writes(server: RunningServer) -> None:
    """Once the holder unlocks, another session's write to the region is applied."""
    holder_token, other_token = server.token(), server.token()
    doc = await server.create(holder_token, state={"a": 1})
    async with await server.connect(holder_token) as holder, \
            await server.connect(other_token) as other:
        await _lock(holder, doc["id"], "/a")
        await _refused(other, "patch", "locked", doc=doc["id"], base=1, ops=replace("/a", 2))
        await holder.ok("unlock", doc=doc["id"], path="/a")
        reply = await other.ok("patch", doc=doc["id"], base=1, ops=replace("/a", 2))
        assert reply["version"] == 2


# -- force --------------------------------------------------------------------------------------


async def test_admin_force_steals_the_lock_and_tells_the_old_holder(
    server: RunningServer,
) -> None:
    """An admin's ``force: true`` takes a held lock with a larger token; the old holder is sent
    ``unlocked`` with reason ``stolen``, loses write access, and ``lock.stolen`` is recorded."""
    analyst_token = server.token(roles=["analyst"])
    admin_token = server.token(roles=["admin"])
    doc = await server.create(analyst_token, state={"a": 1})
    async with await server.connect(analyst_token) as analyst, \
            await server.connect(admin_token) as admin:
        await analyst.ok("subscribe", doc=doc["id"])
        old = await _lock(analyst, doc["id"], "/a")
        await _refused(admin, "lock", "locked", doc=doc["id"], path="/a")
        new = await _lock(admin, doc["id"], "/a", force=True)
        assert new["token"] > old["token"]
        assert new["holder"] == _holder_of(admin)

        stolen = await _push(analyst, "unlocked", lambda m: m.get("reason") == "stolen")
        assert stolen["doc"] == doc["id"] and stolen["path"] == "/a"
        assert stolen["holder"] == old["holder"]
        listed = await _live_locks(server, analyst_token, doc["id"])
        assert len(listed) == 1 and _same_lock(listed[0], new)
        refused = await _refused(analyst, "patch", "locked", doc=doc["id"], base=1,
                                 ops=replace("/a", 2))
        assert _same_lock(refused["lock"], new)
    assert "lock.stolen" in await _event_types(server, analyst_token, doc["id"])


async def test_force_by_a_non_admin_is_forbidden_and_audited(server: RunningServer) -> None:
    """``force: true`` from an analyst is ``forbidden``, leaves the lock with its holder and
    appends an ``access.denied`` event."""
    holder_token, other_token = server.token(), server.token(roles=["analyst"])
    doc = await server.create(holder_token)
    async with await server.connect(holder_token) as holder, \
            await server.connect(other_token) as other:
        held = await _lock(holder, doc["id"], "/a")
        await _refused(other, "lock", "forbidden", doc=doc["id"], path="/a", force=True)
        listed = await _live_locks(server, holder_token, doc["id"])
        assert len(listed) == 1 and _same_lock(listed[0], held)
    events = await _events(server, holder_token, doc["id"])
    denied = [e for e in events if e["type"] == "access.denied"]
    assert len(denied) == 1
    assert denied[0]["actor"]["id"] == other.welcome["user"]["id"]
    assert "lock.stolen" not in [e["type"] for e in events]


# -- what subscribers see, and the audit trail --------------------------------------------------


async def test_subscribers_see_locked_and_unlocked_released(server: RunningServer) -> None:
    """Subscribers receive ``locked`` with the grant and ``unlocked`` with reason ``released``;
    both are audit events (``lock.acquired``, ``lock.released``)."""
    holder_token, watcher_token = server.token(), server.token(roles=["viewer"])
    doc = await server.create(holder_token)
    async with await server.connect(holder_token) as holder, \
            await server.connect(watcher_token) as watcher:
        await watcher.ok("subscribe", doc=doc["id"])
        lock = await _lock(holder, doc["id"], "/a")
        locked = await watcher.recv_type("locked")
        assert locked["doc"] == doc["id"] and locked["path"] == "/a"
        assert locked["holder"] == lock["holder"] and locked["token"] == lock["token"]
        assert locked["expires_at"] == lock["expires_at"]

        await holder.ok("unlock", doc=doc["id"], path="/a")
        unlocked = await watcher.recv_type("unlocked")
        assert unlocked["doc"] == doc["id"] and unlocked["path"] == "/a"
        assert unlocked["holder"] == lock["holder"]
        assert unlocked["reason"] == "released"
    types = await _event_types(server, holder_token, doc["id"])
    assert types.count("lock.acquired") == 1 and types.count("lock.released") == 1


async def test_holder_closing_its_socket_releases_with_reason_disconnected(
    server: RunningServer,
) -> None:
    """When the holder's connection closes, subscribers receive ``unlocked`` with reason
    ``disconnected``, the lock is gone and ``lock.released`` is recorded."""
    holder_token, watcher_token = server.token(), server.token()
    doc = await server.create(holder_token)
    async with await server.connect(watcher_token) as watcher:
        await watcher.ok("subscribe", doc=doc["id"])
        holder = await server.connect(holder_token)
        lock = await _lock(holder, doc["id"], "/a")
        await holder.close()
        unlocked = await _push(watcher, "unlocked", lambda m: m.get("path") == "/a")
        assert unlocked["reason"] == "disconnected"
        assert unlocked["holder"] == lock["holder"] and unlocked["doc"] == doc["id"]
        assert await _live_locks(server, watcher_token, doc["id"]) == []
        granted = await _lock(watcher, doc["id"], "/a")
        assert granted["token"] > lock["token"]
    assert "lock.released" in await _event_types(server, holder_token, doc["id"])


async def test_http_lock_expires_after_its_ttl(server: RunningServer) -> None:
    """An HTTP lock (never renewed) with ttl_ms 1000 is live for its ttl, then subscribers
    receive ``unlocked`` with reason ``expired``, it leaves GET /api/locks and ``lock.expired``
    is recorded."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as watcher:
        await watcher.ok("subscribe", doc=doc["id"])
        async with server.http(token) as http:
            started = time.monotonic()
            response = await asyncio.wait_for(
                http.post(f"/api/documents/{doc['id']}/locks", json={"path": "/a", "ttl_ms": 1000}),
                TIMEOUT)
        assert response.status_code == 201, response.text
        lock = response.json()["lock"]
        assert response.headers["Lock-Token"] == str(lock["token"])
        assert lock["path"] == "/a" and lock["doc"] == doc["id"]
        assert [item["token"] for item in await _live_locks(server, token, doc["id"])] == [
            lock["token"]]

        unlocked = await _push(watcher, "unlocked", lambda m: m.get("path") == "/a", timeout=5)
        elapsed = time.monotonic() - started
        assert unlocked["reason"] == "expired"
        assert unlocked["holder"] == lock["holder"]
        assert 0.9 <= elapsed <= 3.0, elapsed
        assert await _live_locks(server, token, doc["id"]) == []
    assert "lock.expired" in await _event_types(server, token, doc["id"])


async def test_heartbeating_holder_keeps_its_lock_beyond_the_ttl(server: RunningServer) -> None:
    """A connection's lock with ttl_ms 1000 stays live, same token, for as long as the
    connection keeps heartbeating (here 2.5 s)."""
    holder_token, watcher_token = server.token(), server.token()
    doc = await server.create(holder_token)
    async with await server.connect(holder_token) as holder, \
            await server.connect(watcher_token) as watcher:
        await watcher.ok("subscribe", doc=doc["id"])
        lock = await _lock(holder, doc["id"], "/a", ttl_ms=1000)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            await holder.send({"type": "heartbeat"})
            await asyncio.sleep(0.1)
        ended = [m for m in await watcher.nothing_more(0.1) if m.get("type") == "unlocked"]
        assert [m["reason"] for m in ended] == []
        listed = await _live_locks(server, watcher_token, doc["id"])
        assert len(listed) == 1 and _same_lock(listed[0], lock), listed
        assert _when(listed[0]["expires_at"]) > _when(lock["expires_at"])


# -- HTTP ---------------------------------------------------------------------------------------


async def test_http_writes_need_the_lock_token(server: RunningServer) -> None:
    """Inside an HTTP-held lock a PATCH with the right ``Lock-Token`` is applied; without it or
    with a wrong one it is 423 ``locked`` with the lock, and nothing is applied."""
    token = server.token()
    doc = await server.create(token, state={"a": 1, "b": 1})
    url = f"/api/documents/{doc['id']}"
    async with server.http(token) as http:
        response = await asyncio.wait_for(
            http.post(f"{url}/locks", json={"path": "/a", "ttl_ms": 60_000}), TIMEOUT)
        assert response.status_code == 201, response.text
        lock = response.json()["lock"]
        lock_token = response.headers["Lock-Token"]
        assert lock_token == str(lock["token"])

        for headers in ({"If-Match": '"1"'},
                        {"If-Match": '"1"', "Lock-Token": str(lock["token"] + 1000)}):
            refused = await asyncio.wait_for(
                http.patch(url, json=replace("/a", 2), headers=headers), TIMEOUT)
            assert refused.status_code == 423, refused.text
            error = refused.json()["error"]
            assert error["code"] == "locked" and isinstance(error["message"], str)
            assert _same_lock(error["lock"], lock)
        document = await _document(server, token, doc["id"])
        assert document["version"] == 1 and document["state"] == {"a": 1, "b": 1}

        outside = await asyncio.wait_for(
            http.patch(url, json=replace("/b", 2), headers={"If-Match": '"1"'}), TIMEOUT)
        assert outside.status_code == 200, outside.text
        inside = await asyncio.wait_for(
            http.patch(url, json=replace("/a", 3),
                       headers={"If-Match": '"2"', "Lock-Token": lock_token}), TIMEOUT)
        assert inside.status_code == 200, inside.text
        assert inside.json()["version"] == 3
    document = await _document(server, token, doc["id"])
    assert document["state"] == {"a": 3, "b": 2}


async def test_a_superseded_lock_token_is_refused_after_the_newer_lock_ended(
    server: RunningServer,
) -> None:
    """A holder that paused past its ttl while another user took the region, wrote and let it
    go gets 423 ``locked`` for a PATCH with its old ``Lock-Token``, and nothing is applied
    (the chaos run found such late writes accepted once the newer lock was released)."""
    late, other = server.token(), server.token()
    doc = await server.create(late, state={"a": 1})
    url = f"/api/documents/{doc['id']}"
    async with server.http(late) as late_http, server.http(other) as other_http:
        taken = await asyncio.wait_for(
            late_http.post(f"{url}/locks", json={"path": "/a", "ttl_ms": 1000}), TIMEOUT)
        assert taken.status_code == 201, taken.text
        old_token = taken.json()["lock"]["token"]
        await asyncio.sleep(1.2)  # the late holder's pause: its lock expires
        newer = await asyncio.wait_for(
            other_http.post(f"{url}/locks", json={"path": "/a", "ttl_ms": 60_000}), TIMEOUT)
        assert newer.status_code == 201, newer.text
        new_token = newer.json()["lock"]["token"]
        assert new_token > old_token
        written = await asyncio.wait_for(other_http.patch(
            url, json=replace("/a", 2),
            headers={"If-Match": '"1"', "Lock-Token": str(new_token)}), TIMEOUT)
        assert written.status_code == 200, written.text
        released = await asyncio.wait_for(
            other_http.delete(f"{url}/locks", params={"path": "/a"}), TIMEOUT)
        assert released.status_code == 200, released.text

        stale = await asyncio.wait_for(late_http.patch(
            url, json=replace("/a", 99),
            headers={"If-Match": '"2"', "Lock-Token": str(old_token)}), TIMEOUT)
        assert stale.status_code == 423, stale.text
        assert stale.json()["error"]["code"] == "locked"
        unlocked = await asyncio.wait_for(late_http.patch(
            url, json=replace("/a", 3), headers={"If-Match": '"2"'}), TIMEOUT)
        assert unlocked.status_code == 200, unlocked.text  # no lock claimed, none held: free
    document = await _document(server, late, doc["id"])
    assert document["version"] == 3 and document["state"] == {"a": 3}


async def test_http_lock_blocks_websocket_writers_and_delete_releases_it(
    server: RunningServer,
) -> None:
    """An HTTP lock refuses a WebSocket session's lock and write; DELETE with ``?path=`` ends it
    (subscribers see ``unlocked`` ``released``) and the session may then lock and write."""
    http_token, ws_token = server.token(), server.token()
    doc = await server.create(http_token, state={"a": 1})
    async with await server.connect(ws_token) as client, server.http(http_token) as http:
        await client.ok("subscribe", doc=doc["id"])
        response = await asyncio.wait_for(
            http.post(f"/api/documents/{doc['id']}/locks", json={"path": "/a", "ttl_ms": 60_000}),
            TIMEOUT)
        assert response.status_code == 201, response.text
        lock = response.json()["lock"]
        refused = await _refused(client, "lock", "locked", doc=doc["id"], path="/a")
        assert _same_lock(refused["lock"], lock)
        await _refused(client, "patch", "locked", doc=doc["id"], base=1, ops=replace("/a", 2))

        released = await asyncio.wait_for(
            http.delete(f"/api/documents/{doc['id']}/locks", params={"path": "/a"}), TIMEOUT)
        assert released.status_code == 200, released.text
        unlocked = await _push(client, "unlocked", lambda m: m.get("path") == "/a")
        assert unlocked["reason"] == "released" and unlocked["holder"] == lock["holder"]
        assert await _live_locks(server, ws_token, doc["id"]) == []
        again = await asyncio.wait_for(
            http.delete(f"/api/documents/{doc['id']}/locks", params={"path": "/a"}), TIMEOUT)
        assert again.status_code == 404, again.text
        assert again.json()["error"]["code"] == "not_found"

        await _lock(client, doc["id"], "/a")
        await client.ok("patch", doc=doc["id"], base=1, ops=replace("/a", 2))


async def test_live_locks_are_listed_over_http_and_in_the_subscribe_reply(
    server: RunningServer,
) -> None:
    """GET /api/locks?doc= and a subscribe reply's ``locks`` list every live lock of the
    document, WebSocket and HTTP held alike."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as holder:
        ws_lock = await _lock(holder, doc["id"], "/a")
        async with server.http(token) as http:
            response = await asyncio.wait_for(
                http.post(f"/api/documents/{doc['id']}/locks", json={"path": "/b"}), TIMEOUT)
        assert response.status_code == 201, response.text
        http_lock = response.json()["lock"]

        listed = await _live_locks(server, token, doc["id"])
        assert len(listed) == 2
        by_path = {item["path"]: item for item in listed}
        assert _same_lock(by_path["/a"], ws_lock) and _same_lock(by_path["/b"], http_lock)
        assert all(set(item) >= LOCK_FIELDS for item in listed)

        async with await server.connect(server.token()) as late:
            reply = await late.ok("subscribe", doc=doc["id"])
        in_reply = {item["path"]: item for item in reply["locks"]}
        assert set(in_reply) == {"/a", "/b"}
        assert _same_lock(in_reply["/a"], ws_lock) and _same_lock(in_reply["/b"], http_lock)


async def test_locks_of_another_tenant_are_invisible(server: RunningServer) -> None:
    """A user of another tenant can neither list nor take nor be told about a document's locks."""
    token = server.token(tenant="acme")
    outsider = server.token(tenant="globex")
    doc = await server.create(token)
    async with await server.connect(token) as holder, await server.connect(outsider) as other:
        await _lock(holder, doc["id"], "/a")
        await _refused(other, "lock", "not_found", doc=doc["id"], path="/b")
        async with server.http(outsider) as http:
            response = await asyncio.wait_for(
                http.get("/api/locks", params={"doc": doc["id"]}), TIMEOUT)
        assert response.status_code == 404, response.text
        assert len(await _live_locks(server, token, doc["id"])) == 1


async def test_every_live_lock_of_the_tenant_is_listed_without_a_doc(
    server: RunningServer,
) -> None:
    """GET /api/locks without ``doc`` lists the live locks of every document of the caller's
    tenant, none of another tenant's, at most ``limit`` with ``more`` saying some were left
    out; a released lock is gone from it and a bad limit is ``bad_request``."""
    token = server.token(tenant="acme")
    viewer = server.token(tenant="acme", roles=["viewer"])
    outsider = server.token(tenant="globex")
    first, second = await server.create(token), await server.create(token)
    theirs = await server.create(outsider)
    async with await server.connect(token) as holder, await server.connect(outsider) as other:
        a = await _lock(holder, first["id"], "/a")
        b = await _lock(holder, second["id"], "")
        await _lock(other, theirs["id"], "/x")

        listed = await _get(server, viewer, "/api/locks")
        assert listed["more"] is False
        assert [(item["doc"], item["path"]) for item in listed["locks"]] == [
            (first["id"], "/a"), (second["id"], "")]
        assert _same_lock(listed["locks"][0], a) and _same_lock(listed["locks"][1], b)
        page = await _get(server, viewer, "/api/locks", limit=1)
        assert page["more"] is True and [item["path"] for item in page["locks"]] == ["/a"]
        assert [item["doc"] for item in (await _get(server, outsider, "/api/locks"))["locks"]] \
            == [theirs["id"]]

        await holder.ok("unlock", doc=first["id"], path="/a")
        assert [item["doc"] for item in (await _get(server, token, "/api/locks"))["locks"]] \
            == [second["id"]]
        async with server.http(token) as http:
            for bad in ("0", "1001", "many"):
                response = await asyncio.wait_for(
                    http.get("/api/locks", params={"limit": bad}), TIMEOUT)
                assert response.status_code == 400, response.text
                assert response.json()["error"]["code"] == "bad_request"
            # An empty query parameter counts as not given, on this route as on every other.
            response = await asyncio.wait_for(http.get("/api/locks", params={"doc": ""}), TIMEOUT)
            assert [item["doc"] for item in response.json()["locks"]] == [second["id"]]


# -- bad input and roles ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"path": 5},
        {"path": None},
        {"path": "a/b"},
        {"path": "/a~2b"},
        {"path": "/a", "ttl_ms": 999},
        {"path": "/a", "ttl_ms": 3_600_001},
        {"path": "/a", "ttl_ms": "5000"},
        {"path": "/a", "ttl_ms": True},
        {"path": "/a", "force": "yes"},
        {"path": "/a", "force": 1},
    ],
    ids=["path-int", "path-null", "path-relative", "path-bad-escape", "ttl-too-small",
         "ttl-too-large", "ttl-string", "ttl-bool", "force-string", "force-int"],
)
async def test_malformed_lock_requests_are_bad_requests(
    server: RunningServer, fields: dict[str, Any],
) -> None:
    """A lock with a path that is not a JSON pointer string, ttl_ms outside 1000..3600000 or
    a non-boolean force is ``bad_request``; nothing is locked and the connection stays open."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as client:
        await _refused(client, "lock", "bad_request", doc=doc["id"], **fields)
        assert await _live_locks(server, token, doc["id"]) == []
        assert (await client.request("heartbeat"))["type"] == "ok"


async def test_ttl_bounds_are_inclusive(server: RunningServer) -> None:
    """ttl_ms of exactly 1000 and exactly 3600000 are accepted."""
    token = server.token()
    doc = await server.create(token)
    async with await server.connect(token) as client:
        short = await _lock(client, doc["id"], "/a", ttl_ms=1000)
        long = await _lock(client, doc["id"], "/b", ttl_ms=3_600_000)
        assert _when(long["expires_at"]) > _when(short["expires_at"])


async def test_viewer_may_not_lock(server: RunningServer) -> None:
    """A viewer's lock request is ``forbidden``, locks nothing and appends ``access.denied``."""
    owner = server.token()
    viewer = server.token(roles=["viewer"])
    doc = await server.create(owner)
    async with await server.connect(viewer) as client:
        await _refused(client, "lock", "forbidden", doc=doc["id"], path="/a")
    assert await _live_locks(server, owner, doc["id"]) == []
    assert "access.denied" in await _event_types(server, owner, doc["id"])


async def test_unknown_document_is_not_found(server: RunningServer) -> None:
    """Locking a document that does not exist is ``not_found``."""
    async with await server.connect(server.token()) as client:
        await _refused(client, "lock", "not_found", doc="no-such-doc", path="/a")


# -- graceful shutdown --------------------------------------------------------------------------


async def test_graceful_drain_releases_locks_and_closes_with_1001(server: RunningServer) -> None:
    """Draining the server closes the holder's socket with 1001 after its locks were released
    (and recorded as ``lock.released``)."""
    token = server.token()
    doc = await server.create(token)
    holder = await server.connect(token)
    try:
        await _lock(holder, doc["id"], "/a")
        await _lock(holder, doc["id"], "/b")
        held = await asyncio.wait_for(server.coedit.locks.live("acme", doc["id"]), TIMEOUT)
        assert len(held) == 2
        await asyncio.wait_for(server.server.drain(), 15)
        assert await holder.closed_with() == 1001
        assert await asyncio.wait_for(server.coedit.locks.live("acme", doc["id"]), TIMEOUT) == []
        page = await asyncio.wait_for(server.coedit.store.history("acme", doc["id"]), TIMEOUT)
        assert [e["type"] for e in page["events"]].count("lock.released") == 2
    finally:
        await holder.close()
