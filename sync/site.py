"""A running site: its config, keys, clock, store and registry, and the domain
operations both the hub and the nodes perform.

Servicers and the sync client call these functions; they never touch the
store or sign anything themselves.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sync.clock import HybridClock, Stamp, system_now_ms
from sync.config import SITE_ID_RE, DataDir, SiteConfig
from sync.envelope import (
    SignatureValue,
    Version,
    check_permission,
    make_listing_version,
    read_version,
    verify_version,
    version_id_of,
)
from sync.errors import (
    ConfigError,
    FailedPrecondition,
    FieldViolation,
    InvalidInput,
    NotFound,
    StampAhead,
    UnknownKey,
    VerificationFailed,
)
from sync.ids import new_record_id
from sync.keys import SigningKey
from sync.merge import RecordState
from sync.records import (
    CREATE_STATUSES,
    TRANSITIONS,
    Action,
    FieldValue,
    ListingChange,
    ListingContent,
    ListingStatus,
    create_change,
    next_status,
    validate_change,
    validate_listing,
)
from sync.registry import Registry, check_not_rollback, check_registry_signature
from sync.store import Rejected, Store
from sync.store.store import HeadVersion, RecordRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """A decoded entry from a peer: either a version or the reason it was refused."""

    seq: int
    version: Version | None
    rejection: Rejected | None
    unknown_key: bool = False
    # Refused only for a stamp ahead of this clock: take it again later.
    retry_later: bool = False


@dataclass(frozen=True)
class ListingDetail:
    head: HeadVersion
    state: RecordState
    # The newest head version, re-verified now.
    version: Version
    verified: bool
    verify_error: str


class Site:
    def __init__(
        self,
        data: DataDir,
        config: SiteConfig,
        store: Store,
        key: SigningKey,
        *,
        now_ms: Callable[[], int] = system_now_ms,
    ) -> None:
        self.data = data
        self.config = config
        self.store = store
        self.key = key
        self.now_ms = now_ms
        self.clock = HybridClock(now_ms)
        # Resume after everything already held, so a restart never stamps a
        # write before a version this site has seen.
        self.clock.observe(store.newest_stamp())
        self._registry_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # Called after each local write (a node kicks a sync round).
        self.on_local_write: list[Callable[[], None]] = []
        self._registry = store.registry()
        if self._registry is not None:
            # Finish what a crash may have cut short: a revocation's quarantine, a key switch.
            self._apply_revocations(None, self._registry)
            self.settle_pending_key()

    @property
    def site_id(self) -> str:
        return self.config.site_id

    @classmethod
    def open(cls, data: DataDir, *, now_ms: Callable[[], int] = system_now_ms) -> Site:
        config = data.load()
        key = SigningKey.load(data.signing_key)
        store = Store.open(config.db_url)
        return cls(data, config, store, key, now_ms=now_ms)

    def close(self) -> None:
        self.store.close()

    # ---- registry -----------------------------------------------------------

    def registry(self) -> Registry:
        reg = self._registry
        if reg is None:
            raise ConfigError("this site holds no registry; it was not initialised or enrolled")
        return reg

    def accept_registry(self, registry: Registry) -> bool:
        """Verify a registry against the root key and keep it if newer."""
        root = bytes.fromhex(self.config.root_public_key)
        check_registry_signature(registry.body, registry.root_key_id, registry.signature, root)
        with self._registry_lock:
            check_not_rollback(registry, self._registry)
            previous = self._registry
            stored = self.store.save_registry(registry, self.now_ms())
            if stored:
                self._registry = registry
                log.info("registry version %s in force", registry.version)
        if stored:
            self._apply_revocations(previous, registry)
        return stored

    def set_registry(self, registry: Registry) -> int:
        """Adopt a registry this process has just stored (hub side); returns how many
        held versions its revocations sent to quarantine."""
        with self._registry_lock:
            previous = self._registry
            if previous is None or registry.version > previous.version:
                self._registry = registry
        return self._apply_revocations(previous, registry)

    def _apply_revocations(self, previous: Registry | None, registry: Registry) -> int:
        """Quarantine held versions signed by keys the new registry revokes."""
        moved = 0
        for centre in registry.centres:
            for key in centre.keys:
                before = previous.key(key.key_id) if previous else None
                if key.revoked_at_ms and (before is None or not before[1].revoked_at_ms):
                    moved += self.store.quarantine(
                        key.key_id, key.revoked_at_ms, f"signed by key {key.key_id} after its revocation"
                    )
        if moved:
            log.warning("quarantined %s versions signed with revoked keys", moved)
        return moved

    # ---- key rotation -----------------------------------------------------------

    @property
    def pending_key_path(self) -> Path:
        return self.data.signing_key.with_name("signing.pending.key")

    def rotate_key(self, register: Callable[[SigningKey, int], Registry]) -> tuple[str, str, Registry, int]:
        """Replace this site's signing key without stopping.

        Under the write lock (no version is signed meanwhile): pick the switch
        instant just after everything signed so far, keep the new key as a
        pending file, let `register` get the new key into a root-signed
        registry (the hub itself, or a call to the hub), then make it the key.
        A crash in between leaves the pending file; `finish_rotation` settles it.
        """
        with self._write_lock:
            if self.pending_key_path.exists():
                raise FailedPrecondition("a previous key rotation is not settled yet; run `techbridge sync now` first")
            at = self.clock.tick().wall_ms + 1
            new = SigningKey.generate()
            new.save(self.pending_key_path)
            registry = register(new, at)
            found = registry.key(new.key_id)
            if found is None or found[0].id != self.site_id or found[1].valid_from_ms != at:
                raise VerificationFailed("the registry returned does not hold the new key from the agreed instant")
            old = self.key.key_id
            self._install_pending(new, at)
        log.info("signing key rotated from %s to %s", old, new.key_id)
        return old, new.key_id, registry, at

    def _install_pending(self, new: SigningKey, at: int) -> None:
        os.replace(self.pending_key_path, self.data.signing_key)
        self.key = new
        self.clock.observe(Stamp(at, 0))

    def pending_key(self) -> SigningKey | None:
        return SigningKey.load(self.pending_key_path) if self.pending_key_path.exists() else None

    def settle_pending_key(self) -> bool:
        """Adopt a pending key if the registry held here already names it for this site."""
        pending = self.pending_key()
        if pending is None:
            return False
        found = self.registry().key(pending.key_id)
        if found is None or found[0].id != self.site_id:
            return False
        with self._write_lock:
            self._install_pending(pending, found[1].valid_from_ms)
        log.warning("finished a key rotation cut short: now signing with %s", pending.key_id)
        return True

    def drop_pending_key(self) -> None:
        """The registry's authority says the pending key was never registered."""
        self.pending_key_path.unlink(missing_ok=True)

    def requarantine(self, versions: Sequence[Version]) -> None:
        """Quarantine just-stored versions whose key was revoked while they were being checked."""
        registry = self.registry()
        seen: set[str] = set()
        for v in versions:
            found = registry.key(v.author_key_id)
            if found is None or not found[1].revoked_at_ms or v.author_key_id in seen:
                continue
            if v.hlc.wall_ms >= found[1].revoked_at_ms:
                seen.add(v.author_key_id)
                self.store.quarantine(
                    v.author_key_id, found[1].revoked_at_ms, f"signed by key {v.author_key_id} after its revocation"
                )

    # ---- local writes ---------------------------------------------------------
    #
    # Each write reads the record's merged state, checks the step is legal
    # here, and stores a version whose parents are the record's current heads,
    # under one lock so two writes at this site never become concurrent
    # siblings of each other.

    @property
    def is_hub(self) -> bool:
        return self.config.role == "hub"

    def _write(
        self, record_id: str, origin: str, change: ListingChange, parents: tuple[str, ...], nonce: bytes | None = None
    ) -> Version:
        check_permission(change, author=self.site_id, origin=origin, author_is_hub=self.is_hub)
        validate_change(change)
        stamp = self.clock.tick()
        own = self.registry().key(self.key.key_id)
        problem = "it is not in the registry" if own is None else own[1].problem_at(stamp.wall_ms)
        if problem is not None:
            raise FailedPrecondition(
                f"this site's signing key cannot sign now ({problem}); settle the key rotation with "
                "`techbridge sync now`, or have the centre re-enrolled"
            )
        version = make_listing_version(
            self.key,
            site=self.site_id,
            origin=origin,
            record_id=record_id,
            hlc=stamp,
            change=change,
            parents=parents,
            record_nonce=self.store.record_nonce(record_id) if nonce is None else nonce,
        )
        seq = self.store.append_local(version, self.now_ms())
        log.info("stored version %s of listing %s as log entry %s", version.version_id[:12], record_id, seq)
        for hook in self.on_local_write:
            hook()
        return version

    def add_listing(self, content: ListingContent, audience: tuple[str, ...] = ()) -> Version:
        validate_listing(content)
        if content.status not in CREATE_STATUSES:
            raise InvalidInput([FieldViolation("status", "a new listing is draft or submitted")])
        bad = [a for a in audience if not SITE_ID_RE.match(a)]
        if bad:
            raise InvalidInput([FieldViolation("audience", f"not centre ids: {', '.join(bad)}")])
        change = create_change(content, audience)
        with self._write_lock:
            record_id, nonce = new_record_id(self.site_id, self.now_ms())
            return self._write(record_id, self.site_id, change, (), nonce)

    def _current(self, record_id: str) -> tuple[RecordRow, RecordState]:
        row = self.store.record(record_id)
        return row, row.state

    def edit_listing(self, record_id: str, fields: tuple[tuple[str, FieldValue], ...]) -> Version:
        if not fields:
            raise InvalidInput([FieldViolation("fields", "name at least one field to set")])
        change = ListingChange(tuple(sorted(fields)))
        validate_change(change)
        with self._write_lock:
            row, state = self._current(record_id)
            if state.deleted:
                raise FailedPrecondition(f"listing {record_id} is deleted; undelete it first")
            if state.content.status == ListingStatus.ARCHIVED:
                raise FailedPrecondition(f"listing {record_id} is archived and can no longer change")
            return self._write(record_id, row.origin, change, state.heads)

    def step_listing(self, record_id: str, action: Action) -> Version:
        with self._write_lock:
            row, state = self._current(record_id)
            if action == Action.DELETE:
                if state.deleted:
                    raise FailedPrecondition(f"listing {record_id} is already deleted")
                change = ListingChange(action=Action.DELETE)
            elif action == Action.UNDELETE:
                if not state.deleted:
                    raise FailedPrecondition(f"listing {record_id} is not deleted")
                change = ListingChange(action=Action.UNDELETE)
            elif action in TRANSITIONS:
                if state.deleted:
                    raise FailedPrecondition(f"listing {record_id} is deleted; undelete it first")
                change = ListingChange(action=action, status=next_status(state.content.status, action))
            else:
                raise InvalidInput([FieldViolation("action", f"{action.value} is not a step staff take by hand")])
            return self._write(record_id, row.origin, change, state.heads)

    def resolve_conflict(self, conflict_id: str, *, take: str | None, value: FieldValue | None) -> Version:
        record_id, _, field_name = conflict_id.rpartition("/")
        if not record_id or not field_name:
            raise InvalidInput([FieldViolation("conflict_id", "expected <listing id>/<field>")])
        with self._write_lock:
            row, state = self._current(record_id)
            conflict = state.conflict(field_name)
            if conflict is None:
                raise NotFound(f"no open conflict {conflict_id}")
            if field_name != "status" and state.deleted:
                raise FailedPrecondition(f"listing {record_id} is deleted; undelete it first")
            if field_name != "status" and state.content.status == ListingStatus.ARCHIVED:
                raise FailedPrecondition(f"listing {record_id} is archived and can no longer change")
            candidates = (conflict.winner, *conflict.others)
            if take is not None:
                chosen = [c for c in candidates if c.version_id.startswith(take)]
                if len(chosen) != 1:
                    ids = ", ".join(c.version_id[:12] for c in candidates)
                    raise InvalidInput([FieldViolation("take", f"name one of the competing versions: {ids}")])
                value = chosen[0].value
            if value is None:
                raise InvalidInput([FieldViolation("take", "give --take VERSION or --value VALUE")])
            if field_name == "status":
                if value != conflict.winner.value:
                    raise FailedPrecondition(
                        f"concurrent lifecycle steps merge by rank to {conflict.winner.value}; "
                        "settling keeps it (take a further step afterwards if needed)"
                    )
                change = ListingChange(action=Action.SETTLE, status=ListingStatus(str(value)))
            else:
                change = ListingChange(((field_name, value),))
                validate_change(change)
            return self._write(record_id, row.origin, change, state.heads)

    # ---- receiving ------------------------------------------------------------

    def check_entries(self, entries: Sequence[tuple[int, bytes, tuple[SignatureValue, ...]]]) -> list[Received]:
        """Decode and verify received envelopes; refusals carry their reason."""
        registry = self.registry()
        out: list[Received] = []
        for seq, body, sigs in entries:
            try:
                version = read_version(body, sigs)
                verify_version(version, registry, self.now_ms(), self.config.max_future_ms)
            except VerificationFailed as exc:
                rejected = Rejected(version_id_of(body), str(exc), body)
                out.append(Received(seq, None, rejected, isinstance(exc, UnknownKey), isinstance(exc, StampAhead)))
                continue
            self.clock.observe(version.hlc)
            out.append(Received(seq, version, None))
        return out

    @staticmethod
    def until_deferred(checked: list[Received]) -> tuple[list[Received], int | None]:
        """The entries before the first one to retry later, and that entry's seq (None if none)."""
        for i, c in enumerate(checked):
            if c.retry_later:
                return checked[:i], c.seq
        return checked, None

    # ---- reading ---------------------------------------------------------------

    def listing_detail(self, record_id: str) -> ListingDetail:
        head = self.store.head_version(record_id)
        version = read_version(head.body, head.signatures)
        try:
            verify_version(version, self.registry())
            ok, why = True, ""
        except VerificationFailed as exc:
            ok, why = False, str(exc)
        return ListingDetail(head, head.record.state, version, ok, why)


__all__ = ["ListingContent", "ListingDetail", "ListingStatus", "Received", "Site"]
