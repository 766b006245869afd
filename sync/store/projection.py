"""The merged projection: each record's state and private notes (tables `records` and
`private_notes`).

Record state is derived from the versions by `sync.merge` (the rules are written
there) and stored as canonical JSON beside a few columns for listing and filtering:
sites that hold the same versions store the same bytes. Every write of versions
re-merges the records it touches in its own transaction, and re-indexes them for
search (`sync.store.search`). Private notes are personal data kept beside a record,
never signed or sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Row

from sync.codec import merge_input_of
from sync.envelope import SignatureValue, Version
from sync.errors import NotFound
from sync.kinds import Action, Content, KindSet, audience_key
from sync.merge import MergeInput, RecordState, merge, state_from_json, state_to_json
from sync.store.replicas import WriteLock
from sync.store.tables import IDS, IN_CHUNK, insert_rows, notes_t, records_t, versions_t

# The statements a write runs for every batch, built once: building a Core statement
# and its cache key costs more than executing it (a batch of a few creates, as intake
# commits, paid about 80 us a statement). Each takes its id list as `IDS`.
_HELD_ELSEWHERE = (
    select(versions_t.c.record_id)
    .where(versions_t.c.record_id.in_(IDS))
    .group_by(versions_t.c.record_id)
    .having(func.count() > 1)
)
_VERSIONS_OF_RECORDS = select(
    versions_t.c.record_id, versions_t.c.version_id, versions_t.c.kind, versions_t.c.origin
).where(versions_t.c.record_id.in_(IDS), versions_t.c.quarantined.is_(False))
_BODIES_OF_VERSIONS = select(versions_t.c.record_id, versions_t.c.version_id, versions_t.c.body).where(
    versions_t.c.version_id.in_(IDS)
)
_RECORDS_HELD = select(records_t.c.record_id).where(records_t.c.record_id.in_(IDS))


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
    kinds: KindSet | None = field(default=None, compare=False, repr=False)

    @property
    def state(self) -> RecordState:
        assert self.kinds is not None, "a record row read from a store knows its kinds"
        return state_from_json(self.state_json, self.kinds)


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


def _row_values(kind: str, owner: str, state: RecordState, head_author: str, versions: int) -> dict[str, Any]:
    """The columns of a record's row in `records`, from its merged state."""
    return {
        "kind": kind,
        "origin": owner,
        "head_version_id": state.newest_head,
        "title": state.content.title[:256],
        "status": state.content.status,
        "head_wall_ms": state.updated.wall_ms,
        "head_counter": state.updated.counter,
        "head_author": head_author,
        "version_count": versions,
        "state_json": state_to_json(state),
        "deleted": state.deleted,
        "open_conflicts": len(state.conflicts),
        "waiting": len(state.waiting),
        "audience": audience_key(owner, state.audience),
    }


