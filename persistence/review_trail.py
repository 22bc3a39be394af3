"""The stores of the review trail, built together because they share the notification store
and the redaction rules."""

from __future__ import annotations

from dataclasses import dataclass

from persistence.comments import CommentStore
from persistence.database import Database
from persistence.document_archival import DocumentArchival
from persistence.ideas import IdeaStore
from persistence.notifications import NotificationStore
from persistence.reviews import ReviewStore
from persistence.workflows import WorkflowStores

__all__ = ["ReviewTrailStores"]


@dataclass(frozen=True, slots=True)
class ReviewTrailStores:
    ideas: IdeaStore
    reviews: ReviewStore
    comments: CommentStore
    notifications: NotificationStore
    archival: DocumentArchival
    workflows: WorkflowStores

    @classmethod
    def build(cls, db: Database, *, redact: frozenset[str] = frozenset(),
              notifications: bool = True) -> ReviewTrailStores:
        notes = NotificationStore(db, enabled=notifications)
        reviews = ReviewStore(db, notes, redact)
        workflows = WorkflowStores.build(db, notes, redact=redact)
        reviews.workflows = workflows.engine
        return cls(IdeaStore(db), reviews, CommentStore(db, notes, redact), notes,
                   DocumentArchival(db), workflows)
