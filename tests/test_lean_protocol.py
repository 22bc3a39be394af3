"""server/ws_protocol.py: uvicorn's WebSocket behaviour with less held per idle connection.

Its parts keep the contract of what they replace (the receive queue delivers in order to one
reader and loses nothing to a cancelled wait; the writable event wakes its waiters), and on a
real server an idle subscribed connection holds neither the handshake nor empty deques, while
the session on it keeps working.
"""

from __future__ import annotations

import asyncio
import collections
import gc

import pytest

from server.transport import direct_socket
from server.ws_protocol import LeanWebSocketProtocol, _Inbox, _LazyEvent
from tests.support import RunningServer

TIMEOUT = 10.0


async def test_inbox_delivers_in_order_and_wakes_its_reader() -> None:
    """Messages put before and while the reader waits come out in the order they went in."""
    inbox = _Inbox()
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert inbox.qsize() == 2 and not inbox.empty()
    assert await asyncio.wait_for(inbox.get(), TIMEOUT) == "a"
    assert await asyncio.wait_for(inbox.get(), TIMEOUT) == "b"
    assert inbox.empty()
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait("c")
    assert await asyncio.wait_for(waiting, TIMEOUT) == "c"


async def test_inbox_keeps_a_message_put_after_a_cancelled_wait() -> None:
    """A reader cancelled while waiting leaves no stale waiter: the next message is kept for
    the next reader, not handed to the dead one."""
    inbox = _Inbox()
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, TIMEOUT)
    inbox.put_nowait("kept")
    assert await asyncio.wait_for(inbox.get(), TIMEOUT) == "kept"


async def test_inbox_refuses_a_second_reader() -> None:
    """uvicorn has one reader per connection; a second would steal its wake-up."""
    inbox = _Inbox()
    first = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one reader"):
        await asyncio.wait_for(inbox.get(), TIMEOUT)
    inbox.put_nowait(1)
    assert await asyncio.wait_for(first, TIMEOUT) == 1


async def test_lazy_event_waits_and_wakes_like_asyncio_event() -> None:
    """Set: wait returns at once and no deque is made. Cleared: waiters block until set."""
    event = _LazyEvent()
    event.set()
    assert await asyncio.wait_for(event.wait(), TIMEOUT) is True
    assert not isinstance(event._waiters, collections.deque)
    event.clear()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    event.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), TIMEOUT) == [True, True, True]


async def test_an_idle_connection_holds_no_handshake_and_no_empty_deque(
        server: RunningServer) -> None:
    """After subscribing and going idle, the connection's protocol has dropped the request
    and response, websockets' parser holds no header, no deque is held for it, and the
    session still answers and receives deltas."""
    token = server.token()
    doc = (await server.create(token))["id"]
    async with await server.connect(token) as client, await server.connect(token) as writer:
        await client.ok("subscribe", doc=doc)
        await client.ok("heartbeat")
        session = next(s for s in server.coedit.sessions.values()
                       if s.id == client.welcome["session"])
        protocol = session.ws.scope["coedit.protocol"]
        assert isinstance(protocol, LeanWebSocketProtocol)
        assert protocol.request is None and protocol.response is None
        assert isinstance(protocol.queue, _Inbox)
        assert direct_socket(session.ws.scope) is not None  # the fast path still applies
        gc.collect()
        # Whatever still refers to a deque must not be this connection's protocol, its
        # session or its outbox.
        mine = {id(protocol), id(protocol.writable), id(session), id(session.outbox)}
        for obj in gc.get_referrers(*[o for o in gc.get_objects()
                                      if type(o) is collections.deque]):
            owner = next((r for r in gc.get_referrers(obj) if getattr(r, "__dict__", None)
                          is obj), None) if isinstance(obj, dict) else obj
            assert id(owner) not in mine
        parser_frame = protocol.conn.parser.gi_frame
        request = parser_frame.f_locals.get("request") if parser_frame is not None else None
        assert request is None or len(request.headers) == 0
        version = (await writer.ok("patch", doc=doc, base=1,
                                   ops=[{"op": "add", "path": "/text", "value": "x"}]))
        delta = await client.recv_type("delta")
        assert delta["version"] == version["version"]
