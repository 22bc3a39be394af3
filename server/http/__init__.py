"""The HTTP resources of docs/protocol.md section 9, plus dev login, health and metrics: one
module per family of resources, and here the one route table that serves them all."""

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

__all__ = ["routes"]


_table = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/api/dev/login", dev_login, methods=["POST"]),
    Route("/api/me", me, methods=["GET"]),
    Route("/api/documents", create_document, methods=["POST"]),
    Route("/api/documents", list_documents, methods=["GET"]),
    Route("/api/documents/{doc}", get_document, methods=["GET"]),
    Route("/api/documents/{doc}", patch_document, methods=["PATCH"]),
    Route("/api/documents/{doc}/history", document_history, methods=["GET"]),
    Route("/api/documents/{doc}/verify", verify_document, methods=["GET"]),
    Route("/api/documents/{doc}/locks", take_lock, methods=["POST"]),
    Route("/api/documents/{doc}/locks", release_lock, methods=["DELETE"]),
    Route("/api/documents/{doc}/comments", add_comment, methods=["POST"]),
    Route("/api/documents/{doc}/comments", list_comments, methods=["GET"]),
    Route("/api/documents/{doc}/reviews", assign_review, methods=["POST"]),
    Route("/api/documents/{doc}/archive", archive_document, methods=["POST"]),
    Route("/api/documents/{doc}/reopen", reopen_document, methods=["POST"]),
    Route("/api/comments/{comment}", edit_comment, methods=["PATCH"]),
    Route("/api/comments/{comment}/resolve", resolve_thread, methods=["POST"]),
    Route("/api/comments/{comment}/reopen", reopen_thread, methods=["POST"]),
    Route("/api/reviews", list_reviews, methods=["GET"]),
    Route("/api/reviews/{review}", get_review, methods=["GET"]),
    Route("/api/reviews/{review}/transition", transition_review, methods=["POST"]),
    Route("/api/ideas", create_idea, methods=["POST"]),
    Route("/api/ideas", list_ideas, methods=["GET"]),
    Route("/api/ideas/{idea}", get_idea, methods=["GET"]),
    Route("/api/notifications", list_notifications, methods=["GET"]),
    Route("/api/notifications/read-all", mark_all_read, methods=["POST"]),
    Route("/api/notifications/{note}/read", mark_read, methods=["POST"]),
    Route("/api/bulk", bulk, methods=["POST"]),
    Route("/api/workflows/templates", create_template, methods=["POST"]),
    Route("/api/workflows/templates", list_templates, methods=["GET"]),
    Route("/api/workflows/templates/{template}", get_template, methods=["GET"]),
    Route("/api/workflows/templates/{template}", change_template, methods=["PATCH"]),
    Route("/api/workflows/templates/{template}/publish", publish_template, methods=["POST"]),
    Route("/api/workflows/templates/{template}/instantiate", instantiate, methods=["POST"]),
    Route("/api/workflows/instances", list_instances, methods=["GET"]),
    Route("/api/workflows/instances/{instance}", get_instance, methods=["GET"]),
    Route("/api/workflows/instances/{instance}", set_instance_status, methods=["PATCH"]),
    Route("/api/workflows/steps/{step}/{verb}", move_step, methods=["POST"]),
    Route("/api/locks", list_locks, methods=["GET"]),
    Route("/api/presence", list_presence, methods=["GET"]),
    Route("/api/events", list_events, methods=["GET"]),
    Route("/api/events/stream", stream_events, methods=["GET"]),
    Route("/api/search", search, methods=["GET"]),
]


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
