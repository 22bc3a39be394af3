"""The HTTP resources (docs/protocol.md section 9), health, OpenAPI and metrics, over real
sockets."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.support import RunningServer, replace

DOCUMENT_FIELDS = {"id", "kind", "idea", "title", "version", "state", "created_at", "updated_at",
                   "updated_by"}
EVENT_FIELDS = {"seq", "id", "tenant", "type", "doc", "kind", "idea", "version", "actor",
                "source", "correlation_id", "ts", "data", "prev_hash", "hash"}


def _error_body(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check an error response's status and ``{"error":{"code","message",...}}`` body."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    return error


async def _patch(http: httpx.AsyncClient, doc: str, base: int | None, ops: Any,
                 **headers: str) -> httpx.Response:
    if base is not None:
        headers["If-Match"] = f'"{base}"'
    return await http.patch(f"/api/documents/{doc}", json=ops, headers=headers)


async def _history(http: httpx.AsyncClient, doc: str, **params: Any) -> dict[str, Any]:
    response = await http.get(f"/api/documents/{doc}/history", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert set(page) == {"events", "next"}
    return page


# -- creating documents -------------------------------------------------------------------------


async def test_create_returns_201_and_the_whole_document(server: RunningServer) -> None:
    """POST /api/documents answers 201 with every document field, at version 1."""
    token = server.token(user="creator")
    async with server.http(token) as http:
        response = await http.post("/api/documents", json={
            "kind": "valuation", "title": "Q3 valuation", "state": {"rows": [1, 2], "ok": True}})
        assert response.status_code == 201, response.text
        document = response.json()
        assert set(document) == DOCUMENT_FIELDS
        assert document["kind"] == "valuation" and document["title"] == "Q3 valuation"
        assert document["version"] == 1
        assert document["state"] == {"rows": [1, 2], "ok": True}
        assert document["updated_by"] == "creator"
        assert isinstance(document["id"], str) and document["id"]
        for field in ("created_at", "updated_at"):
            datetime.fromisoformat(document[field].replace("Z", "+00:00"))
        # Without a state the document starts empty; the stored copy is the one returned.
        response = await http.post("/api/documents", json={"kind": "memo", "title": "Empty"})
        assert response.status_code == 201, response.text
        empty = response.json()
        assert empty["state"] == {} and empty["version"] == 1
        fetched = await http.get(f"/api/documents/{document['id']}")
        assert fetched.json() == document


async def test_create_accepts_every_kind_the_pattern_allows(server: RunningServer) -> None:
    """Kinds matching [a-z][a-z0-9_]{0,31} are accepted, including 1 and 32 characters."""
    token = server.token()
    async with server.http(token) as http:
        for kind in ("memo", "normalization", "monitoring", "x", "a1_b2", "k" + "_" * 31):
            response = await http.post("/api/documents", json={"kind": kind, "title": "T"})
            assert response.status_code == 201, (kind, response.text)
            assert response.json()["kind"] == kind


async def test_create_refuses_bad_input_with_bad_request(server: RunningServer) -> None:
    """A bad kind, a missing title or a state that is not an object answers 400 bad_request."""
    token = server.token()
    bodies: list[tuple[str, Any]] = [
        ("uppercase-kind", {"kind": "Memo", "title": "T"}),
        ("digit-first-kind", {"kind": "1memo", "title": "T"}),
        ("underscore-first-kind", {"kind": "_memo", "title": "T"}),
        ("dash-in-kind", {"kind": "me-mo", "title": "T"}),
        ("space-in-kind", {"kind": "me mo", "title": "T"}),
        ("empty-kind", {"kind": "", "title": "T"}),
        ("33-char-kind", {"kind": "k" * 33, "title": "T"}),
        ("kind-not-string", {"kind": 5, "title": "T"}),
        ("missing-kind", {"title": "T"}),
        ("missing-title", {"kind": "memo"}),
        ("title-not-string", {"kind": "memo", "title": 7}),
        ("state-list", {"kind": "memo", "title": "T", "state": [1]}),
        ("state-string", {"kind": "memo", "title": "T", "state": "{}"}),
        ("state-number", {"kind": "memo", "title": "T", "state": 5}),
        ("body-list", [{"kind": "memo", "title": "T"}]),
    ]
    async with server.http(token) as http:
        for name, body in bodies:
            response = await http.post("/api/documents", json=body)
            assert response.status_code == 400, (name, response.text)
            _error_body(response, 400, "bad_request")
        response = await http.post("/api/documents", content=b"{not json",
                                   headers={"Content-Type": "application/json"})
        _error_body(response, 400, "bad_request")
        listed = await http.get("/api/documents")
        assert listed.status_code == 200 and listed.json()["items"] == []


# -- listing ------------------------------------------------------------------------------------


async def test_list_filters_by_kind_and_title(server: RunningServer) -> None:
    """GET /api/documents filters by kind and by a literal substring of the title."""
    token = server.token()
    made = {
        "val": await server.create(token, kind="valuation", title="Quarterly valuation"),
        "memo": await server.create(token, kind="memo", title="Monthly memo"),
        "pct": await server.create(token, kind="memo", title="100% sure"),
        "snake": await server.create(token, kind="memo", title="snake_case title"),
    }
    async with server.http(token) as http:

        async def ids(**params: Any) -> set[str]:
            response = await http.get("/api/documents", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert set(page) == {"items", "next"} and page["next"] is None
            for item in page["items"]:
                assert set(item) == DOCUMENT_FIELDS
            return {item["id"] for item in page["items"]}

        assert await ids() == {d["id"] for d in made.values()}
        assert await ids(kind="valuation") == {made["val"]["id"]}
        assert await ids(kind="memo") == {made[k]["id"] for k in ("memo", "pct", "snake")}
        assert await ids(kind="nothing") == set()
        assert await ids(q="valuation") == {made["val"]["id"]}
        assert await ids(q="ly ") == {made["val"]["id"], made["memo"]["id"]}
        assert await ids(q="%") == {made["pct"]["id"]}
        assert await ids(q="_") == {made["snake"]["id"]}
        assert await ids(q="zzz") == set()
        assert await ids(kind="memo", q="memo") == {made["memo"]["id"]}


async def test_list_pages_with_limit_and_cursor_never_repeat_or_skip(
    server: RunningServer,
) -> None:
    """Walking pages with limit and next visits every document once and ends with next null."""
    token = server.token()
    created = {(await server.create(token, title=f"Doc {i}"))["id"] for i in range(7)}
    await server.create(token, kind="other", title="Not listed")
    seen: list[str] = []
    sizes: list[int] = []
    async with server.http(token) as http:
        params: dict[str, Any] = {"kind": "memo", "limit": 3}
        for _ in range(10):
            response = await http.get("/api/documents", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            sizes.append(len(page["items"]))
            seen.extend(item["id"] for item in page["items"])
            if page["next"] is None:
                break
            assert isinstance(page["next"], str)
            params = {"kind": "memo", "limit": 3, "cursor": page["next"]}
        else:
            raise AssertionError("pagination never ended")
    assert sizes == [3, 3, 1]
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created


async def test_list_refuses_a_bad_limit_or_cursor(server: RunningServer) -> None:
    """A non-numeric or zero limit and a cursor the server never issued answer 400."""
    token = server.token()
    await server.create(token)
    async with server.http(token) as http:
        for params in ({"limit": "many"}, {"limit": 0}, {"cursor": "not-a-cursor!"}):
            response = await http.get("/api/documents", params=params)
            _error_body(response, 400, "bad_request")


# -- reading one document -----------------------------------------------------------------------


async def test_get_carries_the_version_as_etag(server: RunningServer) -> None:
    """GET /api/documents/{id} returns the document with ETag "<version>"."""
    token = server.token()
    doc = await server.create(token, state={"a": 1})
    async with server.http(token) as http:
        response = await http.get(f"/api/documents/{doc['id']}")
        assert response.status_code == 200
        assert response.headers["ETag"] == '"1"'
        assert response.json() == doc
        assert (await _patch(http, doc["id"], 1, replace("/a", 2))).status_code == 200
        response = await http.get(f"/api/documents/{doc['id']}")
        assert response.headers["ETag"] == '"2"'
        assert response.json()["version"] == 2 and response.json()["state"] == {"a": 2}


async def test_get_of_unknown_document_is_404(server: RunningServer) -> None:
    """An id that names no document answers 404 with a not_found error body."""
    token = server.token()
    async with server.http(token) as http:
        for doc in (str(uuid.uuid4()), "no-such-doc"):
            _error_body(await http.get(f"/api/documents/{doc}"), 404, "not_found")
            _error_body(await http.get(f"/api/documents/{doc}/history"), 404, "not_found")
            _error_body(await _patch(http, doc, 1, replace("/a", 1)), 404, "not_found")


async def test_get_at_a_version_or_time_returns_the_past_state(server: RunningServer) -> None:
    """?version=N and ?at=<ISO time> return the document as it was then."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with server.http(token) as http:
        times = [doc["updated_at"]]
        for base in (1, 2):
            assert (await _patch(http, doc["id"], base, replace("/n", base))).status_code == 200
            times.append((await http.get(f"/api/documents/{doc['id']}")).json()["updated_at"])
        for version in (1, 2, 3):
            response = await http.get(f"/api/documents/{doc['id']}",
                                      params={"version": version})
            assert response.status_code == 200, response.text
            past = response.json()
            assert past["version"] == version and past["state"] == {"n": version - 1}
            assert past["id"] == doc["id"] and set(past) == DOCUMENT_FIELDS
        for version, at in enumerate(times, start=1):
            response = await http.get(f"/api/documents/{doc['id']}", params={"at": at})
            assert response.status_code == 200, response.text
            assert response.json()["version"] == version, (at, response.json())
            assert response.json()["state"] == {"n": version - 1}
        # Between two writes, and written with an offset instead of Z.
        first = datetime.fromisoformat(times[0].replace("Z", "+00:00"))
        second = datetime.fromisoformat(times[1].replace("Z", "+00:00"))
        between = (first + (second - first) / 2).astimezone(timezone(timedelta(hours=2)))
        response = await http.get(f"/api/documents/{doc['id']}",
                                  params={"at": between.isoformat()})
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 1
        between = second + timedelta(microseconds=1)
        response = await http.get(f"/api/documents/{doc['id']}",
                                  params={"at": between.isoformat()})
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 2
        later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
        response = await http.get(f"/api/documents/{doc['id']}", params={"at": later})
        assert response.json()["version"] == 3 and response.json()["state"] == {"n": 2}


