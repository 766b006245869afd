"""records indexed newest first (search walks them in that order)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_records_newest", "records", ["head_wall_ms", "record_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_records_newest", table_name="records")
