"""schemathesis over the live server's /openapi.json, every check it has, both databases: no
5xx, every answer of a status, content type, headers and body the description declares, and
every request the description calls valid accepted (and the invalid ones refused)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support import RunningServer
from tests.workflow_support import COMMITTEE, Calls

EXAMPLES = 6
"""Examples per operation and strategy (positive, negative, positive on seeded ids): about 650
cases in all, about a minute a database."""
ENDLESS = {"/api/events/stream"}
"""Answers that never end (Server-Sent Events): tests/test_events.py drives them."""
REFUSED_BY_STATE = {
    "POST /api/workflows/templates": "each action's config is checked by the action",
    "PATCH /api/workflows/templates/{template}": "each action's config, as above",
    "POST /api/workflows/templates/{template}/publish": "the template's steps must be sound",
    "POST /api/workflows/steps/{step}/{verb}": "the payload depends on the step's action",
    "POST /api/bulk": "params depend on the operation and each item on its resource",
    "PATCH /api/documents/{doc}": "ops must apply to the document as it is",
    "POST /api/documents/{doc}/comments": "parent must be a comment of the document",
    "POST /api/reviews/{review}/transition": "changes_requested needs a note",
    "GET /api/documents/{doc}": "version and at exclude each other; at must be a time",
    "GET /api/events": "until must be a time; type filters must name types",
    "GET /api/presence": "one of doc and kind",
    "POST /api/documents/{doc}/locks": "a lock's path is refused on an archived document",
    "GET /api/search": "q needs a word of letters or digits in Unicode's sense, which a JSON "
                       "Schema pattern (ECMA's ASCII \\w) cannot say",
}
"""Operations where a request of the described shape may still be refused with
``bad_request``: what makes it wrong depends on stored state or on several fields at once,
which the description cannot say. schemathesis' positive_data_acceptance is left out there;
every other check still runs."""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # No dev mode: a request without a token must be refused (schemathesis' ignored_auth),
    # and no rate limit: the run sends far more than a person would in a minute.
    return {"dev_auth": False, "http_rate_limit": 0}


async def _seed(server: RunningServer, admin: str) -> dict[str, list[str]]:
    """Real resources of the admin's tenant, so that generated paths also hit things that
    exist: path parameter name -> ids."""
    calls = Calls(server)
    idea = await calls.idea(admin)
    memo = await calls.document(admin, idea, "memo")
    other = await server.create(admin, title="Second", state={"n": 1, "text": "hello"})
    comment = await calls.post(admin, f"/api/documents/{memo['id']}/comments",
                               {"body": "Looks right", "path": ""})
    review = await calls.post(admin, f"/api/documents/{other['id']}/reviews",
                              {"reviewer": {"id": "rita", "name": "Rita"}})
    template = await calls.published(admin, COMMITTEE)
    instance = await calls.start(admin, template["id"], idea)
    for response in (comment, review):
        assert response.status_code == 201, response.text
    return {
        "doc": [memo["id"], other["id"]],
        "idea": [idea],
        "comment": [comment.json()["id"]],
        "review": [review.json()["id"]],
        "template": [template["id"]],
        "instance": [instance["id"]],
        "step": [step["id"] for step in instance["steps"]],
    }


def _all_checks() -> list[Any]:
    load_all_checks()
    return [check for check in CHECKS.get_all() if callable(check)
            and not isinstance(check, type)]


def _cases(strategy: Any, url: str, headers: dict[str, str], checks: list[Any],
           excluded: list[Any], positive: bool, failed: Any) -> Any:
    """A hypothesis run of ``strategy``'s cases: each one sent and checked; returns how many
    ran."""
    ran = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def one(case: Any) -> None:
        nonlocal ran
        ran += 1
        if positive and case.query:
            # A cursor is valid only as the server issued it; none can be generated.
            case.query.pop("cursor", None)
        try:
            case.call_and_validate(base_url=url, headers=headers, checks=checks,
                                   excluded_checks=excluded, timeout=10)
        except FailureGroup as exc:
            failed(exc)

    def run() -> int:
        one()
        return ran

    return run


def _run(url: str, token: str, ids: dict[str, list[str]]) -> tuple[int, list[str]]:
    """Every operation, positive cases on seeded ids and on generated ones, negative cases;
    answers (cases run, failures). Runs in a thread: schemathesis' transport blocks."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    # The server ignores query parameters it does not know (proxies and pages add their own,
    # cache busters say), so an undeclared one is not a fault to refuse.
    schema.config.generation.update(allow_extra_parameters=False)
    checks = _all_checks()
    headers = {"Authorization": f"Bearer {token}"}
    cases = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ENDLESS:
            continue
        names = {p.name for p in operation.path_parameters}
        seeded = {name: ids[name] for name in names if name in ids}
        excluded = [positive_data_acceptance] if operation.label in REFUSED_BY_STATE else []
        strategies = [(True, operation.as_strategy(generation_mode=GenerationMode.POSITIVE)),
                      (False, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))]
        if seeded and len(seeded) == len(names):
            strategies.append((True, st.fixed_dictionaries(
                {name: st.sampled_from(values) for name, values in seeded.items()}
            ).flatmap(lambda chosen, op=operation: op.as_strategy(
                generation_mode=GenerationMode.POSITIVE, path_parameters=chosen))))
        for positive, strategy in strategies:
            one = _cases(strategy, url, headers, checks, excluded, positive,
                         lambda exc, label=operation.label: failures.append(
                             f"{label}: {exc}"[:3000]))
            with contextlib.suppress(Unsatisfiable):  # nothing to get wrong: no negative mode
                cases += one()
    return cases, failures


