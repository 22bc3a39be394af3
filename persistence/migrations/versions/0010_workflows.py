"""Workflows: templates, instances and their steps.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Templates keep their steps as JSON text and one row each (``version`` grows when a
published template is edited); an instance copies the steps into ``workflow_steps`` as the
template is when it starts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from persistence.schema import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_templates",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("steps", sa.Text, nullable=False),
        sa.Column("created_by_id", sa.String(128), nullable=False),
        sa.Column("created_by_name", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_workflow_templates_tenant_created", "workflow_templates",
                    ["tenant", "created_at", "id"])
    op.create_table(
        "workflow_instances",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("template_id", sa.String(36), nullable=False),
        sa.Column("template_version", sa.Integer, nullable=False),
        sa.Column("template_name", sa.String(200), nullable=False),
        sa.Column("idea", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by_id", sa.String(128), nullable=False),
        sa.Column("created_by_name", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("completed_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_workflow_instances_tenant_created", "workflow_instances",
                    ["tenant", "created_at", "id"])
    op.create_index("ix_workflow_instances_idea", "workflow_instances",
                    ["tenant", "idea", "status"])
    op.create_table(
        "workflow_steps",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("instance", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("required", sa.Boolean, nullable=False),
        sa.Column("after", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("assignee_id", sa.String(128), nullable=True),
        sa.Column("assignee_name", sa.String(256), nullable=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("ready_at", UTCDateTime, nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("completed_at", UTCDateTime, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("instance", "key", name="uq_workflow_steps_instance_key"),
    )
    op.create_index("ix_workflow_steps_instance", "workflow_steps", ["instance", "position"])


def downgrade() -> None:
    op.drop_table("workflow_steps")
    op.drop_table("workflow_instances")
    op.drop_table("workflow_templates")
