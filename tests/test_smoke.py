"""The basic path over real connections: create, subscribe, patch, receive the delta."""

from __future__ import annotations

from tests.support import RunningServer


async def test_writer_and_other_subscriber_receive_the_delta(server: RunningServer) -> None:
    """A patch at the current version is applied and both subscribers get its delta once."""
    token = server.token()
    doc = await server.create(token, state={"a": 1})
    async with await server.connect(token) as writer, await server.connect(token) as reader:
        for client in (writer, reader):
            reply = await client.ok("subscribe", doc=doc["id"])
            assert reply["version"] == 1 and reply["state"] == {"a": 1}
        reply = await writer.ok("patch", doc=doc["id"], base=1,
                                ops=[{"op": "replace", "path": "/a", "value": 2}])
        assert reply["version"] == 2
        for client in (writer, reader):
            (delta,) = await client.deltas(doc["id"], 1)
            assert delta["version"] == 2 and delta["ops"][0]["value"] == 2
            assert await client.nothing_more(0.2) == []
