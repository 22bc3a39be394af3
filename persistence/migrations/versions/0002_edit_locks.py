"""Edit locks: leases stored with the documents, and a per-document fencing counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from persistence.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(
            sa.Column("lock_seq", sa.BigInteger, nullable=False, server_default="0")
        )
    op.create_table(
        "locks",
        sa.Column("doc", sa.String(36), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("holder_session", sa.String(160), nullable=False),
        sa.Column("holder_user_id", sa.String(128), nullable=False),
        sa.Column("holder_user_name", sa.String(256), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("ttl_ms", sa.Integer, nullable=False),
        sa.Column("acquired_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("doc", "path"),
    )
    op.create_index("ix_locks_expires", "locks", ["expires_at"])
    op.create_index("ix_locks_holder", "locks", ["holder_session"])
    op.create_index("ix_locks_node", "locks", ["node"])


def downgrade() -> None:
    op.drop_table("locks")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("lock_seq")
