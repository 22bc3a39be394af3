"""Notifications over HTTP (docs/protocol.md section 14): the caller's own, and its marks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from persistence.audit import AuditContext
from server.auth import Identity
from server.http.contract import FLAG, Answer, Args, operation, ref
from server.http.params import cursor, limit, path_id, query
from server.service import Coedit

__all__ = ["list_notifications", "mark_all_read", "mark_read"]


@operation("GET", "/api/notifications",
           "Notifications addressed to the caller or its roles, newest first",
           params=[query("unread", FLAG), limit(500), cursor()],
           answers=[Answer(200, "a page", ref("NotificationPage"))])
async def list_notifications(request: Request, identity: Identity, ctx: AuditContext,
                             coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.reads.notifications(
        identity, ctx, unread=args["unread"] == "true", limit=args["limit"],
        cursor=args["cursor"]))


@operation("POST", "/api/notifications/{note}/read", "Mark one read, for the caller alone",
           params=[path_id("note")], answers=[Answer(200, "marked", ref("Notification"))],
           errors=[404])
async def mark_read(request: Request, identity: Identity, ctx: AuditContext,
                    coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.trail.mark_read(identity, args["note"]))


@operation("POST", "/api/notifications/read-all",
           "Mark every notification so far read, for the caller alone",
           answers=[Answer(200, "marked", {"type": "object", "required": ["read_through"],
                                           "properties": {"read_through": {
                                               "type": ["integer", "null"]}}})])
async def mark_all_read(request: Request, identity: Identity, ctx: AuditContext,
                        coedit: Coedit, args: Args) -> Response:
    return JSONResponse(await coedit.trail.read_all(identity))
