"""The versioned write's statements in PostgreSQL's own SQL, on a plain asyncpg connection.

The same reads and writes as :class:`persistence.write_sql.CoreWriteStatements`, for the one
path that runs on every edit (:mod:`persistence.batch_commit` tells the optimistic path as a
whole). Three things differ besides the driver:

- Lists of keys travel as arrays (``= ANY($1::varchar[])``) and the rows a batch writes as
  one JSON text per table (``json_to_recordset``), so each statement has one text whatever
  the batch's size and asyncpg prepares it once per connection.
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

from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg

from persistence.errors import Unavailable
from persistence.jsonutil import dumps
from persistence.timeutil import format_ts
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
# $1 is the batch's instant; $2-$9 the rows of each table as JSON (one array of objects each,
# see _store_arguments): the events (with their place in the batch), the revisions (with the
# id of their event), the document rows' moves (with the head and lock counter each was read
# at), the snapshots, the idempotency keys, and the search index's rows (removed terms, added
# terms, vocabulary; see persistence/search_index.py); $10 how many documents move.
# coedit_check_moved raises (SQLSTATE 40001), undoing the whole statement, unless every
# document row was still as read.
_STORE = """
WITH ev AS (
    INSERT INTO events (id, tenant, type, doc, kind, version, actor_id, actor_name,
                        actor_kind, source, correlation_id, ts, data, prev_hash, hash, idea)
    SELECT id, tenant, type, doc, kind, version, actor_id, actor_name, actor_kind, source,
           correlation_id, ts, data, prev_hash, hash, idea
    FROM json_to_recordset($2::json)
         AS e(id varchar, tenant varchar, type varchar, doc varchar, kind varchar, version int,
              actor_id varchar, actor_name varchar, actor_kind varchar, source varchar,
              correlation_id varchar, ts timestamptz, data text, prev_hash varchar,
              hash varchar, idea varchar, position int)
    ORDER BY position
    RETURNING id, seq
), rev AS (
    INSERT INTO revisions (doc, version, tenant, ops, units, actor_id, actor_name, ts,
                           event_seq)
    SELECT r.doc, r.version, r.tenant, r.ops, r.units, r.actor_id, r.actor_name, $1, ev.seq
    FROM json_to_recordset($3::json)
         AS r(event_id varchar, doc varchar, version int, tenant varchar, ops text,
              units text, actor_id varchar, actor_name varchar)
    JOIN ev ON ev.id = r.event_id
), moved AS (
    UPDATE documents AS d
    SET version = m.version, state = m.state, updated_at = $1, updated_by = m.updated_by,
        head_hash = m.head_hash
    FROM json_to_recordset($4::json)
         AS m(id varchar, old_version int, old_hash varchar, old_lock_seq bigint, version int,
              state text, updated_by varchar, head_hash varchar)
    WHERE d.id = m.id AND d.version = m.old_version
      AND d.head_hash IS NOT DISTINCT FROM m.old_hash AND d.lock_seq = m.old_lock_seq
    RETURNING d.id
), snap AS (
    INSERT INTO snapshots (doc, version, state, ts)
    SELECT doc, version, state, $1
    FROM json_to_recordset($5::json) AS s(doc varchar, version int, state text)
), remembered AS (
    INSERT INTO idempotency_keys (doc, user_id, key, reply, created_at)
    SELECT doc, user_id, key, reply, $1
    FROM json_to_recordset($6::json) AS k(doc varchar, user_id varchar, key varchar, reply text)
    ON CONFLICT (doc, user_id, key) DO UPDATE
        SET reply = EXCLUDED.reply, created_at = EXCLUDED.created_at
), unindexed AS (
    -- Search: a term's row is removed and its new one added (never the same row), so the two
    -- CTEs cannot meet; the rows come sorted, so concurrent batches lock in one order.
    DELETE FROM search_terms AS t
    USING json_to_recordset($7::json) AS x(tenant varchar, word varchar, doc varchar,
                                            place smallint)
    WHERE t.tenant = x.tenant AND t.word = x.word AND t.doc = x.doc AND t.place = x.place
), indexed AS (
    INSERT INTO search_terms (tenant, word, doc, place)
    SELECT tenant, word, doc, place
    FROM json_to_recordset($8::json) AS x(tenant varchar, word varchar, doc varchar,
                                           place smallint)
    ON CONFLICT DO NOTHING
), vocabulary AS (
    INSERT INTO search_words (key, word)
    SELECT key, word FROM json_to_recordset($9::json) AS w(key varchar, word varchar)
    ON CONFLICT DO NOTHING
)
SELECT ev.id, ev.seq, coedit_check_moved($10::int, (SELECT count(*) FROM moved)) AS moved
FROM ev
"""

_REVISION_COLUMNS = ("event_id", "doc", "version", "tenant", "ops", "units", "actor_id",
                     "actor_name")
_MOVE_COLUMNS = ("id", "old_version", "old_hash", "old_lock_seq", "version", "state",
                 "updated_by", "head_hash")
_SNAPSHOT_COLUMNS = ("doc", "version", "state")
_KEY_COLUMNS = ("doc", "user_id", "key", "reply")
_TERM_COLUMNS = ("tenant", "word", "doc", "place")
_WORD_COLUMNS = ("key", "word")


def _records(columns: tuple[str, ...], rows: Iterable[Sequence[object]]) -> str:
    """Rows as the JSON array of objects that ``json_to_recordset`` reads.

    One text per table instead of an array per column: asyncpg checks and encodes every
    element of every array parameter in Python (there were fifty), which cost more of a
    write's CPU than the JSON encoder's one pass in C and PostgreSQL's parse of it.
    """
    return dumps([dict(zip(columns, row, strict=True)) for row in rows])


def _store_arguments(rows: BatchRows) -> tuple[object, ...]:
    # An event's parameters are its row already; its place in the batch orders the seqs.
    events = dumps([{**e.params, "ts": format_ts(e.params["ts"]), "position": position}
                    for position, e in enumerate(rows.events)])
    return (
        rows.now,
        events,
        _records(_REVISION_COLUMNS, (
            (r.event.params["id"], r.doc, r.version, r.tenant, r.ops, r.units, r.actor_id,
             r.actor_name) for r in rows.revisions)),
        _records(_MOVE_COLUMNS, (
            (m.id, m.old_version, m.old_hash, m.old_lock_seq, m.version, m.state,
             m.updated_by, m.head_hash) for m in rows.advances)),
        _records(_SNAPSHOT_COLUMNS, rows.snapshots),
        _records(_KEY_COLUMNS, ((k.doc, k.user_id, k.key, k.reply) for k in rows.keys)),
        _records(_TERM_COLUMNS, rows.index.removed),
        _records(_TERM_COLUMNS, rows.index.added),
        _records(_WORD_COLUMNS, rows.index.vocabulary),
        len(rows.advances),
    )


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
        arguments = _store_arguments(rows)
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
            event.inserted_seq = seqs[event.params["id"]]
        return int(found[0]["moved"]) if found else 0
