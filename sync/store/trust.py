"""Trust: the registry, quarantine, rejections, firm keys (tables `registry` and
`rejections`, and the quarantine columns of `versions`).

The registry only moves forward: a version is stored only if newer than the held
one. A quarantine takes the versions a revoked key signed from a time on out of the
merge (they stay stored and listed); a firm's erasure quarantines what the firm
signed from then on, in the transaction that stores the erasure. A firm's key is
read from its merged record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, func, insert, select, update

from sync.codec import decode_registry
from sync.envelope import FirmKey, Version
from sync.kinds import Action, KindSet
from sync.merge import MergeInput, state_from_json
from sync.registry import Registry
from sync.store.replicas import REGISTRY_CHANNEL, WriteLock, notify_in
from sync.store.tables import IN_CHUNK, marks_t, records_t, registry_t, rejections_t, versions_t

# The store mark that moves whenever held versions are quarantined.
QUARANTINES = "quarantines"


def bump_mark(conn: Connection, name: str) -> None:
    """Move the store mark `name` on by one, in `conn`'s transaction."""
    if not conn.execute(update(marks_t).where(marks_t.c.name == name).values(value=marks_t.c.value + 1)).rowcount:
        conn.execute(insert(marks_t).values(name=name, value=1))


def read_mark(conn: Connection, name: str) -> int:
    """The store mark `name` (0 if it never moved)."""
    return int(conn.execute(select(marks_t.c.value).where(marks_t.c.name == name)).scalar() or 0)


class TrustStore:
    """Registry, quarantine, rejections and firm keys of a site's store (part of
    `sync.store.store.Store`)."""

    engine: Engine
    kinds: KindSet
    _write_lock: WriteLock

    if TYPE_CHECKING:  # of the other stores Store is made of, inside this store's transactions

        def _remerge(
            self,
            conn: Connection,
            ids: list[str],
            decoded: dict[str, MergeInput],
            lone: Mapping[str, Version] | None = None,
        ) -> None: ...

    def registry(self) -> Registry | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(registry_t.c.body, registry_t.c.signature).order_by(registry_t.c.version.desc()).limit(1)
            ).first()
        return decode_registry(row.body, row.signature) if row else None

    def save_registry(self, registry: Registry, now_ms: int) -> bool:
        """Store a verified registry if newer than the held one; True if stored."""
        with self._write_lock, self.engine.begin() as conn:
            return self.save_registry_in(conn, registry, now_ms)

    def save_registry_in(self, conn: Connection, registry: Registry, now_ms: int) -> bool:
        """Store `registry` inside the caller's transaction if it is newer than the one held."""
        held = conn.execute(select(func.max(registry_t.c.version))).scalar()
        if held is not None and registry.version <= held:
            return False
        conn.execute(
            insert(registry_t).values(
                version=registry.version, body=registry.body, signature=registry.signature, stored_at_ms=now_ms
            )
        )
        notify_in(conn, REGISTRY_CHANNEL, str(registry.version))
        return True

    def update_registry(self, now_ms: int, build: Callable[[Registry | None], Registry]) -> Registry:
        """Build and store the next registry from the held one, in one transaction (hub)."""
        with self._write_lock, self.engine.begin() as conn:
            reg_row = conn.execute(
                select(registry_t.c.body, registry_t.c.signature).order_by(registry_t.c.version.desc()).limit(1)
            ).first()
            held = decode_registry(reg_row.body, reg_row.signature) if reg_row else None
            new = build(held)
            self.save_registry_in(conn, new, now_ms)
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
        for i in range(0, len(ids), IN_CHUNK):
            conn.execute(
                update(versions_t)
                .where(versions_t.c.version_id.in_(ids[i : i + IN_CHUNK]))
                .values(quarantined=True, quarantine_reason=reason)
            )
        self._remerge(conn, sorted({r.record_id for r in rows}), {})
        bump_mark(conn, QUARANTINES)
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

    def rejections(self, limit: int = 100) -> list[tuple[str, str, str]]:
        """(version id, peer, reason), newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rejections_t.c.version_id, rejections_t.c.peer, rejections_t.c.reason)
                .order_by(rejections_t.c.id.desc())
                .limit(limit)
            ).all()
        return [(r.version_id, r.peer, r.reason) for r in rows]

    def _quarantine_erased(self, conn: Connection, fresh: Sequence[Version]) -> None:
        """A firm's erasure takes what the firm signed from then on out of the merge, at
        every site, whatever arrived first (as a key revocation does), in the transaction
        that stores the erasure: no site ever holds an erasure without its quarantine."""
        for v in fresh:
            if v.kind == self.kinds.key_kind and v.change.action == Action.ERASE:
                firm = self._firm_key(conn, v.record_id)
                if firm is not None and firm.erased_at_ms:
                    reason = f"signed by firm {firm.firm_id} after its erasure"
                    self._quarantine(conn, firm.key_id, firm.erased_at_ms, reason)

    def firm_key(self, firm_id: str) -> FirmKey | None:
        """A firm's signing key as its record here says (None if no such firm is held)."""
        with self.engine.connect() as conn:
            return self._firm_key(conn, firm_id)

    def _firm_key(self, conn: Connection, firm_id: str) -> FirmKey | None:
        row = conn.execute(
            select(records_t.c.origin, records_t.c.state_json, records_t.c.status).where(
                records_t.c.record_id == firm_id, records_t.c.kind == self.kinds.key_kind
            )
        ).first()
        if row is None:
            return None
        state = state_from_json(row.state_json, self.kinds)
        public_key = state.content.value(self.kinds.key_field)
        assert isinstance(public_key, str)
        return FirmKey(firm_id, row.origin, bytes.fromhex(public_key), state.erased_at_ms)
