"""A site's store: signed versions, its log, derived records, cursors.

Writes go through a handful of methods, each one transaction:

* `append_local` stores a version written here and appends it to the log.
* `apply_batch` stores a batch received from a peer *and* advances that
  peer's cursor in the same transaction, so after a crash at any instant the
  site resumes from a cursor that matches what it holds. Versions already held
  are skipped (a version's id is the hash of its body), so applying a batch
  twice is a no-op; refused versions are recorded with their reason.

Record state is derived from the versions by `sync.merge` (the rules are
written there) and stored as canonical JSON beside a few columns for listing
and filtering: sites that hold the same versions store the same bytes.

Reads use plain Core selects with bounded limits; nothing scans the store to
answer a sync round.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from sync import backoff
from sync.clock import Stamp
from sync.codec import decode_registry, decode_version_body, merge_input_of
from sync.envelope import FirmKey, SignatureValue, Version
from sync.errors import NotFound
from sync.merge import MergeInput, RecordState, merge, state_from_json, state_to_json
from sync.records import NETWORK, Action, audience_key
from sync.registry import Registry
from sync.search import terms_of
from sync.store import migrate
from sync.store.models import (
    LogEntryModel,
    PeerStateModel,
    PrivateNoteModel,
    PushTxnModel,
    RecordModel,
    RegistryModel,
    RejectionModel,
    SearchTermModel,
    VersionModel,
)
from techbridge.v1.records_pb2 import LIFECYCLE_ACTION_CREATE as CREATE_PB

log = logging.getLogger(__name__)

versions_t = cast(Table, VersionModel.__table__)
log_t = cast(Table, LogEntryModel.__table__)
records_t = cast(Table, RecordModel.__table__)
peers_t = cast(Table, PeerStateModel.__table__)
txns_t = cast(Table, PushTxnModel.__table__)
rejections_t = cast(Table, RejectionModel.__table__)
registry_t = cast(Table, RegistryModel.__table__)
notes_t = cast(Table, PrivateNoteModel.__table__)
terms_t = cast(Table, SearchTermModel.__table__)

# SQLite caps bound parameters per statement; keep IN lists below it.
_IN_CHUNK = 500
# Bodies per sync batch, well under the 8 MiB message limit.
BATCH_BYTES = 4 * 1024 * 1024
# Search (Store.search): a term's postings are counted up to SEARCH_COUNT_FIRST, then
# eight times more while every term reaches the count, up to SEARCH_COUNT_MAX.
SEARCH_COUNT_FIRST = 1_000
SEARCH_COUNT_MAX = 8_000


@dataclass(frozen=True)
class Rejected:
    version_id: str
    reason: str
    body: bytes


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


@dataclass(frozen=True)
class RecordRow:
    record_id: str
    kind: str
    origin: str
    title: str
    status: str
    updated_at_ms: int
    head_version_id: str
    version_count: int
    # Whether the head version passed verification on receipt, and its signing key.
    verified: bool = True
    key_id: str = ""
    deleted: bool = False
    open_conflicts: int = 0
    state_json: str = ""

    @property
    def state(self) -> RecordState:
        return state_from_json(self.state_json)


@dataclass(frozen=True)
class HeadVersion:
    record: RecordRow
    body: bytes
    signatures: tuple[SignatureValue, ...]
    author: str
    key_id: str
    received_from: str | None
    received_at_ms: int
    verified: bool


@dataclass(frozen=True)
class PeerState:
    peer: str
    pull_cursor: int = 0
    push_acked: int = 0
    pending_pull: int = 0
    last_attempt_ms: int = 0
    last_success_ms: int = 0
    last_error: str = ""
    last_error_ms: int = 0
    failures: int = 0
    next_attempt_ms: int = 0
    pull_cursor_version: str = ""
    resend_own: bool = False
    reconciling: bool = False
    resend_until: int = 0


def _sigs_to_json(sigs: Iterable[SignatureValue]) -> str:
    return json.dumps([{"key_id": s.key_id, "signature": s.signature.hex(), "role": s.role} for s in sigs])


def _sigs_from_json(text: str) -> tuple[SignatureValue, ...]:
    return tuple(SignatureValue(d["key_id"], bytes.fromhex(d["signature"]), d["role"]) for d in json.loads(text))


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


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Store:
    """One site's database. Thread-safe; one writer at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write_lock = threading.Lock()
        # The log head as last committed, and a condition watchers wait on.
        self._head_changed = threading.Condition()
        self._head = -1

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

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (creating if needed) and migrate the store at `url`."""
        if url.startswith("sqlite"):
            engine = create_engine(url, pool_size=8, max_overflow=8)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        migrate.upgrade(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # ---- registry -------------------------------------------------------

    def registry(self) -> Registry | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(registry_t.c.body, registry_t.c.signature).order_by(registry_t.c.version.desc()).limit(1)
            ).first()
        return decode_registry(row.body, row.signature) if row else None

    def save_registry(self, registry: Registry, now_ms: int) -> bool:
        """Store a verified registry if newer than the held one; True if stored."""
        with self._write_lock, self.engine.begin() as conn:
            return self._save_registry(conn, registry, now_ms)

    def _save_registry(self, conn: Connection, registry: Registry, now_ms: int) -> bool:
        held = conn.execute(select(func.max(registry_t.c.version))).scalar()
        if held is not None and registry.version <= held:
            return False
        conn.execute(
            insert(registry_t).values(
                version=registry.version, body=registry.body, signature=registry.signature, stored_at_ms=now_ms
            )
        )
        return True

    def update_registry(self, now_ms: int, build: Callable[[Registry | None], Registry]) -> Registry:
        """Build and store the next registry from the held one, in one transaction (hub)."""
        with self._write_lock, self.engine.begin() as conn:
            reg_row = conn.execute(
                select(registry_t.c.body, registry_t.c.signature).order_by(registry_t.c.version.desc()).limit(1)
            ).first()
            held = decode_registry(reg_row.body, reg_row.signature) if reg_row else None
            new = build(held)
            self._save_registry(conn, new, now_ms)
            return new

    def quarantine(self, key_id: str, since_ms: int, reason: str) -> int:
        """Take out of the merge every held version signed by `key_id` stamped at or after
        `since_ms`; they stay stored and listed, never deleted. Returns how many."""
        with self._write_lock, self.engine.begin() as conn:
            return self._quarantine(conn, key_id, since_ms, reason)

    def _quarantine(self, conn: Connection, key_id: str, since_ms: int, reason: str) -> int:
        rows = conn.execute(
            select(versions_t.c.version_id, versions_t.c.record_id).where(
                versions_t.c.key_id == key_id,
                versions_t.c.hlc_wall_ms >= since_ms,
                versions_t.c.quarantined.is_(False),
            )
        ).all()
        if not rows:
            return 0
        ids = [r.version_id for r in rows]
        for i in range(0, len(ids), _IN_CHUNK):
            conn.execute(
                update(versions_t)
                .where(versions_t.c.version_id.in_(ids[i : i + _IN_CHUNK]))
                .values(quarantined=True, quarantine_reason=reason)
            )
        self._remerge(conn, sorted({r.record_id for r in rows}), {})
        return len(ids)

    def quarantined(self, limit: int = 1000) -> list[tuple[str, str, str, str]]:
        """(version id, record id, key id, reason) of quarantined versions."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    versions_t.c.version_id, versions_t.c.record_id, versions_t.c.key_id, versions_t.c.quarantine_reason
                )
                .where(versions_t.c.quarantined.is_(True))
                .order_by(versions_t.c.version_id)
                .limit(limit)
            ).all()
        return [(r.version_id, r.record_id, r.key_id, r.quarantine_reason) for r in rows]

    # ---- writing versions ---------------------------------------------------

    def append_local(self, version: Version, now_ms: int) -> int:
        """Store a version written at this site; returns its log position."""
        return self.append_local_batch([version], now_ms)[0]

    def append_local_batch(self, versions: Sequence[Version], now_ms: int) -> list[int]:
        """Store versions written at this site in one transaction; returns their log positions."""
        if not versions:
            return []
        with self._write_lock:
            with self.engine.begin() as conn:
                seqs = self._insert_versions(conn, list(versions), None, now_ms)
                self._quarantine_erased(conn, versions)
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

    def _quarantine_erased(self, conn: Connection, fresh: Sequence[Version]) -> None:
        """A firm's erasure takes what the firm signed from then on out of the merge, at
        every site, whatever arrived first (as a key revocation does), in the transaction
        that stores the erasure: no site ever holds an erasure without its quarantine."""
        for v in fresh:
            if v.kind == "firm" and v.change.action == Action.ERASE:
                firm = self._firm_key(conn, v.record_id)
                if firm is not None and firm.erased_at_ms:
                    reason = f"signed by firm {firm.firm_id} after its erasure"
                    self._quarantine(conn, firm.key_id, firm.erased_at_ms, reason)

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
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            held.update(
                conn.execute(select(versions_t.c.version_id).where(versions_t.c.version_id.in_(chunk))).scalars()
            )
        return held

    def _insert_versions(self, conn: Connection, fresh: Sequence[Version], peer: str | None, now_ms: int) -> list[int]:
        if not fresh:
            return []
        head = conn.execute(select(func.coalesce(func.max(log_t.c.seq), 0))).scalar_one()
        conn.execute(
            insert(versions_t),
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
        conn.execute(
            insert(log_t),
            [
                {"seq": s, "version_id": v.version_id, "received_from": peer, "audience": audiences[v.version_id]}
                for s, v in zip(seqs, fresh, strict=True)
            ],
        )
        self._update_records(conn, fresh)
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
        for i in range(0, len(ids), _IN_CHUNK):
            for row in conn.execute(
                select(records_t.c.record_id, records_t.c.audience).where(
                    records_t.c.record_id.in_(ids[i : i + _IN_CHUNK])
                )
            ):
                known[row.record_id] = row.audience
        missing = sorted(set(ids) - set(known))
        for i in range(0, len(missing), _IN_CHUNK):
            for row in conn.execute(
                select(versions_t.c.record_id, versions_t.c.body).where(
                    versions_t.c.record_id.in_(missing[i : i + _IN_CHUNK])
                )
            ):
                msg = decode_version_body(row.body)
                if msg.change.action == CREATE_PB and not msg.parents:
                    known[row.record_id] = audience_key(msg.origin, tuple(msg.change.audience))
        return {v.version_id: known.get(v.record_id, audience_key(v.origin, (v.origin,))) for v in fresh}

    def _update_records(self, conn: Connection, fresh: Sequence[Version]) -> None:
        """Re-merge every record the batch touched, from all of its versions.

        Costs one select of the touched records' versions and one statement per
        kind of change; each record's merge reads only that record's versions.
        """
        decoded = {
            v.version_id: MergeInput(v.version_id, v.parents, v.hlc, v.author, v.change, v.kind, v.origin)
            for v in fresh
        }
        self._remerge(conn, sorted({v.record_id for v in fresh}), decoded)

    def _insert_terms(self, conn: Connection, rows: list[tuple[str, int, str]]) -> None:
        """Tens of rows per record: on SQLite, straight to the driver as tuples (SQLAlchemy's
        per-row parameter handling was a third of a record's apply); PostgreSQL keeps
        SQLAlchemy's batched multi-row INSERT, faster there than a plain executemany."""
        if self.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("INSERT INTO search_terms (term, head_wall_ms, record_id) VALUES (?, ?, ?)", rows)
        else:
            conn.execute(insert(terms_t), [{"term": t, "head_wall_ms": w, "record_id": r} for t, w, r in rows])

    def _remerge(self, conn: Connection, ids: list[str], decoded: dict[str, MergeInput]) -> None:
        bodies: dict[str, list[MergeInput]] = {rid: [] for rid in ids}
        origin: dict[str, tuple[str, str]] = {}
        unread: list[str] = []  # held before this batch: their bodies are read and decoded
        for i in range(0, len(ids), _IN_CHUNK):
            rows = conn.execute(
                select(
                    versions_t.c.record_id,
                    versions_t.c.version_id,
                    versions_t.c.kind,
                    versions_t.c.origin,
                ).where(versions_t.c.record_id.in_(ids[i : i + _IN_CHUNK]), versions_t.c.quarantined.is_(False))
            )
            for row in rows:
                known = decoded.get(row.version_id)
                if known is None:
                    unread.append(row.version_id)
                else:
                    bodies[row.record_id].append(known)
                origin[row.record_id] = (row.kind, row.origin)
        for i in range(0, len(unread), _IN_CHUNK):
            for held in conn.execute(
                select(versions_t.c.record_id, versions_t.c.version_id, versions_t.c.body).where(
                    versions_t.c.version_id.in_(unread[i : i + _IN_CHUNK])
                )
            ):
                bodies[held.record_id].append(merge_input_of(held.version_id, held.body))
        existing: set[str] = set()
        for i in range(0, len(ids), _IN_CHUNK):
            existing.update(
                conn.execute(
                    select(records_t.c.record_id).where(records_t.c.record_id.in_(ids[i : i + _IN_CHUNK]))
                ).scalars()
            )
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        terms: list[tuple[str, int, str]] = []
        for i in range(0, len(ids), _IN_CHUNK):  # re-indexed below from the new states
            conn.execute(delete(terms_t).where(terms_t.c.record_id.in_(ids[i : i + _IN_CHUNK])))
        for rid in ids:
            state = merge(bodies[rid])
            if state.applied == 0:
                if rid in existing:  # everything left waits or was quarantined: hide the record
                    conn.execute(delete(records_t).where(records_t.c.record_id == rid))
                continue  # every version waits for a parent: nothing to show yet
            kind, owner = origin[rid]
            newest = next(v for v in bodies[rid] if v.version_id == state.newest_head)
            values = {
                "kind": kind,
                "origin": owner,
                "head_version_id": state.newest_head,
                "title": state.content.title[:256],
                "status": state.content.status,
                "head_wall_ms": state.updated.wall_ms,
                "head_counter": state.updated.counter,
                "head_author": newest.author,
                "version_count": len(bodies[rid]),
                "state_json": state_to_json(state),
                "deleted": state.deleted,
                "open_conflicts": len(state.conflicts),
                "waiting": len(state.waiting),
                "audience": audience_key(owner, state.audience),
            }
            if rid in existing:
                updates.append({"rid": rid, **values})
            else:
                inserts.append({"record_id": rid, **values})
            if not state.deleted:
                wall = state.updated.wall_ms
                terms.extend((t, wall, rid) for t in terms_of(state.content))
        # One statement per kind of change, executed for many rows.
        if inserts:
            conn.execute(insert(records_t), inserts)
        if terms:
            self._insert_terms(conn, terms)
        if updates:
            cols = [k for k in updates[0] if k != "rid"]
            conn.execute(
                update(records_t)
                .where(records_t.c.record_id == bindparam("rid"))
                .values({c: bindparam(c) for c in cols}),
                updates,
            )

    # ---- cursors and link health -------------------------------------------

    def _upsert_peer(self, conn: Connection, peer: str, values: dict[str, object]) -> None:
        res = conn.execute(update(peers_t).where(peers_t.c.peer == peer).values(**values))
        if res.rowcount == 0:
            defaults: dict[str, object] = {
                "pull_cursor": 0,
                "push_acked": 0,
                "pending_pull": 0,
                "last_attempt_ms": 0,
                "last_success_ms": 0,
                "last_error": "",
                "last_error_ms": 0,
                "failures": 0,
                "next_attempt_ms": 0,
                "pull_cursor_version": "",
                "resend_own": False,
                "reconciling": False,
                "resend_until": 0,
            }
            defaults.update(values)
            conn.execute(insert(peers_t).values(peer=peer, **defaults))

    def peer_state(self, peer: str) -> PeerState:
        with self.engine.connect() as conn:
            row = conn.execute(select(peers_t).where(peers_t.c.peer == peer)).first()
        return PeerState(**row._asdict()) if row else PeerState(peer)

    def peers(self) -> list[PeerState]:
        with self.engine.connect() as conn:
            return [PeerState(**r._asdict()) for r in conn.execute(select(peers_t).order_by(peers_t.c.peer))]

    def reset_cursors(self, peer: str) -> None:
        """Start over with `peer` (after a restore): both cursors back to 0 and the
        reconciliation marked, in one transaction, so a crash resumes it."""
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_peer(
                conn,
                peer,
                {"pull_cursor": 0, "pull_cursor_version": "", "push_acked": 0, "pending_pull": 0, "reconciling": True},
            )

    def set_flags(self, peer: str, **flags: bool) -> None:
        """Set `resend_own` or `reconciling` for `peer` (a new `resend_own` starts a new
        resend: how far it must be confirmed is set again when a pull completes)."""
        values: dict[str, object] = dict(flags)
        if "resend_own" in flags:
            values["resend_until"] = 0
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_peer(conn, peer, values)

    def set_resend_until(self, peer: str, seq: int) -> None:
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_peer(conn, peer, {"resend_until": seq})

    def version_at(self, seq: int) -> str | None:
        """The version id at log position `seq`, if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(log_t.c.version_id).where(log_t.c.seq == seq)).scalar()

    def push_applied(self, txn_id: str) -> bool:
        """Whether a push batch with this transaction id was applied here."""
        with self.engine.connect() as conn:
            return conn.execute(select(txns_t.c.txn_id).where(txns_t.c.txn_id == txn_id)).first() is not None

    def set_push_acked(self, peer: str, acked: int) -> None:
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_peer(conn, peer, {"push_acked": acked})

    def record_attempt(self, peer: str, now_ms: int, error: str | None) -> PeerState:
        """Record a round's outcome; a failure lengthens the backoff, a success clears it."""
        values: dict[str, object] = {"last_attempt_ms": now_ms}
        with self._write_lock, self.engine.begin() as conn:
            failures = conn.execute(select(peers_t.c.failures).where(peers_t.c.peer == peer)).scalar() or 0
            if error is None:
                values.update(last_success_ms=now_ms, failures=0, next_attempt_ms=0)
            else:
                failures += 1
                values.update(
                    last_error=error[:2000],
                    last_error_ms=now_ms,
                    failures=failures,
                    next_attempt_ms=now_ms + backoff.delay_ms(failures),
                )
            self._upsert_peer(conn, peer, values)
        return self.peer_state(peer)

    def clear_backoff(self, peer: str) -> None:
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_peer(conn, peer, {"failures": 0, "next_attempt_ms": 0})

    # ---- reading the log ----------------------------------------------------

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
            head = conn.execute(select(func.coalesce(func.max(log_t.c.seq), 0))).scalar_one()
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
            return int(conn.execute(select(func.coalesce(func.max(log_t.c.seq), 0))).scalar_one())

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

    def rejections(self, limit: int = 100) -> list[tuple[str, str, str]]:
        """(version id, peer, reason), newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rejections_t.c.version_id, rejections_t.c.peer, rejections_t.c.reason)
                .order_by(rejections_t.c.id.desc())
                .limit(limit)
            ).all()
        return [(r.version_id, r.peer, r.reason) for r in rows]

    # ---- reading records ------------------------------------------------------

    def list_records(
        self,
        *,
        origin: str | None,
        limit: int,
        after_id: str = "",
        include_deleted: bool = False,
        only_conflicted: bool = False,
        kind: str | None = None,
        status: str | None = None,
    ) -> list[RecordRow]:
        cond = [records_t.c.record_id > after_id]
        if kind:
            cond.append(records_t.c.kind == kind)
        if status:
            cond.append(records_t.c.status == status)
        if origin:
            cond.append(records_t.c.origin == origin)
        if not include_deleted:
            cond.append(records_t.c.deleted.is_(False))
        if only_conflicted:
            cond.append(records_t.c.open_conflicts > 0)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(records_t, versions_t.c.verified, versions_t.c.key_id)
                .join(versions_t, versions_t.c.version_id == records_t.c.head_version_id)
                .where(*cond)
                .order_by(records_t.c.record_id)
                .limit(limit)
            ).all()
        return [self._record_row(r) for r in rows]

    @staticmethod
    def _record_row(r: Row[tuple[object, ...]]) -> RecordRow:
        m = r._mapping
        return RecordRow(
            record_id=m["record_id"],
            kind=m["kind"],
            origin=m["origin"],
            title=m["title"],
            status=m["status"],
            updated_at_ms=m["head_wall_ms"],
            head_version_id=m["head_version_id"],
            version_count=m["version_count"],
            verified=bool(m.get("verified", True)),
            key_id=str(m.get("key_id", "")),
            deleted=bool(m["deleted"]),
            open_conflicts=int(m["open_conflicts"]),
            state_json=str(m["state_json"]),
        )

    def record(self, record_id: str) -> RecordRow:
        with self.engine.connect() as conn:
            rec = conn.execute(select(records_t).where(records_t.c.record_id == record_id)).first()
        if rec is None:
            raise NotFound(f"no record with id {record_id}")
        return self._record_row(rec)

    def titles(self, record_ids: Sequence[str]) -> dict[str, str]:
        """The titles (a firm's name, an offer's title) of the records held among `record_ids`."""
        wanted = sorted({r for r in record_ids if r})
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(records_t.c.record_id, records_t.c.title).where(records_t.c.record_id.in_(wanted))
            )
            return {r.record_id: r.title for r in rows}

    def has_record(self, record_id: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(versions_t.c.version_id).where(versions_t.c.record_id == record_id).limit(1)
                ).first()
                is not None
            )

    def set_private_note(self, record_id: str, note: str, now_ms: int) -> None:
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(delete(notes_t).where(notes_t.c.record_id == record_id))
            if note:
                conn.execute(insert(notes_t).values(record_id=record_id, note=note, stored_at_ms=now_ms))

    def private_note(self, record_id: str) -> str:
        with self.engine.connect() as conn:
            note = conn.execute(select(notes_t.c.note).where(notes_t.c.record_id == record_id)).scalar()
        return str(note or "")

    def search(
        self,
        terms: Sequence[str],
        *,
        kinds: Sequence[str] = ("listing", "request"),
        status: str | None = None,
        origin: str | None = None,
        limit: int = 100,
    ) -> list[RecordRow]:
        """Records matching every term (sync.search) and the filters, newest first.

        The rarest term drives (`_rarest`): its postings are keyed newest first, so they
        are walked in the order of the answer, each checked against the other terms (a
        point lookup on the same key) and the filters, until a page is full. The work
        grows with how far down the rarest term's postings the page is found, not with
        the store. With no term, records are walked newest first (ix_records_newest)."""

        # On SQLite (no statistics unless ANALYZE ran) the filters are wrapped so that
        # no index on them is used: a boolean or a kind selects most of the store, and
        # the walks newest first are what keep a page cheap. PostgreSQL's statistics
        # choose those walks by themselves, and wrapping would blind them.
        def off_index(column: Any, default: object) -> Any:
            return func.coalesce(column, default) if self.engine.dialect.name == "sqlite" else column

        cond: list[ColumnElement[bool]] = [
            off_index(records_t.c.deleted, False).is_(False),
            off_index(records_t.c.kind, "").in_(list(kinds)),
        ]
        if status:
            cond.append(off_index(records_t.c.status, "") == status)
        if origin:
            cond.append(off_index(records_t.c.origin, "") == origin)
        wanted = sorted(set(terms))
        shown = select(records_t, versions_t.c.verified, versions_t.c.key_id)
        with self.engine.connect() as conn:
            if not wanted:
                query = (
                    shown.join(versions_t, versions_t.c.version_id == records_t.c.head_version_id)
                    .where(*cond)
                    .order_by(records_t.c.head_wall_ms.desc(), records_t.c.record_id.desc())
                )
            else:
                rarest = self._rarest(conn, wanted)
                if rarest is None:
                    return []
                d = terms_t.alias("d")

                def also(term: str) -> ColumnElement[bool]:
                    t = terms_t.alias()
                    key = (t.c.term == term, t.c.head_wall_ms == d.c.head_wall_ms, t.c.record_id == d.c.record_id)
                    return select(t.c.record_id).where(*key).exists()

                query = (
                    shown.select_from(
                        d.join(records_t, records_t.c.record_id == d.c.record_id).join(
                            versions_t, versions_t.c.version_id == records_t.c.head_version_id
                        )
                    )
                    .where(d.c.term == rarest, *cond, *(also(t) for t in wanted if t != rarest))
                    .order_by(d.c.head_wall_ms.desc(), d.c.record_id.desc())
                )
            rows = conn.execute(query.limit(limit)).all()
        return [self._record_row(r) for r in rows]

    @staticmethod
    def _rarest(conn: Connection, terms: Sequence[str]) -> str | None:
        """The term with the fewest postings (None if one has none), counting each only
        as far as needed: up to SEARCH_COUNT_FIRST, then eight times more while every
        term still reaches the count, up to SEARCH_COUNT_MAX (past it, every term is
        common and any of them finds a page quickly)."""
        cap = SEARCH_COUNT_FIRST
        while True:
            counts = {
                term: conn.execute(
                    select(func.count()).select_from(
                        select(terms_t.c.record_id).where(terms_t.c.term == term).limit(cap).subquery()
                    )
                ).scalar_one()
                for term in terms
            }
            rarest = min(terms, key=lambda t: (counts[t], t))
            if counts[rarest] < cap or cap >= SEARCH_COUNT_MAX:
                return rarest if counts[rarest] else None
            cap *= 8

    def firm_key(self, firm_id: str) -> FirmKey | None:
        """A firm's signing key as its record here says (None if no such firm is held)."""
        with self.engine.connect() as conn:
            return self._firm_key(conn, firm_id)

    @staticmethod
    def _firm_key(conn: Connection, firm_id: str) -> FirmKey | None:
        row = conn.execute(
            select(records_t.c.origin, records_t.c.state_json, records_t.c.status).where(
                records_t.c.record_id == firm_id, records_t.c.kind == "firm"
            )
        ).first()
        if row is None:
            return None
        state = state_from_json(row.state_json)
        public_key = state.content.value("public_key")
        assert isinstance(public_key, str)
        return FirmKey(firm_id, row.origin, bytes.fromhex(public_key), state.erased_at_ms)

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
