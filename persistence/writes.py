"""The rules of the versioned write (docs/protocol.md section 4) for a batch of patches.

The path of one write, from the socket to the broker, is told once, in docs/architecture.md
("The path of one write"); this module is its step 4: :func:`write_patches` reads what a
batch needs, applies every patch in submission order against the document as the patches
before it in the batch left it (so a patch sees an earlier one of its batch exactly as if
that one had committed alone first), and writes what they made. A refused patch changes
nothing and gets its own error.

How each read and write reaches the database is the business of a
:class:`persistence.write_statements.WriteStatements` (:mod:`persistence.batch_commit` picks
it and tries a batch again when an optimistic write finds a document moved), so these rules
run unchanged on both databases. Nothing here is seen by anyone before the commit, so a
conflict that lists a delta of the same batch lists a committed one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Row

from persistence.audit import AuditContext, EventDraft, PreparedEvent, prepare_event
from persistence.errors import BadRequest, CoeditError, Conflict, NotFound, TooLarge
from persistence.facts import Delta, Fact
from persistence.jsonutil import dumps, loads
from persistence.locks import refuse_locked_paths
from persistence.patching import (
    apply_ops,
    redact_at_paths,
    redact_ops,
    values_at,
    write_units,
    written_paths,
)
from persistence.rebase import LaterVersion, rebase_patch
from persistence.search_index import IndexChanges, document_words, holds_words
from persistence.timeutil import format_ts
from persistence.write_statements import (
    Advance,
    BatchRows,
    DocumentRow,
    LockRow,
    NewKey,
    NewRevision,
    NewSnapshot,
    RememberedKey,
    Revision,
    WriteStatements,
)

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "PatchRequest",
    "WriteResult",
    "WriteRules",
    "delta_from_revision",
    "serialize_state",
    "write_patches",
]

IDEMPOTENCY_WINDOW = timedelta(hours=24)

KeyOf = tuple[str, str, str]  # (document, user, idempotency key)


@dataclass(slots=True)
class WriteResult:
    """What an accepted (or replayed duplicate) write tells its caller."""

    reply: dict[str, Any]
    delta: Delta | None  # None for a duplicate: nothing new happened
    document: dict[str, Any] | None

    @property
    def facts(self) -> tuple[Fact, ...]:
        return () if self.delta is None else (self.delta,)


@dataclass(frozen=True, slots=True)
class PatchRequest:
    """One patch whose arguments were checked, waiting for its batch."""

    ctx: AuditContext
    doc_id: str
    base: int
    ops: list[dict[str, Any]]
    key: str | None
    session: str | None
    lock_token: int | None

    @property
    def key_of(self) -> KeyOf | None:
        return None if self.key is None else (self.doc_id, self.ctx.actor.id, self.key)


@dataclass(frozen=True, slots=True)
class WriteRules:
    """The store's settings that decide what a write stores."""

    snapshot_every: int
    max_state_bytes: int
    redact: frozenset[str]
    # Keep the search index current in each write's transaction (off only to measure what
    # that costs: search then misses what such writes changed).
    search_index: bool = True


def serialize_state(state: dict[str, Any], max_bytes: int) -> str:
    """The state as stored, or ``too_large`` when its JSON exceeds ``max_bytes``."""
    text = dumps(state)
    if len(text.encode("utf-8")) > max_bytes:
        raise TooLarge(f"document state would be larger than {max_bytes} bytes as JSON",
                       limit=max_bytes)
    return text


def delta_from_revision(tenant: str, row: Revision | Row[Any]) -> Delta:
    """A committed version of a document of ``tenant`` (a ``revisions`` row of any read)."""
    return Delta(tenant, row.doc, row.version, loads(row.ops),
                 {"id": row.actor_id, "name": row.actor_name}, format_ts(row.ts), row.event_seq)


@dataclass(slots=True)
class _Written:
    """A version this batch wrote; its rows are complete once its event has a seq."""

    request: PatchRequest
    version: int
    units: list[str]
    ops_text: str
    state_text: str
    event: PreparedEvent
    reply: dict[str, Any]
    delta: Delta  # its event seq is set after the insert
    # Search: whether the values it overwrote or wrote hold any word; if none of a
    # document's writes did, its words cannot have changed and its index rows are not read.
    touches_words: bool = True


@dataclass(slots=True)
class _Head:
    """A document as the batch has left it so far: the locked row plus this batch's writes."""

    row: DocumentRow
    version: int
    state_text: str
    head_hash: str | None
    written: list[_Written] = field(default_factory=list)

    @classmethod
    def of(cls, row: DocumentRow) -> _Head:
        return cls(row, row.version, row.state, row.head_hash)


