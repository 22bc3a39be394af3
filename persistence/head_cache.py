"""Document rows as this node's last write left them, so that its next batch need not read them.

On PostgreSQL a batch is optimistic (:mod:`persistence.batch_commit`): its write statement
moves a document row only if the row is still at the version, chain head and lock counter the
batch read, and otherwise undoes itself whole and the batch runs again from a fresh read.
Every change to a document row moves one of those three (a write its version and head, an
archive or a review its head through an event, a lock its counter); its tenant, kind, title,
idea and creation never change. So the row a committed write left behind is as good as a
fresh read for the next batch of the same document: if anybody changed the row since, the
write statement finds out. Skipping the read saves a round trip, and the transfer of the
state, on each batch of a document that keeps being written through this node (measured in
docs/performance.md).

Another node's write makes a kept row stale. Its delta reaches this node's hub when anyone
here follows the document (writers do), and the row is dropped then
(:meth:`persistence.documents.DocumentStore.version_seen`), so the next batch reads instead of
trying a write that the check would undo. When nobody here follows it, that one write is
undone and the batch runs again from a fresh read.

A refusal needs no write, so no check would catch a stale row behind it: a batch that refused
patches on a kept row and wrote nothing to that row runs again from a fresh read
(:class:`KeptHeads`). Two cases are read afresh from the start, because they would always
pay that second run: a base beyond the kept version (a client that saw another node's newer
write), and a lock token (checked against the live locks, which a row never locked skips).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime

from persistence.write_failures import HeadMoved
from persistence.write_statements import (
    BatchRows,
    DocumentRow,
    LockRow,
    RememberedKey,
    Revision,
    WriteStatements,
)
from persistence.writes import PatchRequest

__all__ = ["HeadCache", "KeptHeads"]

# What the kept states may weigh in all, in characters: enough for the documents being
# written right now, bounded whatever their size (a state may be megabytes).
MAX_KEPT_CHARACTERS = 32 * 1024 * 1024


class HeadCache:
    """The last row written of recently written documents, least recently used dropped first."""

    def __init__(self, max_characters: int = MAX_KEPT_CHARACTERS) -> None:
        self._rows: OrderedDict[str, DocumentRow] = OrderedDict()
        self._characters = 0
        self.max_characters = max_characters
        # Batches that found every document here, and those that had to read some.
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, doc: str) -> DocumentRow | None:
        row = self._rows.get(doc)
        if row is not None:
            self._rows.move_to_end(doc)
        return row

    def keep(self, row: DocumentRow) -> None:
        self.forget((row.id,))
        if len(row.state) > self.max_characters:
            return
        self._rows[row.id] = row
        self._characters += len(row.state)
        while self._characters > self.max_characters:
            _, oldest = self._rows.popitem(last=False)
            self._characters -= len(oldest.state)

    def saw(self, doc: str, version: int) -> None:
        """Some node committed ``version`` of ``doc`` (a delta came through the broker): a
        row kept of an older version would only cost the next batch a failed write."""
        row = self._rows.get(doc)
        if row is not None and row.version < version:
            self.forget((doc,))

    def forget(self, docs: Iterable[str]) -> None:
        for doc in docs:
            row = self._rows.pop(doc, None)
            if row is not None:
                self._characters -= len(row.state)


class KeptHeads:
    """Optimistic write statements that take document rows from a :class:`HeadCache` where
    they can, and keep the rows their write committed.

    A kept row is checked only by the write that moves it. So a kept row whose patches were
    all refused is checked by nothing: :meth:`store` then undoes the batch's write before it
    is sent, as if the document had moved, and :meth:`check_refusals` does the same for a
    batch that writes nothing. Either way the batch runs again from a fresh read and every
    refusal it answers was made on a row known to be current.

    ``requests``: the batch's patches, which say what must be read afresh whatever is kept.
    """

    def __init__(self, inner: WriteStatements, cache: HeadCache,
                 requests: Sequence[PatchRequest]) -> None:
        self.inner = inner
        self.cache = cache
        self.newest_base: dict[str, int] = {}
        for request in requests:
            self.newest_base[request.doc_id] = max(request.base,
                                                   self.newest_base.get(request.doc_id, 0))
        # A lock token is checked against live locks, which a kept row never locked skips.
        self.fresh = {r.doc_id for r in requests if r.lock_token is not None}
        self._read: dict[str, DocumentRow] = {}
        self._kept: set[str] = set()  # documents whose row came from the cache
        self._stored = False

    async def read_documents(self, ids: Sequence[str]) -> list[DocumentRow]:
        rows: list[DocumentRow] = []
        missing: list[str] = []
        for doc in ids:
            row = self.cache.get(doc)
            if row is None or doc in self.fresh or self.newest_base.get(doc, 0) > row.version:
                missing.append(doc)
            else:
                rows.append(row)
                self._kept.add(doc)
        if missing:
            self.cache.misses += 1
            rows += await self.inner.read_documents(missing)
            rows.sort(key=lambda row: row.id)
        else:
            self.cache.hits += 1
        self._read = {row.id: row for row in rows}
        return rows

    async def remembered_keys(self, docs: Sequence[str],
                              keys: Sequence[str]) -> list[RememberedKey]:
        return await self.inner.remembered_keys(docs, keys)

    async def live_locks(self, docs: Sequence[str], now: datetime) -> list[LockRow]:
        return await self.inner.live_locks(docs, now)

    async def revisions_after(self, doc: str, after: int) -> list[Revision]:
        return await self.inner.revisions_after(doc, after)

    async def store(self, rows: BatchRows) -> int | None:
        self._stored = True
        self._undo_unchecked(self._kept - {advance.id for advance in rows.advances})
        try:
            moved = await self.inner.store(rows)
        except BaseException:
            # Moved under the batch, or the outcome is unknown: read these afresh next time.
            self.cache.forget(self._read)
            raise
        for advance in rows.advances:
            read = self._read[advance.id]
            self.cache.keep(read._replace(version=advance.version, state=advance.state,
                                          head_hash=advance.head_hash))
        return moved

    def check_refusals(self) -> None:
        """After the batch: raise :class:`HeadMoved` if it wrote nothing and refused patches
        on kept rows (its answers may rest on a stale row)."""
        if not self._stored:
            self._undo_unchecked(self._kept)

    def _undo_unchecked(self, docs: set[str]) -> None:
        if docs:
            self.cache.forget(docs)
            raise HeadMoved("patches were refused on kept rows that no write checks")
