"""the network's figures kept as versions arrive (figure_rows, figure_counts, figure_offers,
figure_interests) and the store's marks (store_marks)

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

Big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "store_marks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", Big, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_marks")),
    )
    op.create_table(
        "figure_rows",
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("figure", sa.String(64), nullable=False),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("by", sa.String(32), nullable=False),
        sa.Column("value", sa.String(300), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("stamp_ms", Big, nullable=False),
        sa.PrimaryKeyConstraint("record_id", "figure", "centre", "by", "value", name=op.f("pk_figure_rows")),
    )
    op.create_index("ix_figure_rows_figure_day", "figure_rows", ["figure", "day"])
    op.create_table(
        "figure_counts",
        sa.Column("figure", sa.String(64), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("centre", sa.String(64), nullable=False),
        sa.Column("by", sa.String(32), nullable=False),
        sa.Column("value", sa.String(300), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("figure", "day", "centre", "by", "value", name=op.f("pk_figure_counts")),
    )
    op.create_table(
        "figure_offers",
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("published_ms", Big, nullable=False),
        sa.Column("publish_version_id", sa.String(64), nullable=False),
        sa.Column("out_ms", Big, nullable=True),
        sa.Column("lapses_ms", Big, nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_figure_offers")),
    )
    op.create_index("ix_figure_offers_published", "figure_offers", ["published_ms", "out_ms", "lapses_ms", "origin"])
    op.create_table(
        "figure_interests",
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("to_owner", sa.String(64), nullable=False),
        sa.Column("created_ms", Big, nullable=True),
        sa.Column("introduced_ms", Big, nullable=True),
        sa.Column("agreed_ms", Big, nullable=True),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_figure_interests")),
    )
    op.create_index("ix_figure_interests_introduced", "figure_interests", ["introduced_ms"])
    op.create_index("ix_figure_interests_agreed", "figure_interests", ["agreed_ms"])


def downgrade() -> None:
    for name in ("figure_interests", "figure_offers", "figure_counts", "figure_rows", "store_marks"):
        op.drop_table(name)
