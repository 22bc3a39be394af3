"""Workflow templates: drafted, published, and versioned by editing.

A template is created as a draft at version 1. Editing a published template makes it a
draft again with the next version; instances already running keep the steps they copied.
Each step's shape, action and config are checked whenever a template is created or changed;
publishing also checks the whole (at least one step, unique keys, ``after`` naming only
earlier steps) and answers ``bad_request`` naming the first fault. Template events chain per
tenant, as they concern no document.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.audit import AuditContext, EventDraft, append_event
from persistence.database import Database
from persistence.errors import BadRequest, InvalidTransition, NotFound
from persistence.facts import Appended, Committed
from persistence.ideas import person
from persistence.jsonutil import canonical_json, loads
from persistence.pagination import newest_first, page_limit, page_of
from persistence.schema import workflow_templates
from persistence.timeutil import format_ts, utcnow
from persistence.word_match import query_words, starts_a_word
from persistence.workflows.actions import ACTIONS, ActionRegistry

__all__ = ["STEP_ROLES", "TEMPLATE_STATUSES", "TemplateStore", "check_structure",
           "parse_steps", "require_template", "template_from_row"]

TEMPLATE_STATUSES = ("draft", "published")
# The roles of the role table (docs/protocol.md section 2); a step is performed by one.
STEP_ROLES = ("admin", "analyst", "reviewer", "viewer", "bot")
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_NAME = 200
MAX_DESCRIPTION = 2000
MAX_STEPS = 50
MAX_CONFIG_BYTES = 16 * 1024
MAX_QUERY = 200
STEP_FIELDS = frozenset({"key", "title", "action", "role", "required", "after", "config"})


def _parse_step(index: int, value: Any, actions: ActionRegistry) -> dict[str, Any]:
    where = f"steps[{index}]"
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object")
    unknown = set(value) - STEP_FIELDS
    if unknown:
        raise BadRequest(f"{where}: unknown fields {', '.join(sorted(unknown))}")
    key = value.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise BadRequest(f"{where}.key must match {KEY_PATTERN.pattern}")
    title = value.get("title", key)
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_NAME:
        raise BadRequest(f"{where}.title must be text of 1 to {MAX_NAME} characters")
    action = actions.get(value.get("action"), where=f"{where}.action")
    role = value.get("role", "analyst")
    if role not in STEP_ROLES:
        raise BadRequest(f"{where}.role must be one of {', '.join(STEP_ROLES)}")
    required = value.get("required", True)
    if not isinstance(required, bool):
        raise BadRequest(f"{where}.required must be true or false")
    after = value.get("after", [])
    if not isinstance(after, list) or not all(isinstance(a, str) and len(a) <= 64
                                              for a in after) or len(after) > MAX_STEPS:
        raise BadRequest(f"{where}.after must be a list of step keys")
    config = value.get("config", {})
    if len(canonical_json(config)) > MAX_CONFIG_BYTES:
        raise BadRequest(f"{where}.config is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        parsed = action.parse_config(config)
    except BadRequest as exc:
        raise BadRequest(f"{where}.config: {exc.message}") from None
    return {"key": key, "title": title.strip(), "action": action.name, "role": role,
            "required": required, "after": list(dict.fromkeys(after)), "config": parsed}


def parse_steps(value: Any, actions: ActionRegistry = ACTIONS) -> list[dict[str, Any]]:
    """Each step's shape, action and config, in the form stored; ``bad_request`` for the
    first step that is wrong."""
    if not isinstance(value, list) or len(value) > MAX_STEPS:
        raise BadRequest(f"steps must be a list of at most {MAX_STEPS} steps")
    return [_parse_step(i, step, actions) for i, step in enumerate(value)]


def check_structure(steps: list[dict[str, Any]]) -> None:
    """What publishing needs beyond each step being well formed."""
    if not steps:
        raise BadRequest("a template needs at least one step")
    seen: set[str] = set()
    for index, step in enumerate(steps):
        if step["key"] in seen:
            raise BadRequest(f"steps[{index}].key {step['key']!r} is used by an earlier step")
        for key in step["after"]:
            if key not in seen:
                raise BadRequest(f"steps[{index}].after names {key!r}, which is not an "
                                 "earlier step")
        seen.add(step["key"])


def template_from_row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "description": row.description,
        "version": row.version, "status": row.status, "steps": loads(row.steps),
        "created_by": person(row.created_by_id, row.created_by_name),
        "created_at": format_ts(row.created_at), "updated_at": format_ts(row.updated_at),
    }


async def require_template(conn: AsyncConnection, tenant: str, template: str, *,
                           lock: bool = False) -> Row[Any]:
    if not isinstance(template, str) or len(template) > 64:
        raise NotFound(f"no workflow template {template!r}")
    query = select(workflow_templates).where(workflow_templates.c.id == template,
                                             workflow_templates.c.tenant == tenant)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"no workflow template {template!r}")
    return row


def _text(body: dict[str, Any], field: str, maximum: int, *, empty: bool) -> str:
    value = body.get(field)
    if not isinstance(value, str) or len(value) > maximum or (not empty and not value.strip()):
        raise BadRequest(f"{field} must be text of {0 if empty else 1} to {maximum} characters")
    return value.strip()


def _words_query(query: Select[Any], q: str) -> Select[Any]:
    for word in query_words(q, MAX_QUERY):
        query = query.where(starts_a_word(workflow_templates.c.name, word))
    return query


class TemplateStore:
    def __init__(self, db: Database, actions: ActionRegistry = ACTIONS) -> None:
        self.db = db
        self.actions = actions

    async def _event(self, conn: AsyncConnection, ctx: AuditContext, event_type: str,
                     row: Any) -> None:
        await append_event(conn, ctx, EventDraft(event_type, None, None, None, {
            "template": row.id, "name": row.name, "version": row.version}), ts=utcnow())

    async def create(self, ctx: AuditContext, body: Any) -> Committed[dict[str, Any]]:
        if not isinstance(body, dict) or set(body) - {"name", "description", "steps"}:
            raise BadRequest('the body is {"name", "description"?, "steps"?}')
        name = _text(body, "name", MAX_NAME, empty=False)
        description = (_text(body, "description", MAX_DESCRIPTION, empty=True)
                       if "description" in body else "")
        steps = parse_steps(body.get("steps", []), self.actions)
        now = utcnow()
        values = {
            "id": str(uuid.uuid4()), "tenant": ctx.tenant, "name": name,
            "description": description, "version": 1, "status": "draft",
            "steps": canonical_json(steps), "created_by_id": ctx.actor.id,
            "created_by_name": ctx.actor.name, "created_at": now, "updated_at": now,
        }
        async with self.db.transaction() as conn:
            await conn.execute(workflow_templates.insert().values(**values))
            row = await require_template(conn, ctx.tenant, str(values["id"]))
            await self._event(conn, ctx, "workflow.template_created", row)
        return Committed(template_from_row(row), (Appended(ctx.tenant),))

    async def change(self, ctx: AuditContext, template: str,
                     body: Any) -> Committed[dict[str, Any]]:
        """Change name, description or steps; a published template becomes a draft of the
        next version."""
        if not isinstance(body, dict) or not body or set(body) - {"name", "description",
                                                                  "steps"}:
            raise BadRequest('the body changes one or more of "name", "description", "steps"')
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = _text(body, "name", MAX_NAME, empty=False)
        if "description" in body:
            changes["description"] = _text(body, "description", MAX_DESCRIPTION, empty=True)
        if "steps" in body:
            changes["steps"] = canonical_json(parse_steps(body["steps"], self.actions))
        async with self.db.transaction() as conn:
            current = await require_template(conn, ctx.tenant, template, lock=True)
            if current.status == "published":
                changes.update(status="draft", version=current.version + 1)
            await conn.execute(update(workflow_templates)
                               .where(workflow_templates.c.id == current.id)
                               .values(updated_at=utcnow(), **changes))
            row = await require_template(conn, ctx.tenant, template)
            await self._event(conn, ctx, "workflow.template_changed", row)
        return Committed(template_from_row(row), (Appended(ctx.tenant),))

    async def publish(self, ctx: AuditContext, template: str) -> Committed[dict[str, Any]]:
        async with self.db.transaction() as conn:
            current = await require_template(conn, ctx.tenant, template, lock=True)
            if current.status != "draft":
                raise InvalidTransition("the template is published already; change it to "
                                        "make a new version", state=current.status)
            # Checked again in full: the registry may have changed since the draft was saved.
            check_structure(parse_steps(loads(current.steps), self.actions))
            await conn.execute(update(workflow_templates)
                               .where(workflow_templates.c.id == current.id)
                               .values(status="published", updated_at=utcnow()))
            row = await require_template(conn, ctx.tenant, template)
            await self._event(conn, ctx, "workflow.template_published", row)
        return Committed(template_from_row(row), (Appended(ctx.tenant),))

    async def get(self, tenant: str, template: str) -> dict[str, Any]:
        async with self.db.reader() as conn:
            return template_from_row(await require_template(conn, tenant, template))

    async def list(self, tenant: str, *, q: str | None, status: str | None,
                   limit: int | None, cursor: str | None) -> dict[str, Any]:
        """Newest first, keyset-paginated on (created_at, id)."""
        limit = page_limit(limit, default=50, maximum=500)
        query = select(workflow_templates).where(workflow_templates.c.tenant == tenant)
        if q:
            query = _words_query(query, q)
        if status:
            if status not in TEMPLATE_STATUSES:
                raise BadRequest(f"status must be one of {', '.join(TEMPLATE_STATUSES)}")
            query = query.where(workflow_templates.c.status == status)
        query = newest_first(query, workflow_templates.c.created_at, workflow_templates.c.id,
                             cursor, limit)
        async with self.db.reader() as conn:
            rows = (await conn.execute(query)).all()
        return page_of(rows, limit, template_from_row)
