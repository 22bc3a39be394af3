"""The action registry: each shipped type checks its config and its completion payload, and
a new type is one class plus its registration (the example of docs/workflows.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from persistence.errors import BadRequest
from persistence.workflows.actions import ACTIONS, ActionRegistry, ActionType, Trigger
from persistence.workflows.templates import check_structure, parse_steps


def test_shipped_types_check_config_and_payload() -> None:
    """Configs and payloads are checked by the type the step names, with clear messages."""
    checklist = ACTIONS.get("checklist")
    config = checklist.parse_config({"items": ["a", "b"]})
    assert checklist.completion(config, {"checked": ["b", "a"]}) is None
    assert "not checked yet: b" in str(checklist.completion(config, {"checked": ["a"]}))
    assert checklist.completion(config, {"checked": ["a", "b", "c"]}) is not None
    with pytest.raises(BadRequest):
        checklist.parse_config({"items": ["a", "a"]})
    approval = ACTIONS.get("approval")
    assert approval.outcome({}, {"approved": False}) == "failed"
    assert approval.outcome({}, {"approved": True, "comment": "ok"}) == "completed"
    assert approval.completion({}, {"approved": 1}) is not None
    review = ACTIONS.get("review")
    assert review.by_hand is False
    stage = review.parse_config({"stage": "valuation"})
    assert review.reacts_to(stage, Trigger("review.approved", "valuation"))
    assert not review.reacts_to(stage, Trigger("review.approved", "memo"))
    assert not review.reacts_to(stage, Trigger("document.created", "valuation"))
    assert ACTIONS.get("document").reacts_to(stage, Trigger("document.created", "valuation"))
    with pytest.raises(BadRequest, match="one of approval, checklist, document, review"):
        ACTIONS.get("telepathy")


def _doc_example() -> type[ActionType]:
    """The ``price_target`` module of docs/workflows.md, run as written there."""
    text = (Path(__file__).parent.parent / "docs" / "workflows.md").read_text()
    source = re.search(r"```python\n(# persistence/workflows/actions/price_target.py.*?)```",
                       text, re.S)
    assert source is not None
    namespace: dict[str, Any] = {}
    exec(compile(source.group(1), "price_target.py", "exec"), namespace)
    return namespace["PriceTarget"]  # type: ignore[no-any-return]


def test_a_new_action_type_is_one_class_and_its_registration() -> None:
    """The documented example registers, and templates then accept and check it."""
    registry = ActionRegistry(*(ACTIONS.get(n) for n in ACTIONS.names()), _doc_example()())
    steps = parse_steps([{"key": "target", "action": "price_target",
                          "config": {"min": 10, "max": 60}}], registry)
    check_structure(steps)
    action = registry.get("price_target")
    assert action.completion(steps[0]["config"], {"price": 48}) is None
    assert "outside" in str(action.completion(steps[0]["config"], {"price": 75}))
    with pytest.raises(BadRequest, match=r"steps\[0\].config: price_target"):
        parse_steps([{"key": "t", "action": "price_target", "config": {"min": 5}}], registry)
    with pytest.raises(BadRequest, match=r"steps\[0\].config"):
        parse_steps([{"key": "t", "action": "price_target", "config": ["min"]}], registry)
    with pytest.raises(BadRequest):  # not in the shipped registry
        parse_steps([{"key": "t", "action": "price_target", "config": {"min": 1, "max": 2}}])
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(_doc_example()())
