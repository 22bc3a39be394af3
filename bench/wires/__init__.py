"""How the load generator speaks each peer's wire: one module per peer.

A module offers ``async join(client, target)``, which takes a freshly upgraded connection
to the point where the peer delivers the document's changes to it (raising if it refuses),
and ``keepalive(client)``, the payload hook that answers the peer's application-level pings
(or None when the peer has none). Everything after set-up is counted by
:class:`bench.wsclient.FrameCounter` without being parsed.
"""
