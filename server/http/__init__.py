"""The HTTP resources of docs/protocol.md section 9, plus dev login, health and metrics: one
module per family of resources, each operation declared with what it accepts and answers
(``server/http/contract.py``), and here the one list of them that both the route table and
the OpenAPI description are made from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.http.bulk import bulk
from server.http.comments import (
    add_comment,
    edit_comment,
    list_comments,
    reopen_thread,
    resolve_thread,
)
from server.http.contract import Operation
from server.http.documents import (
    create_document,
    get_document,
    list_documents,
    patch_document,
    verify_document,
)
from server.http.events import document_history, list_events, stream_events
from server.http.ideas import create_idea, get_idea, list_ideas
from server.http.identity import dev_login, me
from server.http.locks import list_locks, release_lock, take_lock
from server.http.notifications import list_notifications, mark_all_read, mark_read
from server.http.operations import healthz, metrics, openapi, readyz
from server.http.presence import list_presence
from server.http.reviews import (
    archive_document,
    assign_review,
    get_review,
    list_reviews,
    reopen_document,
    transition_review,
)
from server.http.search import search
from server.http.workflows import (
    change_template,
    create_template,
    get_instance,
    get_template,
    instantiate,
    list_instances,
    list_templates,
    move_step,
    publish_template,
    set_instance_status,
)

__all__ = ["OPERATIONS", "routes"]


OPERATIONS: list[Operation] = [
    healthz, readyz, metrics, openapi, dev_login, me,
    create_document, list_documents, get_document, patch_document, document_history,
    verify_document, take_lock, release_lock, add_comment, list_comments, assign_review,
    archive_document, reopen_document, edit_comment, resolve_thread, reopen_thread,
    list_reviews, get_review, transition_review, create_idea, list_ideas, get_idea,
    list_notifications, mark_all_read, mark_read, bulk, create_template, list_templates,
    get_template, change_template, publish_template, instantiate, list_instances,
    get_instance, set_instance_status, move_step, list_locks, list_presence, list_events,
    stream_events, search,
]
"""Every HTTP operation: the route table and /openapi.json are both made from this list."""

_table = [op.route() for op in OPERATIONS]


def _by_method(handlers: dict[str, Callable[[Request], Awaitable[Response]]]
               ) -> Callable[[Request], Awaitable[Response]]:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch


def _one_route_per_path(table: list[Route]) -> list[Route]:
    """The table with each path's methods in one route. Starlette answers a method a path
    lacks from the first route of that path, so with one route per method its ``Allow``
    header would name only that route's methods."""
    grouped: dict[str, list[Route]] = {}
    for route in table:
        grouped.setdefault(route.path, []).append(route)
    merged = []
    for path, same in grouped.items():
        if len(same) == 1:
            merged.append(same[0])
            continue
        handlers = {method: route.endpoint for route in same
                    for method in (route.methods or ()) if method != "HEAD"}
        merged.append(Route(path, _by_method(handlers), methods=sorted(handlers)))
    return merged


routes = _one_route_per_path(_table)
