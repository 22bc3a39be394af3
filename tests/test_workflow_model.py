"""A state-machine property test: random verbs by random people on a workflow's steps, and
pauses and resumes of it, checked against a model of section 13 after every move (the
answer's code, every step's state and assignee, the instance's status). Runs the stores on
SQLite, where every move is one transaction."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from persistence.audit import Actor, AuditContext
from persistence.database import Database
from persistence.errors import CoeditError
from persistence.ideas import IdeaStore
from persistence.migrate import upgrade
from persistence.notifications import NotificationStore
from persistence.workflows import WorkflowStores

STEPS: list[dict[str, Any]] = [
    {"key": "a", "action": "approval", "role": "analyst"},
    {"key": "b", "action": "checklist", "role": "analyst", "after": ["a"],
     "config": {"items": ["x"]}},
    {"key": "c", "action": "approval", "role": "reviewer", "after": ["a"]},
    {"key": "d", "action": "approval", "role": "admin", "after": ["b", "c"]},
    {"key": "e", "action": "checklist", "role": "analyst", "after": ["d"], "required": False,
     "config": {"items": ["y"]}},
]
PEOPLE = {"ann": ("analyst",), "bob": ("analyst",), "rita": ("reviewer",), "ada": ("admin",)}
VERBS = ("claim", "start", "complete", "fail", "block", "unblock", "skip", "retry")
SOURCES = {"claim": {"ready"}, "start": {"ready"}, "complete": {"in_progress"},
           "fail": {"in_progress"}, "block": {"in_progress"}, "unblock": {"blocked"},
           "skip": {"pending", "ready", "in_progress", "blocked", "failed"},
           "retry": {"failed"}}
DONE = {"completed", "skipped"}


@dataclass
class ModelStep:
    key: str
    role: str
    action: str
    after: list[str]
    required: bool
    state: str = "pending"
    assignee: str | None = None


@dataclass
class Model:
    steps: dict[str, ModelStep] = field(default_factory=dict)
    status: str = "active"

    def settle(self) -> None:
        moved = True
        while moved and self.status == "active":
            moved = False
            for step in self.steps.values():
                if step.state == "pending" and all(self.steps[k].state in DONE
                                                   for k in step.after):
                    step.state, moved = "ready", True
        if self.status == "active" and all(s.state in DONE for s in self.steps.values()
                                           if s.required):
            self.status = "completed"

    def move(self, user: str, verb: str, key: str, approved: bool) -> str:
        """The answer's code for ``verb`` by ``user`` on step ``key``, applying it if ok."""
        step = self.steps[key]
        admin = "admin" in PEOPLE[user]
        if admin:
            pass
        elif verb in ("skip", "retry") or step.role not in PEOPLE[user]:
            return "forbidden"  # skip and retry are an admin's; the rest the step's role's
        elif verb in ("start", "complete", "fail", "block") and step.assignee not in (None,
                                                                                    user):
            return "forbidden"
        if step.state not in SOURCES[verb] or self.status != "active":
            return "invalid_transition"
        if verb == "claim":
            step.assignee = user
        elif verb == "start":
            step.state = "in_progress"
            step.assignee = step.assignee or user
        elif verb == "complete":
            step.state = "completed" if step.action != "approval" or approved else "failed"
        else:
            step.state = {"fail": "failed", "block": "blocked", "unblock": "in_progress",
                          "skip": "skipped", "retry": "ready"}[verb]
        self.settle()
        return "ok"


def _payload(verb: str, action: str, key: str, approved: bool) -> dict[str, Any]:
    if verb in ("fail", "block", "skip"):
        return {"reason": "because"}
    if verb != "complete":
        return {}
    if action == "approval":
        return {"approved": approved}
    return {"checked": ["x" if key == "b" else "y"]}


