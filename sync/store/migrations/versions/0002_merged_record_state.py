"""merged record state

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state_json", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("deleted", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("open_conflicts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("waiting", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index(batch_op.f("ix_records_deleted"), ["deleted"], unique=False)
        batch_op.create_index(batch_op.f("ix_records_open_conflicts"), ["open_conflicts"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_records_open_conflicts"))
        batch_op.drop_index(batch_op.f("ix_records_deleted"))
        batch_op.drop_column("waiting")
        batch_op.drop_column("open_conflicts")
        batch_op.drop_column("deleted")
        batch_op.drop_column("state_json")