@pytest.mark.parametrize("settings_overrides", [{"snapshot_every": 2}], ids=["snapshot-every-2"])
async def test_past_versions_replay_across_snapshots(server: RunningServer) -> None:
    """Every past version replays to its exact state when snapshots sit between them."""
    token = server.token()
    doc = await server.create(token, state={"log": []})
    async with server.http(token) as http:
        for base in range(1, 7):
            ops = [{"op": "add", "path": "/log/-", "value": base}]
            assert (await _patch(http, doc["id"], base, ops)).status_code == 200
        for version in range(1, 8):
            response = await http.get(f"/api/documents/{doc['id']}",
                                      params={"version": version})
            assert response.status_code == 200, response.text
            assert response.json()["state"] == {"log": list(range(1, version))}
            assert response.headers["ETag"] == f'"{version}"'


# -- versioned writes over HTTP -----------------------------------------------------------------


async def test_patch_with_if_match_applies_and_answers_the_version(server: RunningServer) -> None:
    """PATCH with If-Match: "<current>" answers 200 {"version": base + 1}."""
    token = server.token()
    doc = await server.create(token, state={"a": 0})
    async with server.http(token) as http:
        for base in (1, 2):
            response = await _patch(http, doc["id"], base, replace("/a", base))
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["version"] == base + 1
            assert body.get("rebased") is not True and body.get("duplicate") is not True
        document = (await http.get(f"/api/documents/{doc['id']}")).json()
    assert document["version"] == 3 and document["state"] == {"a": 2}


