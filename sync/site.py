"""A running site: its config, keys, clock, store and registry, the kinds of record it
handles, and the record operations both the hub and the nodes perform.

The one door to a site's records: services (admin, firms, expiry, the hub's
enrolment and registry work, the node's status) read and write through these
methods and never sign anything themselves. The sync protocol
(`sync.protocol`) is the one other user of the store: its log, cursors and
peer state exist for it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sync import logs
from sync.clock import HybridClock, Stamp, system_now_ms
from sync.config import SITE_ID_RE, DataDir, SiteConfig
from sync.envelope import (
    AUTHOR,
    FirmKey,
    SignatureCheck,
    SignatureValue,
    Version,
    check_change_shape,
    check_permission,
    check_version,
    countersign,
    make_version,
    read_version,
    relay_site,
    verify_version,
    version_id_of,
)
from sync.errors import (
    ConfigError,
    FailedPrecondition,
    FieldViolation,
    InvalidInput,
    KeyRevoked,
    NotFound,
    PermissionDenied,
    StampAhead,
    UnknownKey,
    VerificationFailed,
)
from sync.ids import new_record_id
from sync.keys import SigningKey
from sync.kinds import (
    CENTRE,
    OWNER,
    PARTY,
    Action,
    Change,
    Content,
    FieldValue,
    Kind,
    KindSet,
    create_change,
    make_content,
    next_status,
    pins_of,
    validate_change,
    validate_content,
    with_companions,
)
from sync.merge import RecordState
from sync.registry import Registry, check_not_rollback, check_registry_signature
from sync.signing import VERSION_DOMAIN, verify, verify_many
from sync.store import HeadVersion, RecordRow, Rejected, SearchQuery, SearchResult, Store
from sync.store.log import ComingWrite, HeldDigest

log = logging.getLogger(__name__)


def reason_code(exc: Exception) -> str:
    """A refusal's code for figures and logs: its error's name in snake case (unknown_key)."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


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
class CheckedCreate:
    """A new record that passed every rule of a create, ready to be signed and stored."""

    kind: Kind
    change: Change
    private_note: str


