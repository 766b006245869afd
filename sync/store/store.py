"""A site's store: signed versions, its log, derived records, cursors.

`Store` is one class made of per-concern stores, each owning its tables:

* `sync.store.log.LogStore`: versions and the log (`versions`, `log_entries`):
  local writes, a peer's batch with its cursor, reading the log, the head and
  its waiters, what is held.
* `sync.store.peers.PeersStore`: cursors and link health (`peer_state`, `push_txns`).
* `sync.store.trust.TrustStore`: the registry, quarantine, rejections, key holders' keys
  (`registry`, `rejections`, the quarantine columns of `versions`).
* `sync.store.projection.ProjectionStore`: each record's merged state and private
  notes (`records`, `private_notes`).
* `sync.store.search.SearchStore`: the full-text index and search (`search_docs`, and on
  SQLite the FTS5 table `search_fts`).

They share one engine and one write lock (one writer at a time). A write that
spans concerns is one transaction: a peer's batch stores its versions, log
entries, rejections and cursor, quarantines what an erasure calls for and
re-merges and re-indexes the records it touches, and commits all of it or none.

Reads use plain Core selects with bounded limits; nothing scans the store to
answer a sync round.

On SQLite a commit never copies the write-ahead log into the database file
(`wal_autocheckpoint` is off): `WalCheckpointer` does that on its own thread,
a passive checkpoint at most every `CHECKPOINT_EVERY_S` after a commit, so the
writer's transactions only append to the WAL. A checkpoint takes no write lock
and changes nothing a reader sees; what a crash leaves in the WAL is replayed
by SQLite at the next open, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import InterfaceError, OperationalError

from sync.errors import ConfigError
from sync.kinds import KindSet
from sync.store import migrate
from sync.store.log import LogStore, QueuedWrite
from sync.store.peers import PeersStore
from sync.store.projection import ProjectionStore
from sync.store.replicas import (
    LOG_CHANNEL,
    REGISTRY_CHANNEL,
    Listener,
    WriteLock,
    exclusive,
    is_postgresql,
    postgres_conninfo,
)
from sync.store.search import SearchStore
from sync.store.trust import TrustStore

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA wal_autocheckpoint=0")  # WalCheckpointer copies the WAL back, off the commit path
    cur.close()


# Seconds between passive checkpoints of the SQLite WAL while commits keep coming.
CHECKPOINT_EVERY_S = 0.5


class WalCheckpointer:
    """Copies a SQLite store's write-ahead log into the database file on its own thread.

    `nudge` (called after each commit) wakes it; it runs one passive checkpoint,
    then waits at least `every_s` before the next, so a burst of commits costs a
    few checkpoints. SQLite runs the copy without holding the GIL."""

    def __init__(self, engine: Engine, every_s: float = CHECKPOINT_EVERY_S) -> None:
        self._engine = engine
        self._every_s = every_s
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        self._wanted.set()

    def checkpoint(self) -> tuple[int, int]:
        """Run a passive checkpoint now: (frames in the WAL, frames copied back)."""
        with self._engine.connect() as conn:
            row = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return int(row[1]), int(row[2])

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping.is_set():
                return
            self._wanted.clear()
            try:
                self.checkpoint()
            except Exception:  # the next commit nudges again; SQLite replays the WAL at open
                log.warning("WAL checkpoint failed", exc_info=True)
            # The commits of the next interval share one checkpoint.
            if self._stopping.wait(self._every_s):
                return

    def stop(self) -> None:
        self._stopping.set()
        self._wanted.set()
        self._thread.join(timeout=10)


class Store(LogStore, PeersStore, TrustStore, ProjectionStore, SearchStore):
    """One site's database. Thread-safe; one writer at a time."""

    def __init__(self, engine: Engine, kinds: KindSet) -> None:
        self.engine = engine
        self.kinds = kinds
        self._write_lock = WriteLock(engine)
        self._listener: Listener | None = None
        self._queue_lock = threading.Lock()
        self._queued: list[QueuedWrite] = []
        self._coming = 0
        self._queue_changed = threading.Condition(self._queue_lock)
        # The log head as last committed, and a condition watchers wait on.
        self._head_changed = threading.Condition()
        self._head = -1
        self._checkpointer = WalCheckpointer(engine) if engine.dialect.name == "sqlite" else None

    @classmethod
    def open(cls, url: str, kinds: KindSet) -> Store:
        """Open (creating if needed) and migrate the store at `url`, holding records of `kinds`."""
        if url.startswith("sqlite"):
            engine = create_engine(url, pool_size=8, max_overflow=8)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            try:
                engine = create_engine(url, pool_pre_ping=True)
            except ModuleNotFoundError as exc:
                raise ConfigError(
                    f"the database driver of {url.split(':', 1)[0]} is not installed (no module {exc.name}); "
                    "for PostgreSQL use postgresql+psycopg://... and pip install 'techbridge[postgres]'"
                ) from exc
        where = engine.url.render_as_string(hide_password=True)
        try:
            before, head = migrate.upgrade(engine)
        except (OperationalError, InterfaceError) as exc:
            engine.dispose()
            first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            raise ConfigError(f"cannot open the database {where}: {first}") from exc
        except migrate.NewerSchema as exc:
            engine.dispose()
            raise ConfigError(
                f"the database {where} was written by a newer techbridge (schema {exc.revision}; this program "
                f"knows up to {migrate.head_revisions()[0]}): run the newer release, or restore a backup"
            ) from None
        if before is not None and before != head:
            log.warning("upgraded the store's schema from %s to %s", before, head)
        store = cls(engine, kinds)
        store.build_search_index()
        return store

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction under the store's write lock, for a room's own tables
        kept beside these (the hub's invites)."""
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self._write_lock.close()
        self.engine.dispose()

    def follow_other_writers(self, on_registry: Callable[[], object]) -> bool:
        """On PostgreSQL, listen for the writes of the other processes on this database
        (hub replicas): a log append moves this process's head (waking its watch streams),
        a registry calls `on_registry`. False (and nothing done) on SQLite."""
        if not is_postgresql(self.engine) or self._listener is not None:
            return False

        def head_moved(payload: str) -> None:
            LogStore._committed(self, int(payload) if payload.isdigit() else self.log_head())

        def registry_changed(_payload: str) -> None:
            on_registry()

        self._listener = Listener(
            postgres_conninfo(self.engine), {LOG_CHANNEL: head_moved, REGISTRY_CHANNEL: registry_changed}
        )
        self._listener.start()
        return True

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Whether this process has the turn for the job `name` while the block runs (one
        process at a time on a PostgreSQL store; always on SQLite)."""
        return exclusive(self.engine, name)

    def _committed(self, head: int) -> None:
        super()._committed(head)
        if self._checkpointer is not None:
            self._checkpointer.nudge()

    def size_bytes(self) -> int:
        """The store's size: the SQLite file and its WAL, or the PostgreSQL database."""
        with self.engine.connect() as conn:
            if is_postgresql(self.engine):
                return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())
            pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
            size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        path = self.engine.url.database or ""
        wal = Path(f"{path}-wal")
        return pages * size + (wal.stat().st_size if path and wal.exists() else 0)

    def checkpoint_wal(self) -> tuple[int, int] | None:
        """Copy the WAL back into a SQLite store's file now: (frames in the WAL, frames
        copied); None on PostgreSQL."""
        return None if self._checkpointer is None else self._checkpointer.checkpoint()
