"""records of a kind by their title field (an interest: the record it is about)

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_records_kind_title", "records", ["kind", "title"])


def downgrade() -> None:
    op.drop_index("ix_records_kind_title", table_name="records")
