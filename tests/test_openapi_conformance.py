"""schemathesis over the live server's /openapi.json, every check it has, both databases: no
5xx, every answer of a status, content type, headers and body the description declares, and
every request the description calls valid accepted (and the invalid ones refused)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup

from tests.support import RunningServer
from tests.workflow_support import COMMITTEE, Calls

EXAMPLES = 12
"""Examples per operation and generation mode: about 1,000 cases in all, a minute a database."""
ENDLESS = {"/api/events/stream"}
"""Answers that never end (Server-Sent Events): tests/test_events.py drives them."""


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


def _run(url: str, token: str, ids: dict[str, list[str]]) -> tuple[int, list[str]]:
    """Every operation, positive cases on seeded ids and on generated ones, negative cases;
    answers (cases run, failures). Runs in a thread: schemathesis' transport blocks."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
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
        strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                      operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)]
        if seeded and len(seeded) == len(names):
            strategies.append(st.fixed_dictionaries(
                {name: st.sampled_from(values) for name, values in seeded.items()}
            ).flatmap(lambda chosen, op=operation: op.as_strategy(
                generation_mode=GenerationMode.POSITIVE, path_parameters=chosen)))
        for strategy in strategies:
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def one(case: Any) -> None:
                nonlocal cases
                cases += 1
                try:
                    case.call_and_validate(base_url=url, headers=headers, checks=checks,
                                           timeout=10)
                except FailureGroup as exc:
                    failures.append(f"{operation.label}: {exc}"[:3000])

            try:
                one()
            except Unsatisfiable:
                pass  # a negative mode for an operation with nothing to get wrong
    return cases, failures


async def test_every_answer_matches_the_description(server: RunningServer) -> None:
    """Generated requests to every operation (seeded ids, random ones, invalid ones) never
    get a 5xx and every answer matches what /openapi.json declares."""
    admin = server.token(user="ada", roles=["admin"])
    ids = await _seed(server, admin)
    cases, failures = await asyncio.wait_for(
        asyncio.to_thread(_run, server.http_url, admin, ids), 600)
    assert cases > 300, cases
    assert not failures, f"{len(failures)} of {cases} cases failed:\n" + "\n\n".join(failures)
