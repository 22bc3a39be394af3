"""What the versioned write's rules and its statements hand each other: one interface, and
the rows that cross it.

:mod:`persistence.writes` decides what a batch of patches reads and writes; a
:class:`WriteStatements` says how that reaches the database. There are two:
:class:`persistence.write_sql.CoreWriteStatements` (SQLAlchemy Core, any database) and
:class:`persistence.write_sql_pg.DriverWriteStatements` (PostgreSQL's own SQL on asyncpg);
:func:`persistence.batch_commit.write_transaction` chooses.

The rows a batch reads are named tuples built straight from the driver's row (``_make`` over
the columns named by the tuple's own ``_fields``, which is also how each statement lists its
columns), so the rules read attributes of one type whichever driver ran, at the cost of one
tuple per row. The rows a batch writes are built by the rules, one per written version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from persistence.audit import PreparedEvent
from persistence.search_index import IndexChanges

__all__ = [
    "Advance",
    "BatchRows",
    "DocumentRow",
    "LockRow",
    "NewKey",
    "NewRevision",
    "NewSnapshot",
    "RememberedKey",
    "Revision",
    "WriteStatements",
]


# -- what a batch reads ----------------------------------------------------------------------


class DocumentRow(NamedTuple):
    """A document as the batch read it, before any of its patches."""

    id: str
    tenant: str
    kind: str
    title: str
    version: int
    state: str
    created_at: datetime
    head_hash: str | None
    lock_seq: int  # 0 for a document never locked: it has no lock to check
    archived_at: datetime | None
    idea: str | None


class RememberedKey(NamedTuple):
    """The reply first given to a keyed write, live for 24 hours from ``created_at``."""

    doc: str
    user_id: str
    key: str
    reply: str
    created_at: datetime


class LockRow(NamedTuple):
    """An edit lock on a document the batch writes."""

    doc: str
    path: str
    holder_session: str
    holder_user_id: str
    holder_user_name: str
    token: int
    expires_at: datetime


class Revision(NamedTuple):
    """A committed version: what a stale write is rebased over, or refused by."""

    doc: str
    version: int
    ops: str
    units: str
    actor_id: str
    actor_name: str
    ts: datetime
    event_seq: int


# -- what a batch writes ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Advance:
    """A document row moving on from ``old_version``, the version the batch read."""

    id: str
    old_version: int
    old_hash: str | None  # the head the batch read, with
    old_lock_seq: int  # the lock counter it read: neither may have moved
    version: int
    state: str
    updated_by: str
    head_hash: str | None


@dataclass(frozen=True, slots=True)
class NewRevision:
    """A version's delta; its ``event_seq`` is its event's, known once that is inserted."""

    doc: str
    version: int
    tenant: str
    ops: str
    units: str
    actor_id: str
    actor_name: str
    event: PreparedEvent


class NewSnapshot(NamedTuple):
    """The full state at a version that is a multiple of the snapshot interval."""

    doc: str
    version: int
    state: str


@dataclass(frozen=True, slots=True)
class NewKey:
    doc: str
    user_id: str
    key: str
    reply: str
    replaces_expired: bool  # a row for this key exists but is past the window: replace it


@dataclass(slots=True)
class BatchRows:
    """Everything one batch writes, at one instant ``now``."""

    now: datetime
    events: list[PreparedEvent] = field(default_factory=list)
    advances: list[Advance] = field(default_factory=list)
    revisions: list[NewRevision] = field(default_factory=list)
    snapshots: list[NewSnapshot] = field(default_factory=list)
    keys: list[NewKey] = field(default_factory=list)
    # Search: the rows that keep the index current with the states written (same transaction).
    index: IndexChanges = field(default_factory=IndexChanges)


# -- the interface ---------------------------------------------------------------------------


class WriteStatements(Protocol):
    """The reads and the write of one batch."""

    async def read_documents(self, ids: Sequence[str]) -> list[DocumentRow]:
        """The documents, in id order; locked (``FOR UPDATE``) unless the statements are
        optimistic (locking in one order, batches that lock the same documents cannot
        deadlock)."""

    async def remembered_keys(self, docs: Sequence[str],
                              keys: Sequence[str]) -> list[RememberedKey]:
        """Idempotency key rows of these documents with one of these keys, live or not."""

    async def live_locks(self, docs: Sequence[str], now: datetime) -> list[LockRow]:
        """Edit locks on these documents that expire after ``now``."""

    async def revisions_after(self, doc: str, after: int) -> list[Revision]:
        """The revisions of ``doc`` after version ``after``, in version order."""

    async def store(self, rows: BatchRows) -> int | None:
        """Write the batch; fill in each event's ``seq`` in list order.

        Returns how many document rows moved on, or None where the driver cannot count
        the rows of a multi-row UPDATE. Optimistic statements raise
        :class:`persistence.write_failures.HeadMoved` instead of writing anything when a
        document is no longer as it was read.
        """
