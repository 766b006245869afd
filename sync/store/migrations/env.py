"""Alembic environment: run with a connection handed in by sync.store.migrate."""

from __future__ import annotations

from alembic import context

from sync.store.models import Base, described_here

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    include_name=described_here,
)
with context.begin_transaction():
    context.run_migrations()
