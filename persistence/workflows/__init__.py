"""Workflows (docs/protocol.md section 13, docs/workflows.md): templates, instances, the
step state machine and the registry of action types."""

from __future__ import annotations

from dataclasses import dataclass

from persistence.database import Database
from persistence.notifications import NotificationStore
from persistence.workflows.actions import ACTIONS, ActionRegistry
from persistence.workflows.engine import WorkflowEngine
from persistence.workflows.instances import InstanceStore
from persistence.workflows.templates import TemplateStore

__all__ = ["WorkflowStores"]


@dataclass(frozen=True, slots=True)
class WorkflowStores:
    templates: TemplateStore
    instances: InstanceStore
    engine: WorkflowEngine

    @classmethod
    def build(cls, db: Database, notifications: NotificationStore, *,
              actions: ActionRegistry = ACTIONS,
              redact: frozenset[str] = frozenset()) -> WorkflowStores:
        engine = WorkflowEngine(db, notifications, actions=actions, redact=redact)
        return cls(TemplateStore(db, actions), InstanceStore(db, engine), engine)