async def test_patch_without_if_match_is_428(server: RunningServer) -> None:
    """PATCH without If-Match answers 428 precondition_required and writes nothing."""
    token = server.token()
    doc = await server.create(token, state={"a": 0})
    async with server.http(token) as http:
        response = await _patch(http, doc["id"], None, replace("/a", 1))
        _error_body(response, 428, "precondition_required")
        document = (await http.get(f"/api/documents/{doc['id']}")).json()
    assert document["version"] == 1 and document["state"] == {"a": 0}


async def test_patch_refuses_bad_input_with_400(server: RunningServer) -> None:
    """A malformed If-Match, a base ahead of the document or an invalid body answers 400."""
    token = server.token()
    doc = await server.create(token, state={"a": 0})
    async with server.http(token) as http:
        url = f"/api/documents/{doc['id']}"
        for if_match in ('"abc"', '"1.5"', '"-1"', "garbage"):
            response = await http.patch(url, json=replace("/a", 1),
                                        headers={"If-Match": if_match})
            _error_body(response, 400, "bad_request")
        _error_body(await _patch(http, doc["id"], 2, replace("/a", 1)), 400, "bad_request")
        for ops in ({"op": "replace", "path": "/a", "value": 1}, [],
                    [{"op": "nope", "path": "/a"}], [{"op": "remove", "path": "/missing"}]):
            _error_body(await _patch(http, doc["id"], 1, ops), 400, "bad_request")
        response = await http.patch(url, content=b"[{", headers={
            "If-Match": '"1"', "Content-Type": "application/json"})
        _error_body(response, 400, "bad_request")
        document = (await http.get(url)).json()
    assert document["version"] == 1 and document["state"] == {"a": 0}


