"""Instances and steps as rows, as the engine holds them, and as the API shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.errors import NotFound
from persistence.ideas import person
from persistence.jsonutil import loads
from persistence.schema import chains, workflow_instances, workflow_steps
from persistence.timeutil import format_ts

__all__ = ["StepRow", "instance_shape", "load_steps", "lock_instance", "lock_tenant_chain",
           "read_instance", "step_shape"]

_ENSURE_TENANT_CHAIN = text('INSERT INTO chains ("key", head) VALUES (:key, NULL) '
                            "ON CONFLICT DO NOTHING")


@dataclass(slots=True)
class StepRow:
    """One step of an instance, held by the engine while it moves steps in a transaction."""

    id: str
    instance: str
    position: int
    key: str
    title: str
    action: str
    role: str
    required: bool
    after: list[str]
    config: dict[str, Any]
    state: str
    assignee_id: str | None
    assignee_name: str | None
    data: dict[str, Any]
    ready_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> StepRow:
        return cls(row.id, row.instance, row.position, row.key, row.title, row.action,
                   row.role, bool(row.required), loads(row.after), loads(row.config),
                   row.state, row.assignee_id, row.assignee_name, loads(row.data),
                   row.ready_at, row.started_at, row.completed_at)


def step_shape(step: StepRow) -> dict[str, Any]:
    return {
        "id": step.id, "key": step.key, "title": step.title, "action": step.action,
        "role": step.role, "required": step.required, "after": step.after,
        "config": step.config, "state": step.state,
        "assignee": (person(step.assignee_id, step.assignee_name)
                     if step.assignee_id is not None else None),
        "data": step.data,
        "started_at": format_ts(step.started_at) if step.started_at else None,
        "completed_at": format_ts(step.completed_at) if step.completed_at else None,
    }


def instance_shape(row: Any, steps: list[StepRow]) -> dict[str, Any]:
    return {
        "id": row.id,
        "template": {"id": row.template_id, "version": row.template_version,
                     "name": row.template_name},
        "idea": row.idea, "status": row.status, "steps": [step_shape(s) for s in steps],
        "created_by": person(row.created_by_id, row.created_by_name),
        "created_at": format_ts(row.created_at), "updated_at": format_ts(row.updated_at),
        "completed_at": format_ts(row.completed_at) if row.completed_at else None,
    }


async def load_steps(conn: AsyncConnection, instance: str) -> list[StepRow]:
    rows = (await conn.execute(select(workflow_steps).where(
        workflow_steps.c.instance == instance).order_by(workflow_steps.c.position))).all()
    return [StepRow.of(row) for row in rows]


async def read_instance(conn: AsyncConnection, tenant: str, instance: str) -> Row[Any]:
    if not isinstance(instance, str) or len(instance) > 64:
        raise NotFound(f"no workflow instance {instance!r}")
    row = (await conn.execute(select(workflow_instances).where(
        workflow_instances.c.id == instance, workflow_instances.c.tenant == tenant))).first()
    if row is None:
        raise NotFound(f"no workflow instance {instance!r}")
    return row


async def lock_instance(conn: AsyncConnection, tenant: str, instance: str) -> Row[Any]:
    """The instance row, locked for the rest of the transaction (PostgreSQL: FOR UPDATE;
    SQLite has one writer at a time). Every move of a step of the instance takes this lock
    first, so two people starting one step at once are served one after the other and the
    second finds the step started."""
    if not isinstance(instance, str) or len(instance) > 64:
        raise NotFound(f"no workflow instance {instance!r}")
    row = (await conn.execute(select(workflow_instances).where(
        workflow_instances.c.id == instance, workflow_instances.c.tenant == tenant)
        .with_for_update())).first()
    if row is None:
        raise NotFound(f"no workflow instance {instance!r}")
    return row


async def lock_tenant_chain(conn: AsyncConnection, tenant: str) -> None:
    """Take the head of the tenant's event chain before any instance row.

    Workflow events chain per tenant, so every move holds this lock until it commits
    anyway; taking it first gives every workflow transaction one lock order (chain, then
    instances), so a bulk request moving steps of several instances cannot deadlock with a
    single move of one of them.
    """
    key = f"tenant:{tenant}"
    await conn.execute(_ENSURE_TENANT_CHAIN, {"key": key})
    await conn.execute(select(chains.c.head).where(chains.c.key == key).with_for_update())
