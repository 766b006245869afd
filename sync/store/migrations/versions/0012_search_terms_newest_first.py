"""search terms keyed newest first: (term, head_wall_ms, record_id), in a table search_terms

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "search_terms",
        sa.Column("term", sa.String(length=80), nullable=False),
        sa.Column("head_wall_ms", Big, nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("term", "head_wall_ms", "record_id", name=op.f("pk_search_terms")),
    )
    op.execute(
        "INSERT INTO search_terms (term, head_wall_ms, record_id) "
        "SELECT t.term, r.head_wall_ms, t.record_id FROM record_terms t JOIN records r ON r.record_id = t.record_id"
    )
    op.create_index(op.f("ix_search_terms_record_id"), "search_terms", ["record_id"], unique=False)
    op.drop_index(op.f("ix_record_terms_record_id"), table_name="record_terms")
    op.drop_table("record_terms")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE search_terms")  # the planner's statistics for the copied postings


def downgrade() -> None:
    op.create_table(
        "record_terms",
        sa.Column("term", sa.String(length=80), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("term", "record_id", name=op.f("pk_record_terms")),
    )
    op.execute("INSERT INTO record_terms (term, record_id) SELECT term, record_id FROM search_terms")
    op.create_index(op.f("ix_record_terms_record_id"), "record_terms", ["record_id"], unique=False)
    op.drop_index(op.f("ix_search_terms_record_id"), table_name="search_terms")
    op.drop_table("search_terms")
