"""What each WebSocket request does (docs/protocol.md sections 4 to 8), once the session has
read it, checked its envelope and given it its turn (``server/session.py``).

Each handler takes the session, the decoded message and its request id, calls the service
(``Coedit`` and ``Coedit.reads``) and queues exactly one reply; a refusal raises and the
session answers it. Nothing here touches the socket or the order of replies.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from channels.presence import idea_topic, stage_topic
from channels.presence_backend import PresenceEntry
from persistence.document_writes import KIND_PATTERN
from persistence.errors import BadRequest
from persistence.events import EventFilter
from server.auth import Action
from server.wire import optional_int, require_doc, require_str, validate_presence_state

if TYPE_CHECKING:
    from server.session import Session

__all__ = ["HANDLERS"]

log = logging.getLogger(__name__)

Handler = Callable[["Session", dict[str, Any], int | str], Awaitable[None]]


async def subscribe(session: Session, message: dict[str, Any], rid: int | str) -> None:
    if "stream" in message:
        await _subscribe_stream(session, message, rid)
        return
    if "stage" in message:
        await _subscribe_stage(session, message, rid)
        return
    if "idea" in message:
        await _subscribe_idea(session, message, rid)
        return
    doc = require_doc(message)
    since = optional_int(message, "since", minimum=0)
    ctx = session.context(message)
    await session.coedit.authorize(session.identity, Action.READ, ctx, doc=doc,
                                   what="read documents")  # before leaving the old one
    previous = session.subscriptions.pop(doc, None)
    if previous is not None:
        await session.coedit.hub.leave(previous)
    hub = session.coedit.hub
    sub = await hub.join(session.outbox, session.identity.tenant, doc)
    try:
        view = await session.coedit.reads.subscription(session.identity, ctx, doc)
        document = view.document
        version = document["version"]
        if since is not None and since > version:
            raise BadRequest(f"since {since} is ahead of the current version {version}",
                             current_version=version)
        fields: dict[str, Any] = {
            "doc": doc, "version": version,
            "locks": view.locks,
        }
        if since is None:
            fields["state"] = document["state"]
        others = view.presence
        if previous is not None:  # only a session subscribed before can be listed already
            others = [e for e in others if e.session != session.id]
        session.reply(rid, fields, ("presence", others))
        await hub.activate(sub, current=version, since=since)
    except BaseException:
        await hub.leave(sub)
        raise
    session.subscriptions[doc] = sub
    if previous is None:
        state = {"status": "viewing"}
        session.presence_state[doc] = state
        # The reply is out already: a presence hiccup must not become a second reply.
        entry = _entry(session, doc, document["kind"], state, document.get("idea"))
        await _quietly(session, session.coedit.presence.join(entry))


async def _quietly(session: Session, change: Awaitable[None]) -> None:
    try:
        await change
    except Exception:
        log.warning("presence change of session %s failed", session.id, exc_info=True)


def _entry(session: Session, doc: str, kind: str, state: dict[str, Any],
           idea: str | None) -> PresenceEntry:
    return PresenceEntry(
        session=session.id, user={"id": session.identity.id, "name": session.identity.name},
        doc=doc, kind=kind, node=session.coedit.settings.node_id, state=state,
        since=session.since, tenant=session.identity.tenant, idea=idea,
    )


async def _subscribe_stage(session: Session, message: dict[str, Any], rid: int | str) -> None:
    kind = require_str(message, "stage", maximum=32)
    if not KIND_PATTERN.fullmatch(kind):
        raise BadRequest("stage must be a document kind: [a-z][a-z0-9_]{0,31}")
    topic = stage_topic(session.identity.tenant, kind)
    if topic not in session.stages:
        await session.coedit.hub.join_topic(session.outbox, topic)
        session.stages.add(topic)
    present = await session.coedit.reads.presence(session.identity, session.context(message),
                                                  kind=kind)
    session.reply(rid, {"stage": kind}, ("presence", present))


async def _subscribe_idea(session: Session, message: dict[str, Any], rid: int | str) -> None:
    """Presence of every document of an idea, as a stage subscription gives a kind's."""
    idea = require_str(message, "idea", maximum=36)
    present = await session.coedit.reads.idea_presence(session.identity,
                                                       session.context(message), idea)
    topic = idea_topic(session.identity.tenant, idea)
    if topic not in session.stages:
        await session.coedit.hub.join_topic(session.outbox, topic)
        session.stages.add(topic)
    session.reply(rid, {"idea": idea}, ("presence", present))


