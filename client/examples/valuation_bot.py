"""A bot that fills a valuation from a data feed.

    COEDIT_URL=http://localhost:8000 COEDIT_TOKEN=... python valuation_bot.py DOC_ID

It locks the valuation's inputs so no analyst edits them half-way, says in its presence what
it is doing, writes the feed's numbers, and then computes the value from the fresh state. If
someone changed the inputs meanwhile, the retry policy recomputes from what is there now.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import coedit_client


def fetch_feed() -> dict[str, float]:
    """Stand-in for a market-data feed."""
    return {"revenue": 1250.0, "margin": 0.21, "growth": 0.04, "wacc": 0.082}


def value_ops(state: dict[str, Any]) -> list[dict[str, Any]]:
    """A one-stage Gordon growth value from the inputs as they are in ``state``. The ``test``
    op makes the write a conflict if the inputs changed before it lands, so the value is
    never computed from inputs that are no longer there."""
    inputs = state["valuation"]["inputs"]
    cash_flow = inputs["revenue"] * inputs["margin"]
    value = cash_flow * (1 + inputs["growth"]) / (inputs["wacc"] - inputs["growth"])
    return [{"op": "test", "path": "/valuation/inputs", "value": inputs},
            {"op": "add", "path": "/valuation/value", "value": round(value, 2)}]


async def fill(url: str, token: str, doc_id: str) -> int:
    async with coedit_client.connect(url, token=token) as client:
        doc = await client.open(doc_id)
        await doc.set_presence({"status": "editing", "focus": "/valuation/inputs"})
        if "valuation" not in doc.state:
            await doc.patch([{"op": "add", "path": "/valuation",
                              "value": {"inputs": {}}}])
        async with doc.lock("/valuation/inputs", ttl_ms=10_000):
            feed = fetch_feed()
            await doc.patch([{"op": "add", "path": f"/valuation/inputs/{name}", "value": v}
                             for name, v in feed.items()])
        version = await doc.patch(value_ops(doc.state),
                                  retry=lambda fresh: value_ops(fresh))
        await doc.set_presence({"status": "idle"})
        print(f"valuation {doc_id} filled at version {version}: "
              f"{doc.state['valuation']['value']}")
        return version


if __name__ == "__main__":
    asyncio.run(fill(os.environ["COEDIT_URL"], os.environ["COEDIT_TOKEN"], sys.argv[1]))
