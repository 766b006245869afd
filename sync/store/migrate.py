"""Schema migrations (alembic). One head; never drop-and-recreate."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine

from sync.store.replicas import lock_key

MIGRATION_LOCK_NAME = "techbridge:migrations"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


class NewerSchema(Exception):
    """The database was migrated by a newer release than this program."""

    def __init__(self, revision: str) -> None:
        super().__init__(revision)
        self.revision = revision


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate the database to this program's head; returns (the revision it was at, the
    head). On PostgreSQL the migration holds an advisory lock, so replicas starting
    together migrate once. A revision this program does not know (a newer release
    migrated it) raises `NewerSchema` and changes nothing."""
    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({lock_key(MIGRATION_LOCK_NAME)})")
        before = MigrationContext.configure(conn).get_current_revision()
        if before is not None:
            try:
                script.get_revision(before)
            except CommandError:
                raise NewerSchema(before) from None
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return before, script.get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revisions() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())
