"""Archival: archive files are recorded, and only archived events may leave the database.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from persistence.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

REFUSE_DELETE = "coedit: events is append-only; DELETE refused (archive the event first)"


def upgrade() -> None:
    op.create_table(
        "event_archives",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("file", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("tenant", "month", name="uq_event_archives_tenant_month"),
    )
    op.create_table(
        "archived_events",
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("archive_id", sa.Integer, nullable=False),
    )
    op.create_index("ix_archived_events_archive", "archived_events", ["archive_id"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION coedit_guard_events() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' AND EXISTS (
                    SELECT 1 FROM archived_events WHERE seq = OLD.seq) THEN
                    RETURN OLD;
                END IF;
                IF TG_OP = 'DELETE' THEN
                    RAISE EXCEPTION '{REFUSE_DELETE}' USING ERRCODE = 'restrict_violation';
                END IF;
                RAISE EXCEPTION 'coedit: events is append-only; % refused', TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        op.execute("DROP TRIGGER events_append_only ON events")
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION coedit_guard_events()"
        )
        return
    op.execute("DROP TRIGGER events_no_delete")
    op.execute(
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
        "WHEN NOT EXISTS (SELECT 1 FROM archived_events WHERE seq = OLD.seq) "
        f"BEGIN SELECT RAISE(ABORT, '{REFUSE_DELETE}'); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_append_only ON events")
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION coedit_refuse_change()"
        )
        op.execute("DROP FUNCTION coedit_guard_events()")
    else:
        op.execute("DROP TRIGGER events_no_delete")
        op.execute(
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
            "BEGIN SELECT RAISE(ABORT, 'coedit: events is append-only; DELETE refused'); END"
        )
    op.drop_table("archived_events")
    op.drop_table("event_archives")
