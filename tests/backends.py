"""Store backends every store test runs against: SQLite always, PostgreSQL whenever one
answers (each test gets a fresh database).

The PostgreSQL server is `TECHBRIDGE_TEST_PG_URL` when set (`off` turns PostgreSQL off);
otherwise the local server on 127.0.0.1:5432, database `test`, as the current user, if it
accepts a connection."""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

LOCAL_PG_URL = f"postgresql+psycopg://{getpass.getuser()}@127.0.0.1:5432/test"


def _answers(url: str) -> bool:
    """True if a PostgreSQL server at `url` accepts a connection (a short probe)."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            pass
    except OSError:
        return False
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except (SQLAlchemyError, ImportError):
        return False
    finally:
        engine.dispose()


def _pg_url() -> str:
    given = os.environ.get("TECHBRIDGE_TEST_PG_URL")
    if given is not None:
        return "" if given in ("", "off") else given
    return LOCAL_PG_URL if _answers(LOCAL_PG_URL) else ""


PG_URL = _pg_url()
PG_SKIP_REASON = (
    "PostgreSQL store tests skipped: no PostgreSQL answers on 127.0.0.1:5432 (database test, "
    f"user {getpass.getuser()}) and TECHBRIDGE_TEST_PG_URL is not set (or is off)"
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)),
]


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    name = f"tb_{uuid.uuid4().hex[:16]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
