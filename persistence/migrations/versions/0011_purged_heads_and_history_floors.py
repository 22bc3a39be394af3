"""Purged chain heads and history floors: what retention removed, and where each resumes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

``archive --purge`` records, for each hash chain it cut, the seq and hash of the last event it
removed, so that ``GET /api/documents/{id}/verify`` checks the live events against it instead
of an empty hash. History retention records each document's *floor*, the oldest version still
replayable, and the database lets a revision be deleted only below its document's floor, as it
lets an event be deleted only once archived.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from persistence.schema import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

REFUSE_DELETE = ("coedit: revisions is append-only; DELETE refused "
                 "(only history retention removes versions below the document floor)")


def upgrade() -> None:
    op.create_table(
        "purged_heads",
        sa.Column("chain", sa.String(160), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "history_floors",
        sa.Column("doc", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("ts", UTCDateTime, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION coedit_guard_revisions() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' AND EXISTS (
                    SELECT 1 FROM history_floors
                    WHERE doc = OLD.doc AND OLD.version < history_floors.version) THEN
                    RETURN OLD;
                END IF;
                IF TG_OP = 'DELETE' THEN
                    RAISE EXCEPTION '{REFUSE_DELETE}' USING ERRCODE = 'restrict_violation';
                END IF;
                RAISE EXCEPTION 'coedit: revisions is append-only; % refused', TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        op.execute("DROP TRIGGER revisions_append_only ON revisions")
        op.execute(
            "CREATE TRIGGER revisions_append_only BEFORE UPDATE OR DELETE ON revisions "
            "FOR EACH ROW EXECUTE FUNCTION coedit_guard_revisions()"
        )
        return
    op.execute("DROP TRIGGER revisions_no_delete")
    op.execute(
        "CREATE TRIGGER revisions_no_delete BEFORE DELETE ON revisions "
        "WHEN NOT EXISTS (SELECT 1 FROM history_floors "
        "WHERE doc = OLD.doc AND OLD.version < history_floors.version) "
        f"BEGIN SELECT RAISE(ABORT, '{REFUSE_DELETE}'); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER revisions_append_only ON revisions")
        op.execute(
            "CREATE TRIGGER revisions_append_only BEFORE UPDATE OR DELETE ON revisions "
            "FOR EACH ROW EXECUTE FUNCTION coedit_refuse_change()"
        )
        op.execute("DROP FUNCTION coedit_guard_revisions()")
    else:
        op.execute("DROP TRIGGER revisions_no_delete")
        op.execute(
            "CREATE TRIGGER revisions_no_delete BEFORE DELETE ON revisions "
            "BEGIN SELECT RAISE(ABORT, 'coedit: revisions is append-only; DELETE refused'); END"
        )
    op.drop_table("history_floors")
    op.drop_table("purged_heads")
