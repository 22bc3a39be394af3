"""The versioned write's statements in PostgreSQL's own SQL, on a plain asyncpg connection.

The same reads and writes as :class:`persistence.write_sql.CoreWriteStatements`, for the one
path that runs on every edit (:mod:`persistence.batch_commit` tells the optimistic path as a
whole). Three things differ besides the driver:

- Lists travel as arrays (``= ANY($1::varchar[])``, ``unnest``), so each statement has one
  text whatever the batch's size and asyncpg prepares it once per connection.
- Everything a batch writes is one statement: the events, the document rows, the revisions,
  the snapshots and the idempotency keys are data-modifying CTEs of a single ``WITH``.
- Optimistic batches: the documents are read without locks and outside any transaction
  block, and the write statement, which then commits by itself, moves a document row only
  if it is still at the version, chain head and lock counter the batch read; otherwise
  ``coedit_check_moved`` raises and the statement undoes itself whole (:class:`HeadMoved`).
  A batch is two round trips, where a locking transaction with one statement per table took
  seven, and under load every round trip is a wait for a core. The locking form remains
  for a batch that keeps being overtaken (``optimistic=False``).

Statements of one ``WITH`` share a snapshot and cannot see each other's rows, so a revision
takes its ``event_seq`` from the events CTE's ``RETURNING`` (joined on the event's unique id),
and an expired idempotency key is replaced with ``ON CONFLICT DO UPDATE`` rather than deleted
first. Events are inserted ``ORDER BY`` their position in the batch, so their seqs are drawn
in chain order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from persistence.errors import Unavailable
from persistence.write_failures import CommitFailed, HeadMoved
from persistence.write_statements import (
    BatchRows,
    DocumentRow,
    LockRow,
    RememberedKey,
    Revision,
)

__all__ = ["MOVED_MESSAGE", "DriverWriteStatements"]

# What coedit_check_moved (migration 0007) says when a document moved under an optimistic write.
MOVED_MESSAGE = "coedit: a document changed since the batch read it"

# Each read lists the columns of the row type it fills, in that type's order.
_READ_DOCUMENTS = f"""
SELECT {", ".join(DocumentRow._fields)}
FROM documents WHERE id = ANY($1::varchar[]) ORDER BY id
"""
_LOCK_DOCUMENTS = _READ_DOCUMENTS + "FOR UPDATE\n"
_REMEMBERED_KEYS = f"""
SELECT {", ".join(RememberedKey._fields)} FROM idempotency_keys
WHERE doc = ANY($1::varchar[]) AND key = ANY($2::varchar[])
"""
_LIVE_LOCKS = f"""
SELECT {", ".join(LockRow._fields)}
FROM locks WHERE doc = ANY($1::varchar[]) AND expires_at > $2
"""
_REVISIONS_AFTER = f"""
SELECT {", ".join(Revision._fields)}
FROM revisions WHERE doc = $1 AND version > $2 ORDER BY version
"""
# $1 is the batch's instant; $2-$16 the events' columns; $17-$24 the revisions' (with the id of
# their event); $25-$32 the document rows' moves (with the head and lock counter each was read
# at); $33-$35 the snapshots; $36-$39 the keys; $40 the events' ideas (added last, so the
# numbers above kept their places); $41-$50 the search index's rows (removed terms, added
# terms, vocabulary; see persistence/search_index.py). coedit_check_moved raises (SQLSTATE
# 40001), undoing the whole statement, unless every document row was still as read.
_STORE = """
WITH ev AS (
    INSERT INTO events (id, tenant, type, doc, kind, version, actor_id, actor_name,
                        actor_kind, source, correlation_id, ts, data, prev_hash, hash, idea)
    SELECT id, tenant, type, doc, kind, version, actor_id, actor_name, actor_kind, source,
           correlation_id, ts, data, prev_hash, hash, idea
    FROM unnest($2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[],
                $7::int[], $8::varchar[], $9::varchar[], $10::varchar[], $11::varchar[],
                $12::varchar[], $13::timestamptz[], $14::text[], $15::varchar[],
                $16::varchar[], $40::varchar[])
         WITH ORDINALITY AS e(id, tenant, type, doc, kind, version, actor_id, actor_name,
                              actor_kind, source, correlation_id, ts, data, prev_hash, hash,
                              idea, position)
    ORDER BY position
    RETURNING id, seq
), rev AS (
    INSERT INTO revisions (doc, version, tenant, ops, units, actor_id, actor_name, ts,
                           event_seq)
    SELECT r.doc, r.version, r.tenant, r.ops, r.units, r.actor_id, r.actor_name, $1, ev.seq
    FROM unnest($17::varchar[], $18::varchar[], $19::int[], $20::varchar[], $21::text[],
                $22::text[], $23::varchar[], $24::varchar[])
         AS r(event_id, doc, version, tenant, ops, units, actor_id, actor_name)
    JOIN ev ON ev.id = r.event_id
), moved AS (
    UPDATE documents AS d
    SET version = m.version, state = m.state, updated_at = $1, updated_by = m.updated_by,
        head_hash = m.head_hash
    FROM unnest($25::varchar[], $26::int[], $27::varchar[], $28::bigint[], $29::int[],
                $30::text[], $31::varchar[], $32::varchar[])
         AS m(id, old_version, old_hash, old_lock_seq, version, state, updated_by, head_hash)
    WHERE d.id = m.id AND d.version = m.old_version
      AND d.head_hash IS NOT DISTINCT FROM m.old_hash AND d.lock_seq = m.old_lock_seq
    RETURNING d.id
), snap AS (
    INSERT INTO snapshots (doc, version, state, ts)
    SELECT doc, version, state, $1
    FROM unnest($33::varchar[], $34::int[], $35::text[]) AS s(doc, version, state)
), remembered AS (
    INSERT INTO idempotency_keys (doc, user_id, key, reply, created_at)
    SELECT doc, user_id, key, reply, $1
    FROM unnest($36::varchar[], $37::varchar[], $38::varchar[], $39::text[])
         AS k(doc, user_id, key, reply)
    ON CONFLICT (doc, user_id, key) DO UPDATE
        SET reply = EXCLUDED.reply, created_at = EXCLUDED.created_at
), unindexed AS (
    -- Search: a term's row is removed and its new one added (never the same row), so the two
    -- CTEs cannot meet; the arrays come sorted, so concurrent batches lock in one order.
    DELETE FROM search_terms AS t
    USING unnest($41::varchar[], $42::varchar[], $43::varchar[], $44::smallint[])
          AS x(tenant, word, doc, place)
    WHERE t.tenant = x.tenant AND t.word = x.word AND t.doc = x.doc AND t.place = x.place
), indexed AS (
    INSERT INTO search_terms (tenant, word, doc, place)
    SELECT * FROM unnest($45::varchar[], $46::varchar[], $47::varchar[], $48::smallint[])
    ON CONFLICT DO NOTHING
), vocabulary AS (
    INSERT INTO search_words (key, word)
    SELECT * FROM unnest($49::varchar[], $50::varchar[])
    ON CONFLICT DO NOTHING
)
SELECT ev.id, ev.seq, coedit_check_moved(cardinality($25::varchar[]),
                                          (SELECT count(*) FROM moved)) AS moved
