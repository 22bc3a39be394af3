"""Every event seq is drawn under a shared lock, so readers can tell when a seq is final.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The advisory lock key (two int4s: "coed", 1) that persistence.events.SeqHorizon looks for.
LOCK_CLASS = 1668244836
LOCK_OBJECT = 1


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has one writer at a time: seqs are final once visible
    op.execute(
        f"""
        CREATE FUNCTION coedit_next_event_seq() RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN
            -- Held until this transaction ends; taken *before* the seq is drawn.
            PERFORM pg_advisory_xact_lock_shared({LOCK_CLASS}, {LOCK_OBJECT});
            RETURN nextval('events_seq_seq');
        END
        $$
        """
    )
    op.execute("ALTER TABLE events ALTER COLUMN seq SET DEFAULT coedit_next_event_seq()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('events_seq_seq')")
    op.execute("DROP FUNCTION coedit_next_event_seq()")
