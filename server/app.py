"""The app factory: settings in, a Starlette app out, every part wired in its lifespan.

Start-up order matters: the schema is migrated before anything listens (uvicorn runs the
lifespan before binding its socket), the broker is started before the first subscription,
and on shutdown the hub stops before the database goes, so no filler task reads a closed pool.
Parts are stopped in the reverse order of starting (server/lifecycle.py), also when a start
fails midway or a stop raises. The service reaches requests and WebSocket connections as
lifespan state (``request.state.coedit``), not as an attribute of the app.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import web
from channels.broker import Broker, MemoryBroker
from channels.hub import Hub
from channels.limits import MemoryWindows, WindowCounter
from channels.people import People
from channels.presence import Presence
from channels.presence_backend import MemoryPresence, PresenceBackend
from channels.streams import EventStreams
from persistence.database import Database
from persistence.documents import DocumentStore
from persistence.errors import BadRequest, CoeditError, NotFound
from persistence.events import EventLog
from persistence.locks import LockStore
from persistence.migrate import upgrade
from persistence.review_trail import ReviewTrailStores
from server.auth import TokenIssuer
from server.config import DEV_SECRET, Settings
from server.http import routes
from server.http.endpoint import error_response
from server.http.limits import HttpRateLimits
from server.lifecycle import NodeParts
from server.metrics import Metrics
from server.notifications import LiveNotifications
from server.service import Coedit, StoreDeltaLog
from server.session import CloseCode, serve_websocket
from server.transport import TransportHandle

__all__ = ["create_app", "make_broker"]

log = logging.getLogger(__name__)

WEB_DIR = Path(web.__file__).parent


def make_broker(
    settings: Settings, metrics: Metrics
) -> tuple[Broker, PresenceBackend, WindowCounter]:
    """The one place that chooses the cluster transport: memory, or Redis (one server or a
    Redis Cluster, see channels/transport.py) when configured. Besides the broker and
    presence, the counters behind rate limits and throttles."""
    if settings.redis_url is None:
        return MemoryBroker(), MemoryPresence(), MemoryWindows()
    from channels.transport import redis_transport

    return redis_transport(settings.redis_url, prefix=settings.key_prefix,
                           on_fallback=metrics.rate_limit_fallbacks.inc)


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> Starlette:
    settings = settings or Settings.from_env()
    if settings.secret == DEV_SECRET:
        log.warning("no COEDIT_SECRET set: dev mode, anyone can log in as anyone")
    elif len(settings.secret.encode()) < 32:
        log.warning("COEDIT_SECRET is shorter than 32 bytes; HS256 wants at least 32")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Coedit]]:
        async with NodeParts() as parts:
            if migrate:
                await parts.start("migrating the database",
                                  functools.partial(upgrade, settings.database_url))
            # The write path holds one driver connection per batch in flight, and one spare so
            # a new batch need not wait for the last one's connection to come back to the pool.
            db = Database(settings.database_url, pool_size=settings.db_pool,
                          driver_pool_size=settings.writes_in_flight + 1)
            parts.running("database", db.dispose)
            store = DocumentStore(db, snapshot_every=settings.snapshot_every,
                                  max_batch=settings.write_batch,
                                  writes_in_flight=settings.writes_in_flight,
                                  max_state_bytes=settings.max_state_bytes,
                                  redact=settings.redact,
                                  search_index=settings.search_index)
            metrics = Metrics()
            broker, presence_backend, counters = make_broker(settings, metrics)
            parts.running("rate-limit counters", counters.stop)
            hub = Hub(broker, StoreDeltaLog(store), prefix=settings.key_prefix)
            notifications = LiveNotifications(
                People(hub), counters, metrics, enabled=settings.notifications,
                per_minute=settings.notifications_per_minute)
            presence = Presence(presence_backend, hub, node=settings.node_id,
                                heartbeat_ms=settings.heartbeat_ms)
            event_log = EventLog(db)
            trail_stores = ReviewTrailStores.build(db, redact=settings.redact,
                                                   notifications=settings.notifications)
            # Documents created in an idea complete the workflow steps waiting for them.
            store.writer.workflows = trail_stores.workflows.engine
            coedit = Coedit(
                settings=settings, db=db, store=store, locks=LockStore(db),
                trail_stores=trail_stores,
                hub=hub,
                presence=presence, events=event_log, streams=EventStreams(event_log, hub),
                tokens=TokenIssuer(settings.secret, dev_auth=settings.dev_auth),
                metrics=metrics, limits=counters, notifications=notifications,
            )
            await parts.start("the hub", hub.start, stop=hub.stop)
            parts.running("live notifications", notifications.stop)
            await parts.start("presence", presence.start, stop=presence.stop)
            parts.running("event streams", coedit.streams.stop)
            coedit.start_background()
            parts.running("background jobs", coedit.stop_background)
            # Stopped first: sessions still open (no graceful drain ran) release what they
            # hold while everything they release it through still runs.
            parts.running("open sessions", functools.partial(
                coedit.close_sessions, CloseCode.GOING_AWAY, within=5.0))
            yield {"coedit": coedit}

    async def index(request: Request) -> Response:
        return FileResponse(WEB_DIR / "index.html")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return error_response(NotFound(f"no route {request.url.path}"))
        if status == 405:
            # 405 with the methods the route has: clients and HTTP tooling expect that
            # status; the body keeps the contract's shape, as a bad request.
            refused = error_response(BadRequest(f"{request.method} is not allowed here"),
                                     headers={"Allow": (exc.headers or {}).get("Allow", "")}
                                     if isinstance(exc, HTTPException) else None)
            refused.status_code = 405
            return refused
        return error_response(CoeditError(str(exc)))

    app = Starlette(
        routes=[
            *routes,
            Route("/", index, methods=["GET"]),
            Mount("/web", StaticFiles(directory=WEB_DIR), name="web"),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
        # /ws is served by TransportHandle itself, outside the layers below it.
        middleware=[Middleware(TransportHandle, websockets={"/ws": serve_websocket}),
                    Middleware(HttpRateLimits)],
    )
    return app
