"""Tenants are sealed on every route: each HTTP route and WebSocket request that takes an id
is tried with the id of another tenant's resource, by that other tenant's most powerful role,
and must answer 404 or 403, leak nothing and change nothing. The route table itself drives the
walk, so a route added later without an entry here fails the test."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from server.http import routes
from tests.support import RunningServer, replace

SECRET = "GLOBEX-SECRET-7d1f"


@dataclass
class Foreign:
    """Ids of one tenant's resources of every kind a route takes."""

    doc: str
    idea: str
    comment: str
    review: str
    template: str
    instance: str
    step: str
    note: str


async def _call(http: httpx.AsyncClient, method: str, path: str, body: Any = None,
                **headers: str) -> httpx.Response:
    return await http.request(method, path, json=body, headers=headers or None)


async def _globex(
    server: RunningServer, tenant: str = "globex"
) -> tuple[Foreign, dict[str, str]]:
    """Every kind of resource in tenant globex, with ``SECRET`` in what a leak would show."""
    admin = server.token(user="g-admin", roles=["admin"], tenant=tenant)
    reviewer = server.token(user="g-rev", roles=["reviewer"], tenant=tenant)
    async with server.http(admin) as http:
        idea = (await _call(http, "POST", "/api/ideas", {"title": f"{SECRET} idea"})).json()
        made = await _call(http, "POST", "/api/documents", {
            "kind": "memo", "title": f"{SECRET} memo", "state": {"text": SECRET},
            "idea": idea["id"]})
        doc = made.json()
        comment = (await _call(http, "POST", f"/api/documents/{doc['id']}/comments",
                               {"body": f"{SECRET} comment"})).json()
        review = (await _call(http, "POST", f"/api/documents/{doc['id']}/reviews",
                              {"reviewer": {"id": "g-rev", "name": "G Rev"}})).json()
        template = (await _call(http, "POST", "/api/workflows/templates", {
            "name": f"{SECRET} flow",
            "steps": [{"key": "ok", "action": "approval", "role": "analyst"}]})).json()
        published = await _call(http, "POST", f"/api/workflows/templates/{template['id']}"
                                "/publish")
        assert published.status_code == 200, published.text
        instance = (await _call(http, "POST",
                                f"/api/workflows/templates/{template['id']}/instantiate",
                                {"idea": idea["id"]})).json()
    async with server.http(reviewer) as http:
        notes = (await _call(http, "GET", "/api/notifications")).json()["items"]
    assert notes, "the review assignment should have notified the reviewer"
    return Foreign(doc=doc["id"], idea=idea["id"], comment=comment["id"], review=review["id"],
                   template=template["id"], instance=instance["id"],
                   step=instance["steps"][0]["id"], note=notes[0]["id"]), \
        {"admin": admin, "reviewer": reviewer}


async def _globex_fingerprint(server: RunningServer, tokens: dict[str, str],
                              foreign: Foreign) -> Any:
    """What would change if a foreign call got through: globex's events, its document and
    the reviewer's unread notifications."""
    async with server.http(tokens["admin"]) as http:
        events = (await _call(http, "GET", "/api/events?limit=1000")).json()["events"]
        doc = (await _call(http, "GET", f"/api/documents/{foreign.doc}")).json()
    async with server.http(tokens["reviewer"]) as http:
        unread = (await _call(http, "GET", "/api/notifications?unread=true")).json()["items"]
    return [e["seq"] for e in events], doc, [n["id"] for n in unread]


# For each route parameter: which foreign id it is given (``verb`` is a word, not an id).
def _path_values(foreign: Foreign) -> dict[str, str]:
    return {"doc": foreign.doc, "idea": foreign.idea, "comment": foreign.comment,
            "review": foreign.review, "template": foreign.template,
            "instance": foreign.instance, "step": foreign.step, "note": foreign.note,
            "verb": "claim"}


