"""each facet value's count of indexed records (search_facet_counts), counted once here;
records by origin and kind

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_records_origin_kind", "records", ["origin", "kind", "deleted"])
    op.create_table(
        "search_facet_counts",
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("docs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("value", name=op.f("pk_search_facet_counts")),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "INSERT INTO search_facet_counts (value, docs) "
            "SELECT j.value, count(*) FROM search_docs d, json_each(d.facets) AS j GROUP BY j.value"
        )
    else:
        op.execute(
            "INSERT INTO search_facet_counts (value, docs) "
            "SELECT j.value, count(*) FROM search_docs d "
            "CROSS JOIN LATERAL jsonb_array_elements_text(CAST(d.facets AS jsonb)) AS j(value) GROUP BY j.value"
        )


def downgrade() -> None:
    op.drop_index("ix_records_origin_kind", table_name="records")
    op.drop_table("search_facet_counts")
