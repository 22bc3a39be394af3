"""The rows a node's writes left, kept for its next batch (persistence/head_cache.py).

Two document stores on one PostgreSQL database stand for two nodes. A kept row saves the
next batch its read; whatever another node (or another kind of change) did to the row in
between must still be seen, by the write statement's check or by a fresh read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from persistence.audit import Actor, AuditContext
from persistence.database import Database
from persistence.document_archival import DocumentArchival
from persistence.documents import DocumentStore
from persistence.errors import BadRequest, Conflict
from persistence.head_cache import HeadCache
from persistence.locks import Holder, LockStore
from persistence.write_statements import DocumentRow
from tests.conftest import PostgresDatabases
from tests.support import TIMEOUT

CTX = AuditContext(Actor("ann", "Ann"), "acme")


@pytest.fixture
async def nodes(postgres: PostgresDatabases) -> AsyncIterator[tuple[DocumentStore, DocumentStore]]:
    url = await postgres.fresh()
    dbs = [Database(url), Database(url)]
    try:
        yield DocumentStore(dbs[0]), DocumentStore(dbs[1])
    finally:
        for db in dbs:
            await db.dispose()


async def _patch(store: DocumentStore, doc: str, base: int, path: str, value: Any) -> Any:
    return await asyncio.wait_for(store.apply_patch(
        CTX, doc, base=base, ops=[{"op": "add", "path": path, "value": value}]), TIMEOUT)


async def _memo(store: DocumentStore) -> str:
    document, _ = await asyncio.wait_for(
        store.create(CTX, kind="memo", title="Kept", state={}), TIMEOUT)
    return str(document["id"])


async def _kept_at_version_2(store: DocumentStore) -> str:
    """A document that ``store`` wrote once: it keeps the row at version 2, ``{"a": 1}``."""
    doc = await _memo(store)
    await _patch(store, doc, 1, "/a", 1)
    return doc


def _heads(store: DocumentStore) -> HeadCache:
    heads = store.writer.committer.heads
    assert heads is not None
    return heads


async def test_a_document_written_again_is_not_read_again(
    nodes: tuple[DocumentStore, DocumentStore],
) -> None:
    a, _ = nodes
    doc = await _memo(a)
    for version in range(1, 6):
        result = await _patch(a, doc, version, f"/k{version}", version)
        assert result.reply["version"] == version + 1
    heads = _heads(a)
    assert (heads.misses, heads.hits) == (1, 4)
    document = await a.get("acme", doc)
    assert document["version"] == 6
    assert document["state"] == {f"k{v}": v for v in range(1, 6)}
    assert (await a.verify("acme", doc))["ok"]


async def test_a_write_through_another_node_is_caught_and_the_batch_runs_again(
    nodes: tuple[DocumentStore, DocumentStore],
) -> None:
    a, b = nodes
    doc = await _kept_at_version_2(a)
    await _patch(b, doc, 2, "/b", 2)  # version 3, which node A has not seen
    # Based on version 2, as kept: the write statement finds the row moved, the batch reads
    # it afresh and carries the patch past version 3.
    result = await _patch(a, doc, 2, "/c", 3)
    assert result.reply == {"version": 4, "rebased": True}
    assert a.moved_retries == 1
    # Based on the version node B wrote: newer than what node A keeps, so it reads afresh
    # instead of answering that the base is ahead.
    await _patch(b, doc, 4, "/d", 4)
    result = await _patch(a, doc, 5, "/e", 5)
    assert result.reply == {"version": 6}
    assert a.moved_retries == 1
    document = await b.get("acme", doc)
    assert document["state"] == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    assert (await b.verify("acme", doc))["ok"]


async def test_a_base_ahead_of_the_database_is_still_refused(
    nodes: tuple[DocumentStore, DocumentStore],
) -> None:
    a, _ = nodes
    doc = await _kept_at_version_2(a)
    with pytest.raises(BadRequest) as refused:
        await _patch(a, doc, 7, "/x", 0)
    assert refused.value.extra["current_version"] == 2
    assert (await a.get("acme", doc))["version"] == 2


async def test_an_archive_on_another_node_refuses_the_next_write(
    nodes: tuple[DocumentStore, DocumentStore],
) -> None:
    a, b = nodes
    doc = await _kept_at_version_2(a)
    await asyncio.wait_for(DocumentArchival(b.db).set_archived(CTX, doc, True), TIMEOUT)
    with pytest.raises(Conflict) as refused:
        await _patch(a, doc, 2, "/b", 2)
    assert refused.value.extra["archived"] is True
    document = await b.get("acme", doc)
    assert (document["version"], document["state"]) == (2, {"a": 1})


async def test_a_lock_token_is_checked_against_the_live_locks(
    nodes: tuple[DocumentStore, DocumentStore],
) -> None:
    """The row node A keeps was never locked; a lock granted through node B since must
    still be found when a write presents its token."""
    a, b = nodes
    doc = await _kept_at_version_2(a)
    holder = Holder("http-1", "ann", "Ann", "node-b")
    lock, _ = await asyncio.wait_for(LockStore(b.db).acquire(CTX, doc, "/fenced", holder),
                                     TIMEOUT)
    result = await asyncio.wait_for(a.apply_patch(
        CTX, doc, base=2, ops=[{"op": "add", "path": "/fenced", "value": 1}],
        lock_token=lock["token"]), TIMEOUT)
    assert result.reply == {"version": 3}


async def test_a_refusal_made_on_a_kept_row_is_decided_again_on_a_fresh_one(
    nodes: tuple[DocumentStore, DocumentStore],
) -> None:
    """A patch refused on the row node A keeps writes nothing that would check that row, so
    it is decided again on a fresh read. Here its ``test`` fails against the kept value but
    holds against node B's newer one: the patch is accepted, carried past version 3."""
    a, b = nodes
    doc = await _kept_at_version_2(a)
    await asyncio.wait_for(b.apply_patch(
        CTX, doc, base=2, ops=[{"op": "replace", "path": "/a", "value": 2}]), TIMEOUT)
    result = await asyncio.wait_for(a.apply_patch(
        CTX, doc, base=2, ops=[{"op": "test", "path": "/a", "value": 2},
                               {"op": "add", "path": "/b", "value": 3}]), TIMEOUT)
    assert result.reply == {"version": 4, "rebased": True}
    assert (await a.get("acme", doc))["state"] == {"a": 2, "b": 3}


def _row(doc: str, state: str) -> DocumentRow:
    now = datetime.now(UTC)
    return DocumentRow(doc, "acme", "memo", "T", 1, state, now, None, 0, None, None)


def test_the_kept_states_stay_within_their_budget_least_recent_first() -> None:
    heads = HeadCache(max_characters=10)
    heads.keep(_row("a", "xxxx"))
    heads.keep(_row("b", "yyyy"))
    assert heads.get("a") is not None  # now the most recently used
    heads.keep(_row("c", "zzzz"))  # 12 characters: "b" goes
    assert heads.get("b") is None
    assert [heads.get(d) is not None for d in ("a", "c")] == [True, True]
    heads.keep(_row("d", "w" * 11))  # larger than the whole budget: not kept
    assert heads.get("d") is None and len(heads) == 2
    heads.keep(_row("a", "x"))  # a newer row replaces the old one
    heads.forget(["c"])
    kept = heads.get("a")
    assert len(heads) == 1 and kept is not None and kept.state == "x"
