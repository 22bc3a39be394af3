"""The audit trail across ``archive --purge``: the chain still verifies from where the purge
cut it, and a stream asked for events below the purge point says so instead of skipping."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from persistence.archive import Archiver
from persistence.audit import Actor, AuditContext
from persistence.database import Database
from persistence.documents import DocumentStore
from persistence.history_retention import HistoryRetention
from persistence.schema import revisions, snapshots
from tests.processes import COEDIT, clean_env
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
    naming the purge point, then the live events after it; one at the point gets none. A
    page of ``GET /api/events`` read from below the point says ``purged_through``."""
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

        async with server.http(token) as http:
            below = (await http.get("/api/events", params={"doc": doc, "since": 0})).json()
            above = (await http.get("/api/events", params={"doc": doc,
                                                           "since": purged})).json()
        assert below["purged_through"] == purged and "purged_through" not in above
        assert [e["version"] for e in below["events"]] == [6, 7] == \
            [e["version"] for e in above["events"]]

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


# -- history retention --------------------------------------------------------------------------


async def _long_history(server: RunningServer, monkeypatch: pytest.MonkeyPatch,
                        user: str) -> str:
    """Versions 1-7 written four months ago, 8 and 9 now."""
    store = server.coedit.store
    ctx = AuditContext(Actor(user, user.title()), "acme")
    clock = iter(FOUR_MONTHS_AGO + timedelta(seconds=i) for i in range(10_000))
    monkeypatch.setattr("persistence.document_writes.utcnow", lambda: next(clock))
    document, _ = await store.create(ctx, kind="memo", title="long", state={"n": 0})
    doc = document["id"]
    for version in range(1, 7):
        await store.apply_patch(ctx, doc, base=version, ops=replace("/n", version))
    monkeypatch.undo()
    for version in (7, 8):
        await store.apply_patch(ctx, doc, base=version, ops=replace("/n", version))
    return str(doc)


async def test_history_retention_keeps_the_window_replayable_and_says_what_is_gone(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Cutting history at 90 days keeps a snapshot at the version current then: every version
    from it replays as before, older versions and times answer not_found with
    ``retained_from``, a subscriber resuming below it gets ``reset``, and the database still
    refuses to delete a retained revision."""
    doc = await _long_history(server, monkeypatch, "dee")
    token = server.token(user="dee")
    async with server.http(token) as http:
        before = {v: (await http.get(f"/api/documents/{doc}", params={"version": v})).json()
                  for v in (7, 8, 9)}
    retention = HistoryRetention(server.coedit.db)
    cut = await retention.prune(older_than=timedelta(days=90))
    assert (cut.documents, cut.revisions, cut.snapshots) == (1, 6, 1)
    again = await retention.prune(older_than=timedelta(days=90))
    assert again.documents == 0
    async with server.coedit.db.reader() as conn:
        kept = (await conn.execute(select(func.min(revisions.c.version), func.count())
                                   .where(revisions.c.doc == doc))).one()
        snaps = (await conn.execute(select(snapshots.c.version)
                                    .where(snapshots.c.doc == doc))).scalars().all()
    assert tuple(kept) == (7, 3) and list(snaps) == [7]

    async with server.http(token) as http:
        for version, document in before.items():
            replayed = (await http.get(f"/api/documents/{doc}",
                                       params={"version": version})).json()
            assert replayed == document
        gone = await http.get(f"/api/documents/{doc}", params={"version": 3})
        assert gone.status_code == 404
        assert gone.json()["error"]["retained_from"] == 7
        assert "no longer kept" in gone.json()["error"]["message"]
        long_ago = (FOUR_MONTHS_AGO - timedelta(days=1)).isoformat()
        gone = await http.get(f"/api/documents/{doc}", params={"at": long_ago})
        assert gone.status_code == 404 and gone.json()["error"]["retained_from"] == 7
        then = (FOUR_MONTHS_AGO + timedelta(days=10)).isoformat()
        at_floor = (await http.get(f"/api/documents/{doc}", params={"at": then})).json()
        assert at_floor["version"] == 7 and at_floor["state"] == {"n": 6}

    async with await server.connect(token) as client:
        reply = await client.ok("subscribe", doc=doc, since=2)
        reset = await client.recv_type("reset")
        assert reset["version"] == 9 and reset["state"] == {"n": 8}, (reply, reset)
        await client.ok("unsubscribe", doc=doc)
        await client.ok("subscribe", doc=doc, since=7)
        assert [d["version"] for d in await client.deltas(doc, 2)] == [8, 9]
        stale = await client.request("patch", doc=doc, base=3, ops=replace("/m", 1))
        assert stale["type"] == "error" and stale["code"] == "bad_request", stale
        rebased = await client.ok("patch", doc=doc, base=7, ops=[
            {"op": "add", "path": "/m", "value": 1}])
        assert rebased["version"] == 10 and rebased.get("rebased") is True

    with pytest.raises(Exception, match="append-only"):
        async with server.coedit.db.transaction() as conn:
            await conn.execute(delete(revisions).where(revisions.c.doc == doc,
                                                       revisions.c.version == 8))


async def _coedit(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        COEDIT, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode() + err.decode()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_coedit_archive_applies_history_retention_from_the_environment(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``coedit archive`` with COEDIT_HISTORY_RETENTION cuts old revisions and snapshots
    (without archiving events unless asked); a period under an hour is refused."""
    db = Database(database_url)
    try:
        store = DocumentStore(db)
        ctx = AuditContext(Actor("eve", "Eve"), "acme")
        clock = iter(FOUR_MONTHS_AGO + timedelta(seconds=i) for i in range(10_000))
        monkeypatch.setattr("persistence.document_writes.utcnow", lambda: next(clock))
        document, _ = await store.create(ctx, kind="memo", title="cli", state={"n": 0})
        for version in range(1, 5):
            await store.apply_patch(ctx, document["id"], base=version,
                                    ops=replace("/n", version))
        monkeypatch.undo()
        await store.apply_patch(ctx, document["id"], base=5, ops=replace("/n", 5))
    finally:
        await db.dispose()
    env = clean_env(COEDIT_DATABASE_URL=database_url, COEDIT_HISTORY_RETENTION="90d")
    code, out = await _coedit("archive", env=env, cwd=tmp_path)
    assert code == 0, out
    assert "cut 1 documents: 4 revisions and 1 snapshots removed" in out
    code, out = await _coedit("archive", env={**env, "COEDIT_HISTORY_RETENTION": "10m"},
                              cwd=tmp_path)
    assert code == 2 and "at least 1h" in out, out
