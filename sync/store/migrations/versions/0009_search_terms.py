"""search terms of offers and requests; records indexed by kind and status

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_terms",
        sa.Column("term", sa.String(length=80), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("term", "record_id", name=op.f("pk_record_terms")),
    )
    op.create_index(op.f("ix_record_terms_record_id"), "record_terms", ["record_id"], unique=False)
    op.create_index("ix_records_kind_status", "records", ["kind", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_records_kind_status", table_name="records")
    op.drop_index(op.f("ix_record_terms_record_id"), table_name="record_terms")
    op.drop_table("record_terms")