async def test_stale_patch_without_overlap_is_rebased(server: RunningServer) -> None:
    """A stale If-Match whose write units do not overlap later writes answers rebased: true."""
    token = server.token()
    doc = await server.create(token, state={"a": 0, "b": 0})
    async with server.http(token) as http:
        assert (await _patch(http, doc["id"], 1, replace("/a", 1))).status_code == 200
        response = await _patch(http, doc["id"], 1, replace("/b", 1))
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 3 and response.json()["rebased"] is True
        document = (await http.get(f"/api/documents/{doc['id']}")).json()
    assert document["state"] == {"a": 1, "b": 1}


async def test_stale_overlapping_patch_is_409_with_the_conflict_body(
    server: RunningServer,
) -> None:
    """A stale overlapping PATCH answers 409 with versions, overlapping paths and deltas."""
    token = server.token()
    doc = await server.create(token, state={"items": [1, 2], "note": ""})
    async with server.http(token) as http:
        writes = [[{"op": "add", "path": "/items/-", "value": 3}], replace("/note", "x")]
        for base, ops in enumerate(writes, start=1):
            assert (await _patch(http, doc["id"], base, ops)).status_code == 200
        response = await _patch(http, doc["id"], 1, [
            {"op": "replace", "path": "/items/0", "value": 0},
            {"op": "add", "path": "/other", "value": 1}])
        error = _error_body(response, 409, "conflict")
        assert {"current_version", "your_version", "paths", "deltas"} <= set(error)
        assert error["current_version"] == 3 and error["your_version"] == 1
        assert error["paths"] == ["/items"]
        assert [d["version"] for d in error["deltas"]] == [2, 3]
        assert [d["ops"] for d in error["deltas"]] == writes
        document = (await http.get(f"/api/documents/{doc['id']}")).json()
    assert document["version"] == 3
    assert document["state"] == {"items": [1, 2, 3], "note": "x"}


