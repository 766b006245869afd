"""audience

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("log_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audience", sa.Text(), server_default="*", nullable=False))

    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audience", sa.Text(), server_default="*", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_column("audience")

    with op.batch_alter_table("log_entries", schema=None) as batch_op:
        batch_op.drop_column("audience")
