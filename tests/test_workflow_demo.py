"""The demo seed: an idea with a memo and a valuation and a committee workflow that uses
every action type, its document steps already completed by the documents it made."""

from __future__ import annotations

from persistence.database import Database
from persistence.review_trail import ReviewTrailStores
from persistence.workflows.actions import ACTIONS
from server.demo import DEMO_TEMPLATE, seed_demo


async def test_the_demo_seed_shows_the_whole_path(database_url: str) -> None:
    assert {s["action"] for s in DEMO_TEMPLATE["steps"]} == set(ACTIONS.names())
    db = Database(database_url)
    try:
        seeded = await seed_demo(db, tenant="demo")
        stores = ReviewTrailStores.build(db)
        instance = await stores.workflows.instances.get("demo", seeded.instance)
        states = {s["key"]: s["state"] for s in instance["steps"]}
        assert states == {"memo": "completed", "valuation": "completed", "numbers": "ready",
                          "valuation_review": "ready", "committee": "pending",
                          "monitoring": "pending"}
        assert instance["idea"] == seeded.idea and instance["status"] == "active"
        idea = await stores.ideas.get("demo", seeded.idea)
        assert sorted(d["kind"] for d in idea["documents"]) == ["memo", "valuation"]
        again = await seed_demo(db, tenant="demo")
        assert again.idea != seeded.idea
    finally:
        await db.dispose()
