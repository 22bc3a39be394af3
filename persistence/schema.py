"""Tables of coedit, in SQLAlchemy Core, shared by SQLite and PostgreSQL.

States and event payloads are stored as JSON *text*, not JSONB: the bytes written are the
bytes hashed, the 1 MiB limit is measured on exactly what is stored, and both databases
behave the same. ``revisions`` keeps the unredacted ops of every version (the delta log that
catch-up and replay read); ``events`` is the audit log, redacted and hash-chained.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "UTCDateTime",
    "archived_events",
    "chains",
    "comments",
    "documents",
    "event_archives",
    "events",
    "idempotency_keys",
    "locks",
    "metadata",
    "reviews",
    "revisions",
    "snapshots",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite keeps no zone, so we store UTC there)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


metadata = MetaData()

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
SeqType = BigInteger().with_variant(Integer(), "sqlite")

documents = Table(
    "documents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("title", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("head_hash", String(64), nullable=True),
    # Fencing tokens: only grows, bumped under the row lock for every lock granted.
    Column("lock_seq", BigInteger, nullable=False, server_default="0"),
    # Set while the document is archived: readable, not writable.
    Column("archived_at", UTCDateTime, nullable=True),
    Index("ix_documents_tenant_created", "tenant", "created_at", "id"),
    Index("ix_documents_tenant_kind_created", "tenant", "kind", "created_at", "id"),
)

revisions = Table(
    "revisions",
    metadata,
    Column("doc", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("ops", Text, nullable=False),
    Column("units", Text, nullable=False),
    Column("actor_id", String(128), nullable=False),
    Column("actor_name", String(256), nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("event_seq", SeqType, nullable=False),
    PrimaryKeyConstraint("doc", "version"),
    Index("ix_revisions_doc_ts", "doc", "ts"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("doc", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("doc", "version"),
)

events = Table(
    "events",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("tenant", String(128), nullable=False),
    Column("type", String(64), nullable=False),
    Column("doc", String(36), nullable=True),
    Column("kind", String(32), nullable=True),
    Column("version", Integer, nullable=True),
    Column("actor_id", String(128), nullable=False),
    Column("actor_name", String(256), nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("correlation_id", String(128), nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=True),
    Column("hash", String(64), nullable=False),
    Index("ix_events_tenant_seq", "tenant", "seq"),
    Index("ix_events_doc_seq", "doc", "seq"),
    Index("ix_events_tenant_type_seq", "tenant", "type", "seq",
          postgresql_ops={"type": "varchar_pattern_ops"}),
    Index("ix_events_tenant_kind_seq", "tenant", "kind", "seq"),
    Index("ix_events_tenant_actor_seq", "tenant", "actor_id", "seq"),
    Index("ix_events_tenant_ts", "tenant", "ts"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("doc", String(36), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("key", String(128), nullable=False),
    Column("reply", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("doc", "user_id", "key"),
    Index("ix_idempotency_created", "created_at"),
)

# Edit locks are leases: live while expires_at is ahead, renewed by the holder's heartbeats.
locks = Table(
    "locks",
    metadata,
    Column("doc", String(36), nullable=False),
    Column("path", Text, nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("holder_session", String(160), nullable=False),
    Column("holder_user_id", String(128), nullable=False),
    Column("holder_user_name", String(256), nullable=False),
    Column("node", String(128), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("ttl_ms", Integer, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("doc", "path"),
    Index("ix_locks_expires", "expires_at"),
    Index("ix_locks_holder", "holder_session"),
    Index("ix_locks_node", "node"),
)

# Archive files written by `coedit archive`: one per tenant and month.
event_archives = Table(
    "event_archives",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(128), nullable=False),
    Column("month", String(7), nullable=False),
    Column("file", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("count", Integer, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant", "month", name="uq_event_archives_tenant_month"),
)

# The mark on each archived event; the database lets an event be deleted only once marked.
archived_events = Table(
    "archived_events",
    metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("archive_id", Integer, nullable=False),
    Index("ix_archived_events_archive", "archive_id"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("doc", String(36), nullable=False),
    Column("path", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("author_id", String(128), nullable=False),
    Column("author_name", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("resolved_by", String(128), nullable=True),
    Index("ix_comments_doc_created", "doc", "created_at"),
)

# The review of a document: who reviews it and where the review stands.
reviews = Table(
    "reviews",
    metadata,
    Column("doc", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("reviewer_id", String(128), nullable=False),
    Column("reviewer_name", String(256), nullable=False),
    Column("state", String(32), nullable=False),
    Column("assigned_by", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Hash-chain heads of events that belong to no document (one chain per tenant).
chains = Table(
    "chains",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("head", String(64), nullable=True),
)