async def test_idempotency_key_replays_the_first_reply(server: RunningServer) -> None:
    """A repeated Idempotency-Key answers the first reply plus duplicate: true, writing once."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with server.http(token) as http:
        first = await _patch(http, doc["id"], 1, replace("/n", 1), **{"Idempotency-Key": "abc"})
        assert first.status_code == 200, first.text
        again = await _patch(http, doc["id"], 1, replace("/n", 1), **{"Idempotency-Key": "abc"})
        assert again.status_code == 200, again.text
        assert again.json() == {**first.json(), "duplicate": True}
        document = (await http.get(f"/api/documents/{doc['id']}")).json()
        assert document["version"] == 2 and document["state"] == {"n": 1}
        events = (await _history(http, doc["id"]))["events"]
        assert [e["type"] for e in events].count("patch.applied") == 1
        other = await _patch(http, doc["id"], 2, replace("/n", 2), **{"Idempotency-Key": "abd"})
        assert other.status_code == 200 and other.json()["version"] == 3
        too_long = await _patch(http, doc["id"], 3, replace("/n", 3),
                                **{"Idempotency-Key": "k" * 129})
        _error_body(too_long, 400, "bad_request")


async def test_idempotency_key_is_shared_between_websocket_and_http(
    server: RunningServer,
) -> None:
    """A key first used over the WebSocket is a duplicate when the same user retries over HTTP."""
    token = server.token(user="retrier")
    doc = await server.create(token, state={"n": 0})
    async with await server.connect(token) as client:
        first = await client.ok("patch", doc=doc["id"], base=1, ops=replace("/n", 1), key="x1")
    async with server.http(token) as http:
        again = await _patch(http, doc["id"], 1, replace("/n", 1), **{"Idempotency-Key": "x1"})
        assert again.status_code == 200, again.text
        assert again.json()["duplicate"] is True
        assert again.json()["version"] == first["version"] == 2
        assert (await http.get(f"/api/documents/{doc['id']}")).json()["version"] == 2


async def test_writes_that_make_the_state_too_large_are_413(server: RunningServer) -> None:
    """Creating or patching to a state over 1 MiB as JSON answers 413 too_large, writing
    nothing."""
    token = server.token()
    big = "b" * (1024 * 1024 + 16)
    async with server.http(token) as http:
        response = await http.post("/api/documents",
                                   json={"kind": "memo", "title": "Big", "state": {"s": big}})
        _error_body(response, 413, "too_large")
        assert (await http.get("/api/documents")).json()["items"] == []
        doc = await server.create(token, state={"s": "a" * (600 * 1024)})
        response = await _patch(http, doc["id"], 1,
                                [{"op": "add", "path": "/t", "value": "c" * (600 * 1024)}])
        _error_body(response, 413, "too_large")
        document = (await http.get(f"/api/documents/{doc['id']}")).json()
        assert document["version"] == 1 and set(document["state"]) == {"s"}


# -- history ------------------------------------------------------------------------------------


async def test_history_lists_the_document_events_in_seq_order(server: RunningServer) -> None:
    """GET /history returns the document's own events, oldest first, with every event field."""
    token = server.token(user="historian")
    doc = await server.create(token, state={"n": 0})
    other = await server.create(token, state={"n": 0})
    async with server.http(token) as http:
        for base in range(1, 5):
            assert (await _patch(http, doc["id"], base, replace("/n", base))).status_code == 200
            assert (await _patch(http, other["id"], base, replace("/n", 0))).status_code == 200
        page = await _history(http, doc["id"])
    events = page["events"]
    assert page["next"] is None
    assert [e["type"] for e in events] == ["document.created"] + ["patch.applied"] * 4
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for event in events:
        assert set(event) >= EVENT_FIELDS
        assert event["doc"] == doc["id"] and event["kind"] == "memo"
        assert event["actor"]["id"] == "historian" and event["actor"]["kind"] == "user"
        assert event["source"] == "http"
    assert events[0]["prev_hash"] is None
    for previous, event in itertools.pairwise(events):
        assert event["prev_hash"] == previous["hash"]
    assert events[2]["data"]["ops"] == replace("/n", 2)


