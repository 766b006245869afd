"""Several processes' stores on one PostgreSQL database: writers take turns, positions are
never skipped, each learns of the other's writes, jobs run in one at a time, and a
database from a newer release is refused (also on SQLite)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from sync.errors import ConfigError
from sync.store import Store
from tests.backends import PG_SKIP_REASON, PG_URL, database_url
from tests.test_store import version
from transfer.records import KINDS

needs_pg = pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)


@needs_pg
def test_writers_on_two_stores_take_turns_and_every_position_is_seen_once(tmp_path: Path) -> None:
    """Two stores (as two replicas) append at once while a reader follows the log by its
    cursor as a pull does: every version lands at its own position, 1..n with no hole, and
    the reader, never going back, sees each exactly once."""
    with database_url("postgresql", tmp_path) as url:
        a, b = Store.open(url, KINDS), Store.open(url, KINDS)
        try:
            per_writer, batch = 300, 5
            writing = threading.Event()
            seen: list[str] = []
            errors: list[BaseException] = []

            def write(store: Store, first: int) -> None:
                try:
                    for i in range(first, first + per_writer, batch):
                        store.append_local_batch([version(n) for n in range(i, i + batch)], now_ms=1)
                except BaseException as exc:
                    errors.append(exc)

            def read() -> None:
                after = 0
                while writing.is_set() or after < a.log_head():
                    rows, through, _head = b.log_after(after, limit=50)
                    seen.extend(r.version_id for r in rows)
                    after = through

            writers = [threading.Thread(target=write, args=(s, n)) for s, n in ((a, 0), (b, 10_000))]
            writing.set()
            reader = threading.Thread(target=read)
            for t in writers:
                t.start()
            reader.start()
            for t in writers:
                t.join(timeout=120)
            writing.clear()
            reader.join(timeout=60)
            assert not errors
            assert a.log_head() == b.log_head() == 2 * per_writer
            with a.engine.connect() as conn:
                positions = [r[0] for r in conn.execute(text("SELECT seq FROM log_entries ORDER BY seq"))]
            assert positions == list(range(1, 2 * per_writer + 1))
            assert len(seen) == len(set(seen)) == 2 * per_writer
        finally:
            a.close()
            b.close()


@needs_pg
def test_a_write_through_one_store_wakes_the_watchers_of_the_other(tmp_path: Path) -> None:
    with database_url("postgresql", tmp_path) as url:
        a, b = Store.open(url, KINDS), Store.open(url, KINDS)
        registries: list[int] = []
        try:
            assert b.follow_other_writers(on_registry=lambda: registries.append(1))
            head = b.wait_for_head(-1, 0)  # b's head as it stands (0)
            woke: list[int] = []

            def watch() -> None:
                woke.append(b.wait_for_head(head, timeout_s=30))

            watcher = threading.Thread(target=watch)
            watcher.start()
            time.sleep(0.2)  # the watcher waits
            a.append_local_batch([version(1)], now_ms=1)
            watcher.join(timeout=30)
            assert woke == [1]  # woken by a's commit, long before the 30 s timeout
        finally:
            a.close()
            b.close()


@needs_pg
def test_a_job_runs_in_one_store_at_a_time(tmp_path: Path) -> None:
    with database_url("postgresql", tmp_path) as url:
        a, b = Store.open(url, KINDS), Store.open(url, KINDS)
        try:
            with a.exclusive("expiry") as mine_a, b.exclusive("expiry") as mine_b:
                assert (mine_a, mine_b) == (True, False)
                with b.exclusive("alerts") as other_job:
                    assert other_job  # another job's turn is its own
            with b.exclusive("expiry") as mine_b:
                assert mine_b  # a let go
        finally:
            a.close()
            b.close()


def test_a_sqlite_store_always_has_the_turn(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}", KINDS)
    try:
        with store.exclusive("expiry") as mine, store.exclusive("expiry") as again:
            assert mine and again
        assert not store.follow_other_writers(on_registry=lambda: None)
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=needs_pg)])
def test_a_database_from_a_newer_release_is_refused(tmp_path: Path, backend: str) -> None:
    with database_url(backend, tmp_path) as url:
        Store.open(url, KINDS).close()
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
        engine.dispose()
        with pytest.raises(ConfigError) as caught:
            Store.open(url, KINDS)
        message = str(caught.value)
        assert "newer techbridge" in message and "9999_from_the_future" in message
        assert "\n" not in message


def test_an_upgrade_migrates_at_open_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A store one migration behind (as an older release left it) is brought to the head when
    opened, and the log says from which revision to which."""
    from alembic import command

    from sync.store import migrate

    url = f"sqlite:///{tmp_path / 's.db'}"
    Store.open(url, KINDS).close()
    engine = create_engine(url)
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")
    older = migrate.current_revision(engine)
    engine.dispose()
    head = migrate.head_revisions()[0]
    assert older != head
    with caplog.at_level("WARNING", logger="sync.store.store"):
        store = Store.open(url, KINDS)
    store.close()
    assert f"upgraded the store's schema from {older} to {head}" in caplog.text
    with caplog.at_level("WARNING", logger="sync.store.store"):
        caplog.clear()
        Store.open(url, KINDS).close()
    assert "upgraded" not in caplog.text  # nothing to do, nothing said
