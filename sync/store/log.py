"""Versions and the log (tables `versions` and `log_entries`).

Writes go through a handful of methods, each one transaction:

* `append_local` stores a version written here and appends it to the log.
* `apply_batch` stores a batch received from a peer *and* advances that
  peer's cursor in the same transaction, so after a crash at any instant the
  site resumes from a cursor that matches what it holds. Versions already held
  are skipped (a version's id is the hash of its body), so applying a batch
  twice is a no-op; refused versions are recorded with their reason.

Both re-merge the records they touch, quarantine what an erasure among them
calls for and, for a peer's batch, record rejections, the cursor and the push
transaction, all in that one transaction (through the other per-concern stores).

Reads: the log after a position (bounded by count and bytes, filtered by
where an entry came from and who may receive it), its head, pending counts,
and what is held (the newest stamp, a record's nonce and head version, a
digest). Committing a new head wakes whoever waits for it (`wait_for_head`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, insert, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from sync.clock import Stamp
from sync.codec import decode_version_body
from sync.envelope import SignatureValue, Version
from sync.errors import NotFound
from sync.kinds import NETWORK, Action, KindSet, audience_key
from sync.store.projection import HeadVersion, RecordRow
from sync.store.replicas import LOG_CHANNEL, WriteLock, notify_in
from sync.store.tables import (
    IDS,
    IN_CHUNK,
    insert_rows,
    log_t,
    notes_t,
    records_t,
    rejections_t,
    txns_t,
    versions_t,
)
from techbridge.v1.records_pb2 import LIFECYCLE_ACTION_CREATE as CREATE_PB

# Bodies per sync batch, well under the 8 MiB message limit.
BATCH_BYTES = 4 * 1024 * 1024
# How long a group commit waits for local writes announced and on their way: long enough
# for eight clients' creates, checked and signed while the interpreter serves the others, to
# join it (bench/processes.py's intake: 3.5 creates a commit at 2 ms, 3.9 at 6 or 10 ms).
GROUP_WAIT_S = 0.006

# The statements every batch runs, built once (building a Core statement and its cache
# key costs more than executing it); each but the head takes its id list as `IDS`.
_LOG_HEAD = select(func.coalesce(func.max(log_t.c.seq), 0))
_VERSIONS_HELD = select(versions_t.c.version_id).where(versions_t.c.version_id.in_(IDS))
_AUDIENCES_HELD = select(records_t.c.record_id, records_t.c.audience).where(records_t.c.record_id.in_(IDS))
_BODIES_OF_RECORDS = select(versions_t.c.record_id, versions_t.c.body).where(versions_t.c.record_id.in_(IDS))


@dataclass
class QueuedWrite:
    """A local write waiting for the group commit, and what came of it."""

    version: Version
    now_ms: int
    seq: int | None = None
    error: BaseException | None = None


@dataclass
class ComingWrite:
    """A local write announced to the group commit (`LogStore.coming_write`), and whether
    it has been queued since."""

    queued: bool = False


@dataclass(frozen=True)
class Rejected:
    version_id: str
    reason: str
    body: bytes
    # The reason's code (the refusing error's name, as `unknown_key`): what figures count by.
    code: str = "refused"


@dataclass(frozen=True)
class ApplyResult:
    stored: int
    duplicates: int
    rejected: int
    already_applied: bool = False


@dataclass(frozen=True)
class OriginDigest:
    origin: str
    versions: int
    digest: str


@dataclass(frozen=True)
class StoredVersion:
    """One version as stored: its exact signed bytes and how it arrived here."""

    version_id: str
    body: bytes
    signatures: tuple[SignatureValue, ...]
    received_from: str | None
    received_at_ms: int
    verified: bool
    quarantined: bool


@dataclass(frozen=True)
class HeldDigest:
    """What a site holds: how many versions and a digest of their ids (`Store.digest`)."""

    versions: int
    digest: str
    origins: tuple[OriginDigest, ...]


@dataclass(frozen=True)
class LogRow:
    seq: int
    version_id: str
    body: bytes
    signatures: tuple[SignatureValue, ...]
    received_from: str | None


def _sigs_to_json(sigs: Iterable[SignatureValue]) -> str:
    return orjson.dumps([{"key_id": s.key_id, "signature": s.signature.hex(), "role": s.role} for s in sigs]).decode()


def _sigs_from_json(text: str) -> tuple[SignatureValue, ...]:
    return tuple(SignatureValue(d["key_id"], bytes.fromhex(d["signature"]), d["role"]) for d in orjson.loads(text))


def _log_filter(
    after_seq: int, only_local: bool, exclude_from: str | None, audience_of: str | None = None
) -> list[ColumnElement[bool]]:
    """Log entries after `after_seq`: only those written here, or all but those from one
    peer, and (with `audience_of`) only those that site may receive."""
    cond: list[ColumnElement[bool]] = [log_t.c.seq > after_seq]
    if only_local:
        cond.append(log_t.c.received_from.is_(None))
    if exclude_from is not None:
        cond.append(or_(log_t.c.received_from.is_(None), log_t.c.received_from != exclude_from))
    if audience_of is not None:
        cond.append(or_(log_t.c.audience == NETWORK, log_t.c.audience.contains(f",{audience_of},", autoescape=True)))
    return cond


class LogStore:
    """Versions and the log of a site's store (part of `sync.store.store.Store`)."""

    engine: Engine
    kinds: KindSet
    _write_lock: WriteLock
    # Local writes waiting for the group commit (`append_local`).
    _queue_lock: threading.Lock
    _queued: list[QueuedWrite]
    # Local writers on their way to `append_local` (`coming_write`), and a condition on
    # `_queue_lock` that tells the group commit one of them queued.
    _coming: int
    _queue_changed: threading.Condition
    # The log head as last committed, and a condition watchers wait on.
    _head_changed: threading.Condition
    _head: int

    if TYPE_CHECKING:  # of the other stores Store is made of, inside this store's transactions

        def _upsert_peer(self, conn: Connection, peer: str, values: dict[str, object]) -> None: ...

        def _quarantine_erased(self, conn: Connection, fresh: Sequence[Version]) -> None: ...

        def _update_records(self, conn: Connection, fresh: Sequence[Version]) -> None: ...

        def _record_row(self, r: Row[tuple[object, ...]]) -> RecordRow: ...

    def _committed(self, head: int) -> None:
        with self._head_changed:
            if head > self._head:
                self._head = head
                self._head_changed.notify_all()

    def wake(self) -> None:
        """Wake every waiter (a watch stream whose caller went away)."""
        with self._head_changed:
            self._head_changed.notify_all()

    def wait_for_head(self, after: int, timeout_s: float) -> int:
        """Block until the log head passes `after`, `wake` is called or `timeout_s`
        elapses; return the head (callers treat an unchanged head as a heartbeat)."""
        with self._head_changed:
            if self._head < 0:
                self._head = self.log_head()
            if self._head <= after:
                self._head_changed.wait(timeout=timeout_s)  # a commit or a wake() ends it early
            return self._head

    @contextmanager
    def coming_write(self) -> Iterator[ComingWrite]:
        """Announce a local write on its way (checked and signed inside the block, then
        given to `append_local` with what this yields): a group commit waits a moment
        for the writes announced and not queued yet."""
        coming = ComingWrite()
        with self._queue_lock:
            self._coming += 1
        try:
            yield coming
        finally:
            with self._queue_lock:
                if not coming.queued:
                    self._coming -= 1
                    self._queue_changed.notify_all()

    def append_local(self, version: Version, now_ms: int, coming: ComingWrite | None = None) -> int:
        """Store a version written at this site; returns its log position.

        Writes that arrive together share one transaction (group commit): each writer
        queues its version, and whichever takes the write lock first stores every
        version queued by then, in the order queued; a write announced by
        `coming_write` (`coming`) first waits at most GROUP_WAIT_S for the other writes
        announced and not queued yet. If that transaction fails, each version is stored on
        its own, so a writer sees only its own error."""
        mine = QueuedWrite(version, now_ms)
        with self._queue_lock:
            self._queued.append(mine)
            if coming is not None and not coming.queued:
                coming.queued = True
                self._coming -= 1
            self._queue_changed.notify_all()
        with self._write_lock:
            if mine.seq is None and mine.error is None:
                with self._queue_lock:
                    deadline = time.monotonic() + GROUP_WAIT_S
                    # Only a create that announced itself waits for the others: a writer that
                    # announced nothing (an edit, a step) may hold what they wait for.
                    while coming is not None and self._coming > 0 and (left := deadline - time.monotonic()) > 0:
                        self._queue_changed.wait(left)
                    batch, self._queued = self._queued, []
                self._store_queued(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.seq is not None
        return mine.seq

    def _store_queued(self, batch: list[QueuedWrite]) -> None:
        """Store queued writes (under the write lock): together, or one by one if together fails."""
        try:
            seqs = self._append_locked([w.version for w in batch], max(w.now_ms for w in batch))
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            for w in batch:
                try:
                    w.seq = self._append_locked([w.version], w.now_ms)[0]
                except Exception as exc:  # this writer's own error, raised in its own thread
                    w.error = exc
            return
        for w, seq in zip(batch, seqs, strict=True):
            w.seq = seq

    def append_local_batch(
        self, versions: Sequence[Version], now_ms: int, notes: Mapping[str, str] | None = None
    ) -> list[int]:
        """Store versions written at this site in one transaction, with the private notes
        of their records (`notes`, by record id); returns their log positions."""
        if not versions:
            return []
        with self._write_lock:
            return self._append_locked(list(versions), now_ms, notes)

    def _append_locked(self, versions: list[Version], now_ms: int, notes: Mapping[str, str] | None = None) -> list[int]:
        with self.engine.begin() as conn:
            seqs = self._insert_versions(conn, versions, None, now_ms)
            self._quarantine_erased(conn, versions)
            for record_id, note in (notes or {}).items():
                conn.execute(delete(notes_t).where(notes_t.c.record_id == record_id))
                if note:
                    conn.execute(insert(notes_t).values(record_id=record_id, note=note, stored_at_ms=now_ms))
        self._committed(max(seqs))
        return seqs

    def apply_batch(
        self,
        peer: str,
        accepted: Sequence[Version],
        rejected: Sequence[Rejected],
        *,
        through_seq: int,
        now_ms: int,
        head_seq: int | None = None,
        txn_id: str | None = None,
        through_version: str | None = None,
    ) -> ApplyResult:
        """Store a batch from `peer` and move its cursor to `through_seq`, atomically."""
        with self._write_lock:
            result, head = self._apply(peer, accepted, rejected, through_seq, now_ms, head_seq, txn_id, through_version)
            if head:
                self._committed(head)
        return result

    def _apply(
        self,
        peer: str,
        accepted: Sequence[Version],
        rejected: Sequence[Rejected],
        through_seq: int,
        now_ms: int,
        head_seq: int | None,
        txn_id: str | None,
        through_version: str | None = None,
    ) -> tuple[ApplyResult, int]:
        with self.engine.begin() as conn:
            if txn_id is not None:
                done = conn.execute(select(txns_t.c.acked_seq).where(txns_t.c.txn_id == txn_id)).first()
                if done is not None:
                    return ApplyResult(0, len(accepted), 0, already_applied=True), 0
            unique: dict[str, Version] = {}
            for v in accepted:
                unique.setdefault(v.version_id, v)
            held = self._held(conn, list(unique))
            fresh = [v for vid, v in unique.items() if vid not in held]
            seqs = self._insert_versions(conn, fresh, peer, now_ms)
            erased = [v.record_id for v in fresh if v.change.action == Action.ERASE]
            if erased:  # a firm's erasure reaches this site: its personal data goes too
                conn.execute(delete(notes_t).where(notes_t.c.record_id.in_(erased)))
            self._quarantine_erased(conn, fresh)
            for r in rejected:
                conn.execute(
                    insert(rejections_t).values(
                        version_id=r.version_id, peer=peer, reason=r.reason, body=r.body, received_at_ms=now_ms
                    )
                )
            values: dict[str, object] = {"pull_cursor": through_seq}
            if through_version is not None:
                values["pull_cursor_version"] = through_version
            if head_seq is not None:
                values["pending_pull"] = max(0, head_seq - through_seq)
            self._upsert_peer(conn, peer, values)
            if txn_id is not None:
                conn.execute(
                    insert(txns_t).values(txn_id=txn_id, peer=peer, acked_seq=through_seq, applied_at_ms=now_ms)
                )
            return ApplyResult(len(fresh), len(accepted) - len(fresh), len(rejected)), (seqs[-1] if seqs else 0)

    def _held(self, conn: Connection, ids: list[str]) -> set[str]:
        held: set[str] = set()
        for i in range(0, len(ids), IN_CHUNK):
            chunk = ids[i : i + IN_CHUNK]
            held.update(conn.execute(_VERSIONS_HELD, {"ids": chunk}).scalars())
        return held

    def _insert_versions(self, conn: Connection, fresh: Sequence[Version], peer: str | None, now_ms: int) -> list[int]:
        if not fresh:
            return []
        head = conn.execute(_LOG_HEAD).scalar_one()
        insert_rows(
            conn,
            versions_t,
            [
                {
                    "version_id": v.version_id,
                    "record_id": v.record_id,
                    "kind": v.kind,
                    "origin": v.origin,
                    "author": v.author,
                    "key_id": v.author_key_id,
                    "hlc_wall_ms": v.hlc.wall_ms,
                    "hlc_counter": v.hlc.counter,
                    "action": v.change.action.value if v.change.action is not None else "",
                    "status": v.change.status or "",
                    "body": v.body,
                    "signatures": _sigs_to_json(v.signatures),
                    "received_from": peer,
                    "received_at_ms": now_ms,
                    "verified": True,
                }
                for v in fresh
            ],
        )
        seqs = list(range(head + 1, head + 1 + len(fresh)))
        audiences = self._audiences(conn, fresh)
        insert_rows(
            conn,
            log_t,
            [
                {"seq": s, "version_id": v.version_id, "received_from": peer, "audience": audiences[v.version_id]}
                for s, v in zip(seqs, fresh, strict=True)
            ],
        )
        self._update_records(conn, fresh)
        notify_in(conn, LOG_CHANNEL, str(seqs[-1]))
        return seqs

    def _audiences(self, conn: Connection, fresh: Sequence[Version]) -> dict[str, str]:
        """The audience of each version: its record's, from the record's create.

        The create is looked for among the fresh versions, the records held,
        and every stored version of the record (quarantined ones too). A
        version whose create is nowhere here goes to its owner (and the hub)
        only: never wider than its audience can be."""
        known: dict[str, str] = {}
        for v in fresh:
            if v.change.action == Action.CREATE and not v.parents:
                known.setdefault(v.record_id, audience_key(v.origin, v.change.audience))
        ids = sorted({v.record_id for v in fresh} - set(known))
        for i in range(0, len(ids), IN_CHUNK):
            for row in conn.execute(_AUDIENCES_HELD, {"ids": ids[i : i + IN_CHUNK]}):
                known[row.record_id] = row.audience
        missing = sorted(set(ids) - set(known))
        for i in range(0, len(missing), IN_CHUNK):
            for row in conn.execute(_BODIES_OF_RECORDS, {"ids": missing[i : i + IN_CHUNK]}):
                msg = decode_version_body(row.body)
                if msg.change.action == CREATE_PB and not msg.parents:
                    known[row.record_id] = audience_key(msg.origin, tuple(msg.change.audience))
        return {v.version_id: known.get(v.record_id, audience_key(v.origin, (v.origin,))) for v in fresh}

    def version_at(self, seq: int) -> str | None:
        """The version id at log position `seq`, if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(log_t.c.version_id).where(log_t.c.seq == seq)).scalar()

    def log_after(
        self,
        after_seq: int,
        limit: int,
        *,
        only_local: bool = False,
        exclude_from: str | None = None,
        audience_of: str | None = None,
        max_bytes: int = BATCH_BYTES,
    ) -> tuple[list[LogRow], int, int]:
        """Up to `limit` log entries after `after_seq` (and at most about
        `max_bytes` of bodies, but always at least one), and the position they cover.

        Returns (rows, through_seq, head). Entries filtered out (received from
        `exclude_from`, or not local when `only_local`) are skipped but
        covered: when every matching entry up to the head fits, through_seq is
        the head. The head is read first and rows are limited to it; log
        positions are assigned and committed in order by the one writer, so
        every entry up to the head is visible to the second select.
        """
        cond = _log_filter(after_seq, only_local, exclude_from, audience_of)
        with self.engine.connect() as conn, conn.begin():
            head = conn.execute(_LOG_HEAD).scalar_one()
            rows = conn.execute(
                select(
                    log_t.c.seq, log_t.c.version_id, log_t.c.received_from, versions_t.c.body, versions_t.c.signatures
                )
                .join(versions_t, versions_t.c.version_id == log_t.c.version_id)
                .where(*cond, log_t.c.seq <= head)
                .order_by(log_t.c.seq)
                .limit(limit)
            ).all()
        out: list[LogRow] = []
        size = 0
        for r in rows:
            size += len(r.body)
            if out and size > max_bytes:
                return out, out[-1].seq, head
            out.append(LogRow(r.seq, r.version_id, r.body, _sigs_from_json(r.signatures), r.received_from))
        through = out[-1].seq if len(out) == limit else max(head, after_seq)
        return out, through, head

    def visible_head(self, site: str) -> int:
        """The last log position `site` may receive (0 if none)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.coalesce(func.max(log_t.c.seq), 0)).where(*_log_filter(0, False, None, site))
                ).scalar_one()
            )

    def log_head(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(_LOG_HEAD).scalar_one())

    def count_pending(
        self,
        after_seq: int,
        *,
        only_local: bool = False,
        exclude_from: str | None = None,
        audience_of: str | None = None,
    ) -> int:
        cond = _log_filter(after_seq, only_local, exclude_from, audience_of)
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(log_t).where(*cond)).scalar_one())

    def counts(self) -> tuple[int, int]:
        """(versions held, rejections recorded)."""
        with self.engine.connect() as conn:
            versions = conn.execute(select(func.count()).select_from(versions_t)).scalar_one()
            rejected = conn.execute(select(func.count()).select_from(rejections_t)).scalar_one()
        return int(versions), int(rejected)

    def newest_stamp(self) -> Stamp:
        """The greatest HLC stamp of any version held (a site's clock resumes after it)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(versions_t.c.hlc_wall_ms, versions_t.c.hlc_counter)
                .order_by(versions_t.c.hlc_wall_ms.desc(), versions_t.c.hlc_counter.desc())
                .limit(1)
            ).first()
        return Stamp(row.hlc_wall_ms, row.hlc_counter) if row else Stamp(0, 0)

    def record_nonce(self, record_id: str) -> bytes:
        """The nonce that binds `record_id` to its owner, read from one of its versions."""
        with self.engine.connect() as conn:
            body = conn.execute(select(versions_t.c.body).where(versions_t.c.record_id == record_id).limit(1)).scalar()
        if body is None:
            raise NotFound(f"no record with id {record_id}")
        return bytes(decode_version_body(body).record_nonce)

    def head_version(self, record_id: str) -> HeadVersion:
        with self.engine.connect() as conn:
            rec = conn.execute(select(records_t).where(records_t.c.record_id == record_id)).first()
            if rec is None:
                raise NotFound(f"no record with id {record_id}")
            v = conn.execute(select(versions_t).where(versions_t.c.version_id == rec.head_version_id)).one()
        return HeadVersion(
            record=self._record_row(rec),
            body=v.body,
            signatures=_sigs_from_json(v.signatures),
            author=v.author,
            key_id=v.key_id,
            received_from=v.received_from,
            received_at_ms=v.received_at_ms,
            verified=v.verified,
        )

    def record_versions(self, record_id: str, limit: int = 200) -> list[StoredVersion]:
        """The versions of one record this site holds, oldest stamp first (at most `limit`,
        the newest kept when there are more), with where each came from."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(versions_t)
                .where(versions_t.c.record_id == record_id)
                .order_by(versions_t.c.hlc_wall_ms.desc(), versions_t.c.hlc_counter.desc(), versions_t.c.version_id)
                .limit(limit)
            ).all()
        return [
            StoredVersion(
                version_id=r.version_id,
                body=r.body,
                signatures=_sigs_from_json(r.signatures),
                received_from=r.received_from,
                received_at_ms=r.received_at_ms,
                verified=r.verified,
                quarantined=r.quarantined,
            )
            for r in reversed(rows)
        ]

    def digest(self) -> HeldDigest:
        """What this site holds, in a few bytes: SHA-256 over the ids of every
        version held (quarantined ones too), in id order, one per line; and the
        same per origin. Two sites that hold the same versions print the same
        digest whatever order they got them in. Reads every version id once,
        streamed (bounded memory): an operator's audit, not part of a round."""
        whole = hashlib.sha256()
        by_origin: dict[str, tuple[int, Any]] = {}
        count = 0
        with self.engine.connect() as conn:
            rows = conn.execution_options(yield_per=5000).execute(
                select(versions_t.c.version_id, versions_t.c.origin).order_by(versions_t.c.version_id)
            )
            for vid, origin in rows:
                line = f"{vid}\n".encode()
                whole.update(line)
                n, h = by_origin.get(origin) or (0, hashlib.sha256())
                h.update(line)
                by_origin[origin] = (n + 1, h)
                count += 1
        origins = tuple(OriginDigest(o, n, h.hexdigest()) for o, (n, h) in sorted(by_origin.items()))
        return HeldDigest(count, whole.hexdigest(), origins)

    def version_ids(self) -> set[str]:
        """Every version id held (for tests and digests on small stores)."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(versions_t.c.version_id)).scalars())