async def test_history_pages_with_since_limit_and_cursor(server: RunningServer) -> None:
    """since skips older events, limit bounds a page, and next walks the rest with no gap."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with server.http(token) as http:
        for base in range(1, 7):
            assert (await _patch(http, doc["id"], base, replace("/n", base))).status_code == 200
        everything = (await _history(http, doc["id"]))["events"]
        assert len(everything) == 7
        seqs = [e["seq"] for e in everything]

        walked: list[int] = []
        sizes: list[int] = []
        params: dict[str, Any] = {"limit": 3}
        for _ in range(10):
            page = await _history(http, doc["id"], **params)
            sizes.append(len(page["events"]))
            walked.extend(e["seq"] for e in page["events"])
            if page["next"] is None:
                break
            params = {"limit": 3, "cursor": page["next"]}
        else:
            raise AssertionError("history pagination never ended")
        assert walked == seqs and sizes == [3, 3, 1]

        after = await _history(http, doc["id"], since=seqs[2])
        assert [e["seq"] for e in after["events"]] == seqs[3:] and after["next"] is None
        page = await _history(http, doc["id"], since=seqs[1], limit=2)
        assert [e["seq"] for e in page["events"]] == seqs[2:4]
        rest = await _history(http, doc["id"], since=seqs[1], limit=10, cursor=page["next"])
        assert [e["seq"] for e in rest["events"]] == seqs[4:]
        assert (await _history(http, doc["id"], since=seqs[-1]))["events"] == []


# -- operations ---------------------------------------------------------------------------------


async def test_health_and_readiness_answer_200(server: RunningServer) -> None:
    """/healthz and /readyz answer 200 while the process, storage and broker are up."""
    async with server.http() as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200


async def test_openapi_describes_the_document_resources(server: RunningServer) -> None:
    """/openapi.json is an OpenAPI 3 description with the /api/documents paths and methods."""
    async with server.http() as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert str(spec["openapi"]).startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]
    paths = spec["paths"]
    assert {"get", "post"} <= set(paths["/api/documents"])
    one = [p for p in paths if re.fullmatch(r"/api/documents/\{[a-z_]+\}", p)]
    assert len(one) == 1 and {"get", "patch"} <= set(paths[one[0]])
    history = [p for p in paths if re.fullmatch(r"/api/documents/\{[a-z_]+\}/history", p)]
    assert len(history) == 1 and "get" in paths[history[0]]
    for methods in paths.values():
        for method, operation in methods.items():
            if method in ("get", "put", "post", "patch", "delete", "head", "options"):
                assert operation.get("responses"), (method, operation)


def _samples(text: str) -> dict[str, float]:
    """Prometheus text exposition as {"name{labels}": value}."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


async def test_metrics_expose_coedit_names_and_count_writes(server: RunningServer) -> None:
    """/metrics is Prometheus text with coedit_ metrics whose write count follows the writes."""
    token = server.token()
    doc = await server.create(token, state={"n": 0})
    async with server.http() as http:
        response = await http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        before = _samples(response.text)
    assert any(name.startswith("coedit_") for name in before)
    async with await server.connect(token) as client:
        await client.ok("patch", doc=doc["id"], base=1, ops=replace("/n", 1))
        await client.ok("patch", doc=doc["id"], base=2, ops=replace("/n", 2))
    async with server.http(token) as http:
        assert (await _patch(http, doc["id"], 3, replace("/n", 3))).status_code == 200
        after = _samples((await http.get("/metrics")).text)
    grown = {name for name, value in after.items()
             if name.startswith("coedit_") and "write" in name
             and value - before.get(name, 0.0) == 3}
    assert grown, sorted(n for n in after if "write" in n)


