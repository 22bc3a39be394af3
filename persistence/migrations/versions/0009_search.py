"""Search: the word index of every document, and one-edit matching.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

``search_terms`` holds each distinct word of each document with where it occurs;
``search_words`` maps every word of four or more characters, and each of its deletion
neighbours, to it (persistence/search_index.py tells why that finds every word one edit
away). Existing documents are indexed here, in pages, by the same code the writes use.
No trigram extension is needed: the word tables answer on both databases and find one-edit
neighbours exactly, where a pg_trgm index over whole states only yields substring candidates
to check, and was much slower to query (docs/performance.md, "Search").
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from persistence.search_index import insert_ignoring, new_document_changes

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_PAGE = 500


def upgrade() -> None:
    op.create_table(
        "search_terms",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("word", sa.String(40), nullable=False),
        sa.Column("doc", sa.String(36), nullable=False),
        sa.Column("place", sa.SmallInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "word", "doc", "place"),
    )
    op.create_index("ix_search_terms_title", "search_terms", ["tenant", "word", "doc"],
                    sqlite_where=sa.text("place <> 2"), postgresql_where=sa.text("place <> 2"))
    op.create_table(
        "search_words",
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("word", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("key", "word"),
    )
    _index_existing_documents()


def _index_existing_documents() -> None:
    bind = op.get_bind()
    meta = sa.MetaData()
    documents = sa.Table("documents", meta, autoload_with=bind)
    terms = sa.Table("search_terms", meta, autoload_with=bind)
    words = sa.Table("search_words", meta, autoload_with=bind)
    last = ""
    while True:
        rows = bind.execute(
            sa.select(documents.c.id, documents.c.tenant, documents.c.title, documents.c.state)
            .where(documents.c.id > last).order_by(documents.c.id).limit(_PAGE)).all()
        if not rows:
            return
        added: list[dict[str, object]] = []
        vocabulary: set[tuple[str, str]] = set()
        for row in rows:
            changes = new_document_changes(row.tenant, row.id, row.title, json.loads(row.state))
            added += [{"tenant": t, "word": w, "doc": d, "place": p}
                      for t, w, d, p in changes.added]
            vocabulary.update(changes.vocabulary)
        if added:
            bind.execute(insert_ignoring(terms, bind.dialect.name), added)
        if vocabulary:
            bind.execute(insert_ignoring(words, bind.dialect.name),
                         [{"key": k, "word": w} for k, w in sorted(vocabulary)])
        last = rows[-1].id


def downgrade() -> None:
    op.drop_table("search_words")
    op.drop_table("search_terms")
