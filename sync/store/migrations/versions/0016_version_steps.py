"""each version's lifecycle step and the status it leads to, as columns (versions.action, status)

Read from the signed bodies of the versions already held.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from techbridge.v1 import envelope_pb2, records_pb2

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

PREFIX = "LIFECYCLE_ACTION_"
BATCH = 2000


def _step(body: bytes) -> tuple[str, str]:
    msg = envelope_pb2.VersionBody()
    msg.ParseFromString(body)
    name = records_pb2.LifecycleAction.Name(msg.change.action)
    action = "" if msg.change.action == records_pb2.LIFECYCLE_ACTION_UNSPECIFIED else name[len(PREFIX) :].lower()
    return action, msg.change.status


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite too): a copy of the table would break the log's foreign key.
    op.add_column("versions", sa.Column("action", sa.String(length=16), server_default="", nullable=False))
    op.add_column("versions", sa.Column("status", sa.String(length=32), server_default="", nullable=False))
    conn = op.get_bind()
    versions = sa.table(
        "versions",
        sa.column("version_id", sa.String),
        sa.column("body", sa.LargeBinary),
        sa.column("action", sa.String),
        sa.column("status", sa.String),
    )
    after = ""
    while True:
        rows = conn.execute(
            sa.select(versions.c.version_id, versions.c.body)
            .where(versions.c.version_id > after)
            .order_by(versions.c.version_id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        updates = []
        for vid, body in rows:
            action, status = _step(bytes(body))
            if action or status:
                updates.append({"vid": vid, "a": action, "s": status})
        if updates:
            conn.execute(
                versions.update()
                .where(versions.c.version_id == sa.bindparam("vid"))
                .values(action=sa.bindparam("a"), status=sa.bindparam("s")),
                updates,
            )
        after = rows[-1][0]
    op.create_index("ix_versions_steps", "versions", ["kind", "hlc_wall_ms"])


def downgrade() -> None:
    op.drop_index("ix_versions_steps", table_name="versions")
    op.drop_column("versions", "status")
    op.drop_column("versions", "action")
