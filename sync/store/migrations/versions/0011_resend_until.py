"""hub: how far a restored node must confirm the hub's log before its own entries stop coming back

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("peer_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "resend_until",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                server_default="0",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("peer_state", schema=None) as batch_op:
        batch_op.drop_column("resend_until")
