"""A sample of the WebSocket frame fuzzer (bench/fuzz.py) against a live server on both
databases: thousands of malformed frames in both subprotocols, each answered with one contract
error, none with ``internal``, and nothing stored changes."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from bench.fuzz import CONTRACT_CODES, Frame, aim, batches, fuzz
from tests.support import RunningServer

BATCHES = 80
"""About 2,500 frames (batches of 25 to 50), made once for both databases (hypothesis makes
about 150 a second)."""


@functools.cache
def _sample() -> list[list[Frame]]:
    return batches(BATCHES)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_per_second": 100_000}


async def _stored(server: RunningServer, token: str) -> tuple[Any, ...]:
    """What a malformed frame must not change: every document's version, and the log."""
    async with server.http(token) as http:
        documents = (await http.get("/api/documents", params={"limit": 500})).json()["items"]
        events = (await http.get("/api/events", params={"limit": 1000})).json()["events"]
    return (sorted((d["id"], d["version"]) for d in documents), len(events),
            events[-1]["seq"] if events else None)


async def test_malformed_frames_get_contract_errors_and_change_nothing(
        server: RunningServer) -> None:
    """Every fuzzed frame gets exactly one error with a contract code (never internal), the
    connections stay open, and no document version or audit event changes."""
    admin = server.token(user="ada", roles=["admin"])
    docs = [(await server.create(admin, state={"n": i, "text": "hello"}))["id"]
            for i in range(3)]
    before = await _stored(server, admin)
    report = await fuzz(server.ws_url, admin, aim(_sample(), docs))
    assert report.frames > 2000, report.summary()
    assert not report.failures, "\n".join(report.failures[:20])
    assert set(report.codes) <= CONTRACT_CODES, report.codes
    assert report.encodings["msgpack"] and report.encodings["json"], report.encodings
    assert await _stored(server, admin) == before
    async with server.http() as http:
        assert (await http.get("/healthz")).status_code == 200
