"""The review trail: ideas, reviews with due dates, comment threads, notifications.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Documents and events gain ``idea``. The single review per document (0005) becomes any number
of reviews, one open per reviewer: each old row moves over as one review (``in_review``
becomes ``assigned``, the other states keep their names). Comments gain threads: every old
comment starts its own thread, resolved as it was.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

from persistence.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OPEN = sa.text("status NOT IN ('approved', 'withdrawn')")


def upgrade() -> None:
    op.add_column("documents", sa.Column("idea", sa.String(36), nullable=True))
    op.create_index("ix_documents_idea", "documents", ["idea"])
    # Nullable and without a default, so no stored event is touched (they cannot be).
    op.add_column("events", sa.Column("idea", sa.String(36), nullable=True))
    op.create_index("ix_events_tenant_idea_seq", "events", ["tenant", "idea", "seq"])

    op.create_table(
        "ideas",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("ticker", sa.String(32), nullable=True),
        sa.Column("created_by_id", sa.String(128), nullable=False),
        sa.Column("created_by_name", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_ideas_tenant_created", "ideas", ["tenant", "created_at", "id"])

    _move_reviews()
    _move_comments()

    op.create_table(
        "notifications",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("doc", sa.String(36), nullable=True),
        sa.Column("idea", sa.String(36), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_notifications_user", "notifications", ["tenant", "user_id", "seq"])
    op.create_index("ix_notifications_role", "notifications", ["tenant", "role", "seq"])
    op.create_table(
        "notification_reads",
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "user_id", "seq"),
    )
    op.create_table(
        "notification_marks",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("read_through", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "user_id"),
    )


def _move_reviews() -> None:
    bind = op.get_bind()
    old = bind.execute(sa.text(
        "SELECT r.doc, r.tenant, r.reviewer_id, r.reviewer_name, r.state, r.assigned_by,"
        " r.updated_at, d.kind, d.idea FROM reviews r JOIN documents d ON d.id = r.doc"
    ).columns(updated_at=UTCDateTime)).all()
    op.drop_table("reviews")
    table = op.create_table(
        "reviews",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("doc", sa.String(36), nullable=False),
        sa.Column("idea", sa.String(36), nullable=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("reviewer_id", sa.String(128), nullable=False),
        sa.Column("reviewer_name", sa.String(256), nullable=False),
        sa.Column("assigned_by_id", sa.String(128), nullable=False),
        sa.Column("assigned_by_name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("due", UTCDateTime, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_reviews_tenant_created", "reviews", ["tenant", "created_at", "id"])
    op.create_index("ix_reviews_tenant_reviewer", "reviews", ["tenant", "reviewer_id", "status"])
    op.create_index("ix_reviews_doc", "reviews", ["doc"])
    op.create_index("ix_reviews_idea", "reviews", ["idea"])
    op.create_index("uq_reviews_open_per_reviewer", "reviews", ["doc", "reviewer_id"],
                    unique=True, sqlite_where=_OPEN, postgresql_where=_OPEN)
    statuses = {"in_review": "assigned"}
    rows = [{
        "id": str(uuid.uuid4()), "tenant": r.tenant, "doc": r.doc, "idea": r.idea,
        "stage": r.kind, "reviewer_id": r.reviewer_id, "reviewer_name": r.reviewer_name,
        # The old row kept only the assigner's id; it stands in for the name too.
        "assigned_by_id": r.assigned_by, "assigned_by_name": r.assigned_by,
        "status": statuses.get(r.state, r.state), "due": None, "note": None,
        "created_at": r.updated_at, "updated_at": r.updated_at,
    } for r in old]
    if rows:
        op.bulk_insert(table, rows)


def _move_comments() -> None:
    bind = op.get_bind()
    old = bind.execute(sa.text(
        "SELECT id, tenant, doc, path, body, author_id, author_name, created_at,"
        " resolved_at, resolved_by FROM comments"
    ).columns(created_at=UTCDateTime, resolved_at=UTCDateTime)).all()
    op.drop_index("ix_comments_doc_created", table_name="comments")
    op.drop_table("comments")
    table = op.create_table(
        "comments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("doc", sa.String(36), nullable=False),
        sa.Column("thread", sa.String(36), nullable=False),
        sa.Column("parent", sa.String(36), nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("author_id", sa.String(128), nullable=False),
        sa.Column("author_name", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("edited_at", UTCDateTime, nullable=True),
        sa.Column("resolved", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("resolved_at", UTCDateTime, nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("resolved_by_name", sa.String(256), nullable=True),
    )
    op.create_index("ix_comments_doc_created", "comments", ["doc", "created_at"])
    op.create_index("ix_comments_thread", "comments", ["thread"])
    rows = [{
        "id": c.id, "tenant": c.tenant, "doc": c.doc, "thread": c.id, "parent": None,
        "path": c.path, "body": c.body, "author_id": c.author_id,
        "author_name": c.author_name, "created_at": c.created_at, "edited_at": None,
        "resolved": c.resolved_at is not None, "resolved_at": c.resolved_at,
        "resolved_by": c.resolved_by, "resolved_by_name": c.resolved_by,
    } for c in old]
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    raise NotImplementedError("the review trail's tables cannot be folded back into one "
                              "review per document without losing reviews; restore a backup")
