"""A dashboard feed: every write and lock change of the tenant, as it happens.

    COEDIT_URL=http://localhost:8000 COEDIT_TOKEN=... python dashboard_feed.py [--since SEQ]

The stream resumes by itself after a dropped connection or a node change, so the counters
never skip or double-count an event; ``--since`` picks up where a previous run stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import Counter

import coedit_client


async def follow(url: str, token: str, *, since: int | None, count: int | None) -> Counter[str]:
    totals: Counter[str] = Counter()
    async with coedit_client.connect(url, token=token) as client, \
            client.events(types=["patch.applied", "lock.*", "document.created"],
                          since=since) as stream:
        async for event in stream:
            totals[event["type"]] += 1
            who = event["actor"]["name"]
            print(f"{event['seq']:>6} {event['type']:<18} {event.get('doc') or '-'} "
                  f"v{event.get('version') or '-'} by {who}  totals={dict(totals)}",
                  flush=True)
            if count is not None and sum(totals.values()) >= count:
                break
    return totals


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--since", type=int)
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    asyncio.run(follow(os.environ["COEDIT_URL"], os.environ["COEDIT_TOKEN"],
                       since=args.since, count=args.count))