class _Batch:
    """The reads, the per-patch rules and the writes of one batch transaction."""

    def __init__(self, rules: WriteRules, now: datetime, rows: Sequence[DocumentRow]) -> None:
        self.rules = rules
        self.now = now
        self.now_text = format_ts(now)  # every write of the batch is stamped with it
        self.heads = {row.id: _Head.of(row) for row in rows}
        self.stored_keys: dict[KeyOf, RememberedKey] = {}  # key rows found, expired or not
        self.new_keys: dict[KeyOf, dict[str, Any]] = {}  # replies of this batch's keyed writes
        self.live_locks: dict[str, list[LockRow]] = {}
        self.committed: dict[str, list[Revision]] = {}  # revisions after the stalest base
        self.written: list[_Written] = []
        # Conflict deltas of versions this batch wrote: their event seqs come with the insert.
        self.awaiting_seq: list[tuple[Delta, _Written]] = []

    async def read(self, sql: WriteStatements, requests: Sequence[PatchRequest]) -> None:
        """Everything the rules need besides the rows: keys, live locks, later revisions."""
        keyed = [r for r in requests if r.key is not None and r.doc_id in self.heads]
        if keyed:
            wanted = {r.key_of for r in keyed}
            found = await sql.remembered_keys(sorted({r.doc_id for r in keyed}),
                                              sorted({r.key for r in keyed if r.key is not None}))
            for key_row in found:
                key_of = (key_row.doc, key_row.user_id, key_row.key)
                if key_of in wanted:
                    self.stored_keys[key_of] = key_row
        ever_locked = [doc for doc, head in self.heads.items() if head.row.lock_seq]
        if ever_locked:
            for lock_row in await sql.live_locks(ever_locked, self.now):
                self.live_locks.setdefault(lock_row.doc, []).append(lock_row)
        stalest: dict[str, int] = {}
        for request in requests:
            head = self.heads.get(request.doc_id)
            if head is not None and request.base < head.version:
                stalest[request.doc_id] = min(request.base,
                                              stalest.get(request.doc_id, request.base))
        for doc, base in stalest.items():
            # Up to the version read: without row locks, later ones may have committed since
            # (the write then finds the document moved and the batch runs again).
            read = self.heads[doc].row.version
            self.committed[doc] = [row for row in await sql.revisions_after(doc, base)
                                   if row.version <= read]

    def apply(self, request: PatchRequest) -> WriteResult:
        """One patch against the document as the batch left it; raises its refusal."""
        ctx, doc_id, base, ops = request.ctx, request.doc_id, request.base, request.ops
        head = self.heads.get(doc_id)
        if head is None or head.row.tenant != ctx.tenant:
            raise NotFound(f"no document {doc_id!r}")
        key_of = request.key_of
        if key_of is not None:
            previous = self._remembered_reply(key_of)
            if previous is not None:
                return WriteResult({**previous, "duplicate": True}, None, None)
        if head.row.archived_at is not None:
            raise Conflict("the document is archived; an admin may reopen it", archived=True)
        if base > head.version:
            raise BadRequest(f"base {base} is ahead of the current version {head.version}",
                             current_version=head.version)
        paths = written_paths(ops)
        # A document never locked has no lock to check, unless a token claims one.
        if head.row.lock_seq or request.lock_token is not None:
            refuse_locked_paths(self.live_locks.get(doc_id, ()), paths,
                                session=request.session, lock_token=request.lock_token,
                                now=self.now)
        state = loads(head.state_text)  # a private copy: a failing patch leaves no trace
        units = write_units(ops, state)  # a splice's unit is its path: carrying keeps them
        rebased = base < head.version
        if rebased:
            ops = self._rebase(head, base, ops, units, state)
        before = values_at(state, paths)
        new_state = apply_ops(state, ops)
        state_text = serialize_state(new_state, self.rules.max_state_bytes)
        after = values_at(new_state, paths, dash_is_last=True)
        version = head.version + 1
        redact = self.rules.redact
        event = prepare_event(
            ctx,
            EventDraft("patch.applied", doc_id, head.row.kind, version, {
                "ops": redact_ops(ops, redact),
                "before": redact_at_paths(before, redact),
                "after": redact_at_paths(after, redact),
                "base": base,
                "rebased": rebased,
            }, head.row.idea),
            ts=self.now, prev_hash=head.head_hash,
        )
        reply: dict[str, Any] = {"version": version}
        if rebased:
            reply["rebased"] = True
        ts = self.now_text
        delta = Delta(ctx.tenant, doc_id, version, ops, ctx.actor.public(), ts, None)
        written = _Written(request, version, units, dumps(ops), state_text, event, reply, delta,
                           holds_words(before) or holds_words(after))
        head.version, head.state_text, head.head_hash = version, state_text, event.hash
        head.written.append(written)
        self.written.append(written)
        if key_of is not None:
            self.new_keys[key_of] = reply
        row = head.row
        document = {
            "id": row.id, "kind": row.kind, "idea": row.idea, "title": row.title,
            "version": version,
            "state": new_state, "created_at": format_ts(row.created_at), "updated_at": ts,
            "updated_by": ctx.actor.id,
        }
        return WriteResult(reply, delta, document)

    def _remembered_reply(self, key_of: KeyOf) -> dict[str, Any] | None:
        if key_of in self.new_keys:
            return self.new_keys[key_of]
        row = self.stored_keys.get(key_of)
        if row is None or row.created_at < self.now - IDEMPOTENCY_WINDOW:
            return None
        return loads(row.reply)  # type: ignore[no-any-return]

    def _rebase(
        self, head: _Head, base: int, ops: list[dict[str, Any]], units: list[str],
        state: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """The patch as it applies after every version since ``base`` (committed, or written
        earlier in this batch): as it is, or with its splices carried past theirs. Refuses
        with ``conflict`` where its units overlap theirs otherwise."""
        committed = [row for row in self.committed.get(head.row.id, ()) if row.version > base]
        ours = [w for w in head.written if w.version > base]
        first = committed[0].version if committed else ours[0].version if ours else None
        if first != base + 1:
            # History retention removed the versions right after the base: they can be
            # neither compared nor sent as conflict deltas, so the client must read again.
            raise BadRequest(f"base {base} is older than the history kept for this document; "
                             "read it again and patch the current version",
                             current_version=head.version)
        later = [LaterVersion(row.ops, loads(row.units)) for row in committed]
        later += [LaterVersion(w.ops_text, w.units) for w in ours]
        rebased = rebase_patch(ops, units, state, later)
        if rebased.overlapping or len(committed) + len(ours) != head.version - base:
            deltas = [delta_from_revision(head.row.tenant, row) for row in committed]
            for w in ours:
                # Its own copy, as a committed revision would be read back.
                delta = Delta(w.delta.tenant, w.delta.doc, w.delta.version,
                              loads(w.ops_text), dict(w.delta.actor), w.delta.ts, None)
                self.awaiting_seq.append((delta, w))
                deltas.append(delta)
            raise Conflict(
                f"the patch overlaps writes made after version {base}",
                current_version=head.version,
                your_version=base,
                paths=rebased.overlapping,
                deltas=deltas,
            )
        return rebased.ops

    async def flush(self, sql: WriteStatements) -> None:
        """Write what the accepted patches made, in as few statements as the batch allows."""
        if not self.written:
            return
        rows = BatchRows(self.now, events=[w.event for w in self.written])
        advanced = [head for head in self.heads.values() if head.written]
        rows.advances = [
            Advance(head.row.id, head.row.version, head.row.head_hash, head.row.lock_seq,
                    head.version, head.state_text,
                    head.written[-1].request.ctx.actor.id, head.head_hash)
            for head in advanced
        ]
        rows.revisions = [
            NewRevision(w.request.doc_id, w.version, w.request.ctx.tenant, w.ops_text,
                        dumps(w.units), w.request.ctx.actor.id, w.request.ctx.actor.name,
                        w.event)
            for w in self.written
        ]
        rows.snapshots = [NewSnapshot(w.request.doc_id, w.version, w.state_text)
                          for w in self.written if w.version % self.rules.snapshot_every == 0]
        rows.keys = [
            NewKey(*key_of, dumps(w.reply), replaces_expired=key_of in self.stored_keys)
            for w in self.written if (key_of := w.request.key_of) is not None
        ]
        if self.rules.search_index:
            rows.index = _index_changes(advanced)
        moved = await sql.store(rows)
        # The row locks make a mismatch unreachable; refuse rather than fork the history
        # where the driver counts rows (the revisions' primary key (doc, version) would
        # refuse a forked version where it does not).
        if moved is not None and moved != len(advanced):
            raise Conflict("document changed during the write",
                           current_version=advanced[0].row.version)
        for w in self.written:
            w.delta.event = w.event.seq
        for delta, w in self.awaiting_seq:
            delta.event = w.event.seq


def _index_changes(advanced: Sequence[_Head]) -> IndexChanges:
    """Search: the index rows between each document's state as read and as written."""
    changes = IndexChanges()
    for head in advanced:
        if not any(w.touches_words for w in head.written):
            continue
        row = head.row
        changes.extend(row.tenant, row.id, document_words(row.title, loads(row.state)),
                       document_words(row.title, loads(head.state_text)))
    return changes.sort()


async def write_patches(
    sql: WriteStatements,
    requests: Sequence[PatchRequest],
    *,
    rules: WriteRules,
    clock: Callable[[], datetime],
) -> list[WriteResult | CoeditError]:
    """Apply ``requests`` in order inside the caller's transaction: each gets its result or
    its own refusal. Database errors propagate and fail the whole batch.

    ``clock`` is read once, after that: it is the time of every write of the batch, and the
    instant against which locks and idempotency keys are live.
    """
    batch_ids = sorted({r.doc_id for r in requests})
    rows = await sql.read_documents(batch_ids)
    batch = _Batch(rules, clock(), rows)
    await batch.read(sql, requests)
    outcomes: list[WriteResult | CoeditError] = []
    for request in requests:
        try:
            outcomes.append(batch.apply(request))
        except CoeditError as refusal:
            outcomes.append(refusal)
    await batch.flush(sql)
    return outcomes
