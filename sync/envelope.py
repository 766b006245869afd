"""Signed versions: making them, reading them, and checking them on receipt.

A version is an envelope: `body` (the serialised VersionBody, made once by its
author) plus signatures over exactly those bytes behind VERSION_DOMAIN. Its id
is the hex SHA-256 of the body, so the same version received twice is
recognised and applying it again is a no-op.

Who may sign what is checked at every site on receipt (`verify_version`), not
only where the version was made: a listing's content only by a key of the
centre that owns it, its curation fields and validation also by HQ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from sync.clock import Stamp
from sync.codec import body_kind, change_from_pb, decode_version_body, encode_version_body
from sync.config import SITE_ID_RE
from sync.errors import InvalidInput, KeyRevoked, PermissionDenied, StampAhead, UnknownKey, VerificationFailed
from sync.ids import belongs_to
from sync.keys import SigningKey, key_id_of
from sync.kinds import (
    CENTRE,
    HUB,
    OWNER,
    PARTY,
    TOMBSTONE_ACTIONS,
    Action,
    Change,
    Kind,
    KindSet,
    pins_of,
    validate_change,
)
from sync.registry import CentreStatus, Registry, SiteRole
from sync.signing import VERSION_DOMAIN, sign, verify
from techbridge.v1 import envelope_pb2

AUTHOR = "author"
RELAY = "relay"


@dataclass(frozen=True)
class SignatureValue:
    key_id: str
    signature: bytes
    role: str = AUTHOR


@dataclass(frozen=True)
class Version:
    """One signed change to a record, with the fields read from its body."""

    version_id: str
    body: bytes
    signatures: tuple[SignatureValue, ...]
    record_id: str
    kind: str
    origin: str
    author: str
    hlc: Stamp
    parents: tuple[str, ...]
    change: Change
    record_nonce: bytes = b""

    @property
    def author_key_id(self) -> str:
        for s in self.signatures:
            if s.role == AUTHOR:
                return s.key_id
        return ""

    @property
    def relay_key_ids(self) -> tuple[str, ...]:
        return tuple(s.key_id for s in self.signatures if s.role == RELAY)


@dataclass(frozen=True)
class FirmKey:
    """What a site knows of a firm's signing key, from the firm's record."""

    firm_id: str
    home: str
    public_key: bytes
    # The stamp of the erasure step, 0 while the firm is active.
    erased_at_ms: int = 0

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)


FirmLookup = Callable[[str], "FirmKey | None"]


def no_firms(_firm_id: str) -> FirmKey | None:
    return None


def version_id_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def make_version(
    key: SigningKey,
    *,
    site: str,
    record_id: str,
    hlc: Stamp,
    change: Change,
    parents: tuple[str, ...] = (),
    origin: str | None = None,
    record_nonce: bytes = b"",
    kind: Kind,
) -> Version:
    """A version written and signed by `site` (a centre, or a firm signing with its own key).
    Its fields are the ones just encoded, not read back from the body: a change encodes
    losslessly (`tests/test_envelope.py` holds a written version equal to its body read
    back), so every site reading the body reads this change. What reading the body back
    would refuse is refused here: an empty record id, unsorted field names, an unknown status."""
    if not record_id:
        raise VerificationFailed("body has no record_id")
    if list(change.names) != sorted(set(change.names)):
        raise VerificationFailed("change fields must be sorted and distinct")
    if change.status is not None and change.status not in kind.statuses:
        raise VerificationFailed(f"{change.status!r} is not a {kind.name} status")
    parents = tuple(sorted(parents))
    origin = origin or site
    body = encode_version_body(
        record_id=record_id,
        origin=origin,
        author=site,
        hlc=hlc,
        parents=parents,
        change=change,
        record_nonce=record_nonce,
        kind=kind,
    )
    sig = SignatureValue(key.key_id, sign(key, VERSION_DOMAIN, body), AUTHOR)
    return Version(
        version_id=version_id_of(body),
        body=body,
        signatures=(sig,),
        record_id=record_id,
        kind=kind.name,
        origin=origin,
        author=site,
        hlc=hlc,
        parents=parents,
        change=change,
        record_nonce=record_nonce,
    )


def countersign(version: Version, key: SigningKey) -> Version:
    """The version with a relay signature by `key` added (over the same body bytes)."""
    sig = SignatureValue(key.key_id, sign(key, VERSION_DOMAIN, version.body), RELAY)
    return replace(version, signatures=(*version.signatures, sig))


def read_version(body: bytes, signatures: tuple[SignatureValue, ...], kinds: KindSet) -> Version:
    """Read a version's fields from its exact body bytes (no verification); its kind
    must be one of `kinds`."""
    msg = decode_version_body(body)
    return _version_of(body, signatures, msg, body_kind(msg, kinds))


def _version_of(
    body: bytes, signatures: tuple[SignatureValue, ...], msg: envelope_pb2.VersionBody, kind: Kind
) -> Version:
    if not msg.record_id:
        raise VerificationFailed("body has no record_id")
    if not msg.HasField("change"):
        raise VerificationFailed("body carries no change")
    return Version(
        version_id=version_id_of(body),
        body=body,
        signatures=signatures,
        record_id=msg.record_id,
        kind=kind.name,
        origin=msg.origin,
        author=msg.author,
        hlc=Stamp(msg.hlc.wall_ms, msg.hlc.counter),
        parents=tuple(msg.parents),
        change=change_from_pb(kind, msg.change),
        record_nonce=msg.record_nonce,
    )


def envelope_to_pb(version: Version) -> envelope_pb2.Envelope:
    return stored_envelope_to_pb(version.body, version.signatures)


def stored_envelope_to_pb(body: bytes, signatures: tuple[SignatureValue, ...]) -> envelope_pb2.Envelope:
    """The envelope of stored bytes, as they are: the body is not parsed or rebuilt."""
    return envelope_pb2.Envelope(
        body=body,
        signatures=[
            envelope_pb2.Signature(
                key_id=s.key_id,
                signature=s.signature,
                role=envelope_pb2.SIGNATURE_ROLE_RELAY if s.role == RELAY else envelope_pb2.SIGNATURE_ROLE_AUTHOR,
            )
            for s in signatures
        ],
    )


def signatures_from_pb(env: envelope_pb2.Envelope) -> tuple[SignatureValue, ...]:
    return tuple(
        SignatureValue(s.key_id, s.signature, RELAY if s.role == envelope_pb2.SIGNATURE_ROLE_RELAY else AUTHOR)
        for s in env.signatures
    )


# How far ahead of the receiver's clock a version may be stamped.
MAX_FUTURE_MS = 5 * 60 * 1000


def check_permission(
    change: Change,
    *,
    author: str,
    origin: str,
    author_is_hub: bool,
    kind: Kind,
    author_is_centre: bool = True,
) -> None:
    """Raise PermissionDenied unless `author` may make `change` to a record of `kind` owned by `origin`."""
    owner = author == origin
    what = f"{kind.name}"
    action = change.action
    step_fields = kind.step_fields.get(action, ()) if action is not None else ()
    # A step's own fields are written by whoever may take the step.
    hub_only = [n for n in change.names if n in kind.hub_fields and n not in step_fields]
    owner_only = [n for n in change.names if n in kind.owner_fields and n not in step_fields]
    other = [n for n in change.names if n not in kind.hub_fields and n not in kind.owner_fields]
    if owner_only and not owner:
        owner_word = "owning centre" if kind.owned_by == frozenset({CENTRE}) else "owner"
        raise PermissionDenied(
            f"content fields ({', '.join(owner_only)}) are written only by the {owner_word} {origin}"
        )
    if hub_only and not author_is_hub:
        raise PermissionDenied(f"curation fields ({', '.join(hub_only)}) are written only by HQ")
    stray = [n for n in other if n not in step_fields]
    if stray:
        raise PermissionDenied(f"fields {', '.join(stray)} are set only by the step they belong to")
    fixed = [n for n in change.names if n in kind.fixed and n not in step_fields]
    if fixed and action != Action.CREATE:
        raise PermissionDenied(f"fields {', '.join(fixed)} are fixed when the {what} is created")
    if action is None:
        return
    rights = kind.rights.get(action)
    if rights is None:
        raise PermissionDenied(f"a {what} has no {action.value} step")
    allowed = (
        (OWNER in rights and owner)
        or (HUB in rights and author_is_hub)
        or (PARTY in rights and author_is_centre and not owner)
    )
    if not allowed:
        who = {OWNER: f"its owner {origin}", HUB: "HQ", PARTY: "the centre handling it"}
        names = " or ".join(who[r] for r in (OWNER, HUB, PARTY) if r in rights)
        raise PermissionDenied(f"only {names} may {action.value} this {what}")


def check_change_shape(change: Change, parents: tuple[str, ...], kind: Kind, *, rules: bool = True) -> None:
    """Raise VerificationFailed if the change is not well formed (a version is all or nothing);
    with `rules`, the kind's field rules too (a caller that has just applied them to the
    same fields and values leaves them out)."""
    action = change.action
    if action is None and not change.fields:
        raise VerificationFailed("the change sets no field and takes no step")
    if list(parents) != sorted(set(parents)):
        raise VerificationFailed("parents must be sorted and distinct")
    if (action == Action.CREATE) != (not parents):
        raise VerificationFailed("a create has no parents, and every other version has at least one")
    if action in TOMBSTONE_ACTIONS and change.fields:
        raise VerificationFailed(f"a {action.value} sets no fields")
    if change.audience:
        if action != Action.CREATE:
            raise VerificationFailed("only a create names the audience")
        if list(change.audience) != sorted(set(change.audience)):
            raise VerificationFailed("the audience must be sorted and distinct")
        bad = [a for a in change.audience if not SITE_ID_RE.match(a)]
        if bad:
            raise VerificationFailed(f"the audience names no centre: {', '.join(bad)}")
        for name in kind.centre_fields:
            value = change.get(name)
            if isinstance(value, str) and value and value not in change.audience:
                raise VerificationFailed(f"the audience must include the {name} centre {value}")
    if action == Action.CREATE:
        missing = [n for n in kind.required if n not in change.names]
        if change.status not in kind.initial or missing:
            initial = " or ".join(sorted(kind.initial))
            raise VerificationFailed(f"a {kind.name} create sets {', '.join(kind.required)} and starts as {initial}")
    elif action is not None and action in kind.transitions:
        if change.status != kind.transitions[action][1]:
            raise VerificationFailed(f"a {action.value} step leads to {kind.transitions[action][1]}")
    elif action == Action.SETTLE:
        if change.status is None:
            raise VerificationFailed("a settle step names the status it keeps")
    elif change.status is not None:
        raise VerificationFailed("only status steps carry a status")
    if action is not None and action in kind.status_actions and action != Action.CREATE:
        allowed = kind.step_fields.get(action, ())
        if any(n not in allowed for n in change.names):
            raise VerificationFailed("a status step sets no fields but its own")
        if allowed and allowed[0] not in change.names:
            raise VerificationFailed(f"a {action.value} step sets {allowed[0]}")
    if not rules:
        return
    try:
        validate_change(change, kind)
    except InvalidInput as exc:
        raise VerificationFailed(f"{kind.name} breaks the rules: {exc}") from exc


@dataclass(frozen=True)
class SignatureCheck:
    """One signature a version still needs verified over its body, and the refusal if it fails."""

    public_key: bytes
    signature: bytes
    failure: str


def verify_version(
    version: Version,
    registry: Registry,
    now_ms: int | None = None,
    max_future_ms: int = MAX_FUTURE_MS,
    firms: FirmLookup = no_firms,
    *,
    kinds: KindSet,
) -> None:
    """Raise VerificationFailed with the reason unless `version` may be accepted
    (`check_version`, then its signatures over the exact body bytes)."""
    for check in check_version(version, registry, now_ms, max_future_ms, firms, kinds=kinds):
        if not verify(check.public_key, VERSION_DOMAIN, version.body, check.signature):
            raise VerificationFailed(check.failure)


def check_version(
    version: Version,
    registry: Registry,
    now_ms: int | None = None,
    max_future_ms: int = MAX_FUTURE_MS,
    firms: FirmLookup = no_firms,
    *,
    kinds: KindSet,
) -> tuple[SignatureCheck, ...]:
    """Raise VerificationFailed with the reason unless `version` may be accepted
    once its signatures verify; return those signature checks, in order. A
    batch verifies the signatures of many versions at once, on every core
    (`sync.signing.verify_many`).

    Checks, in order: one author signature; its key is a centre's key in the
    registry, or the key of the firm the body names as author (found with
    `firms`, from the firm records held here) — a firm's version must also
    carry a relay signature of an active centre; the author's standing at the
    version's stamp (site active, key valid and not revoked; firm not erased);
    the record id belongs to the origin, and the origin is of a sort that may
    own the kind; the author may make this change (`check_permission`); the
    change is well formed and keeps the kind's rules; the stamp is not more
    than `max_future_ms` ahead of `now_ms` (when given); the signatures verify
    over the exact body bytes (by the caller, from the checks returned).
    """
    kind = kinds[version.kind]
    authors = [s for s in version.signatures if s.role == AUTHOR]
    if len(authors) != 1:
        raise VerificationFailed(f"expected one author signature, found {len(authors)}")
    sig = authors[0]
    found = registry.key(sig.key_id)
    firm: FirmKey | None = None
    relay: tuple[SignatureValue, bytes] | None = None
    if found is not None:
        centre, key = found
        if centre.id != version.author:
            raise VerificationFailed(
                f"signing key {sig.key_id} belongs to {centre.id}, but the body names author {version.author!r}"
            )
        if centre.status != CentreStatus.ACTIVE:
            raise VerificationFailed(f"site {centre.id} is {centre.status.value}, not active")
        problem = key.problem_at(version.hlc.wall_ms)
        if problem is not None:
            raise (KeyRevoked if key.revoked_at_ms else VerificationFailed)(
                f"signed at {version.hlc.wall_ms} ms but {problem}"
            )
        public_key = key.public_key
        author_is_hub, author_is_centre = centre.role == SiteRole.HUB, True
    else:
        firm = firms(version.author)
        if firm is None or firm.key_id != sig.key_id:
            also = (
                ""
                if registry.centre(version.author)
                else f", nor the key of a firm known here named {version.author!r}"
            )
            raise UnknownKey(f"signing key {sig.key_id} is not in registry version {registry.version}{also}")
        if firm.erased_at_ms and version.hlc.wall_ms >= firm.erased_at_ms:
            raise VerificationFailed(f"firm {firm.firm_id} was erased before this version was signed")
        relay = _relay_of(version, registry)
        public_key = firm.public_key
        author_is_hub, author_is_centre = False, False
    if not belongs_to(version.record_id, version.origin, version.record_nonce):
        raise VerificationFailed(f"record id {version.record_id} does not belong to origin {version.origin!r}")
    if version.change.action == Action.CREATE and version.record_nonce[16:] != pins_of(kind, version.change):
        raise VerificationFailed(f"record id {version.record_id} was made for another kind or other fixed fields")
    if relay is not None and version.change.action == Action.CREATE:
        named = version.change.get(kind.relay_field) if kind.relay_field else None
        relay_centre = registry.key(relay[0].key_id)
        if relay_centre is not None and named != relay_centre[0].id:
            raise VerificationFailed(f"created through {named!r} but relayed by {relay_centre[0].id}")
    origin_sort = CENTRE if registry.centre(version.origin) is not None else kinds.key_kind
    if origin_sort != CENTRE and firms(version.origin) is None:
        raise UnknownKey(f"origin {version.origin!r} is neither a centre nor a {kinds.key_kind} known here")
    if origin_sort not in kind.owned_by:
        raise VerificationFailed(
            f"a {kind.name} is owned by a {' or '.join(sorted(kind.owned_by))}, not a {origin_sort}"
        )
    try:
        check_permission(
            version.change,
            author=version.author,
            origin=version.origin,
            author_is_hub=author_is_hub,
            kind=kind,
            author_is_centre=author_is_centre,
        )
    except PermissionDenied as exc:
        raise VerificationFailed(str(exc)) from exc
    check_change_shape(version.change, version.parents, kind)
    if now_ms is not None and version.hlc.wall_ms > now_ms + max_future_ms:
        raise StampAhead(
            f"stamped {version.hlc.wall_ms - now_ms} ms ahead of this site's clock (limit {max_future_ms} ms)"
        )
    checks = [SignatureCheck(public_key, sig.signature, "signature does not verify over the body bytes")]
    if relay is not None:
        failure = "relay signature does not verify over the body bytes"
        checks.append(SignatureCheck(relay[1], relay[0].signature, failure))
    return tuple(checks)


def _relay_of(version: Version, registry: Registry) -> tuple[SignatureValue, bytes]:
    """The relay signature of a firm's version: one, by an active centre's key valid at the stamp."""
    relays = [s for s in version.signatures if s.role == RELAY]
    if len(relays) != 1:
        raise VerificationFailed(f"a firm's version carries one relay signature by a centre, found {len(relays)}")
    found = registry.key(relays[0].key_id)
    if found is None:
        raise UnknownKey(f"relay key {relays[0].key_id} is not in registry version {registry.version}")
    centre, key = found
    if centre.status != CentreStatus.ACTIVE:
        raise VerificationFailed(f"relay site {centre.id} is {centre.status.value}, not active")
    problem = key.problem_at(version.hlc.wall_ms)
    if problem is not None:
        raise (KeyRevoked if key.revoked_at_ms else VerificationFailed)(
            f"relayed at {version.hlc.wall_ms} ms but {problem}"
        )
    return relays[0], key.public_key


def relay_site(version: Version, registry: Registry) -> str | None:
    """The centre that countersigned a firm's version as relay, if any."""
    for key_id in version.relay_key_ids:
        found = registry.key(key_id)
        if found is not None:
            return found[0].id
    return None
