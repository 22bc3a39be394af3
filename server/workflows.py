"""Workflows for both edges (docs/protocol.md section 13): templates, instances, step moves,
and the ``workflow.step`` bulk operation.

The role table comes first, as everywhere: templates, skipping and retrying are an admin's;
starting workflows an analyst's, a bot's or an admin's; reading is everyone's. Who may
move *this* step (its ``role``, its assignee) and who may pause *this* instance (its
creator) is known only once the store has read it: the store refuses with ``forbidden``
and the refusal is recorded here as ``access.denied``, like the role table's.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext
from persistence.bulk import ItemRun
from persistence.errors import BadRequest
from persistence.facts import Committed
from persistence.workflows.steps import STEPS
from server.auth import Action, Identity, allowed

if TYPE_CHECKING:
    from server.service import Coedit

__all__ = ["ADMIN_VERBS", "Workflows"]

T = TypeVar("T")
# The verbs of the role table's admin column; the others need the step's own role.
ADMIN_VERBS = frozenset({"skip", "retry"})


class Workflows:
    """``coedit.workflows``: the workflow engine's writes and reads."""

    def __init__(self, coedit: Coedit) -> None:
        self._coedit = coedit
        self._stores = coedit.trail_stores.workflows

    async def _may_read(self, identity: Identity, ctx: AuditContext) -> None:
        await self._coedit.authorize(identity, Action.READ, ctx, what="read workflows")

    # -- templates --------------------------------------------------------------------------

    async def create_template(self, identity: Identity, ctx: AuditContext,
                              body: Any) -> dict[str, Any]:
        await self._coedit.authorize(identity, Action.ADMIN, ctx,
                                     what="manage workflow templates")
        return self._coedit.settle(await self._stores.templates.create(ctx, body))

    async def change_template(self, identity: Identity, ctx: AuditContext, template: str,
                              body: Any) -> dict[str, Any]:
        await self._coedit.authorize(identity, Action.ADMIN, ctx,
                                     what="manage workflow templates")
        return self._coedit.settle(await self._stores.templates.change(ctx, template, body))

    async def publish_template(self, identity: Identity, ctx: AuditContext,
                               template: str) -> dict[str, Any]:
        await self._coedit.authorize(identity, Action.ADMIN, ctx,
                                     what="manage workflow templates")
        return self._coedit.settle(await self._stores.templates.publish(ctx, template))

    async def templates(self, identity: Identity, ctx: AuditContext, *, q: str | None,
                        status: str | None, limit: int | None,
                        cursor: str | None) -> dict[str, Any]:
        await self._may_read(identity, ctx)
        return await self._stores.templates.list(identity.tenant, q=q, status=status,
                                                 limit=limit, cursor=cursor)

    async def template(self, identity: Identity, ctx: AuditContext,
                       template: str) -> dict[str, Any]:
        await self._may_read(identity, ctx)
        return await self._stores.templates.get(identity.tenant, template)

    # -- instances --------------------------------------------------------------------------

    async def instantiate(self, identity: Identity, ctx: AuditContext, template: str,
                          body: Any) -> dict[str, Any]:
        await self._coedit.authorize(identity, Action.WRITE, ctx, what="start workflows")
        return self._coedit.settle(await self._stores.instances.instantiate(ctx, template, body))

    async def set_status(self, identity: Identity, ctx: AuditContext, instance: str,
                         body: Any) -> dict[str, Any]:
        what = "pause, resume or cancel workflows"
        await self._coedit.authorize(identity, Action.WRITE, ctx, what=what)
        return await self._coedit.settle_or_refuse(identity, ctx, self._stores.instances.set_status(
            ctx, instance, body, admin=allowed(identity, Action.ADMIN)),
            what=what, needs="creator of the workflow or admin")

    async def instances(self, identity: Identity, ctx: AuditContext, *, idea: str | None,
                        status: str | None, limit: int | None,
                        cursor: str | None) -> dict[str, Any]:
        await self._may_read(identity, ctx)
        return await self._stores.instances.list(identity.tenant, idea=idea, status=status,
                                                 limit=limit, cursor=cursor)

    async def instance(self, identity: Identity, ctx: AuditContext,
                       instance: str) -> dict[str, Any]:
        await self._may_read(identity, ctx)
        return await self._stores.instances.get(identity.tenant, instance)

    async def of_idea(self, tenant: str, idea: str) -> list[dict[str, Any]]:
        """The idea's instances, for the idea's own read (the caller checked the role)."""
        page = await self._stores.instances.list(tenant, idea=idea, status=None, limit=200,
                                                 cursor=None)
        return page["items"]  # type: ignore[no-any-return]

    # -- steps ------------------------------------------------------------------------------

    async def _authorize_verb(self, identity: Identity, ctx: AuditContext, verb: Any) -> str:
        """The verb, known (``bad_request`` otherwise) and allowed by the role table."""
        name = STEPS.move(verb).name
        if name in ADMIN_VERBS:
            await self._coedit.authorize(identity, Action.ADMIN, ctx,
                                         what="skip or retry workflow steps")
        return name

    async def move_step(self, identity: Identity, ctx: AuditContext, step: str, verb: str,
                        payload: Any) -> dict[str, Any]:
        verb = await self._authorize_verb(identity, ctx, verb)
        return await self._coedit.settle_or_refuse(identity, ctx, self._stores.engine.move(
            ctx, step, verb, payload, roles=identity.roles,
            admin=allowed(identity, Action.ADMIN)),
            what=f"{verb} workflow steps", needs="the step's role or its assignee")

    async def bulk_item(self, identity: Identity, ctx: AuditContext,
                        params: dict[str, Any]) -> ItemRun:
        """The ``workflow.step`` operation of section 15: params ``{"verb","payload"?}``."""
        if set(params) - {"verb", "payload"}:
            raise BadRequest('workflow.step params are {"verb", "payload"?}')
        verb = await self._authorize_verb(identity, ctx, params.get("verb"))
        payload = params.get("payload")
        admin = allowed(identity, Action.ADMIN)
        engine = self._stores.engine

        def move(conn: AsyncConnection, step: str) -> Awaitable[Committed[Any]]:
            return engine.move_in(conn, ctx, step, verb, payload, roles=identity.roles,
                                  admin=admin)
        return move
