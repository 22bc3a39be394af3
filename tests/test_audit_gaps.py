"""The audit trail across ``archive --purge``: the chain still verifies from where the purge
cut it, and a stream asked for events below the purge point says so instead of skipping."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from persistence.archive import Archiver
from persistence.audit import Actor, AuditContext
from tests.support import TIMEOUT, RunningServer, replace

FOUR_MONTHS_AGO = datetime.now(UTC) - timedelta(days=120)


async def _purged_history(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, user: str
) -> tuple[str, int]:
    """A document with five versions written four months ago and two written now, after
    ``archive --purge`` removed the old ones; returns its id and the purge point (a seq)."""
    store = server.coedit.store
    ctx = AuditContext(Actor(user, user.title()), "acme")
    clock = iter(FOUR_MONTHS_AGO + timedelta(seconds=i) for i in range(10_000))
    monkeypatch.setattr("persistence.document_writes.utcnow", lambda: next(clock))
    document, _ = await store.create(ctx, kind="memo", title="old", state={"n": 0})
    doc = document["id"]
    for version in range(1, 5):
        await store.apply_patch(ctx, doc, base=version, ops=replace("/n", version))
    monkeypatch.undo()
    token = server.token(user=user)
    async with server.http(token) as http:
        for version in (5, 6):
            answer = await http.patch(f"/api/documents/{doc}", json=replace("/n", version),
                                      headers={"If-Match": f'"{version}"'})
            assert answer.status_code == 200, answer.text
    results = await Archiver(server.coedit.db, tmp_path).archive(
        older_than=timedelta(days=90), purge=True)
    assert [r.count for r in results] == [5] and results[0].purged
    async with server.http(token) as http:
        live = (await http.get(f"/api/documents/{doc}/history")).json()["events"]
    assert [e["version"] for e in live] == [6, 7]
    return doc, await _last_purged_seq(server, live)


async def _last_purged_seq(server: RunningServer, live: list[dict[str, Any]]) -> int:
    """The purge point as the server's event log reports it, checked against the events."""
    purged = int(await server.coedit.events.purged_through("acme"))
    assert 0 < purged < live[0]["seq"]
    return purged


async def test_verify_after_purge_continues_from_the_last_archived_hash(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``GET /api/documents/{id}/verify`` after ``archive --purge`` answers ok, checking the
    live events against the last purged event's hash rather than an empty one."""
    doc, purged = await _purged_history(server, monkeypatch, tmp_path, "ann")
    async with server.http(server.token(user="ann")) as http:
        report = (await http.get(f"/api/documents/{doc}/verify")).json()
        history = (await http.get(f"/api/documents/{doc}/history")).json()["events"]
    assert report["ok"] is True, report
    assert report["events"] == 2
    assert report["continues_from"]["seq"] == purged
    assert report["continues_from"]["hash"] == history[0]["prev_hash"]


async def test_websocket_stream_since_below_the_purge_point_is_told_reset(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A stream subscribed with a ``since`` below the purge point first receives ``reset``
    naming the purge point, then the live events after it; one at the point gets none."""
    doc, purged = await _purged_history(server, monkeypatch, tmp_path, "bob")
    token = server.token(user="bob")
    async with await server.connect(token) as client:
        reply = await client.ok("subscribe", stream={"docs": [doc]}, since=0)
        first = await client.recv()
        assert first == {"type": "reset", "stream": reply["stream"], "since": 0,
                         "seq": purged}, first
        events = [(await client.recv_type("event"))["event"] for _ in range(2)]
        assert [e["version"] for e in events] == [6, 7]
        assert all(e["seq"] > purged for e in events)

        again = await client.ok("subscribe", stream={"docs": [doc]}, since=purged)
        message = await client.recv()
        assert message["type"] == "event" and message["stream"] == again["stream"], message
        assert message["event"]["version"] == 6


async def test_sse_since_below_the_purge_point_is_told_reset(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Server-Sent Events resumed below the purge point start with an ``event: reset`` whose
    ``id`` is the purge point, then the live events."""
    doc, purged = await _purged_history(server, monkeypatch, tmp_path, "cy")
    received: list[tuple[str | None, str | None, dict[str, Any]]] = []
    async with (
        server.http(server.token(user="cy")) as http,
        asyncio.timeout(TIMEOUT),
        http.stream("GET", "/api/events/stream", params={"doc": doc},
                    headers={"Last-Event-ID": "1"}) as response,
    ):
        assert response.status_code == 200
        name: str | None = None
        event_id: str | None = None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                received.append((name, event_id, json.loads(line[6:])))
                name = event_id = None
                if len(received) == 3:
                    break
    kind, reset_id, reset = received[0]
    assert kind == "reset" and reset_id == str(purged), received[0]
    assert reset["type"] == "reset" and reset["seq"] == purged and reset["since"] == 1
    assert [data["version"] for _, _, data in received[1:]] == [6, 7]