# A body each route would accept from its own tenant, so that only the tenant check is left
# to refuse it; and headers it needs.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/api/documents/{doc}"): replace("/text", "overwritten"),
    ("POST", "/api/documents/{doc}/locks"): {"path": "", "ttl_ms": 5000},
    ("POST", "/api/documents/{doc}/comments"): {"body": "hello"},
    ("POST", "/api/documents/{doc}/reviews"): {"reviewer": {"id": "a-rev", "name": "A"}},
    ("PATCH", "/api/comments/{comment}"): {"body": "edited"},
    ("POST", "/api/reviews/{review}/transition"): {"to": "withdrawn"},
    ("PATCH", "/api/workflows/templates/{template}"): {
        "name": "x", "steps": [{"key": "a", "action": "approval", "role": "analyst"}]},
    ("PATCH", "/api/workflows/instances/{instance}"): {"status": "canceled"},
    ("POST", "/api/workflows/steps/{step}/{verb}"): {},
    # Well-formed bodies: their shape is checked before the role, so a viewer's malformed
    # body is a bad_request (refused without looking at anything stored).
    ("POST", "/api/documents"): {"kind": "memo", "title": "t"},
    ("POST", "/api/ideas"): {"title": "t"},
    ("POST", "/api/workflows/templates"): {"name": "t"},
}
HEADERS: dict[tuple[str, str], dict[str, str]] = {
    ("PATCH", "/api/documents/{doc}"): {"If-Match": '"1"'},
}
QUERIES: dict[tuple[str, str], str] = {
    ("DELETE", "/api/documents/{doc}/locks"): "?path=",
}