@dataclass(frozen=True)
class RecordDetail:
    head: HeadVersion
    state: RecordState
    # The newest head version, re-verified now.
    version: Version
    verified: bool
    verify_error: str
    # For a firm's version, the centre that relayed it; personal data kept here.
    relay: str = ""
    private_note: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    """One version of a record's history: the version read from its stored bytes and how
    it came to this site (`received_from` None: written here)."""

    version: Version
    received_from: str | None
    received_at_ms: int
    verified: bool
    quarantined: bool


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
        self.kinds: KindSet = store.kinds
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
    def open(cls, data: DataDir, kinds: KindSet, *, now_ms: Callable[[], int] = system_now_ms) -> Site:
        config = data.load()
        logs.set_site(config.site_id)
        key = SigningKey.load(data.signing_key)
        store = Store.open(config.db_url, kinds)
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

    def update_registry(self, build: Callable[[Registry | None], Registry]) -> tuple[Registry, int]:
        """Store the registry `build` makes of the one held, under the store's lock, and
        adopt it (hub side); returns it with how many held versions its revocations sent
        to quarantine."""
        registry = self.store.update_registry(self.now_ms(), build)
        return registry, self.set_registry(registry)

    def reload_registry(self) -> int:
        """Adopt the registry held in the store if it is newer than the one in force (another
        process on the same database stored it); returns how many held versions its
        revocations sent to quarantine."""
        registry = self.store.registry()
        return 0 if registry is None else self.set_registry(registry)

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

    def firm_key(self, firm_id: str) -> FirmKey | None:
        return self.store.firm_key(firm_id)

    def _write(
        self,
        record_id: str,
        origin: str,
        change: Change,
        parents: tuple[str, ...],
        nonce: bytes | None,
        kind: Kind,
    ) -> Version:
        """Sign a version of `record_id` and store it (the caller holds the write lock)."""
        version = self._sign(record_id, origin, change, parents, nonce, kind)
        self._store(version)
        return version

    def _sign(
        self,
        record_id: str,
        origin: str,
        change: Change,
        parents: tuple[str, ...],
        nonce: bytes | None,
        kind: Kind,
        *,
        checked: bool = False,
    ) -> Version:
        """Sign a version of `record_id` (the caller holds the write lock). The kind's field
        rules are applied to `change` unless the caller has just done so (`checked`)."""
        origin_is_centre = self.registry().centre(origin) is not None
        check_permission(
            change, author=self.site_id, origin=origin, author_is_hub=self.is_hub, kind=kind, author_is_centre=True
        )
        if not origin_is_centre and self.kinds.key_kind not in kind.owned_by:
            raise FailedPrecondition(f"a {kind.name} is owned by a centre")
        if not checked:
            validate_change(change, kind)
        stamp = self.clock.tick()
        own = self.registry().key(self.key.key_id)
        problem = "it is not in the registry" if own is None else own[1].problem_at(stamp.wall_ms)
        if problem is not None:
            raise FailedPrecondition(
                f"this site's signing key cannot sign now ({problem}); settle the key rotation with "
                "`techbridge sync now`, or have the centre re-enrolled"
            )
        version = make_version(
            self.key,
            site=self.site_id,
            origin=origin,
            record_id=record_id,
            hlc=stamp,
            change=change,
            parents=parents,
            record_nonce=self.store.record_nonce(record_id) if nonce is None else nonce,
            kind=kind,
        )
        return version

    def _store(self, version: Version, coming: ComingWrite | None = None) -> None:
        seq = self.store.append_local(version, self.now_ms(), coming)
        log.info("stored version %s of %s as log entry %s", version.version_id[:12], version.record_id, seq)
        for hook in self.on_local_write:
            hook()

    def _new_change(self, content: Content, audience: tuple[str, ...], private_note: str) -> tuple[Kind, Change]:
        """The checked create of a new record this centre owns, or InvalidInput."""
        if len(private_note) > 2000:
            raise InvalidInput([FieldViolation("private_note", f"at most 2000 characters (got {len(private_note)})")])
        kind = self.kinds[content.kind]
        if CENTRE not in kind.owned_by:  # every other site would refuse it: never stored here either
            owners = " or ".join(sorted(kind.owned_by))
            raise InvalidInput(
                [FieldViolation("kind", f"a {kind.name} is owned by a {owners}, not a centre: its owner signs it")]
            )
        values = with_companions(kind, content.as_dict())
        if kind.lifetime_field and not values.get(kind.lifetime_field):
            values[kind.lifetime_field] = self.now_ms() + self.config.offer_validity_days * 24 * 3600 * 1000
        content = make_content(kind, values, content.status)
        validate_content(content)
        if content.status not in kind.initial:
            initial = " or ".join(sorted(kind.initial))
            raise InvalidInput([FieldViolation("status", f"a new {kind.name} is {initial}")])
        bad = [a for a in audience if not SITE_ID_RE.match(a)]
        if bad:
            raise InvalidInput([FieldViolation("audience", f"not centre ids: {', '.join(bad)}")])
        change = create_change(content, audience)
        registry = self.registry()
        strangers = [
            FieldViolation(name, f"{value!r} is not a centre of the network")
            for name in kind.centre_fields
            if isinstance(value := change.get(name), str) and value and registry.centre(value) is None
        ]
        if strangers:
            raise InvalidInput(strangers)
        self._check_target(kind, change)
        try:
            # The field rules were applied to the same fields and values just above
            # (`validate_content`, naming each field): the shape is what is left to check.
            check_change_shape(change, (), kind, rules=False)
        except VerificationFailed as exc:
            raise InvalidInput([FieldViolation("(record)", str(exc))]) from exc
        return kind, change

    def add_record(self, content: Content, audience: tuple[str, ...] = (), *, private_note: str = "") -> Version:
        """Create a record this centre owns. `private_note` (personal data) is kept here
        only, never signed or sent."""
        # A new record has no parents and no other writer: creates made together are
        # stored together (the store's group commit, told this one is on its way),
        # outside the site's write lock.
        with self.store.coming_write() as coming:
            kind, change = self._new_change(content, audience, private_note)
            with self._write_lock:
                record_id, nonce = new_record_id(self.site_id, self.now_ms(), pins_of(kind, change))
                version = self._sign(record_id, self.site_id, change, (), nonce, kind, checked=True)
            if private_note:
                self.store.set_private_note(record_id, private_note, self.now_ms())
            self._store(version, coming)
        return version

    def add_records(self, items: Sequence[tuple[Content, tuple[str, ...], str]]) -> list[Version]:
        """Create many records this centre owns, each (content, audience, private note), in
        one transaction: all are stored or none. InvalidInput names every problem, as
        `records[i].field`."""
        checked, problems = self.checked_creates(items)
        if problems:
            raise InvalidInput(problems)
        return self.store_creates(checked)

    def checked_creates(
        self, items: Sequence[tuple[Content, tuple[str, ...], str]], first: int = 0
    ) -> tuple[list[CheckedCreate], list[FieldViolation]]:
        """Each new record (content, audience, private note) checked against every rule a
        create must pass: those that pass, for `store_creates`, and every problem of the
        others, named `records[first + i].field`. Nothing is signed or stored."""
        problems: list[FieldViolation] = []
        checked: list[CheckedCreate] = []
        for i, (content, audience, note) in enumerate(items, start=first):
            try:
                kind, change = self._new_change(content, audience, note)
            except InvalidInput as exc:
                problems.extend(FieldViolation(f"records[{i}].{v.field}", v.description) for v in exc.violations)
                continue
            checked.append(CheckedCreate(kind, change, note))
        return checked, problems

    def store_creates(self, checked: Sequence[CheckedCreate]) -> list[Version]:
        """Sign the creates `checked_creates` passed and store them in one transaction."""
        versions, notes = self.signed_creates(checked)
        self.store_signed_creates(versions, notes)
        return versions

    def signed_creates(self, checked: Sequence[CheckedCreate]) -> tuple[list[Version], dict[str, str]]:
        """The creates `checked_creates` passed, signed (not stored), and their private notes
        by record id."""
        versions: list[Version] = []
        notes: dict[str, str] = {}
        with self._write_lock:
            for create in checked:
                kind, change = create.kind, create.change
                record_id, nonce = new_record_id(self.site_id, self.now_ms(), pins_of(kind, change))
                versions.append(self._sign(record_id, self.site_id, change, (), nonce, kind, checked=True))
                if create.private_note:
                    notes[record_id] = create.private_note
        return versions, notes

    def store_signed_creates(self, versions: Sequence[Version], notes: Mapping[str, str]) -> None:
        """Store new records `signed_creates` signed, in one transaction."""
        seqs = self.store.append_local_batch(versions, self.now_ms(), notes)
        log.info(
            "stored %s new records as log entries %s-%s", len(versions), seqs[0] if seqs else 0, seqs[-1] if seqs else 0
        )
        for hook in self.on_local_write:
            hook()

    def _current(self, record_id: str) -> tuple[RecordRow, RecordState]:
        row = self.store.record(record_id)
        return row, row.state

    def _check_open(self, record_id: str, state: RecordState, kind: Kind) -> None:
        if state.deleted:
            raise FailedPrecondition(f"{kind.name} {record_id} is deleted; undelete it first")
        if state.content.status in ("archived", "erased"):
            raise FailedPrecondition(f"{kind.name} {record_id} is {state.content.status} and can no longer change")

    def edit_record(self, record_id: str, fields: tuple[tuple[str, FieldValue], ...]) -> Version:
        if not fields:
            raise InvalidInput([FieldViolation("fields", "name at least one field to set")])
        with self._write_lock:
            row, state = self._current(record_id)
            kind = self.kinds[row.kind]
            change = Change(tuple(sorted(with_companions(kind, dict(fields)).items())))
            validate_change(change, kind)
            self._check_open(record_id, state, kind)
            return self._write(record_id, row.origin, change, state.heads, None, kind)

    def step_record(self, record_id: str, action: Action, fields: tuple[tuple[str, FieldValue], ...] = ()) -> Version:
        with self._write_lock:
            row, state = self._current(record_id)
            kind = self.kinds[row.kind]
            if action == Action.DELETE:
                if state.deleted:
                    raise FailedPrecondition(f"{kind.name} {record_id} is already deleted")
                change = Change(action=Action.DELETE)
            elif action == Action.UNDELETE:
                if not state.deleted:
                    raise FailedPrecondition(f"{kind.name} {record_id} is not deleted")
                change = Change(action=Action.UNDELETE)
            elif action in kind.transitions:
                if state.deleted:
                    raise FailedPrecondition(f"{kind.name} {record_id} is deleted; undelete it first")
                self._check_step(kind, state, action, by_owner=row.origin == self.site_id)
                wanted = kind.step_fields.get(action, ())
                given = dict(fields)
                stray = sorted(set(given) - set(wanted))
                if stray:
                    raise InvalidInput([FieldViolation(n, f"a {action.value} step does not set it") for n in stray])
                if wanted and wanted[0] not in given:
                    raise InvalidInput([FieldViolation(wanted[0], f"required to {action.value}")])
                lapse = kind.lifetime_field
                if lapse and lapse in given:
                    until, current = given[lapse], state.content.value(lapse)
                    assert isinstance(until, int) and isinstance(current, int)
                    if until <= max(current, self.now_ms()):
                        raise InvalidInput([FieldViolation(lapse, "an extension ends later than now and than before")])
                status = next_status(state.content.status, action, kind)
                change = Change(tuple(sorted(given.items())), action=action, status=status)
                validate_change(change, kind)
            else:
                raise InvalidInput([FieldViolation("action", f"{action.value} is not a step staff take by hand")])
            version = self._write(record_id, row.origin, change, state.heads, None, kind)
            if action == Action.ERASE:
                self.store.set_private_note(record_id, "", self.now_ms())
            return version

    def _check_target(self, kind: Kind, change: Change) -> None:
        """A record that points at another (`Kind.target`) names it, its kind and the
        centre that handles it, as held here."""
        rule = kind.target
        if rule is None:
            return
        target = str(change.get(rule.record_field) or "")
        try:
            row = self.store.record(target)
        except NotFound as exc:
            raise InvalidInput([FieldViolation(rule.record_field, f"no {rule.noun} {target} held here")]) from exc
        if row.kind not in rule.kinds:
            raise InvalidInput([FieldViolation(rule.record_field, f"{target} is a {row.kind}, not {rule.noun}")])
        handled_by = self.kinds[row.kind].handler_field
        handler = str(row.state.content.value(handled_by)) if handled_by else row.origin
        problems = []
        if change.get(rule.kind_field) != row.kind:
            problems.append(FieldViolation(rule.kind_field, f"{target} is a {row.kind}"))
        if change.get(rule.handler_field) != handler:
            problems.append(FieldViolation(rule.handler_field, f"{target} is handled by {handler}"))
        if problems:
            raise InvalidInput(problems)

    def may_step(self, row: RecordRow, action: Action) -> bool:
        """Whether this site may take lifecycle step `action` on the record now: legal from
        its status, this site's right, and the history guards (what `step_record` checks
        before it signs), for the buttons a person is shown."""
        kind = self.kinds[row.kind]
        state = row.state
        if state.deleted or action not in kind.transitions:
            return False
        before, after = kind.transitions[action]
        if state.content.status not in before:
            return False
        try:
            check_permission(
                Change(action=action, status=after),
                author=self.site_id,
                origin=row.origin,
                author_is_hub=self.is_hub,
                kind=kind,
            )
            self._check_step(kind, state, action, by_owner=row.origin == self.site_id)
        except (PermissionDenied, FailedPrecondition):
            return False
        return True

    def _check_step(self, kind: Kind, state: RecordState, action: Action, *, by_owner: bool) -> None:
        """The history guards the merge applies (sync.merge), checked before signing:
        a step for the handling centre is taken by it, or by the owner where the owner
        may take it too (`by_owner`: the step's author is the record's origin)."""
        content = state.content
        rights = kind.rights.get(action, frozenset())
        handler = content.value(kind.handler_field) if kind.handler_field else None
        if PARTY in rights and handler != self.site_id and not (OWNER in rights and by_owner):
            owner = " or its owner" if OWNER in rights else ""
            raise PermissionDenied(f"only {handler}, the centre handling it{owner}, may {action.value} it")
        if action in kind.consent_steps and not content.value(kind.consent_field):
            raise FailedPrecondition(f"the sender has not consented to {action.value} ({kind.consent_field})")
        if action == Action.EXTEND and state.extended:
            raise FailedPrecondition(f"a {kind.name} is extended once; this one already was")

    def resolve_conflict(self, conflict_id: str, *, take: str | None, value: FieldValue | None) -> Version:
        record_id, _, field_name = conflict_id.rpartition("/")
        if not record_id or not field_name:
            raise InvalidInput([FieldViolation("conflict_id", "expected <record id>/<field>")])
        with self._write_lock:
            row, state = self._current(record_id)
            kind = self.kinds[row.kind]
            conflict = state.conflict(field_name)
            if conflict is None:
                raise NotFound(f"no open conflict {conflict_id}")
            if field_name != "status":
                self._check_open(record_id, state, kind)
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
                change = Change(action=Action.SETTLE, status=str(value))
            else:
                change = Change(((field_name, value),))
                validate_change(change, kind)
            return self._write(record_id, row.origin, change, state.heads, None, kind)

    # ---- key holders' versions -----------------------------------------------------

    def relay(self, version: Version) -> Version:
        """Take a version a key holder (not a centre) signed, check it as every site will
        and as its origin would, countersign it as relay and store it; it then travels
        like any other."""
        kind = self.kinds[version.kind]
        if any(sig.role != AUTHOR for sig in version.signatures):
            raise InvalidInput([FieldViolation("envelope.signatures", "a firm sends its own signature only")])
        # The rules first, so the firm hears which fields are wrong and who may do what.
        validate_change(version.change, kind)
        check_permission(
            version.change,
            author=version.author,
            origin=version.origin,
            author_is_hub=False,
            kind=kind,
            author_is_centre=False,
        )
        relayed = countersign(version, self.key)
        try:
            verify_version(
                relayed, self.registry(), self.now_ms(), self.config.max_future_ms, self.firm_key, kinds=self.kinds
            )
        except (UnknownKey, KeyRevoked) as exc:
            raise PermissionDenied(f"refused: {exc}") from exc
        except VerificationFailed as exc:
            raise InvalidInput([FieldViolation("envelope", str(exc))]) from exc
        if self.firm_key(version.author) is None:
            raise PermissionDenied("only a firm's own versions are relayed")
        change = version.change
        with self._write_lock:
            if change.action == Action.CREATE:
                via = change.get(kind.relay_field) if kind.relay_field else None
                if via != self.site_id:
                    raise InvalidInput([FieldViolation("via", f"a record sent through {self.site_id} names it")])
                if self.store.has_record(version.record_id):
                    raise FailedPrecondition(f"{kind.name} {version.record_id} exists already")
                self._check_target(kind, change)
            else:
                row, state = self._current(version.record_id)
                if row.kind != kind.name:
                    raise InvalidInput([FieldViolation("kind", f"record {version.record_id} is a {row.kind}")])
                if tuple(sorted(version.parents)) != state.heads:
                    raise FailedPrecondition(
                        f"{kind.name} {version.record_id} changed meanwhile; fetch it again and redo the change"
                    )
                self._check_open(version.record_id, state, kind)
                if change.action is not None and change.action in kind.transitions:
                    self._check_step(kind, state, change.action, by_owner=version.author == version.origin)
                    next_status(state.content.status, change.action, kind)
            self.clock.observe(version.hlc)
            seq = self.store.append_local(relayed, self.now_ms())
        log.info(
            "relayed version %s of %s %s as log entry %s", version.version_id[:12], kind.name, version.record_id, seq
        )
        for hook in self.on_local_write:
            hook()
        return relayed

    # ---- receiving ------------------------------------------------------------

    def check_entries(
        self,
        entries: Sequence[tuple[int, bytes, tuple[SignatureValue, ...]]],
        known_firms: Mapping[str, FirmKey] | None = None,
    ) -> list[Received]:
        """Decode and verify received envelopes; refusals carry their reason.

        Firms registered in the same batch are known to the versions after
        them (a firm's record always precedes its requests in a site's log),
        as are `known_firms` (those an earlier batch of the same stream
        registered, checked but perhaps not stored yet: `firms_registered`).
        Every check but the signatures runs first, version by version; then
        the batch's signatures are verified at once on every core. Should any
        signature fail, the batch is checked again one version at a time, so
        that nothing after a forged firm record leans on its key."""
        registry = self.registry()
        checked, forged = self._check(entries, registry, known_firms or {}, at_once=True)
        if forged:
            checked, _ = self._check(entries, registry, known_firms or {}, at_once=False)
        return checked

    def firms_registered(self, checked: Sequence[Received]) -> dict[str, FirmKey]:
        """The firms whose registration is among the accepted versions of `checked`."""
        found: dict[str, FirmKey] = {}
        for c in checked:
            if c.version is not None and (firm := self._registered_firm(c.version)) is not None:
                found[firm.firm_id] = firm
        return found

    def _registered_firm(self, version: Version) -> FirmKey | None:
        if version.kind == self.kinds.key_kind and version.change.action == Action.CREATE:
            key = version.change.get(self.kinds.key_field)
            if isinstance(key, str):
                return FirmKey(version.record_id, version.origin, bytes.fromhex(key))
        return None

    def _check(
        self,
        entries: Sequence[tuple[int, bytes, tuple[SignatureValue, ...]]],
        registry: Registry,
        known_firms: Mapping[str, FirmKey],
        *,
        at_once: bool,
    ) -> tuple[list[Received], bool]:
        """The checked batch, and whether `at_once` found a signature that fails."""
        batch_firms: dict[str, FirmKey | None] = dict(known_firms)

        def firms(firm_id: str) -> FirmKey | None:
            # Looked up once per batch: a firm's requests and interests come many at a time.
            if firm_id not in batch_firms:
                batch_firms[firm_id] = self.firm_key(firm_id)
            return batch_firms[firm_id]

        out: list[Received] = []
        pending: list[tuple[int, Version, tuple[SignatureCheck, ...]]] = []
        for seq, body, sigs in entries:
            try:
                version = read_version(body, sigs, self.kinds)
                checks = check_version(
                    version, registry, self.now_ms(), self.config.max_future_ms, firms, kinds=self.kinds
                )
                if not at_once:
                    for c in checks:
                        if not verify(c.public_key, VERSION_DOMAIN, body, c.signature):
                            raise VerificationFailed(c.failure)
            except VerificationFailed as exc:
                rejected = Rejected(version_id_of(body), str(exc), body, code=reason_code(exc))
                out.append(Received(seq, None, rejected, isinstance(exc, UnknownKey), isinstance(exc, StampAhead)))
                continue
            if (firm := self._registered_firm(version)) is not None:
                batch_firms[firm.firm_id] = firm
            pending.append((len(out), version, checks))
            out.append(Received(seq, version, None))
        if at_once:
            jobs = [(c.public_key, v.body, c.signature) for _, v, checks in pending for c in checks]
            if not all(verify_many(VERSION_DOMAIN, jobs)):
                return out, True
        for _, version, _ in pending:
            self.clock.observe(version.hlc)
        return out, False

    @staticmethod
    def until_deferred(checked: list[Received]) -> tuple[list[Received], int | None]:
        """The entries before the first one to retry later, and that entry's seq (None if none)."""
        for i, c in enumerate(checked):
            if c.retry_later:
                return checked[:i], c.seq
        return checked, None

    # ---- reading ---------------------------------------------------------------

    def record(self, record_id: str) -> RecordRow:
        """A record as merged here, or NotFound."""
        return self.store.record(record_id)

    def records(
        self,
        *,
        origin: str | None = None,
        limit: int,
        after_id: str = "",
        include_deleted: bool = False,
        only_conflicted: bool = False,
        kind: str | None = None,
        status: str | None = None,
    ) -> list[RecordRow]:
        """A page of the records held here, by id, with the filters given."""
        return self.store.list_records(
            origin=origin,
            limit=limit,
            after_id=after_id,
            include_deleted=include_deleted,
            only_conflicted=only_conflicted,
            kind=kind,
            status=status,
        )

    def search(self, query: SearchQuery, *, with_facets: bool = False) -> SearchResult:
        """A page of the searchable records matching `query`, ranked, with the number of
        matches and, `with_facets`, the facet counts over all of them."""
        return self.store.search(query, with_facets=with_facets)

    def rows(self, record_ids: Sequence[str]) -> list[RecordRow]:
        """The records held here among `record_ids`."""
        return self.store.records_by_id(record_ids)

    def common_terms(self, terms: Sequence[str]) -> set[str]:
        """The analysed terms too common among the records indexed here to tell them apart."""
        return self.store.common_terms(terms)

    def records_titled(self, kind: str, title: str, limit: int = 200) -> list[RecordRow]:
        """The records of `kind` held here whose title field holds `title`, newest first
        (an interest's is the record it is about)."""
        return self.store.records_titled(kind, title, limit)

    def titles(self, record_ids: Sequence[str]) -> dict[str, str]:
        """The titles of the records named that are held here (a centre's id names no
        record: it is not looked for)."""
        registry = self.registry()
        wanted = [r for r in record_ids if r and registry.centre(r) is None]
        return self.store.titles(wanted) if wanted else {}

    def quarantined(self) -> list[tuple[str, str, str, str]]:
        """Versions held but set aside: (version id, record id, key id, reason)."""
        return self.store.quarantined()

    def rejections(self, limit: int = 100) -> list[tuple[str, str, str]]:
        """Versions refused on receipt, newest first: (version id, peer, reason)."""
        return self.store.rejections(limit=limit)

    def digest(self) -> HeldDigest:
        """A digest of every version held, per origin: two sites that hold the same agree."""
        return self.store.digest()

    def counts(self) -> tuple[int, int]:
        """Versions held, and versions refused."""
        return self.store.counts()

    def log_head(self) -> int:
        return self.store.log_head()

    def written_detail(self, version: Version, private_note: str = "") -> RecordDetail:
        """The detail of a record just written here by `version`, its newest head: the
        version is in hand and was signed here, so it is neither read back nor verified
        again. A new record's row and merged state are made from its create as the store's
        merge makes them; only a change to a record held reads the merged record."""
        if version.change.action == Action.CREATE and not version.parents:
            row, state = self.store.created_row(version)
        else:
            row = self.store.record(version.record_id)
            row = dataclasses.replace(row, verified=True, key_id=version.author_key_id)
            state = row.state
        head = HeadVersion(
            record=row,
            body=version.body,
            signatures=version.signatures,
            author=version.author,
            key_id=version.author_key_id,
            received_from=None,
            received_at_ms=self.now_ms(),
            verified=True,
        )
        return RecordDetail(head, state, version, True, "", "", private_note)

    def history(self, record_id: str, limit: int = 200) -> list[HistoryEntry]:
        """The versions of a record held here, oldest first (the newest `limit`)."""
        self.store.record(record_id)  # NotFound for a record this site does not hold
        return [
            HistoryEntry(
                read_version(v.body, v.signatures, self.kinds),
                v.received_from,
                v.received_at_ms,
                v.verified,
                v.quarantined,
            )
            for v in self.store.record_versions(record_id, limit)
        ]

    def record_detail(self, record_id: str) -> RecordDetail:
        head = self.store.head_version(record_id)
        version = read_version(head.body, head.signatures, self.kinds)
        try:
            verify_version(version, self.registry(), firms=self.firm_key, kinds=self.kinds)
            ok, why = True, ""
        except VerificationFailed as exc:
            ok, why = False, str(exc)
        relay = relay_site(version, self.registry()) or ""
        note = self.store.private_note(record_id)
        return RecordDetail(head, head.record.state, version, ok, why, relay, note)


__all__ = ["Content", "HistoryEntry", "Received", "RecordDetail", "Site"]
