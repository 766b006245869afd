"""cursors of jobs that follow the log (job_cursors) and HQ's suggested pairs (suggested_pairs)

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

Big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "job_cursors",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("after_seq", Big, nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_cursors")),
    )
    op.create_table(
        "suggested_pairs",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column("suggestion_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "offer_id", name=op.f("pk_suggested_pairs")),
    )
    op.create_index("ix_suggested_pairs_offer", "suggested_pairs", ["offer_id"])


def downgrade() -> None:
    op.drop_index("ix_suggested_pairs_offer", table_name="suggested_pairs")
    op.drop_table("suggested_pairs")
    op.drop_table("job_cursors")
