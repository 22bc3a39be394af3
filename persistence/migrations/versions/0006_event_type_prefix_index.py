"""Let the type index serve prefix filters ('lock.*') under any collation.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

PostgreSQL can use a plain btree for ``LIKE 'lock.%'`` only under the C collation; with the
pattern operator class the same index serves equality, IN lists and prefixes. Measured at
three million events (docs/event-query-plans.md): a prefix matching nothing went from a full
scan of about a second to 0.02 ms.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_events_tenant_type_seq", table_name="events")
    op.create_index("ix_events_tenant_type_seq", "events", ["tenant", "type", "seq"],
                    postgresql_ops={"type": "varchar_pattern_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_events_tenant_type_seq", table_name="events")
    op.create_index("ix_events_tenant_type_seq", "events", ["tenant", "type", "seq"])
