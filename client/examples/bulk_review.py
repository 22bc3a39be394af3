"""Assign a reviewer to every valuation that has none, in one bulk call, after a dry run.

    COEDIT_URL=... COEDIT_TOKEN=... python bulk_review.py REVIEWER_ID REVIEWER_NAME

The dry run checks every item first (PROTOCOL.md section 15): if any would fail, it says which
and why, and nothing is changed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import coedit_client


async def assign(url: str, token: str, reviewer: dict[str, str]) -> dict[str, Any]:
    async with coedit_client.Api(url, token=token) as api:
        ids = [d["id"] async for d in api.documents.iterate(kind="valuation")]
        params = {"reviewer": reviewer}
        check = await api.bulk.run("review.assign", ids, params, dry_run=True)
        if check["failed"]:
            for item in check["results"]:
                if not item["ok"]:
                    print(f"{item['id']}: {item['error']['code']}", file=sys.stderr)
            raise SystemExit("dry run found items that would fail; nothing was changed")
        result = await api.bulk.run("review.assign", ids, params)
        print(f"assigned {result['succeeded']} of {result['total']} "
              f"(correlation {result['correlation_id']})")
        return result


if __name__ == "__main__":
    asyncio.run(assign(os.environ["COEDIT_URL"], os.environ["COEDIT_TOKEN"],
                       {"id": sys.argv[1], "name": sys.argv[2]}))
