"""The HTTP resources of docs/protocol.md section 9, plus dev login, health and metrics: one
module per family of resources, and here the one route table that serves them all."""

from __future__ import annotations

from starlette.routing import Route

from server.http.documents import (
    create_document,
    get_document,
    list_documents,
    patch_document,
    verify_document,
)
from server.http.events import document_history, list_events, stream_events
from server.http.identity import dev_login, me
from server.http.locks import list_locks, release_lock, take_lock
from server.http.operations import healthz, metrics, openapi, readyz
from server.http.presence import list_presence
from server.http.reviews import (
    add_comment,
    archive_document,
    assign_review,
    get_review,
    list_comments,
    reopen_document,
    resolve_comment,
    transition_review,
)

__all__ = ["routes"]


routes = [
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
    Route("/api/documents/{doc}/comments/{comment}/resolve", resolve_comment,
          methods=["POST"]),
    Route("/api/documents/{doc}/review", get_review, methods=["GET"]),
    Route("/api/documents/{doc}/review", assign_review, methods=["PUT"]),
    Route("/api/documents/{doc}/review/transition", transition_review, methods=["POST"]),
    Route("/api/documents/{doc}/archive", archive_document, methods=["POST"]),
    Route("/api/documents/{doc}/reopen", reopen_document, methods=["POST"]),
    Route("/api/locks", list_locks, methods=["GET"]),
    Route("/api/presence", list_presence, methods=["GET"]),
    Route("/api/events", list_events, methods=["GET"]),
    Route("/api/events/stream", stream_events, methods=["GET"]),
]
