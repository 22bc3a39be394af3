"""The audit log: appending hash-chained events and checking the chains.

Each document's events form a chain: an event's ``hash`` is SHA-256 over the canonical JSON of
its fields together with the ``hash`` of the same document's previous event (its
``prev_hash``). Events that belong to no document chain per tenant. The head of a document's
chain lives on its ``documents`` row, which every appender has locked already; the head of a
tenant chain lives in ``chains``, locked the same way, so two writers never link to the same
predecessor.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.jsonutil import canonical_json, loads
from persistence.schema import chains, documents, events
from persistence.timeutil import format_ts

__all__ = [
    "ACTOR_KINDS",
    "SOURCES",
    "Actor",
    "AuditContext",
    "EventDraft",
    "PreparedEvent",
    "append_event",
    "event_from_row",
    "event_hash",
    "insert_events",
    "prepare_event",
    "verify_rows",
]

ACTOR_KINDS = ("user", "bot", "system")

# Built once: on the write path, building a statement costs as much as compiling it would.
# With several rows SQLAlchemy sends one INSERT whose RETURNING rows come back in parameter
# order, so each event gets its own seq (seqs are drawn in that order too).
_INSERT_EVENTS = events.insert().returning(events.c.seq, sort_by_parameter_order=True)
# A tenant chain's head row, made by its first event. Both databases take this upsert as it
# is, so nothing here needs to know which one runs.
_ENSURE_TENANT_CHAIN = text('INSERT INTO chains ("key", head) VALUES (:key, NULL) '
                            "ON CONFLICT DO NOTHING")
SOURCES = ("ws", "http", "bulk", "system")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, as recorded in events and deltas."""

    id: str
    name: str
    kind: str = "user"

    def public(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Everything about *how* a mutation arrived that its event must record."""

    actor: Actor
    tenant: str
    source: str = "ws"
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(slots=True)
class EventDraft:
    type: str
    doc: str | None
    kind: str | None
    version: int | None
    data: dict[str, Any]
    idea: str | None = None


def event_hash(fields: dict[str, Any], prev_hash: str | None) -> str:
    """SHA-256 of the event's canonical JSON (without seq and hash) linked to ``prev_hash``.

    ``idea`` came to events later than the chain: it is hashed only when set, so events
    stored before it existed (and events of no idea) still verify as they were written.
    """
    body = {k: v for k, v in fields.items() if k not in ("seq", "hash", "prev_hash", "data")}
    return _chain_hash(body, canonical_json(fields.get("data")), prev_hash)


def _chain_hash(body: dict[str, Any], data_text: str, prev_hash: str | None) -> str:
    """The hash of an event whose ``data`` is already canonical text.

    A write encodes its event's data once, for the row: the canonical JSON of the whole
    event is that text set between the canonical JSON of the keys that sort before
    ``"data"`` and of those after it (``sort_keys`` orders keys as Python compares them), so
    the hash needs neither a second encoding of the data nor a parse of it.
    """
    if body.get("idea") is None:
        body.pop("idea", None)
    before = canonical_json({k: v for k, v in body.items() if k < "data"})[1:-1]
    after = canonical_json({k: v for k, v in body.items() if k > "data"})[1:-1]
    members = [m for m in (before, f'"data":{data_text}', after) if m]
    material = "{" + ",".join(members) + "}\n" + (prev_hash or "")
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


async def _lock_chain_head(conn: AsyncConnection, ctx: AuditContext, doc: str | None) -> str | None:
    """Lock and read the head of the chain this event joins."""
    if doc is not None:
        row = (
            await conn.execute(
                select(documents.c.head_hash).where(documents.c.id == doc).with_for_update()
            )
        ).first()
        return None if row is None else row.head_hash
    key = f"tenant:{ctx.tenant}"
    await conn.execute(_ENSURE_TENANT_CHAIN, {"key": key})
    row = (
        await conn.execute(select(chains.c.head).where(chains.c.key == key).with_for_update())
    ).one()
    return row.head  # type: ignore[no-any-return]


@dataclass(slots=True)
class PreparedEvent:
    """An event with its hash computed, waiting for the INSERT that gives it its ``seq``."""

    params: dict[str, Any]  # the ``events`` row
    inserted_seq: int | None = None

    @property
    def hash(self) -> str:
        return self.params["hash"]  # type: ignore[no-any-return]

    @property
    def seq(self) -> int:
        if self.inserted_seq is None:
            raise RuntimeError("the event has not been inserted yet: call insert_events first")
        return self.inserted_seq

    @property
    def event(self) -> dict[str, Any]:
        """The event as the API shows it (built when asked: the write path never does)."""
        return _event_view(self.inserted_seq, self.params)


def prepare_event(
    ctx: AuditContext, draft: EventDraft, *, ts: datetime, prev_hash: str | None
) -> PreparedEvent:
    """Build an event linked to ``prev_hash`` without touching the database.

    Pure, so a caller that holds the chain head (the locked document row) can prepare several
    events of one chain in a row, each linked to the one before, and insert them together.
    """
    data_text = canonical_json(draft.data)
    row = {
        "id": str(uuid.uuid4()),
        "tenant": ctx.tenant,
        "type": draft.type,
        "doc": draft.doc,
        "kind": draft.kind,
        "idea": draft.idea,
        "version": draft.version,
        "actor_id": ctx.actor.id,
        "actor_name": ctx.actor.name,
        "actor_kind": ctx.actor.kind,
        "source": ctx.source,
        "correlation_id": ctx.correlation_id,
        "ts": ts,
        "data": data_text,
        "prev_hash": prev_hash,
    }
    row["hash"] = _chain_hash(_hashed_body(row), data_text, prev_hash)
    return PreparedEvent(row)


async def insert_events(conn: AsyncConnection, prepared: list[PreparedEvent]) -> None:
    """Insert prepared events with one statement, in list order, and fill in their seqs.

    The caller keeps the chain heads: each event's ``prev_hash`` was fixed when it was
    prepared, so the events of one chain must be in chain order here.
    """
    if not prepared:
        return
    seqs = (await conn.execute(_INSERT_EVENTS, [p.params for p in prepared])).scalars().all()
    if len(seqs) != len(prepared):
        raise RuntimeError(f"inserted {len(prepared)} events but got {len(seqs)} seqs back")
    for item, seq in zip(prepared, seqs, strict=True):
        item.inserted_seq = seq


async def append_event(
    conn: AsyncConnection,
    ctx: AuditContext,
    draft: EventDraft,
    *,
    ts: datetime,
    prev_hash: str | None = None,
    head_locked: bool = False,
) -> dict[str, Any]:
    """Insert one event in the caller's transaction and move its chain head.

    ``head_locked`` says the caller already holds the document row and passes its
    ``head_hash`` as ``prev_hash``; the caller then also stores the new head itself (it is
    updating that row anyway). Returns the event as the API shows it.
    """
    if not head_locked:
        prev_hash = await _lock_chain_head(conn, ctx, draft.doc)
    prepared = prepare_event(ctx, draft, ts=ts, prev_hash=prev_hash)
    await insert_events(conn, [prepared])
    digest = prepared.hash
    if not head_locked:
        if draft.doc is not None:
            await conn.execute(
                update(documents).where(documents.c.id == draft.doc).values(head_hash=digest)
            )
        else:
            await conn.execute(
                update(chains).where(chains.c.key == f"tenant:{ctx.tenant}").values(head=digest)
            )
    return prepared.event


def event_from_row(row: Row[Any]) -> dict[str, Any]:
    """An ``events`` row as the API shows it (the same fields the hash covers)."""
    return _event_view(row.seq, row._mapping)


def _event_view(seq: int | None, columns: Mapping[Any, Any]) -> dict[str, Any]:
    """An event as the API shows it, from its ``events`` columns (stored, or about to be)."""
    return {"seq": seq, **_hashed_body(columns), "data": loads(columns["data"]),
            "prev_hash": columns["prev_hash"], "hash": columns["hash"]}


def _hashed_body(columns: Mapping[Any, Any]) -> dict[str, Any]:
    """What an event's hash covers besides its data, as the API shows it."""
    return {
        "id": columns["id"],
        "tenant": columns["tenant"],
        "type": columns["type"],
        "doc": columns["doc"],
        "kind": columns["kind"],
        "idea": columns["idea"],
        "version": columns["version"],
        "actor": {"id": columns["actor_id"], "name": columns["actor_name"],
                  "kind": columns["actor_kind"]},
        "source": columns["source"],
        "correlation_id": columns["correlation_id"],
        "ts": format_ts(columns["ts"]),
    }


def verify_rows(
    rows: list[Row[Any]], *, after: tuple[int, str] | None = None
) -> dict[str, Any]:
    """Check one chain, oldest first: every link and every hash must recompute.

    ``after`` is the seq and hash of the chain's last purged event, when its start left the
    database (``archive --purge``): the first live event must link to that hash, not to none.
    """
    previous: str | None = after[1] if after else None
    extra = {"continues_from": {"seq": after[0], "hash": after[1]}} if after else {}
    for count, row in enumerate(rows):
        event = event_from_row(row)
        if event["prev_hash"] != previous or event_hash(event, previous) != event["hash"]:
            return {"ok": False, "seq": event["seq"], "events": count, **extra}
        previous = event["hash"]
    return {"ok": True, "events": len(rows), **extra}
