"""Purged chain heads: where a hash chain continues once its oldest events left the database.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

``archive --purge`` records, for each chain it cut, the seq and hash of the last event it
removed, so that ``GET /api/documents/{id}/verify`` checks the live events against it instead
of an empty hash.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purged_heads",
        sa.Column("chain", sa.String(160), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("purged_heads")
