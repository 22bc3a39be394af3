"""Retention and the operator commands: archive, verify, replay, tail."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from persistence.archive import Archiver
from persistence.audit import Actor, AuditContext
from persistence.database import Database
from persistence.documents import DocumentStore
from persistence.schema import events
from tests.processes import COEDIT, clean_env

CTX = AuditContext(Actor("ann", "Ann"), "acme")
OTHER = AuditContext(Actor("bob", "Bob"), "globex")
FOUR_MONTHS_AGO = datetime.now(UTC) - timedelta(days=120)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[DocumentStore]:
    db = Database(database_url)
    try:
        yield DocumentStore(db, snapshot_every=3)
    finally:
        await db.dispose()


async def _old_history(store: DocumentStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two tenants' documents written four months ago (the clock is moved for the writes)."""
    clock = iter(FOUR_MONTHS_AGO + timedelta(seconds=i) for i in range(10_000))
    monkeypatch.setattr("persistence.document_writes.utcnow", lambda: next(clock))
    docs = []
    for ctx in (CTX, OTHER):
        document, _ = await store.create(ctx, kind="memo", title="old", state={"n": 0})
        for version in range(1, 8):
            await store.apply_patch(ctx, document["id"], base=version,
                                    ops=[{"op": "replace", "path": "/n", "value": version}])
        docs.append(document["id"])
    monkeypatch.undo()
    return docs


async def _count(store: DocumentStore) -> int:
    async with store.db.reader() as conn:
        return int((await conn.execute(select(func.count()).select_from(events))).scalar_one())


async def test_archive_moves_old_months_and_loses_nothing(
    store: DocumentStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Counts and hashes before equal archived plus live after; replay still works."""
    docs = await _old_history(store, monkeypatch)
    recent, _ = await store.create(CTX, kind="memo", title="new", state={})
    before = await _count(store)
    report_before = {r.tenant: r.events for r in await Archiver(store.db, tmp_path).verify()}

    results = await Archiver(store.db, tmp_path).archive(older_than=timedelta(days=90),
                                                         purge=True)
    assert sorted(r.tenant for r in results) == ["acme", "globex"]
    assert all(r.count == 8 and r.file.exists() for r in results)
    manifest = json.loads((results[0].file.parent / f"{results[0].month}.manifest.json")
                          .read_text())
    assert manifest["count"] == 8 and manifest["last_hash"] == results[0].last_hash
    assert await _count(store) == before - 16  # only the recent document's event is live

    reports = await Archiver(store.db, tmp_path).verify()
    assert all(report.ok for report in reports), [r.broken for r in reports]
    assert {r.tenant: r.events for r in reports} == report_before
    assert sum(r.archived for r in reports) == 16

    for ctx, doc in zip((CTX, OTHER), docs, strict=True):
        for version in (1, 4, 8):
            replayed = await store.state_at(ctx.tenant, doc, version=version)
            assert replayed["state"] == {"n": version - 1}
    assert (await store.get("acme", recent["id"]))["version"] == 1
    again = await Archiver(store.db, tmp_path).archive(older_than=timedelta(days=90))
    assert again == []


async def test_only_archived_events_may_be_deleted(
    store: DocumentStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without --purge events stay; the database still refuses to delete unarchived ones."""
    await _old_history(store, monkeypatch)
    recent, _ = await store.create(CTX, kind="memo", title="new", state={})
    results = await Archiver(store.db, tmp_path).archive(older_than=timedelta(days=90))
    assert all(not r.purged for r in results)
    total = await _count(store)
    with pytest.raises(Exception, match="append-only"):
        async with store.db.transaction() as conn:
            await conn.execute(delete(events).where(events.c.doc == recent["id"]))
    async with store.db.transaction() as conn:  # archived (marked) events may go
        gone = await conn.execute(delete(events).where(events.c.tenant == "globex"))
    assert gone.rowcount == 8
    assert await _count(store) == total - 8
    reports = await Archiver(store.db, tmp_path).verify()
    assert all(report.ok for report in reports)


async def _cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        COEDIT, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode() + "\n" + err.decode()


async def test_cli_archive_then_verify_catches_a_tampered_line(
    store: DocumentStore, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``coedit archive`` then ``coedit verify`` pass; editing an archived line is caught."""
    await _old_history(store, monkeypatch)
    env = clean_env(COEDIT_DATABASE_URL=database_url)
    code, out = await _cli("archive", "--older-than", "90d", "--dir", "arch", "--purge",
                           env=env, cwd=tmp_path)
    assert code == 0, out
    assert "archived 16 events in 2 files" in out
    code, out = await _cli("verify", env=env, cwd=tmp_path)
    assert code == 0, out
    assert "acme\tok\t8 events (8 from archives)" in out

    archive = next((tmp_path / "arch" / "acme").glob("*.jsonl.gz"))
    lines = gzip.decompress(archive.read_bytes()).decode().splitlines()
    forged = json.loads(lines[3])
    forged["data"]["after"] = {"/n": 999}
    lines[3] = json.dumps(forged)
    archive.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    code, out = await _cli("verify", "--tenant", "acme", env=env, cwd=tmp_path)
    assert code == 1
    assert "BROKEN" in out and str(forged["seq"]) in out and "sha256" in out


async def test_cli_replay_prints_a_past_version(
    store: DocumentStore, database_url: str, tmp_path: Path
) -> None:
    """``coedit replay DOC --version N`` prints the document as it was at N."""
    document, _ = await store.create(CTX, kind="memo", title="t", state={"n": 0})
    for version in range(1, 6):
        await store.apply_patch(CTX, document["id"], base=version,
                                ops=[{"op": "replace", "path": "/n", "value": version}])
    env = clean_env(COEDIT_DATABASE_URL=database_url)
    code, out = await _cli("replay", document["id"], "--version", "4", "--state-only",
                           env=env, cwd=tmp_path)
    assert code == 0, out
    assert json.loads(out.split("\n}\n")[0] + "}") == {"n": 3}
    code, out = await _cli("replay", document["id"], "--version", "40", env=env, cwd=tmp_path)
    assert code == 1 and "no version 40" in out


async def test_cli_tail_follows_new_events(
    store: DocumentStore, database_url: str, tmp_path: Path
) -> None:
    """``coedit tail --kind memo --json`` prints matching events as they are committed."""
    env = clean_env(COEDIT_DATABASE_URL=database_url)
    # From the head as it is now, so events committed while the command starts are not
    # missed (its start-up takes seconds on a busy machine).
    async with store.db.reader() as conn:
        head = (await conn.execute(select(func.coalesce(func.max(events.c.seq), 0)))).scalar()
    proc = await asyncio.create_subprocess_exec(
        COEDIT, "tail", "--tenant", "acme", "--kind", "memo", "--json", "--interval", "0.05",
        "--since", str(head), env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        document, _ = await store.create(CTX, kind="memo", title="t", state={"n": 0})
        await store.create(CTX, kind="valuation", title="v", state={})
        await store.apply_patch(CTX, document["id"], base=1,
                                ops=[{"op": "replace", "path": "/n", "value": 1}])
        assert proc.stdout is not None
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(60):
            while len(seen) < 2:
                seen.append(json.loads(await proc.stdout.readline()))
        assert [(e["type"], e["kind"]) for e in seen] == [
            ("document.created", "memo"), ("patch.applied", "memo")]
    finally:
        proc.kill()
        await asyncio.wait_for(proc.wait(), 10)
