"""The Python client's HTTP methods against a real server (documents, history, past versions,
verify, events, locks) and its errors: one exception per contract code, carrying the body's
fields; rate limits honoured with Retry-After (the last one against a scripted transport,
until the server's HTTP limits land)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import coedit_client
import httpx
import pytest
from coedit_client import Conflict, Forbidden, Locked, NotFound, PreconditionRequired, RateLimited
from coedit_client.errors import error_from
from coedit_client.http import Transport

from tests.support import RunningServer, replace


async def test_documents_round_trip(server: RunningServer) -> None:
    """Create, read, list, patch with If-Match, read past versions by number and by time,
    page through history, verify the chain, and list events."""
    token = server.token()
    async with coedit_client.Api(server.http_url, token=token) as api:
        doc = await api.documents.create("valuation", "ACME", {"wacc": 0.08})
        assert (doc["version"], doc["state"]) == (1, {"wacc": 0.08})
        assert (await api.documents.get(doc["id"]))["title"] == "ACME"
        await asyncio.sleep(0.01)
        between = datetime.now(UTC).isoformat()
        for n, value in enumerate((0.081, 0.082, 0.083), start=1):
            reply = await api.documents.patch(doc["id"], replace("/wacc", value), base=n)
            assert reply["version"] == n + 1
        again = await api.documents.patch(doc["id"], replace("/wacc", 0.09), base=4,
                                          key="same-key")
        duplicate = await api.documents.patch(doc["id"], replace("/wacc", 0.09), base=4,
                                              key="same-key")
        assert again["version"] == duplicate["version"] == 5 and duplicate["duplicate"]
        assert (await api.documents.get(doc["id"], version=2))["state"] == {"wacc": 0.081}
        assert (await api.documents.get(doc["id"], at=between))["version"] == 1
        page = await api.documents.list(kind="valuation")
        assert [d["id"] for d in page["items"]] == [doc["id"]]
        history = [e async for e in api.documents.iterate_history(doc["id"], page_size=2)]
        assert [e["version"] for e in history] == [1, 2, 3, 4, 5]
        assert await api.documents.verify(doc["id"]) == {"ok": True, "events": 5}
        events = [e async for e in api.events.iterate(docs=[doc["id"]],
                                                      types=["patch.applied"], page_size=3)]
        assert [e["version"] for e in events] == [2, 3, 4, 5]
        lock = await api.documents.take_lock(doc["id"], "/wacc", ttl_ms=5000)
        assert [x["token"] for x in await api.documents.locks(doc["id"])] == [lock["token"]]
        await api.documents.patch(doc["id"], replace("/wacc", 0.1), base=5,
                                  lock_token=lock["token"])
        await api.documents.release_lock(doc["id"], "/wacc")
        assert await api.documents.locks(doc["id"]) == []


async def test_errors_carry_the_contract_fields(server: RunningServer) -> None:
    """A stale patch raises Conflict with current_version, paths and deltas; another's lock
    raises Locked with the lock; a viewer's write Forbidden; an unknown id NotFound; a
    PATCH without If-Match PreconditionRequired."""
    token = server.token()
    async with coedit_client.Api(server.http_url, token=token) as api, \
            coedit_client.Api(server.http_url, token=server.token()) as other, \
            coedit_client.Api(server.http_url, token=server.token(roles=["viewer"])) as viewer:
        doc = (await api.documents.create("memo", "M", {"a": 1}))["id"]
        await other.documents.patch(doc, replace("/a", 2), base=1)
        with pytest.raises(Conflict) as conflict:
            await api.documents.patch(doc, replace("/a", 3), base=1)
        assert (conflict.value.current_version, conflict.value.your_version) == (2, 1)
        assert conflict.value.paths == ["/a"] and len(conflict.value.deltas) == 1
        await other.documents.take_lock(doc, "/a", ttl_ms=5000)
        with pytest.raises(Locked) as locked:
            await api.documents.patch(doc, replace("/a", 3), base=2)
        assert locked.value.lock is not None and locked.value.lock["path"] == "/a"
        with pytest.raises(Forbidden):
            await viewer.documents.patch(doc, replace("/b", 1), base=2)
        with pytest.raises(NotFound):
            await api.documents.get("00000000-0000-0000-0000-000000000000")
        with pytest.raises(PreconditionRequired):
            await api.transport.send("PATCH", f"/api/documents/{doc}",
                                     json_body=replace("/b", 1))


async def test_rate_limits_are_honoured_with_retry_after() -> None:
    """A 429 is retried after its Retry-After, a bounded number of times; past the bound
    the RateLimited error carries retry_after_ms."""
    calls: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) <= 2:
            return httpx.Response(429, headers={"Retry-After": "0.2"}, json={"error": {
                "code": "rate_limited", "message": "slow down", "retry_after_ms": 200}})
        return httpx.Response(200, json={"ok": True})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mock:
        transport = Transport("http://coedit.test", token="t", retries=3, client=mock)
        assert await transport.json("GET", "/api/documents") == {"ok": True}
        assert len(calls) == 3 and calls[2] - calls[0] >= 0.35
        calls.clear()
        strict = Transport("http://coedit.test", token="t", retries=1, client=mock)
        with pytest.raises(RateLimited) as limited:
            await strict.json("GET", "/api/documents")
        assert limited.value.retry_after_ms == 200 and len(calls) == 2


def test_every_contract_code_has_its_exception() -> None:
    """Each code of the contract's section 3 maps to its own class and HTTP status."""
    codes = {"bad_request": 400, "unauthorized": 401, "forbidden": 403, "not_found": 404,
             "conflict": 409, "invalid_transition": 409, "locked": 423, "too_large": 413,
             "precondition_required": 428, "rate_limited": 429, "unavailable": 503,
             "internal": 500}
    classes = set()
    for code, status in codes.items():
        error = error_from({"code": code, "message": "m", "extra": 1})
        assert (error.code, error.http_status, error.fields["extra"]) == (code, status, 1)
        classes.add(type(error))
    assert len(classes) == len(codes)
    assert error_from({"code": "invalid_transition", "message": "m",
                       "state": "approved"}).state == "approved"  # type: ignore[attr-defined]