def _id_routes() -> list[tuple[str, str]]:
    found = []
    for route in routes:
        if not isinstance(route, Route) or "{" not in route.path:
            continue
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((method, route.path))
    return found


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_every_id_taking_route_refuses_another_tenants_id(
    server: RunningServer,
) -> None:
    """Every HTTP route with an id in its path, called by an acme admin with a globex id,
    answers 404 (or 403) without a trace of globex's data, and globex is unchanged."""
    foreign, tokens = await _globex(server)
    values = _path_values(foreign)
    before = await _globex_fingerprint(server, tokens, foreign)
    walked = _id_routes()
    assert len(walked) >= 25, walked  # the table was read, not an empty list
    intruder = server.token(user="a-admin", roles=["admin"], tenant="acme")
    async with server.http(intruder) as http:
        own_idea = (await _call(http, "POST", "/api/ideas", {"title": "acme"})).json()["id"]
        bodies = BODIES | {("POST", "/api/workflows/templates/{template}/instantiate"):
                           {"idea": own_idea}}
        for method, template in walked:
            names = [part[1:-1] for part in template.split("/") if part.startswith("{")]
            unknown = [name for name in names if name not in values]
            assert not unknown, f"{method} {template}: add a foreign id for {unknown}"
            path = template.format(**values) + QUERIES.get((method, template), "")
            answer = await _call(http, method, path, bodies.get((method, template)),
                                 **HEADERS.get((method, template), {}))
            assert answer.status_code in (403, 404), (method, path, answer.status_code,
                                                      answer.text)
            assert SECRET not in answer.text, (method, path, answer.text)
            assert answer.json()["error"]["code"] in ("not_found", "forbidden")
    assert await _globex_fingerprint(server, tokens, foreign) == before


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_ids_in_bodies_and_filters_never_reach_another_tenant(
    server: RunningServer,
) -> None:
    """Another tenant's ids given in a body (a document's idea, an instance's idea, bulk ids)
    or a list filter (events, reviews, locks, presence, search, instances, history) find
    nothing, leak nothing and change nothing."""
    foreign, tokens = await _globex(server)
    before = await _globex_fingerprint(server, tokens, foreign)
    intruder = server.token(user="a-admin", roles=["admin"], tenant="acme")
    async with server.http(intruder) as http:
        own = (await _call(http, "POST", "/api/workflows/templates", {
            "name": "acme flow",
            "steps": [{"key": "ok", "action": "approval", "role": "analyst"}]})).json()
        await _call(http, "POST", f"/api/workflows/templates/{own['id']}/publish")
        refused = [
            await _call(http, "POST", "/api/documents",
                        {"kind": "memo", "title": "t", "idea": foreign.idea}),
            await _call(http, "POST", f"/api/workflows/templates/{own['id']}/instantiate",
                        {"idea": foreign.idea}),
        ]
        for answer in refused:
            assert answer.status_code == 404, answer.text
            assert SECRET not in answer.text
        bulks = {
            "review.assign": ([foreign.doc], {"reviewer": {"id": "x", "name": "X"}}),
            "review.transition": ([foreign.review], {"to": "withdrawn"}),
            "workflow.step": ([foreign.step], {"verb": "claim"}),
            "document.archive": ([foreign.doc], {}),
        }
        for operation, (ids, params) in bulks.items():
            for all_or_nothing in (True, False):
                answer = await _call(http, "POST", "/api/bulk", {
                    "operation": operation, "ids": ids, "params": params,
                    "all_or_nothing": all_or_nothing})
                assert SECRET not in answer.text
                if answer.status_code == 200:
                    result = answer.json()
                    assert result["succeeded"] == 0, (operation, result)
                    assert all(r["error"]["code"] in ("not_found", "forbidden")
                               for r in result["results"]), result
                else:
                    assert answer.status_code in (403, 404), answer.text
        filters = [
            f"/api/events?doc={foreign.doc}", f"/api/events?idea={foreign.idea}",
            "/api/events?actor=g-admin", "/api/events?since=0&limit=1000",
            "/api/events?type=document.*", f"/api/reviews?doc={foreign.doc}",
            f"/api/reviews?idea={foreign.idea}", "/api/reviews?reviewer=g-rev",
            f"/api/locks?doc={foreign.doc}", f"/api/presence?doc={foreign.doc}",
            f"/api/search?q={SECRET}", f"/api/search?q=memo&idea={foreign.idea}",
            f"/api/workflows/instances?idea={foreign.idea}", "/api/workflows/templates",
            "/api/documents?kind=memo", f"/api/ideas?q={SECRET}", "/api/notifications",
        ]
        for path in filters:
            answer = await _call(http, "GET", path)
            assert answer.status_code in (200, 404), (path, answer.text)
            assert SECRET not in answer.text, (path, answer.text)
            if answer.status_code == 200:  # a 404 may echo the id it was given
                assert foreign.doc not in answer.text and foreign.idea not in answer.text, path
    assert await _globex_fingerprint(server, tokens, foreign) == before


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_websocket_requests_and_streams_never_cross_tenants(
    server: RunningServer,
) -> None:
    """Over the WebSocket, every request naming a globex document or idea is refused, and
    acme's event streams and SSE (by doc, idea, type or ``since``) never carry a globex
    event, while globex keeps writing."""
    foreign, tokens = await _globex(server)
    intruder = server.token(user="a-admin", roles=["admin"], tenant="acme")
    async with await server.connect(intruder) as client:
        requests: list[dict[str, Any]] = [
            {"type": "subscribe", "doc": foreign.doc},
            {"type": "subscribe", "doc": foreign.doc, "since": 0},
            {"type": "subscribe", "idea": foreign.idea},
            {"type": "patch", "doc": foreign.doc, "base": 1, "ops": replace("/text", "x")},
            {"type": "lock", "doc": foreign.doc, "path": ""},
            {"type": "lock", "doc": foreign.doc, "path": "", "force": True},
            {"type": "unlock", "doc": foreign.doc, "path": ""},
            {"type": "presence", "doc": foreign.doc, "state": {"status": "editing"}},
            {"type": "create", "kind": "memo", "title": "t", "idea": foreign.idea},
        ]
        for request in requests:
            kind = request.pop("type")
            reply = await client.request(kind, **request)
            assert reply["type"] == "error", (kind, request, reply)
            assert reply["code"] in ("not_found", "forbidden", "bad_request"), reply
            assert SECRET not in json.dumps(reply)
        streams = [
            {"stream": {"docs": [foreign.doc]}, "since": 0},
            {"stream": {"ideas": [foreign.idea]}, "since": 0},
            {"stream": {"types": ["patch.*", "document.*"]}, "since": 0},
            {"stream": {}, "since": 0},
            {"stream": {"actors": ["g-admin"]}},
        ]
        for spec in streams:
            reply = await client.request("subscribe", **spec)
            assert reply["type"] in ("ok", "error"), reply
        async with server.http(intruder) as http, \
                http.stream("GET", f"/api/events/stream?doc={foreign.doc}&since=0") as sse:
            assert sse.status_code == 200
            async with server.http(tokens["admin"]) as globex:
                for version in (1, 2):
                    answer = await _call(globex, "PATCH", f"/api/documents/{foreign.doc}",
                                         replace("/text", f"{SECRET} v{version}"),
                                         **{"If-Match": f'"{version}"'})
                    assert answer.status_code == 200, answer.text
            own = await server.create(intruder, state={"n": 0})  # something acme may see
            seen = b""
            try:
                async with asyncio.timeout(1.5):
                    async for chunk in sse.aiter_bytes():
                        seen += chunk
            except TimeoutError:
                pass
            assert SECRET.encode() not in seen and b'"tenant":"globex"' not in seen, seen
        pushed = []
        try:
            async with asyncio.timeout(1.5):
                while True:
                    pushed.append(await client.recv())
        except TimeoutError:
            pass
        everything = json.dumps(pushed + client.pushes)
        assert SECRET not in everything and '"globex"' not in everything, everything
        assert own["id"] in everything  # the unfiltered stream did deliver acme's event