class ProjectionStore:
    """Merged records and private notes of a site's store (part of `sync.store.store.Store`)."""

    engine: Engine
    kinds: KindSet
    _write_lock: WriteLock

    if TYPE_CHECKING:  # of the other stores Store is made of, inside this store's transactions

        def reindex(
            self, conn: Connection, record_ids: Sequence[str], fresh: Sequence[tuple[str, int, str, Content]]
        ) -> None: ...

    def _update_records(self, conn: Connection, fresh: Sequence[Version]) -> None:
        """Re-merge every record the batch touched, from all of its versions (stored
        by now, in `conn`'s transaction).

        A record whose only version is a create in this batch (a new record: most of an
        initial sync, every intake) is merged from that version alone, read from
        nowhere: one grouped select over the touched ids tells them apart. The others
        cost one select of their versions and one statement per kind of change; each
        record's merge reads only that record's versions.
        """
        decoded = {
            v.version_id: MergeInput(v.version_id, v.parents, v.hlc, v.author, v.change, v.kind, v.origin)
            for v in fresh
        }
        per_record: dict[str, list[Version]] = {}
        for v in fresh:
            per_record.setdefault(v.record_id, []).append(v)
        creates = sorted(
            rid
            for rid, vs in per_record.items()
            if len(vs) == 1 and vs[0].change.action == Action.CREATE and not vs[0].parents
        )
        more: set[str] = set()  # creates of records that hold other versions too
        for i in range(0, len(creates), IN_CHUNK):
            more.update(conn.execute(_HELD_ELSEWHERE, {"ids": creates[i : i + IN_CHUNK]}).scalars())
        lone = {rid: per_record[rid][0] for rid in creates if rid not in more}
        self._remerge(conn, sorted(set(per_record) - set(lone)), decoded, lone)

    def _remerge(
        self,
        conn: Connection,
        ids: list[str],
        decoded: dict[str, MergeInput],
        lone: Mapping[str, Version] | None = None,
    ) -> None:
        """Merge `ids` from every version each holds (those in `decoded` are not read
        again), and the records of `lone`, each held as that one create alone (no row
        of theirs is in the records or the search index yet); store their rows and
        index them."""
        bodies: dict[str, list[MergeInput]] = {rid: [] for rid in ids}
        origin: dict[str, tuple[str, str]] = {}
        unread: list[str] = []  # held before this batch: their bodies are read and decoded
        for rid, v in (lone or {}).items():
            bodies[rid] = [decoded[v.version_id]]
            origin[rid] = (v.kind, v.origin)
        for i in range(0, len(ids), IN_CHUNK):
            for row in conn.execute(_VERSIONS_OF_RECORDS, {"ids": ids[i : i + IN_CHUNK]}):
                known = decoded.get(row.version_id)
                if known is None:
                    unread.append(row.version_id)
                else:
                    bodies[row.record_id].append(known)
                origin[row.record_id] = (row.kind, row.origin)
        for i in range(0, len(unread), IN_CHUNK):
            for held in conn.execute(_BODIES_OF_VERSIONS, {"ids": unread[i : i + IN_CHUNK]}):
                bodies[held.record_id].append(merge_input_of(held.version_id, held.body, self.kinds))
        existing: set[str] = set()
        for i in range(0, len(ids), IN_CHUNK):
            existing.update(conn.execute(_RECORDS_HELD, {"ids": ids[i : i + IN_CHUNK]}).scalars())
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        indexed: list[tuple[str, int, str, Content]] = []
        for rid in [*ids, *(lone or {})]:
            state = merge(bodies[rid], self.kinds)
            if state.applied == 0:
                if rid in existing:  # everything left waits or was quarantined: hide the record
                    conn.execute(delete(records_t).where(records_t.c.record_id == rid))
                continue  # every version waits for a parent: nothing to show yet
            kind, owner = origin[rid]
            newest = next(v for v in bodies[rid] if v.version_id == state.newest_head)
            values = _row_values(kind, owner, state, newest.author, len(bodies[rid]))
            if rid in existing:
                updates.append({"rid": rid, **values})
            else:
                inserts.append({"record_id": rid, **values})
            if not state.deleted:
                indexed.append((rid, state.updated.wall_ms, owner, state.content))
        # One statement per kind of change, executed for many rows.
        if inserts:
            insert_rows(conn, records_t, inserts)
        self.reindex(conn, ids, indexed)  # search follows the new states (sync.store.search); `lone` has no old rows
        if updates:
            cols = [k for k in updates[0] if k != "rid"]
            conn.execute(
                update(records_t)
                .where(records_t.c.record_id == bindparam("rid"))
                .values({c: bindparam(c) for c in cols}),
                updates,
            )

    def records_titled(self, kind: str, title: str, limit: int = 200) -> list[RecordRow]:
        """The records of `kind` whose title field holds `title` (not deleted), newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(records_t, versions_t.c.verified, versions_t.c.key_id)
                .join(versions_t, versions_t.c.version_id == records_t.c.head_version_id)
                .where(records_t.c.kind == kind, records_t.c.title == title, records_t.c.deleted.is_(False))
                .order_by(records_t.c.head_wall_ms.desc(), records_t.c.record_id)
                .limit(limit)
            ).all()
        return [self._record_row(r) for r in rows]

    def counts_by_origin(self) -> dict[str, dict[str, int]]:
        """Origin -> kind -> records held here (not deleted)."""
        with self.engine.connect() as conn:
            # Grouped by deletion too, so that the (origin, kind, deleted) index covers it.
            rows = conn.execute(
                select(records_t.c.origin, records_t.c.kind, records_t.c.deleted, func.count()).group_by(
                    records_t.c.origin, records_t.c.kind, records_t.c.deleted
                )
            ).all()
        out: dict[str, dict[str, int]] = {}
        for origin, kind, deleted, n in rows:
            if not deleted:
                out.setdefault(origin, {})[kind] = int(n)
        return out

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

    def _record_row(self, r: Row[tuple[object, ...]]) -> RecordRow:
        return self._row_of(r._mapping)

    def _row_of(self, m: Mapping[Any, Any]) -> RecordRow:
        """A record's row from its columns (and, when joined, its head's `verified`, `key_id`)."""
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
            kinds=self.kinds,
        )

    def created_row(self, create: Version) -> tuple[RecordRow, RecordState]:
        """The row a record holding only `create` (a parentless create, just stored) has
        in `records`, and its merged state, made as the merge makes them, without reading
        them back."""
        assert create.change.action == Action.CREATE and not create.parents, "a record's first create"
        state = merge(
            [MergeInput(create.version_id, (), create.hlc, create.author, create.change, create.kind, create.origin)],
            self.kinds,
        )
        m = _row_values(create.kind, create.origin, state, create.author, 1)
        row = self._row_of({**m, "record_id": create.record_id, "verified": True, "key_id": create.author_key_id})
        return row, state

    def record(self, record_id: str) -> RecordRow:
        with self.engine.connect() as conn:
            rec = conn.execute(select(records_t).where(records_t.c.record_id == record_id)).first()
        if rec is None:
            raise NotFound(f"no record with id {record_id}")
        return self._record_row(rec)

    def records_by_id(self, record_ids: Sequence[str]) -> list[RecordRow]:
        """The records held among `record_ids`, in no particular order."""
        wanted = sorted(set(record_ids))
        out: list[RecordRow] = []
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), IN_CHUNK):
                rows = conn.execute(
                    select(records_t, versions_t.c.verified, versions_t.c.key_id)
                    .join(versions_t, versions_t.c.version_id == records_t.c.head_version_id)
                    .where(records_t.c.record_id.in_(wanted[i : i + IN_CHUNK]))
                ).all()
                out.extend(self._record_row(r) for r in rows)
        return out

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