async def _subscribe_stream(session: Session, message: dict[str, Any], rid: int | str) -> None:
    spec = message.get("stream")
    if not isinstance(spec, dict):
        raise BadRequest("stream must be a map of kinds, types, docs, ideas and actors")
    unknown = set(spec) - {"kinds", "types", "docs", "ideas", "actors"}
    if unknown:
        raise BadRequest(f"unknown stream filter fields: {', '.join(sorted(unknown))}")
    flt = EventFilter.parse(**spec)
    since = optional_int(message, "since", minimum=0)
    streams = session.coedit.streams
    sub = await session.coedit.reads.follow_events(session.identity, session.context(message),
                                                   session.outbox, flt)
    session.streams[sub.id] = sub
    try:
        session.reply(rid, {"stream": sub.id, "seq": sub.start})
        await streams.activate(sub, since)
    except BaseException:
        session.streams.pop(sub.id, None)
        await streams.unsubscribe(sub)
        raise


async def unsubscribe(session: Session, message: dict[str, Any], rid: int | str) -> None:
    if "stream" in message:
        stream_id = require_str(message, "stream", maximum=64)
        stream = session.streams.pop(stream_id, None)
        if stream is not None:
            await session.coedit.streams.unsubscribe(stream)
        session.reply(rid, {"stream": stream_id})
        return
    for field, topic_of in (("stage", stage_topic), ("idea", idea_topic)):
        if field in message:
            name = require_str(message, field, maximum=36)
            topic = topic_of(session.identity.tenant, name)
            if topic in session.stages:
                session.stages.discard(topic)
                await session.coedit.hub.leave_topic(session.outbox, topic)
            session.reply(rid, {field: name})
            return
    doc = require_doc(message)
    sub = session.subscriptions.pop(doc, None)
    if sub is not None:
        await session.coedit.hub.leave(sub)
        session.presence_state.pop(doc, None)
        await _quietly(session, session.coedit.presence.leave(doc, session.id))
    session.reply(rid, {"doc": doc})


async def set_presence(session: Session, message: dict[str, Any], rid: int | str) -> None:
    doc = require_doc(message)
    if doc not in session.subscriptions:
        raise BadRequest("subscribe to the document before setting presence on it")
    state = validate_presence_state(message.get("state"))
    kind, idea = await session.coedit.reads.placement(session.identity,
                                                      session.context(message), doc)
    session.presence_state[doc] = state
    await session.coedit.presence.update(_entry(session, doc, kind, state, idea))
    session.reply(rid, {"doc": doc})


async def lock(session: Session, message: dict[str, Any], rid: int | str) -> None:
    doc = require_doc(message)
    granted = await session.coedit.lock(
        session.identity, session.context(message), session.id, doc, path=message.get("path"),
        ttl_ms=message.get("ttl_ms"), force=message.get("force", False),
    )
    session.holds_locks = True
    session.reply(rid, {"lock": granted})


async def unlock(session: Session, message: dict[str, Any], rid: int | str) -> None:
    doc = require_doc(message)
    released = await session.coedit.unlock(session.identity, session.context(message),
                                           session.id, doc, path=message.get("path"))
    session.reply(rid, {"lock": released})


async def patch(session: Session, message: dict[str, Any], rid: int | str) -> None:
    """A patch that had to wait: for room among the writes in flight, or behind another
    request, or to have its refusal recorded."""
    doc = require_doc(message)
    await session.wait_for_write_room()
    await session.coedit.authorize(session.identity, Action.WRITE, session.context(message),
                                   doc=doc, what="patch documents")
    session.queue_patch(message, rid)


async def create(session: Session, message: dict[str, Any], rid: int | str) -> None:
    require_str(message, "kind", maximum=32)
    document = await session.coedit.create_document(session.identity,
                                                    session.context(message), message)
    session.reply(rid, {"document": document})


HANDLERS: dict[str, Handler] = {
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
    "patch": patch,
    "create": create,
    "presence": set_presence,
    "lock": lock,
    "unlock": unlock,
}