async def test_every_answer_matches_the_description(server: RunningServer) -> None:
    """Generated requests to every operation (seeded ids, random ones, invalid ones) never
    get a 5xx and every answer matches what /openapi.json declares."""
    admin = server.token(user="ada", roles=["admin"])
    ids = await _seed(server, admin)
    cases, failures = await asyncio.wait_for(
        asyncio.to_thread(_run, server.http_url, admin, ids), 600)
    assert cases > 400, cases
    assert not failures, f"{len(failures)} of {cases} cases failed:\n" + "\n\n".join(failures)


def test_the_description_declares_what_the_server_enforces() -> None:
    """/openapi.json names the bounds the edge checks: the limit minimum, the kind pattern,
    required bodies and fields (what a first schemathesis run found missing)."""
    from server.openapi import OPENAPI

    paths = OPENAPI["paths"]
    limit = next(p for p in paths["/api/documents"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == 500
    create = paths["/api/documents"]["post"]["requestBody"]
    assert create["required"] is True
    body = create["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"kind", "title"}
    assert body["properties"]["kind"]["pattern"] == "^[a-z][a-z0-9_]{0,31}$"
    release = paths["/api/documents/{doc}/locks"]["delete"]["parameters"]
    assert any(p["name"] == "path" and p["required"] for p in release)
    for methods in paths.values():
        for operation in methods.values():
            assert "200" in operation["responses"] or "201" in operation["responses"]


async def test_the_nul_character_is_bad_request_on_both_edges(server: RunningServer) -> None:
    """Text holding NUL (which PostgreSQL cannot store) is refused with bad_request over HTTP
    and over the WebSocket, where it used to be internal on PostgreSQL, and nothing is
    stored."""
    admin = server.token(user="ada", roles=["admin"])
    doc = await server.create(admin, state={"n": 0})
    async with server.http(admin) as http:
        for response in (
            await http.post(f"/api/documents/{doc['id']}/comments", json={"body": "a\x00b"}),
            await http.post("/api/ideas", json={"title": "Acme\x00"}),
            await http.get("/api/locks", params={"doc": "x\x00y"}),
        ):
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "bad_request"
    async with await server.connect(admin) as client:
        created = await client.request("create", kind="memo", title="Nul\x00title")
        assert created["type"] == "error" and created["code"] == "bad_request", created
        patched = await client.request("patch", doc=doc["id"], base=1, key="k\x00",
                                       ops=[{"op": "replace", "path": "/n", "value": 1}])
        assert patched["type"] == "error" and patched["code"] == "bad_request", patched
        valued = await client.request("patch", doc=doc["id"], base=1,
                                      ops=[{"op": "replace", "path": "/n", "value": "\x00"}])
        assert valued["type"] == "ok" and valued["version"] == 2, valued
    async with server.http(admin) as http:
        document = (await http.get(f"/api/documents/{doc['id']}")).json()
        assert document["version"] == 2 and document["state"] == {"n": "\x00"}
        listed = (await http.get("/api/documents")).json()["items"]
        assert [item["id"] for item in listed] == [doc["id"]]