# -- tenants ------------------------------------------------------------------------------------


async def test_documents_of_another_tenant_are_invisible(server: RunningServer) -> None:
    """A document of tenant A answers 404 to tenant B on every resource and is not in B's list."""
    alice = server.token(user="alice", tenant="tenant-a")
    bob = server.token(user="bob", tenant="tenant-b")
    secret = await server.create(alice, title="Secret plan", state={"x": 1})
    visible = await server.create(bob, title="Bob's plan", state={"y": 1})
    url = f"/api/documents/{secret['id']}"
    async with server.http(bob) as http:
        _error_body(await http.get(url), 404, "not_found")
        _error_body(await http.get(url, params={"version": 1}), 404, "not_found")
        _error_body(await http.get(url, params={"at": secret["created_at"]}), 404, "not_found")
        _error_body(await _patch(http, secret["id"], 1, replace("/x", 2)), 404, "not_found")
        # Bad input about a document one cannot see is not_found too: its answer must not
        # differ from that of a document that does not exist.
        _error_body(await _patch(http, secret["id"], 1, []), 404, "not_found")
        _error_body(await http.get(url, params={"version": -1}), 404, "not_found")
        _error_body(await http.post(f"{url}/locks", json={"path": 7}), 404, "not_found")
        _error_body(await http.post(f"{url}/comments", json={}), 404, "not_found")
        _error_body(await http.get(f"{url}/history"), 404, "not_found")
        _error_body(await http.get(f"{url}/verify"), 404, "not_found")
        for params in ({}, {"q": "Secret"}, {"kind": "memo"}):
            listed = (await http.get("/api/documents", params=params)).json()["items"]
            assert secret["id"] not in {item["id"] for item in listed}
        assert [i["id"] for i in (await http.get("/api/documents")).json()["items"]] == [
            visible["id"]]
    async with server.http(alice) as http:
        document = (await http.get(url)).json()
        assert document["version"] == 1 and document["state"] == {"x": 1}
        verified = (await http.get(f"{url}/verify")).json()
        assert verified == {"ok": True, "events": 1}
        _error_body(await http.get(f"/api/documents/{visible['id']}"), 404, "not_found")
        listed = (await http.get("/api/documents")).json()["items"]
        assert [item["id"] for item in listed] == [secret["id"]]


def test_openapi_describes_every_route_and_only_those() -> None:
    """Each /api/ route of the table (path and method) is in the description and the other
    way round, and every schema reference resolves."""
    from server.http import routes
    from server.openapi import OPENAPI

    served = {(route.path, method.lower()) for route in routes
              if route.path.startswith("/api/") for method in (route.methods or ())
              if method != "HEAD"}
    described = {(path, method) for path, methods in OPENAPI["paths"].items()
                 if path.startswith("/api/") for method in methods}
    assert served == described, (served - described, described - served)
    names = set(OPENAPI["components"]["schemas"])
    refs = re.findall(r'"\$ref": "#/components/schemas/([A-Za-z]+)"', json.dumps(OPENAPI))
    assert refs and set(refs) <= names, set(refs) - names


async def test_a_method_a_route_does_not_have_is_405_with_allow(server: RunningServer) -> None:
    async with server.http(server.token()) as http:
        for method in ("TRACE", "PUT", "DELETE"):
            response = await http.request(method, "/api/ideas")
            assert response.status_code == 405, (method, response.text)
            assert response.json()["error"]["code"] == "bad_request"
            assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}
