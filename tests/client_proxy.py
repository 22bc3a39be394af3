"""A TCP proxy in front of a server, for client tests that cut connections.

The client library reconnects by itself; to prove that nothing is lost or applied twice, a
test must be able to drop its connections at chosen moments, including the worst one: after a
request reached the server and before its reply reached the client. The proxy is the chaos
run's (``bench/chaos_proxy.py``): :meth:`~bench.chaos_proxy.FaultProxy.hold_replies` stops
forwarding the server's bytes on the open connections, :meth:`~bench.chaos_proxy.FaultProxy.cut`
aborts every connection without a close frame, as a network failure would, and
:meth:`~bench.chaos_proxy.FaultProxy.refuse` turns new ones away.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from bench.chaos_proxy import FaultProxy

__all__ = ["proxy_to"]


@contextlib.asynccontextmanager
async def proxy_to(port: int) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy("client", port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
