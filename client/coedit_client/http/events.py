"""The audit log over HTTP (PROTOCOL.md section 8): pages of events, and the live stream as
Server-Sent Events for environments without WebSockets.

:meth:`Events.follow` reconnects by itself and resumes with ``Last-Event-ID``, dropping any
``seq`` it has already yielded, so a reader sees each event once, in ``seq`` order, however
often the stream breaks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from coedit_client.backoff import Backoff
from coedit_client.errors import CoeditError, RateLimited, Unavailable
from coedit_client.http.transport import Transport

__all__ = ["Events"]

log = logging.getLogger("coedit_client")


def _filters(kinds: Sequence[str] | None, types: Sequence[str] | None,
             docs: Sequence[str] | None, actors: Sequence[str] | None,
             ideas: Sequence[str] | None) -> dict[str, list[str] | None]:
    return {"kind": list(kinds or []), "type": list(types or []), "doc": list(docs or []),
            "actor": list(actors or []), "idea": list(ideas or [])}


class Events:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def list(
        self, *, kinds: Sequence[str] | None = None, types: Sequence[str] | None = None,
        docs: Sequence[str] | None = None, actors: Sequence[str] | None = None,
        ideas: Sequence[str] | None = None, since: int | None = None,
        until: str | None = None, limit: int | None = None, cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page: ``{"events": [...], "next": cursor or None}``."""
        params: dict[str, Any] = _filters(kinds, types, docs, actors, ideas)
        params.update(since=since, until=until, limit=limit, cursor=cursor)
        page: dict[str, Any] = await self._t.json("GET", "/api/events", params=params)
        return page

    async def iterate(
        self, *, kinds: Sequence[str] | None = None, types: Sequence[str] | None = None,
        docs: Sequence[str] | None = None, actors: Sequence[str] | None = None,
        ideas: Sequence[str] | None = None, since: int | None = None,
        until: str | None = None, page_size: int = 1000,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching event stored so far, page after page, in ``seq`` order."""
        cursor: str | None = None
        while True:
            page = await self.list(kinds=kinds, types=types, docs=docs, actors=actors,
                                   ideas=ideas, since=since, until=until, limit=page_size,
                                   cursor=cursor)
            for event in page["events"]:
                yield event
            cursor = page.get("next")
            if not cursor:
                return

    async def follow(
        self, *, kinds: Sequence[str] | None = None, types: Sequence[str] | None = None,
        docs: Sequence[str] | None = None, actors: Sequence[str] | None = None,
        ideas: Sequence[str] | None = None, since: int | None = None,
        backoff: Backoff | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Events as they commit, over ``GET /api/events/stream``, after ``since`` (default:
        from now), resumed with ``Last-Event-ID`` whenever the stream breaks."""
        backoff = backoff or Backoff()
        last = since
        params = _filters(kinds, types, docs, actors, ideas)
        while True:
            headers = {"Accept": "text/event-stream"}
            query: dict[str, Any] = dict(params)
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            try:
                async with self._t.stream("/api/events/stream", params=query,
                                          headers=headers) as response:
                    async for event in _server_sent_events(response):
                        backoff.reset()
                        seq = event.get("seq")
                        if not isinstance(seq, int) or (last is not None and seq <= last):
                            continue
                        last = seq
                        yield event
            except (httpx.TransportError, Unavailable, RateLimited) as exc:
                log.info("event stream broke (%s); resuming after seq %s", exc, last)
            except CoeditError:
                raise
            await asyncio.sleep(backoff.next_delay())


async def _server_sent_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The ``data:`` of each event of a ``text/event-stream`` body, decoded as JSON."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                payload = "\n".join(data)
                data = []
                try:
                    event = json.loads(payload)
                except ValueError:
                    log.warning("undecodable server-sent event; ignored")
                    continue
                if isinstance(event, dict):
                    yield event
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
