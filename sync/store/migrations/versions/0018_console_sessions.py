"""console sessions, staff languages and who wrote what through the console

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

Big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("language", sa.String(length=8), server_default="en", nullable=False))
    op.create_table(
        "staff_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.String(length=36), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at_ms", Big, nullable=False),
        sa.Column("expires_at_ms", Big, nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_staff_sessions")),
    )
    op.create_index(op.f("ix_staff_sessions_staff_id"), "staff_sessions", ["staff_id"])
    op.create_table(
        "staff_actions",
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("staff_name", sa.String(length=64), nullable=False),
        sa.Column("at_ms", Big, nullable=False),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_staff_actions")),
    )
    op.create_index(op.f("ix_staff_actions_record_id"), "staff_actions", ["record_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_actions_record_id"), table_name="staff_actions")
    op.drop_table("staff_actions")
    op.drop_index(op.f("ix_staff_sessions_staff_id"), table_name="staff_sessions")
    op.drop_table("staff_sessions")
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("language")
