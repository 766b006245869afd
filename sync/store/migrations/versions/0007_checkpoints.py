"""checkpoints

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("peer_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pull_cursor_version", sa.String(length=64), server_default="", nullable=False))
        batch_op.add_column(sa.Column("resend_own", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("reconciling", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("peer_state", schema=None) as batch_op:
        batch_op.drop_column("reconciling")
        batch_op.drop_column("resend_own")
        batch_op.drop_column("pull_cursor_version")
