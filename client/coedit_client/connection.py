"""The connection: one WebSocket at a time, replaced whenever it drops.

:class:`Client` owns the socket, the request ids and their replies, heartbeats and the
reconnect loop. What lives across connections (open documents, event streams, stage feeds)
registers as a :class:`Resumable`: after every new welcome each one resumes itself (resubscribe
from the last version or seq it saw, re-send its unanswered writes with their keys), and every
drop tells each one so it can mark what was tied to the old session (its locks) as lost.

Replies are matched by ``re``. A request may pass ``on_reply``, which runs in the reader before
the next frame is dispatched: a subscribe reply must install the replica's state before the
deltas that follow it are applied, and a write's reply must name its version before that
version's delta arrives, and a coroutine woken by a future would run too late for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from coedit_client.backoff import Backoff
from coedit_client.codec import Encoding, decode_frame, encode_frame
from coedit_client.errors import (
    ClientClosed,
    CoeditError,
    ConnectionLost,
    Forbidden,
    RateLimited,
    TokenExpired,
    Unauthorized,
    Unavailable,
    error_from,
)
from coedit_client.http import Api

if TYPE_CHECKING:
    from coedit_client.documents import Document
    from coedit_client.streams import EventStream, PresenceFeed

__all__ = ["Client", "Resumable", "TokenRefresher", "connect"]

log = logging.getLogger("coedit_client")

TokenRefresher = Callable[[], Awaitable[str | None] | str | None]
ReplyHook = Callable[[dict[str, Any]], None]

# Close codes of the contract (PROTOCOL.md section 3).
GOING_AWAY = 1001
SLOW_CONSUMER = 1013
TOKEN_EXPIRED = 4401
HEARTBEAT_TIMEOUT = 4408


class Resumable(Protocol):
    """Something that outlives a connection."""

    async def resume(self) -> None:
        """Re-establish what the new connection does not know yet (called after welcome)."""

    def disconnected(self) -> None:
        """The connection dropped; what was tied to its session is gone."""

    def end(self, exc: BaseException) -> None:
        """The client closed or failed for good: iterators end (or raise ``exc``) and
        waiters fail with it."""


def _split_urls(url: str) -> tuple[str, str]:
    """``(websocket url, http base url)`` from either form a user may give."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    secure = scheme in ("https", "wss")
    path = parts.path.rstrip("/")
    if scheme in ("ws", "wss"):
        base_path = path[:-3] if path.endswith("/ws") else path
        ws_path = path or "/ws"
    elif scheme in ("http", "https"):
        base_path = path
        ws_path = f"{path}/ws"
    else:
        raise ValueError(f"{url!r}: give an http(s):// or ws(s):// URL of a coedit server")
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, ws_path, "", ""))
    http = urlunsplit(("https" if secure else "http", parts.netloc, base_path, "", ""))
    return ws, http


