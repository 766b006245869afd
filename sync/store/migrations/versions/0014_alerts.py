"""alerts kept at a site (alerts) and the records that came to match them (alert_hits)

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

Big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("query_json", sa.Text(), nullable=False),
        sa.Column("checked_seq", Big, nullable=False),
        sa.Column("created_at_ms", Big, nullable=False),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alerts")),
    )
    op.create_table(
        "alert_hits",
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("hit_at_ms", Big, nullable=False),
        sa.Column("delivered_at_ms", Big, server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_try_ms", Big, server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "record_id", name=op.f("pk_alert_hits")),
    )


def downgrade() -> None:
    op.drop_table("alert_hits")
    op.drop_table("alerts")
