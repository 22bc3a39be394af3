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
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "REVIEW_FINAL",
    "UTCDateTime",
    "archived_events",
    "chains",
    "comments",
    "documents",
    "event_archives",
    "events",
    "history_floors",
    "ideas",
    "idempotency_keys",
    "locks",
    "metadata",
    "notification_marks",
    "notification_reads",
    "notifications",
    "purged_heads",
    "reviews",
    "revisions",
    "search_terms",
    "search_words",
    "snapshots",
    "workflow_instances",
    "workflow_steps",
    "workflow_templates",
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
    # The idea the document belongs to, fixed when it is created (null for none).
    Column("idea", String(36), nullable=True),
    Index("ix_documents_tenant_created", "tenant", "created_at", "id"),
    Index("ix_documents_tenant_kind_created", "tenant", "kind", "created_at", "id"),
    Index("ix_documents_idea", "idea"),
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
    Column("idea", String(36), nullable=True),
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
    Index("ix_events_tenant_idea_seq", "tenant", "idea", "seq"),
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

# Where each hash chain continues after ``archive --purge``: the seq and hash of the chain's
# last event that left the database. ``chain`` is a document id, or ``tenant:<tenant>``.
purged_heads = Table(
    "purged_heads",
    metadata,
    Column("chain", String(160), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# History retention: each document's oldest replayable version (a snapshot is kept there);
# revisions and snapshots below it were removed. The database refuses deleting a revision
# at or above its document's floor.
history_floors = Table(
    "history_floors",
    metadata,
    Column("doc", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("ts", UTCDateTime, nullable=False),
)

# An idea: the documents of one investment case, one per stage or more.
ideas = Table(
    "ideas",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("title", Text, nullable=False),
    Column("ticker", String(32), nullable=True),
    Column("created_by_id", String(128), nullable=False),
    Column("created_by_name", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_ideas_tenant_created", "tenant", "created_at", "id"),
)

# Comments form threads: ``thread`` is the id of the thread's first comment (its own id for
# that one). Resolution belongs to the thread: every comment of it carries ``resolved``, and
# the first comment says by whom and when.
comments = Table(
    "comments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("doc", String(36), nullable=False),
    Column("thread", String(36), nullable=False),
    Column("parent", String(36), nullable=True),
    Column("path", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("author_id", String(128), nullable=False),
    Column("author_name", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("edited_at", UTCDateTime, nullable=True),
    Column("resolved", Boolean, nullable=False, server_default=false()),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("resolved_by", String(128), nullable=True),
    Column("resolved_by_name", String(256), nullable=True),
    Index("ix_comments_doc_created", "doc", "created_at"),
    Index("ix_comments_thread", "thread"),
)

# Reviews of a document: any number, but one open review per reviewer (the partial unique
# index holds that even against two assignments racing).
REVIEW_FINAL = ("approved", "withdrawn")
reviews = Table(
    "reviews",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("doc", String(36), nullable=False),
    Column("idea", String(36), nullable=True),
    Column("stage", String(32), nullable=False),
    Column("reviewer_id", String(128), nullable=False),
    Column("reviewer_name", String(256), nullable=False),
    Column("assigned_by_id", String(128), nullable=False),
    Column("assigned_by_name", String(256), nullable=False),
    Column("status", String(32), nullable=False),
    Column("due", UTCDateTime, nullable=True),
    Column("note", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_reviews_tenant_created", "tenant", "created_at", "id"),
    Index("ix_reviews_tenant_reviewer", "tenant", "reviewer_id", "status"),
    Index("ix_reviews_doc", "doc"),
    Index("ix_reviews_idea", "idea"),
    Index("uq_reviews_open_per_reviewer", "doc", "reviewer_id", unique=True,
          sqlite_where=text("status NOT IN ('approved', 'withdrawn')"),
          postgresql_where=text("status NOT IN ('approved', 'withdrawn')")),
)

# Notifications are addressed to one user or to a role of a tenant. ``seq`` orders them and
# lets "read all" be one watermark per user instead of a row per notification.
notifications = Table(
    "notifications",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("tenant", String(128), nullable=False),
    Column("user_id", String(128), nullable=True),
    Column("role", String(32), nullable=True),
    Column("type", String(32), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("doc", String(36), nullable=True),
    Column("idea", String(36), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_notifications_user", "tenant", "user_id", "seq"),
    Index("ix_notifications_role", "tenant", "role", "seq"),
)

# One row per notification a user marked read.
notification_reads = Table(
    "notification_reads",
    metadata,
    Column("seq", BigInteger, nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    PrimaryKeyConstraint("tenant", "user_id", "seq"),
)

# "Read all": every notification up to ``read_through`` counts as read for that user.
notification_marks = Table(
    "notification_marks",
    metadata,
    Column("tenant", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("read_through", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant", "user_id"),
)

# Hash-chain heads of events that belong to no document (one chain per tenant).
chains = Table(
    "chains",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("head", String(64), nullable=True),
)


# Workflows (docs/workflows.md). A template is one row whose ``version`` grows when a
# published template is edited; its steps are JSON text, copied into ``workflow_steps``
# when an instance starts, so an instance runs the template as it was then.
workflow_templates = Table(
    "workflow_templates",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("steps", Text, nullable=False),
    Column("created_by_id", String(128), nullable=False),
    Column("created_by_name", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_workflow_templates_tenant_created", "tenant", "created_at", "id"),
)

# Every step move locks its instance's row first, so moves of one instance serialise.
workflow_instances = Table(
    "workflow_instances",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("template_id", String(36), nullable=False),
    Column("template_version", Integer, nullable=False),
    Column("template_name", String(200), nullable=False),
    Column("idea", String(36), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_by_id", String(128), nullable=False),
    Column("created_by_name", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
    Index("ix_workflow_instances_tenant_created", "tenant", "created_at", "id"),
    Index("ix_workflow_instances_idea", "tenant", "idea", "status"),
)

# One row per step of an instance; ``ready_at`` starts the cycle time that ``completed_at``
# ends (the step cycle histogram).
workflow_steps = Table(
    "workflow_steps",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("instance", String(36), nullable=False),
    Column("position", Integer, nullable=False),
    Column("key", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("role", String(32), nullable=False),
    Column("required", Boolean, nullable=False),
    Column("after", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("assignee_id", String(128), nullable=True),
    Column("assignee_name", String(256), nullable=True),
    Column("data", Text, nullable=False),
    Column("ready_at", UTCDateTime, nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("instance", "key", name="uq_workflow_steps_instance_key"),
    Index("ix_workflow_steps_instance", "instance", "position"),
)


# -- search (docs/protocol.md section 16; persistence/search_index.py) ----------------------
#
# ``search_terms``: each distinct word of each document, with where it occurs (``place``: 1
# title, 2 state, 3 both). The primary key serves the query (a tenant's documents holding a
# word) as an index-only scan, and the write path's deletes by full key.
search_terms = Table(
    "search_terms",
    metadata,
    Column("tenant", String(128), nullable=False),
    Column("word", String(40), nullable=False),
    Column("doc", String(36), nullable=False),
    Column("place", SmallInteger, nullable=False),
    PrimaryKeyConstraint("tenant", "word", "doc", "place"),
    # The few terms that occur in titles, which rank first: found without reading the many
    # that occur only in states.
    Index("ix_search_terms_title", "tenant", "word", "doc",
          sqlite_where=text("place <> 2"), postgresql_where=text("place <> 2")),
)

# ``search_words``: the vocabulary of one-edit matching. Every indexed word of four or more
# characters under its own key and under each of its deletion neighbours; two words one edit
# apart share a key. Shared by all tenants: it only widens a query word into candidate words,
# which are then looked up in the caller's tenant's ``search_terms``.
search_words = Table(
    "search_words",
    metadata,
    Column("key", String(40), nullable=False),
    Column("word", String(40), nullable=False),
    PrimaryKeyConstraint("key", "word"),
)