# What a viewer may still do among the routes that change something.
VIEWER_MAY = {("POST", "/api/notifications/read-all"), ("POST", "/api/dev/login")}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_every_write_route_refuses_a_viewer_and_records_it(
    server: RunningServer,
) -> None:
    """A viewer calling any HTTP route or WebSocket request that changes something, on its own
    tenant's resources, is refused with forbidden before any state check, and each refusal
    appends one access.denied."""
    own, tokens = await _globex(server, tenant="acme")
    values = _path_values(own)
    viewer = server.token(user="a-viewer", roles=["viewer"], tenant="acme")
    refused = 0
    wrong: list[tuple[str, str, int, str]] = []
    async with server.http(viewer) as http:
        for route in routes:
            if not isinstance(route, Route):
                continue
            for method in sorted((route.methods or set()) - {"GET", "HEAD"}):
                if (method, route.path) in VIEWER_MAY:
                    continue
                path = route.path.format(**values) + QUERIES.get((method, route.path), "")
                body = BODIES.get((method, route.path), {})
                if route.path == "/api/workflows/templates/{template}/instantiate":
                    body = {"idea": own.idea}
                if route.path == "/api/bulk":
                    body = {"operation": "document.archive", "ids": [own.doc], "params": {},
                            "all_or_nothing": False}
                answer = await _call(http, method, path, body,
                                     **HEADERS.get((method, route.path), {}))
                if (method, route.path) == ("POST", "/api/notifications/{note}/read"):
                    assert answer.status_code == 404, answer.text  # not addressed to them
                    continue
                if route.path == "/api/bulk" and answer.status_code == 200:
                    # Items are checked one by one, each as its single call would be.
                    results = answer.json()["results"]
                    assert [r["error"]["code"] for r in results] == ["forbidden"], results
                    refused += 1
                    continue
                if answer.status_code != 403:
                    wrong.append((method, route.path, answer.status_code, answer.text[:150]))
                    continue
                assert answer.json()["error"]["code"] == "forbidden"
                refused += 1
    assert not wrong, "\n".join(map(str, wrong))
    assert refused >= 20
    async with await server.connect(viewer) as client:
        for request in (
            {"type": "patch", "doc": own.doc, "base": 1, "ops": replace("/text", "x")},
            {"type": "lock", "doc": own.doc, "path": ""},
            {"type": "lock", "doc": own.doc, "path": "", "force": True},
            {"type": "unlock", "doc": own.doc, "path": ""},
            {"type": "create", "kind": "memo", "title": "t"},
        ):
            kind = request.pop("type")
            reply = await client.request(kind, **request)
            assert reply["type"] == "error" and reply["code"] == "forbidden", (kind, reply)
            refused += 1
    async with server.http(tokens["admin"]) as http:
        denied = (await _call(http, "GET", "/api/events?type=access.denied&actor=a-viewer"
                                           "&limit=1000")).json()["events"]
    assert len(denied) == refused, [e["data"] for e in denied]
