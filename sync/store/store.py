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
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event

from sync.kinds import KindSet
from sync.store import migrate
from sync.store.log import LogStore, QueuedWrite
from sync.store.peers import PeersStore
from sync.store.projection import ProjectionStore
from sync.store.search import SearchStore
from sync.store.trust import TrustStore


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Store(LogStore, PeersStore, TrustStore, ProjectionStore, SearchStore):
    """One site's database. Thread-safe; one writer at a time."""

    def __init__(self, engine: Engine, kinds: KindSet) -> None:
        self.engine = engine
        self.kinds = kinds
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queued: list[QueuedWrite] = []
        # The log head as last committed, and a condition watchers wait on.
        self._head_changed = threading.Condition()
        self._head = -1

    @classmethod
    def open(cls, url: str, kinds: KindSet) -> Store:
        """Open (creating if needed) and migrate the store at `url`, holding records of `kinds`."""
        if url.startswith("sqlite"):
            engine = create_engine(url, pool_size=8, max_overflow=8)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        migrate.upgrade(engine)
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
        self.engine.dispose()