class WorkflowRules(RuleBasedStateMachine):
    db_dir: Path

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.db = Database(f"sqlite+aiosqlite:///{self.db_dir / 'model.db'}")
        notes = NotificationStore(self.db)
        self.stores = WorkflowStores.build(self.db, notes)
        self.ideas = IdeaStore(self.db)
        self.model = Model()
        self.ids: dict[str, str] = {}
        self.instance = ""

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 10))

    def ctx(self, user: str) -> AuditContext:
        return AuditContext(Actor(user, user.title()), "acme", "http")

    @initialize()
    def start_instance(self) -> None:
        ctx = self.ctx("ada")
        template, _ = self.run(self.stores.templates.create(ctx, {"name": "M", "steps": STEPS}))
        self.run(self.stores.templates.publish(ctx, template["id"]))
        idea, _ = self.run(self.ideas.create(ctx, {"title": "Model idea"}))
        instance, _ = self.run(self.stores.instances.instantiate(
            self.ctx("ann"), template["id"], {"idea": idea["id"]}))
        self.instance = instance["id"]
        self.ids = {s["key"]: s["id"] for s in instance["steps"]}
        for spec in STEPS:
            self.model.steps[spec["key"]] = ModelStep(
                spec["key"], spec["role"], spec["action"], spec.get("after", []),
                spec.get("required", True))
        self.model.settle()

    @rule(data=st.data())
    def move(self, data: st.DataObject) -> None:
        # Mostly steps that can move at all and verbs that fit their state, so runs get far
        # into the workflow; sometimes anything, to check the refusals.
        live = [k for k, s in self.model.steps.items() if s.state not in DONE | {"pending"}]
        key = data.draw(st.sampled_from(live) if live and data.draw(st.integers(0, 3))
                        else st.sampled_from(sorted(self.model.steps)))
        state = self.model.steps[key].state
        fitting = [v for v in VERBS if state in SOURCES[v]]
        verb = data.draw(st.sampled_from(fitting) if fitting and data.draw(st.integers(0, 3))
                         else st.sampled_from(VERBS))
        step = self.model.steps[key]
        eligible = sorted(u for u, roles in PEOPLE.items()
                          if "admin" in roles or (step.role in roles
                                                  and step.assignee in (None, u)))
        user = data.draw(st.sampled_from(eligible) if data.draw(st.integers(0, 3))
                         else st.sampled_from(sorted(PEOPLE)))
        approved = data.draw(st.booleans())
        expected = self.model.move(user, verb, key, approved)
        payload = _payload(verb, self.model.steps[key].action, key, approved)
        try:
            self.run(self.stores.engine.move(
                self.ctx(user), self.ids[key], verb, payload, roles=PEOPLE[user],
                admin="admin" in PEOPLE[user]))
            got = "ok"
        except CoeditError as exc:
            got = exc.code
        assert got == expected, (user, verb, key, got, expected)

    @rule(user=st.sampled_from(["ann", "bob", "ada"]),
          status=st.sampled_from(["paused", "active"]))
    def pause_or_resume(self, user: str, status: str) -> None:
        allowed = user in ("ann", "ada")
        sources = {"paused": "active", "active": "paused"}
        expected = ("forbidden" if not allowed else "ok" if self.model.status == sources[status]
                    else "invalid_transition")
        try:
            self.run(self.stores.instances.set_status(
                self.ctx(user), self.instance, {"status": status}, admin=user == "ada"))
            got = "ok"
        except CoeditError as exc:
            got = exc.code
        assert got == expected, (user, status, got, expected)
        if got == "ok":
            self.model.status = status
            self.model.settle()

    @invariant()
    def matches_the_model(self) -> None:
        if not self.instance:
            return
        stored = self.run(self.stores.instances.get("acme", self.instance))
        assert stored["status"] == self.model.status
        for step in stored["steps"]:
            want = self.model.steps[step["key"]]
            assert step["state"] == want.state, (step["key"], step["state"], want.state)
            assert (step["assignee"] or {}).get("id") == want.assignee

    def teardown(self) -> None:
        self.run(self.db.dispose())
        self.loop.close()


def test_steps_follow_the_model(tmp_path: Path) -> None:
    """Random verbs by random people always get the answer and the states the model says."""
    asyncio.run(asyncio.wait_for(upgrade(f"sqlite+aiosqlite:///{tmp_path / 'model.db'}"), 60))
    WorkflowRules.db_dir = tmp_path
    runner = WorkflowRules.TestCase
    runner.settings = settings(max_examples=30, stateful_step_count=40, deadline=None,
                               suppress_health_check=[HealthCheck.too_slow])
    runner().runTest()
