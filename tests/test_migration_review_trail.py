"""Migration 0008 moves the single review of a document and the flat comments of 0005 into
reviews and threads, on both databases, without touching a stored event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.migrate import upgrade
from tests.conftest import PostgresDatabases

TIMEOUT = 60
WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def _old_rows(url: str) -> None:
    engine = create_async_engine(url)
    naive = WHEN.replace(tzinfo=None) if url.startswith("sqlite") else WHEN
    try:
        async with engine.begin() as conn:
            for doc in ("d1", "d2"):
                await conn.execute(text(
                    "INSERT INTO documents (id, tenant, kind, title, version, state, created_at,"
                    " created_by, updated_at, updated_by, lock_seq) VALUES (:id, 'acme',"
                    " 'memo', 'Old', 3, '{}', :t, 'ann', :t, 'ann', 0)"), {"id": doc, "t": naive})
            for doc, state in (("d1", "in_review"), ("d2", "approved")):
                await conn.execute(text(
                    "INSERT INTO reviews (doc, tenant, reviewer_id, reviewer_name, state,"
                    " assigned_by, version, updated_at) VALUES (:doc, 'acme', 'rita', 'Rita',"
                    " :state, 'ann', 3, :t)"), {"doc": doc, "state": state, "t": naive})
            await conn.execute(text(
                "INSERT INTO comments (id, tenant, doc, path, body, author_id, author_name,"
                " created_at, resolved_at, resolved_by) VALUES ('c1', 'acme', 'd1', '/a',"
                " 'old note', 'ann', 'Ann', :t, :t, 'rita'), ('c2', 'acme', 'd1', '', 'open',"
                " 'bob', 'Bob', :t, NULL, NULL)"), {"t": naive})
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_old_reviews_and_comments_move_over(backend: str, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("postgres")
        url = await databases.empty()
    await asyncio.wait_for(upgrade(url, "0007"), TIMEOUT)
    await asyncio.wait_for(_old_rows(url), TIMEOUT)
    await asyncio.wait_for(upgrade(url), TIMEOUT)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            reviews = (await conn.execute(text(
                "SELECT doc, stage, reviewer_id, reviewer_name, assigned_by_id, status, due"
                " FROM reviews ORDER BY doc"))).all()
            comments = (await conn.execute(text(
                "SELECT id, thread, parent, resolved, resolved_by, resolved_by_name"
                " FROM comments ORDER BY id"))).all()
            ideas = (await conn.execute(text("SELECT idea FROM documents"))).all()
    finally:
        await engine.dispose()
    assert [tuple(r) for r in reviews] == [
        ("d1", "memo", "rita", "Rita", "ann", "assigned", None),
        ("d2", "memo", "rita", "Rita", "ann", "approved", None)]
    assert [(c.id, c.thread, c.parent, bool(c.resolved), c.resolved_by) for c in comments] == [
        ("c1", "c1", None, True, "rita"), ("c2", "c2", None, False, None)]
    assert [i.idea for i in ideas] == [None, None]
