"""``coedit seed-demo``: an idea a new user can walk through in a minute.

It makes an idea with a memo and a valuation, a published committee template that uses every
action type, and an instance of it on the idea. The memo and valuation exist already, so
their ``document`` steps complete as the instance starts; what is left is the valuation's
review (a ``review`` step: assign and approve a review of the valuation), the numbers'
checklist, the committee's approval and the optional monitoring checklist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persistence.audit import Actor, AuditContext
from persistence.database import Database
from persistence.documents import DocumentStore
from persistence.review_trail import ReviewTrailStores

__all__ = ["DEMO_TEMPLATE", "DemoSeed", "seed_demo"]

DEMO_TEMPLATE: dict[str, Any] = {
    "name": "Investment committee (demo)",
    "description": "From memo to monitoring: every action type in five steps.",
    "steps": [
        {"key": "memo", "title": "Draft the memo", "action": "document", "role": "analyst",
         "config": {"stage": "memo"}},
        {"key": "valuation", "title": "Build the valuation", "action": "document",
         "role": "analyst", "after": ["memo"], "config": {"stage": "valuation"}},
        {"key": "numbers", "title": "Normalize the numbers", "action": "checklist",
         "role": "analyst", "after": ["memo"],
         "config": {"items": ["Revenue restated", "Margins normalized", "Working capital"]}},
        {"key": "valuation_review", "title": "Review the valuation", "action": "review",
         "role": "reviewer", "after": ["valuation"], "config": {"stage": "valuation"}},
        {"key": "committee", "title": "Committee sign-off", "action": "approval",
         "role": "admin", "after": ["valuation_review", "numbers"]},
        {"key": "monitoring", "title": "Start monitoring", "action": "checklist",
         "role": "analyst", "required": False, "after": ["committee"],
         "config": {"items": ["Price alerts set", "Quarterly review booked"]}},
    ],
}
_MEMO = {"thesis": "A niche distributor compounding at 12% with room to reprice.",
         "catalysts": ["New ERP rollout", "Margin recovery in the second half"],
         "risks": ["Customer concentration", "Freight costs"]}
_VALUATION = {"method": "DCF", "wacc": 0.09, "terminal_growth": 0.02,
              "target_price": 48.0, "current_price": 36.5}


@dataclass(frozen=True, slots=True)
class DemoSeed:
    idea: str
    documents: dict[str, str]
    template: str
    instance: str


async def seed_demo(db: Database, *, tenant: str, max_state_bytes: int = 1024 * 1024,
                    notifications: bool = True) -> DemoSeed:
    """Seed one demo idea in ``tenant``; each call makes a new one."""
    ctx = AuditContext(Actor("coedit-demo", "Demo seed", "system"), tenant, "system")
    stores = ReviewTrailStores.build(db, notifications=notifications)
    documents = DocumentStore(db, max_state_bytes=max_state_bytes)
    documents.writer.workflows = stores.workflows.engine
    idea, _ = await stores.ideas.create(ctx, {"title": "Northwind Traders (demo)",
                                             "ticker": "NWT"})
    made = {}
    for kind, title, state in (("memo", "Northwind: investment memo", _MEMO),
                               ("valuation", "Northwind: valuation", _VALUATION)):
        document, _ = await documents.create(ctx, kind=kind, title=title, state=state,
                                             idea=idea["id"])
        made[kind] = document["id"]
    template, _ = await stores.workflows.templates.create(ctx, DEMO_TEMPLATE)
    await stores.workflows.templates.publish(ctx, template["id"])
    instance, _ = await stores.workflows.instances.instantiate(ctx, template["id"],
                                                               {"idea": idea["id"]})
    return DemoSeed(idea["id"], made, template["id"], instance["id"])
