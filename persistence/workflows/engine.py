"""The workflow engine: moving steps, and everything a move sets off, in one transaction.

A move locks its instance's row, checks the verb against the step machine
(``persistence/workflows/steps.py``), writes the step and its ``workflow.step_transitioned``
event, and then settles the instance: steps whose ``after`` are all completed or skipped
become ``ready`` (and their assignee, else their role, is notified), steps that complete by
themselves and already find what they wait for complete, and once every required step is
completed or skipped the instance completes (``workflow.completed``). All of it commits
together or not at all.

Events from outside (a review approved, a document created) reach the engine through
:meth:`WorkflowEngine.react`, called by the review and document stores inside their own
transaction, so a step that waited for them completes in the same commit.

Lock order: a document row (when the caller holds one), then the tenant's event chain (the
workflow events join it; see :func:`~persistence.workflows.rows.lock_tenant_chain`), then
instance rows in id order. Nothing here locks a document.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext, EventDraft, append_event
from persistence.database import Database
from persistence.errors import BadRequest, NotFound
from persistence.facts import Appended, Committed, Fact, StepMoved
from persistence.jsonutil import canonical_json, loads
from persistence.notifications import NotificationStore
from persistence.patching import redact_value
from persistence.schema import ideas, workflow_instances, workflow_steps
from persistence.timeutil import utcnow
from persistence.workflows.actions import ACTIONS, ActionRegistry, Trigger
from persistence.workflows.rows import (
    StepRow,
    load_steps,
    lock_instance,
    lock_tenant_chain,
    step_shape,
)
from persistence.workflows.steps import DONE, STEPS, StepMove
from persistence.workflows.tracing import span

__all__ = ["WorkflowEngine"]

MAX_PAYLOAD_BYTES = 16 * 1024
# Steps that an outside event or an already satisfied condition may complete.
WAITING = ("ready", "in_progress")


class _Instance:
    """The locked instance row and the status the transaction has moved it to."""

    def __init__(self, row: Row[Any]) -> None:
        self.row = row
        self.status: str = row.status
        self._idea_title: str | None = None

    async def idea_title(self, conn: AsyncConnection) -> str:
        if self._idea_title is None:
            self._idea_title = str((await conn.execute(
                select(ideas.c.title).where(ideas.c.id == self.row.idea))).scalar() or "")
        return self._idea_title


class WorkflowEngine:
    def __init__(self, db: Database, notifications: NotificationStore, *,
                 actions: ActionRegistry = ACTIONS,
                 redact: frozenset[str] = frozenset()) -> None:
        self.db = db
        self.notifications = notifications
        self.actions = actions
        self.redact = redact

    # -- moving a step ----------------------------------------------------------------------

    async def move(self, ctx: AuditContext, step: str, verb: str, payload: Any, *,
                   roles: tuple[str, ...], admin: bool) -> Committed[dict[str, Any]]:
        async with self.db.transaction() as conn:
            return await self.move_in(conn, ctx, step, verb, payload, roles=roles, admin=admin)

    async def move_in(self, conn: AsyncConnection, ctx: AuditContext, step: str, verb: str,
                      payload: Any, *, roles: tuple[str, ...],
                      admin: bool) -> Committed[dict[str, Any]]:
        """``verb`` on ``step`` with ``payload``, in the caller's transaction; the step as it
        is afterwards (with its instance's id) and the facts of everything that moved."""
        STEPS.move(verb)  # an unknown verb is bad input before anything is read
        if payload is None:
            payload = {}
        if not isinstance(payload, dict) or len(canonical_json(payload)) > MAX_PAYLOAD_BYTES:
            raise BadRequest(f"the payload must be a JSON object of at most "
                             f"{MAX_PAYLOAD_BYTES} bytes")
        if not isinstance(step, str) or len(step) > 64:
            raise NotFound(f"no workflow step {step!r}")
        found = (await conn.execute(select(workflow_steps.c.instance).where(
            workflow_steps.c.id == step, workflow_steps.c.tenant == ctx.tenant))).first()
        if found is None:
            raise NotFound(f"no workflow step {step!r}")
        await lock_tenant_chain(conn, ctx.tenant)
        instance = _Instance(await lock_instance(conn, ctx.tenant, found.instance))
        steps = await load_steps(conn, found.instance)  # as of the lock
        current = next(s for s in steps if s.id == step)
        action = self.actions.get(current.action)
        with span("workflow.step.transition", ctx, **{
                "coedit.step": current.id, "coedit.step.verb": verb,
                "coedit.step.action": current.action, "coedit.step.from": current.state}) as sp:
            with span(f"workflow.action.{action.name}", ctx, **{"coedit.step": current.id}):
                move = STEPS.check(verb, current.state, StepMove(
                    ctx.actor.id, admin, current.role in roles, current.role,
                    current.assignee_id, action, current.config, payload, instance.status))
            target = action.outcome(current.config, payload) if verb == "complete" \
                else move.target
            sp.set_attribute("coedit.step.to", target)
            if verb == "claim" or (verb == "start" and current.assignee_id is None):
                current.assignee_id, current.assignee_name = ctx.actor.id, ctx.actor.name
            if verb in ("complete", "fail", "block", "skip"):
                current.data = payload
            facts = await self._transition(conn, ctx, instance, current, target,
                                           payload=payload)
            facts += await self._settle(conn, ctx, instance, steps, recheck=False)
        return Committed({**step_shape(current), "instance": instance.row.id}, tuple(facts))

    # -- what follows ---------------------------------------------------------------------

    async def _transition(self, conn: AsyncConnection, ctx: AuditContext, instance: _Instance,
                          step: StepRow, to: str, *, payload: dict[str, Any]) -> list[Fact]:
        """Write ``step`` in state ``to`` (with whatever else the caller set on it), its event,
        and its notification when it became ready."""
        now = utcnow()
        before = step.state
        cycle = None
        if to == "ready" and before != "ready":
            step.ready_at = now
        if to == "in_progress" and step.started_at is None:
            step.started_at = now
        if to in ("completed", "skipped"):
            step.completed_at = now
            if to == "completed" and step.ready_at is not None:
                cycle = max(0.0, (now - step.ready_at).total_seconds())
        step.state = to
        await conn.execute(update(workflow_steps).where(workflow_steps.c.id == step.id).values(
            state=to, assignee_id=step.assignee_id, assignee_name=step.assignee_name,
            data=canonical_json(step.data), ready_at=step.ready_at, started_at=step.started_at,
            completed_at=step.completed_at, updated_at=now))
        await append_event(conn, ctx, EventDraft(
            "workflow.step_transitioned", None, None, None, redact_value({
                "instance": instance.row.id, "step": step.id, "key": step.key,
                "from": before, "to": to, "payload": payload}, self.redact),
            instance.row.idea), ts=now)
        facts: list[Fact] = [Appended(ctx.tenant), StepMoved(ctx.tenant, step.action, to, cycle)]
        if to == "ready" and before != "ready":
            idea_title = await instance.idea_title(conn)
            where = f"{instance.row.template_name} on {idea_title}"
            notified = await self.notifications.add(
                conn, tenant=ctx.tenant, type="step.ready",
                user=step.assignee_id, role=None if step.assignee_id else step.role,
                title=f"Step ready: {step.title}",
                body=f"{where}: {step.title} is ready"
                     + ("." if step.assignee_id else f" for a {step.role}."),
                idea=instance.row.idea)
            if notified is not None:
                facts.append(notified)
        return facts

    async def _settle(self, conn: AsyncConnection, ctx: AuditContext, instance: _Instance,
                      steps: list[StepRow], *, recheck: bool) -> list[Fact]:
        """Make ready what may start, complete what already holds, and complete the instance
        when every required step is done. ``recheck`` looks again at every waiting step that
        completes by itself (a workflow resumed, or just begun)."""
        facts: list[Fact] = []
        fresh: set[str] = set()
        progress = True
        while progress and instance.status == "active":
            progress = False
            states = {s.key: s.state for s in steps}
            for step in steps:
                if step.state == "pending" and all(states.get(k) in DONE for k in step.after):
                    facts += await self._transition(conn, ctx, instance, step, "ready",
                                                    payload={})
                    fresh.add(step.id)
                    progress = True
            for step in steps:
                action = self.actions.get(step.action)
                if (action.by_hand or step.state not in WAITING
                        or not (recheck or step.id in fresh)):
                    continue
                with span(f"workflow.action.{action.name}", ctx, **{"coedit.step": step.id}):
                    satisfied = await action.satisfied(conn, ctx.tenant, instance.row.idea,
                                                       step.config)
                if satisfied:
                    automatic = {"automatic": True}
                    step.data = automatic
                    facts += await self._transition(conn, ctx, instance, step, "completed",
                                                    payload=automatic)
                    progress = True
            recheck = False
        if instance.status == "active" and all(s.state in DONE for s in steps if s.required):
            now = utcnow()
            instance.status = "completed"
            await conn.execute(update(workflow_instances)
                               .where(workflow_instances.c.id == instance.row.id)
                               .values(status="completed", completed_at=now, updated_at=now))
            await append_event(conn, ctx, EventDraft("workflow.completed", None, None, None, {
                "instance": instance.row.id, "template": instance.row.template_id,
                "version": instance.row.template_version}, instance.row.idea), ts=now)
            facts.append(Appended(ctx.tenant))
        return facts

    async def settle_in(self, conn: AsyncConnection, ctx: AuditContext,
                        row: Row[Any]) -> list[Fact]:
        """Settle a locked instance that just began or resumed."""
        return await self._settle(conn, ctx, _Instance(row), await load_steps(conn, row.id),
                                  recheck=True)

    # -- events from outside ------------------------------------------------------------------

    async def react(self, conn: AsyncConnection, ctx: AuditContext, idea: str,
                    trigger: Trigger) -> list[Fact]:
        """``trigger`` happened to ``idea``: complete the waiting steps of its active
        workflows that wait for it, and settle those workflows; in the caller's transaction."""
        waiting = (await conn.execute(
            select(workflow_steps.c.instance, workflow_steps.c.action, workflow_steps.c.config)
            .join(workflow_instances, workflow_instances.c.id == workflow_steps.c.instance)
            .where(workflow_instances.c.tenant == ctx.tenant,
                   workflow_instances.c.idea == idea,
                   workflow_instances.c.status == "active",
                   workflow_steps.c.state.in_(WAITING)))).all()
        touched = sorted({row.instance for row in waiting
                          if self._reacts(row.action, row.config, trigger)})
        facts: list[Fact] = []
        if touched:
            await lock_tenant_chain(conn, ctx.tenant)
        for instance_id in touched:  # in id order: two reactions lock the same way
            instance = _Instance(await lock_instance(conn, ctx.tenant, instance_id))
            if instance.status != "active":
                continue
            steps = await load_steps(conn, instance_id)
            moved = False
            for step in steps:
                action = self.actions.get(step.action)
                if step.state in WAITING and action.reacts_to(step.config, trigger):
                    with span("workflow.step.transition", ctx, **{
                            "coedit.step": step.id, "coedit.step.verb": trigger.kind,
                            "coedit.step.action": step.action, "coedit.step.from": step.state,
                            "coedit.step.to": "completed"}):
                        automatic = {"automatic": True, "trigger": trigger.kind}
                        step.data = automatic
                        facts += await self._transition(conn, ctx, instance, step,
                                                        "completed", payload=automatic)
                    moved = True
            if moved:
                facts += await self._settle(conn, ctx, instance, steps, recheck=False)
        return facts

    def _reacts(self, action_name: str, config: str, trigger: Trigger) -> bool:
        action = self.actions.get(action_name)
        return not action.by_hand and action.reacts_to(loads(config), trigger)

    async def lock_before_rows(self, conn: AsyncConnection, tenant: str) -> None:
        """Take the tenant's event chain now, for a change that may make workflow moves
        later in its transaction (approving a review of an idea's document).

        Workflow moves lock the chain before any row; a change that first locks its
        document row and only then reaches the chain (through :meth:`react`) would take
        them the other way round, and a bulk request approving several documents could
        deadlock with a single approval of one of them.
        """
        await lock_tenant_chain(conn, tenant)

    async def review_approved(self, conn: AsyncConnection, ctx: AuditContext, *, idea: str,
                              stage: str) -> list[Fact]:
        return await self.react(conn, ctx, idea, Trigger("review.approved", stage))

    async def document_created(self, conn: AsyncConnection, ctx: AuditContext, *, idea: str,
                               stage: str) -> list[Fact]:
        return await self.react(conn, ctx, idea, Trigger("document.created", stage))
