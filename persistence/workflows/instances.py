"""Workflow instances: a published template run on an idea, paused, resumed or canceled.

Instantiating copies the template's steps as they are now, so later versions of the
template never change a running instance; steps with no ``after`` become ready at once (and
steps that complete by themselves complete at once when the idea already holds what they
wait for). Pausing stops every move of the instance's steps, resuming lets them move again
(and completes what became true meanwhile); completed and canceled instances are final.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext, EventDraft, append_event
from persistence.database import Database
from persistence.errors import BadRequest, InvalidTransition
from persistence.facts import Appended, Committed, Fact
from persistence.ideas import require_idea
from persistence.jsonutil import canonical_json, loads
from persistence.pagination import newest_first, page_limit, page_of
from persistence.schema import workflow_instances, workflow_steps
from persistence.state_machine import Move, StateMachine
from persistence.timeutil import utcnow
from persistence.workflows.engine import WorkflowEngine
from persistence.workflows.rows import (
    instance_shape,
    load_steps,
    lock_instance,
    lock_tenant_chain,
    read_instance,
)
from persistence.workflows.templates import require_template

__all__ = ["INSTANCES", "INSTANCE_STATUSES", "InstanceStore"]

INSTANCE_STATUSES = ("active", "paused", "completed", "canceled")


@dataclass(frozen=True, slots=True)
class StatusMove:
    actor: str
    admin: bool
    creator: str


def _creator(move: StatusMove) -> str | None:
    if move.admin or move.actor == move.creator:
        return None
    return "only who started the workflow (or an admin) may pause, resume or cancel it"


# Named by the status reached, as PATCH {"status"} asks; completing is the engine's.
INSTANCES: StateMachine[StatusMove] = StateMachine.of(
    "workflow",
    states=INSTANCE_STATUSES,
    final=frozenset({"completed", "canceled"}),
    moves=[
        Move("paused", frozenset({"active"}), "paused", who=_creator),
        Move("active", frozenset({"paused"}), "active", who=_creator),
        Move("canceled", frozenset({"active", "paused"}), "canceled", who=_creator),
    ],
)


class InstanceStore:
    def __init__(self, db: Database, engine: WorkflowEngine) -> None:
        self.db = db
        self.engine = engine

    async def instantiate(self, ctx: AuditContext, template: str,
                          body: Any) -> Committed[dict[str, Any]]:
        if not isinstance(body, dict) or set(body) != {"idea"}:
            raise BadRequest('the body is {"idea": ID}')
        idea = body["idea"]
        if not isinstance(idea, str) or not 0 < len(idea) <= 36:
            raise BadRequest("idea must be the id of an idea")
        async with self.db.transaction() as conn:
            found = await require_template(conn, ctx.tenant, template)
            await require_idea(conn, ctx.tenant, idea)
            if found.status != "published":
                raise InvalidTransition("only a published template can be instantiated",
                                        state=found.status)
            now = utcnow()
            instance_id = str(uuid.uuid4())
            await conn.execute(workflow_instances.insert().values(
                id=instance_id, tenant=ctx.tenant, template_id=found.id,
                template_version=found.version, template_name=found.name, idea=idea,
                status="active", created_by_id=ctx.actor.id, created_by_name=ctx.actor.name,
                created_at=now, updated_at=now, completed_at=None))
            steps = loads(found.steps)
            await conn.execute(workflow_steps.insert(), [{
                "id": str(uuid.uuid4()), "tenant": ctx.tenant, "instance": instance_id,
                "position": position, "key": step["key"], "title": step["title"],
                "action": step["action"], "role": step["role"], "required": step["required"],
                "after": canonical_json(step["after"]), "config": canonical_json(step["config"]),
                "state": "pending", "assignee_id": None, "assignee_name": None, "data": "{}",
                "ready_at": None, "started_at": None, "completed_at": None, "updated_at": now,
            } for position, step in enumerate(steps)])
            await append_event(conn, ctx, EventDraft("workflow.instantiated", None, None, None, {
                "instance": instance_id, "template": found.id, "version": found.version,
                "name": found.name}, idea), ts=now)
            row = await lock_instance(conn, ctx.tenant, instance_id)
            facts: list[Fact] = [Appended(ctx.tenant)]
            facts += await self.engine.settle_in(conn, ctx, row)
            shown = await self._shape(conn, ctx.tenant, instance_id)
        return Committed(shown, tuple(facts))

    async def set_status(self, ctx: AuditContext, instance: str, body: Any, *,
                         admin: bool) -> Committed[dict[str, Any]]:
        if not isinstance(body, dict) or set(body) != {"status"}:
            raise BadRequest('the body is {"status": "paused" | "active" | "canceled"}')
        INSTANCES.move(body["status"])
        async with self.db.transaction() as conn:
            await lock_tenant_chain(conn, ctx.tenant)
            row = await lock_instance(conn, ctx.tenant, instance)
            move = INSTANCES.check(body["status"], row.status,
                                   StatusMove(ctx.actor.id, admin, row.created_by_id))
            now = utcnow()
            await conn.execute(update(workflow_instances)
                               .where(workflow_instances.c.id == row.id)
                               .values(status=move.target, updated_at=now))
            await append_event(conn, ctx, EventDraft("workflow.status_changed", None, None,
                                                     None, {
                "instance": row.id, "from": row.status, "to": move.target}, row.idea), ts=now)
            facts: list[Fact] = [Appended(ctx.tenant)]
            if move.target == "active":
                facts += await self.engine.settle_in(
                    conn, ctx, await lock_instance(conn, ctx.tenant, instance))
            shown = await self._shape(conn, ctx.tenant, instance)
        return Committed(shown, tuple(facts))

    @staticmethod
    async def _shape(conn: AsyncConnection, tenant: str, instance: str) -> dict[str, Any]:
        row = await read_instance(conn, tenant, instance)
        return instance_shape(row, await load_steps(conn, instance))

    async def get(self, tenant: str, instance: str) -> dict[str, Any]:
        async with self.db.reader() as conn:
            return await self._shape(conn, tenant, instance)

    async def list(self, tenant: str, *, idea: str | None, status: str | None,
                   limit: int | None, cursor: str | None) -> dict[str, Any]:
        """Newest first, keyset-paginated on (created_at, id), each with its steps."""
        limit = page_limit(limit, default=50, maximum=200)
        query = select(workflow_instances).where(workflow_instances.c.tenant == tenant)
        if idea:
            query = query.where(workflow_instances.c.idea == idea)
        if status:
            if status not in INSTANCE_STATUSES:
                raise BadRequest(f"status must be one of {', '.join(INSTANCE_STATUSES)}")
            query = query.where(workflow_instances.c.status == status)
        query = newest_first(query, workflow_instances.c.created_at, workflow_instances.c.id,
                             cursor, limit)
        async with self.db.reader() as conn:
            rows = (await conn.execute(query)).all()
            steps = {row.id: await load_steps(conn, row.id) for row in rows[:limit]}
        return page_of(rows, limit, lambda row: instance_shape(row, steps[row.id]))
