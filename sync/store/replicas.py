"""Several processes on one PostgreSQL store: one writer at a time, news of each other's
writes, and jobs that run in one process at a time.

A site whose store is PostgreSQL may run as several processes (replicas) on the same
database, with the same keys. Three things make them one site:

* **One writer at a time** (`WriteLock`). Every write of the store takes the process's
  thread lock and then a PostgreSQL session advisory lock (`pg_advisory_lock`) on a
  connection kept for it, and lets go of both only after its transaction has committed.
  Log positions are assigned inside the writing transaction as one more than the largest
  committed position (`LogStore._insert_versions`), so with writers taking turns a
  position is visible before the next one is assigned: **no reader ever sees position
  n + 1 before n**, and a pull that read up to a head never skips an entry committed
  later (the cursor-gap rule in `sync.protocol`). Should the lock ever be lost (its
  connection cut), two writers would read the same largest position and the second
  insert of that position would fail on the log's primary key: a refused write, never
  a gap.
* **News of writes elsewhere** (`Listener`). A transaction that appends to the log or
  stores a registry sends `NOTIFY` on the channel `techbridge_log` (the new head) or
  `techbridge_registry`, which PostgreSQL delivers when it commits; every replica keeps
  one connection that `LISTEN`s and moves its head (which wakes its watch streams) or
  reloads the registry. A listener whose connection drops reconnects
  and catches up as if notified, so a missed notification costs at most a reconnect.
* **Jobs in one process at a time** (`exclusive`): a scheduled job's run first takes a
  session advisory lock named after the job without waiting (`pg_try_advisory_lock`);
  a replica that does not get it skips the run. A replica that dies loses its
  connections and with them its locks.

On SQLite a store has one process: the write lock is the thread lock, `exclusive`
always grants the turn, and nothing listens.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

LOG_CHANNEL = "techbridge_log"
REGISTRY_CHANNEL = "techbridge_registry"
WRITE_LOCK_NAME = "techbridge:store-writer"
LISTEN_POLL_S = 1.0
RECONNECT_MAX_S = 5.0


def lock_key(name: str) -> int:
    """The advisory lock number of a name (a signed 64-bit integer, as PostgreSQL takes)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class WriteLock:
    """The store's one-writer-at-a-time lock: a thread lock, and on PostgreSQL an advisory
    lock shared by every process on the database. Used as `with store._write_lock:` around
    a write transaction, so both are let go only after the commit."""

    def __init__(self, engine: Engine) -> None:
        self._thread_lock = threading.Lock()
        self._engine = engine if is_postgresql(engine) else None
        self._conn: Connection | None = None
        self._key = lock_key(WRITE_LOCK_NAME)

    def _connection(self) -> Connection:
        assert self._engine is not None
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def acquire(self) -> None:
        self._thread_lock.acquire()
        if self._engine is None:
            return
        try:
            try:
                self._connection().exec_driver_sql(f"SELECT pg_advisory_lock({self._key})")
            except Exception:
                self._drop_connection()  # a connection the server closed: one more try on a new one
                self._connection().exec_driver_sql(f"SELECT pg_advisory_lock({self._key})")
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        try:
            if self._engine is not None and self._conn is not None:
                try:
                    self._conn.exec_driver_sql(f"SELECT pg_advisory_unlock({self._key})")
                except Exception:  # the connection is gone, and the server let the lock go with it
                    log.warning("lost the store's write-lock connection; opening a new one at the next write")
                    self._drop_connection()
        finally:
            self._thread_lock.release()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                log.debug("closing a broken lock connection failed", exc_info=True)

    def close(self) -> None:
        with self._thread_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Whether this process has the turn for `name` (a job) while the block runs: always on
    SQLite; on PostgreSQL when no other process holds the advisory lock of that name."""
    if not is_postgresql(engine):
        yield True
        return
    key = lock_key(name)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar())
        try:
            yield got
        finally:
            if got:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")


def postgres_conninfo(engine: Engine) -> str:
    """A libpq connection string for the engine's database (psycopg's own, without SQLAlchemy)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Listener:
    """One connection that LISTENs for the other processes' writes and calls a handler per
    channel with the payload; on a dropped connection it reconnects and calls every
    handler with an empty payload (catch up: something may have been missed)."""

    def __init__(self, conninfo: str, handlers: dict[str, Callable[[str], None]]) -> None:
        self._conninfo = conninfo
        self._handlers = handlers
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name="store-listener", daemon=True)

    def start(self, wait_s: float = 10.0) -> None:
        self._thread.start()
        self._ready.wait(wait_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=LISTEN_POLL_S * 3)

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self._conninfo, autocommit=True)
        for channel in self._handlers:
            conn.execute(f"LISTEN {channel}")
        return conn

    def _dispatch(self, channel: str, payload: str) -> None:
        handler = self._handlers.get(channel)
        if handler is None:
            return
        try:
            handler(payload)
        except Exception:
            log.exception("handling a notification on %s failed", channel)

    def _run(self) -> None:
        delay = 0.2
        first = True
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:
                log.warning("cannot listen for the other processes' writes: %s", str(exc).splitlines()[0])
                self._ready.set()
                self._stop.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            delay = 0.2
            if not first:
                for channel in self._handlers:
                    self._dispatch(channel, "")
            first = False
            self._ready.set()
            try:
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=LISTEN_POLL_S):
                        self._dispatch(note.channel, note.payload)
            except Exception as exc:
                log.warning(
                    "the store listener's connection dropped: %s", str(exc).splitlines()[0] if str(exc) else exc
                )
            finally:
                try:
                    conn.close()
                except Exception:
                    log.debug("closing the listener's connection failed", exc_info=True)


def notify_in(conn: Connection, channel: str, payload: str) -> None:
    """Notify the other processes on a PostgreSQL store of this transaction's write when it
    commits (nothing on SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_notify(%(c)s, %(p)s)", {"c": channel, "p": payload})
