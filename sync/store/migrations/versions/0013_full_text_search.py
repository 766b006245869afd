"""full-text search in the engine: search_docs (and on SQLite the FTS5 table search_fts)
replace the search_terms table

The new index is filled from the records held when the store next opens
(`Store.open` -> `SearchStore.build_search_index`): what a record is found by is the
domain's to say, and a migration knows no kinds.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The FTS5 table on SQLite: the analysed text of each weight, and the facet tokens.
# Tokens are letters and digits (sync.fulltext) separated by spaces: FTS5's `ascii` tokenizer,
# for which every non-ASCII character is part of a token, splits them there and nowhere else
# (and faster than unicode61).
FTS5 = "CREATE VIRTUAL TABLE search_fts USING fts5(title, summary, body, tags, tokenize = 'ascii', detail = full)"


def upgrade() -> None:
    op.create_table(
        "search_docs",
        sa.Column("doc_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("head_wall_ms", Big, nullable=False),
        sa.Column("lapses_at_ms", Big, server_default="0", nullable=False),
        sa.Column("facets", sa.Text(), server_default="[]", nullable=False),
        sa.Column("tsv", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"), nullable=True),
        sa.PrimaryKeyConstraint("doc_id", name=op.f("pk_search_docs")),
        sa.UniqueConstraint("record_id", name=op.f("uq_search_docs_record_id")),
    )
    op.create_index("ix_search_docs_newest", "search_docs", ["head_wall_ms", "record_id"], unique=False)
    op.create_index(
        "ix_search_docs_tsv",
        "search_docs",
        ["tsv"],
        unique=False,
        postgresql_using="gin",
        sqlite_where=sa.text("tsv IS NOT NULL"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(FTS5)
    op.drop_index(op.f("ix_search_terms_record_id"), table_name="search_terms")
    op.drop_table("search_terms")


def downgrade() -> None:
    op.create_table(
        "search_terms",
        sa.Column("term", sa.String(length=80), nullable=False),
        sa.Column("head_wall_ms", Big, nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("term", "head_wall_ms", "record_id", name=op.f("pk_search_terms")),
    )
    op.create_index(op.f("ix_search_terms_record_id"), "search_terms", ["record_id"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE search_fts")
    op.drop_index("ix_search_docs_tsv", table_name="search_docs")
    op.drop_index("ix_search_docs_newest", table_name="search_docs")
    op.drop_table("search_docs")
