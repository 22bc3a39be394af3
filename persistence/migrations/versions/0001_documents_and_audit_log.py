"""Documents, revisions, snapshots, the append-only audit log and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from persistence.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("events", "revisions")


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=True),
    )
    op.create_index("ix_documents_tenant_created", "documents", ["tenant", "created_at", "id"])
    op.create_index(
        "ix_documents_tenant_kind_created", "documents", ["tenant", "kind", "created_at", "id"]
    )

    op.create_table(
        "revisions",
        sa.Column("doc", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("ops", sa.Text, nullable=False),
        sa.Column("units", sa.Text, nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("actor_name", sa.String(256), nullable=False),
        sa.Column("ts", UTCDateTime, nullable=False),
        sa.Column("event_seq", SEQ, nullable=False),
        sa.PrimaryKeyConstraint("doc", "version"),
    )
    op.create_index("ix_revisions_doc_ts", "revisions", ["doc", "ts"])

    op.create_table(
        "snapshots",
        sa.Column("doc", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("ts", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("doc", "version"),
    )

    op.create_table(
        "events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("doc", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("actor_name", sa.String(256), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("ts", UTCDateTime, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=True),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    for name, columns in (
        ("ix_events_tenant_seq", ["tenant", "seq"]),
        ("ix_events_doc_seq", ["doc", "seq"]),
        ("ix_events_tenant_type_seq", ["tenant", "type", "seq"]),
        ("ix_events_tenant_kind_seq", ["tenant", "kind", "seq"]),
        ("ix_events_tenant_actor_seq", ["tenant", "actor_id", "seq"]),
        ("ix_events_tenant_ts", ["tenant", "ts"]),
    ):
        op.create_index(name, "events", columns)

    op.create_table(
        "idempotency_keys",
        sa.Column("doc", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("reply", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("doc", "user_id", "key"),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at"])

    op.create_table(
        "chains",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("head", sa.String(64), nullable=True),
    )

    _refuse_changes()


def _refuse_changes() -> None:
    """Make the history tables append-only in the database itself, not just in our code."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION coedit_refuse_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'coedit: % is append-only; % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION coedit_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION coedit_refuse_change()"
            )
        return
    # SQLite has no TRUNCATE: an unqualified DELETE is what would empty a table.
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'coedit: {table} is append-only; {action} refused'); "
                "END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS coedit_refuse_change() CASCADE")
    for table in ("chains", "idempotency_keys", "events", "snapshots", "revisions", "documents"):
        op.drop_table(table)
