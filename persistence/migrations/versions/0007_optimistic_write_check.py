"""A check the optimistic write statement calls to undo itself when a document moved.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

On PostgreSQL a batch of patches reads its documents without locking them and writes with one
statement outside any transaction block (persistence/write_sql_pg.py). The statement's UPDATE
moves only rows still at the version, chain head and lock counter that were read; this
function compares that count with the rows the batch meant to move and raises otherwise, so
the statement, events and revisions included, commits whole or not at all. SQLSTATE 40001
(serialization_failure) says what happened: try again.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite writes one batch at a time under its write lock
    op.execute(
        """
        CREATE FUNCTION coedit_check_moved(expected bigint, moved bigint) RETURNS bigint
        LANGUAGE plpgsql AS $$
        BEGIN
            IF moved IS DISTINCT FROM expected THEN
                RAISE EXCEPTION 'coedit: a document changed since the batch read it'
                    USING ERRCODE = 'serialization_failure',
                          DETAIL = format('%s of %s rows were as read', moved, expected);
            END IF;
            RETURN moved;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION coedit_check_moved(bigint, bigint)")