class _Closed(Exception):
    """The socket closed with ``code`` (None: it failed without a close frame)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


class Client:
    """A connection to one coedit cluster that reconnects by itself.

    Build it with :func:`connect`. ``urls`` may list several nodes: each reconnect tries the
    next one after a failure, which is how a client follows a cluster when a node goes away.
    """

    def __init__(
        self, urls: str | Sequence[str], *, token: str | None = None,
        token_refresher: TokenRefresher | None = None, encoding: str | Encoding = "json",
        backoff: Backoff | None = None, open_timeout: float = 30.0,
        request_timeout: float = 30.0, http_retries: int = 3,
    ) -> None:
        url_list = [urls] if isinstance(urls, str) else list(urls)
        if not url_list:
            raise ValueError("give the URL of at least one coedit node")
        self._endpoints = [_split_urls(u) for u in url_list]
        self._endpoint = 0
        self._token = token
        self._refresher = token_refresher
        self.encoding = Encoding.of(encoding)
        self._backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self.request_timeout = request_timeout
        self.api = Api(self._endpoints[0][1], token=token, retries=http_retries)
        self.welcome: dict[str, Any] = {}
        self.connections = 0  # how many welcomes this client received
        self.past_sessions: set[str] = set()  # the sessions of earlier connections
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], ReplyHook | None]] = {}
        self._conn: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._failure: BaseException | None = None
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._resuming: set[asyncio.Task[None]] = set()
        self.documents: dict[str, Document] = {}
        self.streams: dict[str, EventStream] = {}  # by the server's stream id
        self.presence_feeds: dict[tuple[str, str], PresenceFeed] = {}
        self._resumables: list[Resumable] = []
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def session(self) -> str | None:
        """The server's id of the current connection's session (changes on reconnect)."""
        value = self.welcome.get("session")
        return value if isinstance(value, str) else None

    @property
    def node(self) -> str | None:
        value = self.welcome.get("node")
        return value if isinstance(value, str) else None

    @property
    def user(self) -> dict[str, Any]:
        value = self.welcome.get("user")
        return value if isinstance(value, dict) else {}

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Connect; returns after the first welcome, raises if the server refuses us or
        cannot be reached within ``open_timeout``."""
        if self._runner is not None:
            raise RuntimeError("Client.start() was called twice")
        self._runner = asyncio.create_task(self._run(), name="coedit-client")
        waiter = asyncio.ensure_future(self._connected.wait())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            done, _ = await asyncio.wait([waiter, stopped], timeout=self.open_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stopped.cancel()
        if self._failure is not None:
            await self.close()
            raise self._failure
        if not done:
            await self.close()
            raise Unavailable(f"no coedit node answered within {self.open_timeout} s")

    async def close(self) -> None:
        """Stop reconnecting, close the socket, and fail whatever still waits."""
        self._closing = True
        if self._failure is None:
            self._failure = ClientClosed("the client was closed")
        runner, self._runner = self._runner, None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 5)
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        for task in list(self._resuming):
            task.cancel()
        await asyncio.gather(*self._resuming, return_exceptions=True)
        self._fail_pending(self._failure)
        self._end_resources(self._failure)
        self._stopped.set()
        await self.api.aclose()

    async def wait_connected(self) -> None:
        """Until a connection is up (raises once the client has failed or closed)."""
        while not self._connected.is_set():
            self._raise_if_failed()
            waiter = asyncio.ensure_future(self._connected.wait())
            stopped = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait([waiter, stopped], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopped.cancel()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    def register(self, resumable: Resumable) -> None:
        self._resumables.append(resumable)

    def unregister(self, resumable: Resumable) -> None:
        with contextlib.suppress(ValueError):
            self._resumables.remove(resumable)

    def on_message(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener`` with every push no document or stream claimed (``notification``
        and other messages of later protocol sections)."""
        self._listeners.append(listener)

    # -- requests -------------------------------------------------------------------------

    async def send_request(
        self, message: dict[str, Any], *, on_reply: ReplyHook | None = None
    ) -> asyncio.Future[dict[str, Any]]:
        """Send ``message`` with a fresh id on the current connection; the future gets the
        reply (``ok`` or ``error`` map) or :class:`ConnectionLost` if the connection drops
        first. Raises :class:`ConnectionLost` when there is no connection right now."""
        self._raise_if_failed()
        conn = self._conn
        if conn is None:
            raise ConnectionLost("not connected")
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        # A caller may stop waiting (cancelled, or a write whose outcome travels elsewhere):
        # the exception a drop sets is then nobody's to retrieve, and that is fine.
        future.add_done_callback(_seen)
        self._pending[rid] = (future, on_reply)
        try:
            await conn.send(encode_frame({**message, "id": rid}, self.encoding))
        except websockets.ConnectionClosed:
            self._pending.pop(rid, None)
            if conn is self._conn:
                self._connected.clear()  # the reader will notice too; don't send again
            raise ConnectionLost("the connection dropped") from None
        return future

    async def request(
        self, kind: str, /, *, retry: bool = False, on_reply: ReplyHook | None = None,
        within: float | None = None, **fields: Any,
    ) -> dict[str, Any]:
        """Send a request and return its ``ok`` reply; an ``error`` reply raises its exception.

        With ``retry`` (only for requests that are safe to repeat) a dropped connection, a
        ``rate_limited`` (after ``retry_after_ms``) and a brief ``unavailable`` are retried on
        the next connection; the attempts are bounded by ``within`` seconds (default
        ``request_timeout``).
        """
        deadline = asyncio.get_running_loop().time() + (within or self.request_timeout)
        backoff = Backoff(initial=0.05, maximum=2.0)
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                async with asyncio.timeout(max(remaining, 0.001)):
                    await self.wait_connected()
                    future = await self.send_request({"type": kind, **fields},
                                                     on_reply=on_reply)
                    reply = await future
            except TimeoutError:
                raise Unavailable(f"{kind}: no answer within "
                                  f"{within or self.request_timeout} s") from None
            except ConnectionLost:
                if not retry:
                    raise
                await asyncio.sleep(backoff.next_delay())
                continue
            if reply.get("type") == "ok":
                return reply
            error = error_from(reply)
            if retry and isinstance(error, RateLimited | Unavailable):
                delay = (error.retry_after_ms / 1000 if isinstance(error, RateLimited)
                         and error.retry_after_ms else backoff.next_delay())
                if asyncio.get_running_loop().time() + delay < deadline:
                    await asyncio.sleep(delay)
                    continue
            raise error

    # -- documents, streams ---------------------------------------------------------------

    async def open(self, doc: str) -> Document:
        """A live replica of ``doc`` (subscribed; kept up to date across reconnects)."""
        from coedit_client.documents import Document

        existing = self.documents.get(doc)
        if existing is not None:
            return existing
        document = Document(self, doc)
        self.documents[doc] = document
        try:
            await document.start()
        except BaseException:
            self.documents.pop(doc, None)
            raise
        return document

    async def create(
        self, kind: str, title: str, state: dict[str, Any] | None = None, *,
        idea: str | None = None,
    ) -> dict[str, Any]:
        """Create a document (over the WebSocket) and return it at version 1.

        Creation carries no idempotency key in the contract: if the connection drops before
        the reply this raises :class:`ConnectionLost`, and the document may exist.
        """
        fields: dict[str, Any] = {"kind": kind, "title": title, "state": state or {}}
        if idea is not None:
            fields["idea"] = idea
        reply = await self.request("create", **fields)
        document: dict[str, Any] = reply["document"]
        return document

    def events(
        self, *, types: Sequence[str] | None = None, kinds: Sequence[str] | None = None,
        docs: Sequence[str] | None = None, actors: Sequence[str] | None = None,
        ideas: Sequence[str] | None = None, since: int | None = None,
    ) -> EventStream:
        """The tenant's audit events as they commit, after ``since`` (default: from now),
        each exactly once in ``seq`` order, across reconnects. Use with ``async for`` (and
        ``async with`` to unsubscribe at the end)."""
        from coedit_client.streams import EventStream

        spec: dict[str, list[str]] = {}
        for name, values in (("types", types), ("kinds", kinds), ("docs", docs),
                             ("actors", actors), ("ideas", ideas)):
            if values:
                spec[name] = list(values)
        return EventStream(self, spec, since)

    def stage(self, kind: str) -> PresenceFeed:
        """The presence of every document of ``kind``: its entries, then every diff."""
        from coedit_client.streams import PresenceFeed

        return PresenceFeed(self, "stage", kind)

    def idea(self, idea: str) -> PresenceFeed:
        """The presence of every document of an idea (PROTOCOL.md section 10)."""
        from coedit_client.streams import PresenceFeed

        return PresenceFeed(self, "idea", idea)

    # -- the connection loop --------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._closing:
                code = await self._connect_once()
                if self._closing:
                    return
                if code == TOKEN_EXPIRED and not await self._refresh_token():
                    self._fail(TokenExpired("the token expired (close 4401) and no token "
                                            "refresher gave a new one"))
                    return
                if code in (GOING_AWAY, None):
                    self._endpoint = (self._endpoint + 1) % len(self._endpoints)
                # 1013 (slow consumer) and 4408 (heartbeat timeout): come back at once,
                # jittered; anything else waits its backoff.
                delay = (self._backoff.next_delay() if code not in (SLOW_CONSUMER,
                                                                    HEARTBEAT_TIMEOUT)
                         else Backoff(initial=0.05).next_delay())
                await asyncio.sleep(delay)
        except CoeditError as exc:
            self._fail(exc)

    async def _refresh_token(self) -> bool:
        if self._refresher is None:
            return False
        result = self._refresher()
        token = await result if inspect.isawaitable(result) else result
        if not token:
            return False
        self._token = token
        self.api.set_token(token)
        return True

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        self._fail_pending(exc)
        self._end_resources(exc)
        self._stopped.set()

    def _end_resources(self, exc: BaseException) -> None:
        for resumable in list(self._resumables):
            try:
                resumable.end(exc)
            except Exception:
                log.exception("ending %r failed", resumable)

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(exc)

    async def _dial(self) -> ClientConnection | None:
        """One handshake with the current node; None when it failed in a way worth retrying."""
        ws_url, _ = self._endpoints[self._endpoint]
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            return await websockets.connect(
                ws_url, subprotocols=[self.encoding.value],  # type: ignore[list-item]
                additional_headers=headers, max_size=None, open_timeout=10,
                ping_interval=20, ping_timeout=20,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                if await self._refresh_token():
                    return None
                raise Unauthorized("the server refused the token (HTTP 401)") from None
            if status == 403:
                raise Forbidden("the server refused the connection (HTTP 403)") from None
            log.info("coedit handshake answered %s; retrying", status)
        except (OSError, TimeoutError, websockets.InvalidHandshake,
                websockets.ConnectionClosed) as exc:
            log.info("coedit connection to %s failed: %s; retrying", ws_url, exc)
        self._endpoint = (self._endpoint + 1) % len(self._endpoints)
        return None

    async def _connect_once(self) -> int | None:
        """Dial, read the welcome, resume every resource, then read until the socket closes;
        returns the close code."""
        conn = await self._dial()
        if conn is None:
            return -1
        heartbeat: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(10):
                welcome = decode_frame(await conn.recv())
            if welcome.get("type") != "welcome":
                raise _Closed(None)
            if self.session is not None:
                self.past_sessions.add(self.session)
            self.welcome = welcome
            self.connections += 1
            self._conn = conn
            self._backoff.reset()
            self._connected.set()
            self.api.set_base(self._endpoints[self._endpoint][1])
            for resumable in list(self._resumables):
                task = asyncio.create_task(self._resume(resumable))
                self._resuming.add(task)
                task.add_done_callback(self._resuming.discard)
            interval = float(welcome.get("heartbeat_ms") or 10_000) / 1000
            heartbeat = asyncio.create_task(self._heartbeat(conn, interval))
            await self._read(conn)
        except (_Closed, TimeoutError, ValueError):
            pass
        except websockets.ConnectionClosed:
            pass
        finally:
            self._connected.clear()
            self._conn = None
            if heartbeat is not None:
                heartbeat.cancel()
            for task in list(self._resuming):
                task.cancel()
            self._fail_pending(ConnectionLost("the connection dropped"))
            for resumable in list(self._resumables):
                resumable.disconnected()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
        return conn.close_code

    async def _resume(self, resumable: Resumable) -> None:
        try:
            await resumable.resume()
        except (ConnectionLost, asyncio.CancelledError):
            pass  # the next connection resumes it again
        except Exception:
            log.warning("resuming %r failed", resumable, exc_info=True)

    async def _heartbeat(self, conn: ClientConnection, interval: float) -> None:
        """A heartbeat with an id every third of an interval; a node that stops answering
        them within three intervals is taken for dead and the socket is dropped."""
        try:
            while True:
                await asyncio.sleep(interval / 3)
                future = await self.send_request({"type": "heartbeat"})
                try:
                    await asyncio.wait_for(future, 3 * interval)
                except TimeoutError:
                    # A closing handshake would wait for the silent peer too: drop the
                    # socket, and the loop moves on (to the next node, if there are several).
                    log.info("no heartbeat answer within %.1f s; reconnecting", 3 * interval)
                    conn.transport.abort()
                    return
                except CoeditError:
                    return
        except (ConnectionLost, websockets.ConnectionClosed):
            return

    async def _read(self, conn: ClientConnection) -> None:
        async for frame in conn:
            try:
                message = decode_frame(frame)
            except ValueError:
                log.warning("undecodable frame from the server; ignored")
                continue
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        rid = message.get("re")
        if kind in ("ok", "error") and isinstance(rid, int):
            entry = self._pending.pop(rid, None)
            if entry is not None:
                future, hook = entry
                if hook is not None:
                    try:
                        hook(message)
                    except Exception:
                        log.exception("reply hook failed")
                if not future.done():
                    future.set_result(message)
            return
        if kind == "event":
            stream = self.streams.get(str(message.get("stream")))
            if stream is not None:
                stream.deliver(message)
            return
        if kind == "presence" and ("stage" in message or "idea" in message):
            scope = "stage" if "stage" in message else "idea"
            feed = self.presence_feeds.get((scope, str(message[scope])))
            if feed is not None:
                feed.deliver(message)
            return
        doc = message.get("doc")
        if isinstance(doc, str) and doc in self.documents:
            self.documents[doc].deliver(message)
            return
        for listener in list(self._listeners):
            listener(message)


def _seen(future: asyncio.Future[dict[str, Any]]) -> None:
    if not future.cancelled():
        future.exception()


@contextlib.asynccontextmanager
async def connect(
    url: str | Sequence[str], *, token: str | None = None,
    token_refresher: TokenRefresher | None = None, encoding: str | Encoding = "json",
    backoff: Backoff | None = None, open_timeout: float = 30.0, request_timeout: float = 30.0,
) -> AsyncIterator[Client]:
    """``async with connect(url, token=...) as client:`` a connected :class:`Client`,
    closed at the end of the block.

    ``url`` is a node's base URL (``http://host:8000``) or its WebSocket URL, or a list of
    nodes to rotate through. ``token_refresher`` (sync or async) is called for a new token
    when the server closes with 4401 or refuses the token; without one that is fatal.
    ``encoding`` is ``"json"`` or ``"msgpack"``.
    """
    client = Client(url, token=token, token_refresher=token_refresher, encoding=encoding,
                    backoff=backoff, open_timeout=open_timeout, request_timeout=request_timeout)
    await client.start()
    try:
        yield client
    finally:
        await client.close()