FROM ev
"""

_EVENT_COLUMNS = ("id", "tenant", "type", "doc", "kind", "version", "actor_id", "actor_name",
                  "actor_kind", "source", "correlation_id", "ts", "data", "prev_hash", "hash")


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    """Rows as ``width`` column lists, the shape ``unnest`` takes."""
    return [[row[i] for row in rows] for i in range(width)]


class DriverWriteStatements:
    """The batch's statements on an asyncpg connection.

    ``optimistic``: the connection is outside any transaction block; documents are read
    without locks and the write commits by itself, or raises :class:`HeadMoved` having
    written nothing. Otherwise the caller's transaction holds the rows from the read on.
    """

    def __init__(self, conn: asyncpg.Connection, *, optimistic: bool) -> None:
        self.conn = conn
        self.optimistic = optimistic

    async def read_documents(self, ids: Sequence[str]) -> list[DocumentRow]:
        query = _READ_DOCUMENTS if self.optimistic else _LOCK_DOCUMENTS
        return [DocumentRow._make(r) for r in await self.conn.fetch(query, list(ids))]

    async def remembered_keys(self, docs: Sequence[str],
                              keys: Sequence[str]) -> list[RememberedKey]:
        found = await self.conn.fetch(_REMEMBERED_KEYS, list(docs), list(keys))
        return [RememberedKey._make(r) for r in found]

    async def live_locks(self, docs: Sequence[str], now: datetime) -> list[LockRow]:
        return [LockRow._make(r) for r in await self.conn.fetch(_LIVE_LOCKS, list(docs), now)]

    async def revisions_after(self, doc: str, after: int) -> list[Revision]:
        found = await self.conn.fetch(_REVISIONS_AFTER, doc, after)
        return [Revision._make(r) for r in found]

    async def store(self, rows: BatchRows) -> int | None:
        events = rows.events
        event_columns = [[e.params[name] for e in events] for name in _EVENT_COLUMNS]
        revs, moves, keys = rows.revisions, rows.advances, rows.keys
        arguments = (
            rows.now, *event_columns,
            [r.event.params["id"] for r in revs], [r.doc for r in revs],
            [r.version for r in revs],
            [r.tenant for r in revs], [r.ops for r in revs], [r.units for r in revs],
            [r.actor_id for r in revs], [r.actor_name for r in revs],
            [m.id for m in moves], [m.old_version for m in moves], [m.old_hash for m in moves],
            [m.old_lock_seq for m in moves], [m.version for m in moves],
            [m.state for m in moves], [m.updated_by for m in moves],
            [m.head_hash for m in moves],
            [s.doc for s in rows.snapshots], [s.version for s in rows.snapshots],
            [s.state for s in rows.snapshots],
            [k.doc for k in keys], [k.user_id for k in keys], [k.key for k in keys],
            [k.reply for k in keys],
            [e.params["idea"] for e in events],
            *_columns(rows.index.removed, 4), *_columns(rows.index.added, 4),
            *_columns(rows.index.vocabulary, 2),
        )
        try:
            found = await self.conn.fetch(_STORE, *arguments)
        except asyncpg.SerializationError as exc:
            if MOVED_MESSAGE in str(exc):
                raise HeadMoved(str(exc)) from exc
            raise
        except Exception as exc:
            if self.optimistic and not isinstance(exc, asyncpg.PostgresError):
                # Outside a transaction block this statement *is* the commit: when the
                # connection failed under it, nobody knows whether it committed.
                raise CommitFailed(Unavailable("storage is unavailable; the write may or "
                                               "may not have been applied")) from exc
            raise
        seqs = {record["id"]: record["seq"] for record in found}
        if len(seqs) != len(events):
            raise RuntimeError(f"inserted {len(events)} events but got {len(seqs)} seqs back")
        for event in events:
            event.event["seq"] = seqs[event.params["id"]]
        return int(found[0]["moved"]) if found else 0
