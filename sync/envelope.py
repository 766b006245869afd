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
from dataclasses import dataclass

from sync.clock import Stamp
from sync.codec import change_from_pb, decode_version_body, encode_version_body
from sync.config import SITE_ID_RE
from sync.errors import InvalidInput, KeyRevoked, PermissionDenied, StampAhead, UnknownKey, VerificationFailed
from sync.ids import belongs_to
from sync.keys import SigningKey
from sync.records import (
    CONTENT_FIELDS,
    CREATE_STATUSES,
    CURATION_FIELDS,
    HUB_ONLY_ACTIONS,
    OWNER_ONLY_ACTIONS,
    STATUS_ACTIONS,
    TOMBSTONE_ACTIONS,
    TRANSITIONS,
    Action,
    ListingChange,
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
    change: ListingChange
    record_nonce: bytes = b""

    @property
    def author_key_id(self) -> str:
        for s in self.signatures:
            if s.role == AUTHOR:
                return s.key_id
        return ""


def version_id_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def make_listing_version(
    key: SigningKey,
    *,
    site: str,
    record_id: str,
    hlc: Stamp,
    change: ListingChange,
    parents: tuple[str, ...] = (),
    origin: str | None = None,
    record_nonce: bytes = b"",
) -> Version:
    body = encode_version_body(
        record_id=record_id,
        origin=origin or site,
        author=site,
        hlc=hlc,
        parents=tuple(sorted(parents)),
        change=change,
        record_nonce=record_nonce,
    )
    sig = SignatureValue(key.key_id, sign(key, VERSION_DOMAIN, body), AUTHOR)
    return read_version(body, (sig,))


def read_version(body: bytes, signatures: tuple[SignatureValue, ...]) -> Version:
    """Read a version's fields from its exact body bytes (no verification)."""
    msg = decode_version_body(body)
    if not msg.record_id:
        raise VerificationFailed("body has no record_id")
    if msg.WhichOneof("payload") != "listing" or msg.kind != envelope_pb2.RECORD_KIND_LISTING:
        raise VerificationFailed("body carries no listing (the only record kind known here)")
    return Version(
        version_id=version_id_of(body),
        body=body,
        signatures=signatures,
        record_id=msg.record_id,
        kind="listing",
        origin=msg.origin,
        author=msg.author,
        hlc=Stamp(msg.hlc.wall_ms, msg.hlc.counter),
        parents=tuple(msg.parents),
        change=change_from_pb(msg.listing),
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


def check_permission(change: ListingChange, *, author: str, origin: str, author_is_hub: bool) -> None:
    """Raise PermissionDenied unless `author` may make `change` to a listing owned by `origin`."""
    owner = author == origin
    content = [n for n in change.names if n in CONTENT_FIELDS]
    curation = [n for n in change.names if n in CURATION_FIELDS]
    if content and not owner:
        raise PermissionDenied(f"content fields ({', '.join(content)}) are written only by the owning centre {origin}")
    if curation and not author_is_hub:
        raise PermissionDenied(f"curation fields ({', '.join(curation)}) are written only by HQ")
    action = change.action
    if action in OWNER_ONLY_ACTIONS and not owner:
        raise PermissionDenied(f"only the owning centre {origin} may {action.value} this listing")
    if action in HUB_ONLY_ACTIONS and not author_is_hub:
        raise PermissionDenied(f"only HQ may {action.value} a listing")
    if action is not None and not (owner or author_is_hub):
        raise PermissionDenied(f"only the owning centre {origin} or HQ may {action.value} this listing")


def check_change_shape(change: ListingChange, parents: tuple[str, ...]) -> None:
    """Raise VerificationFailed if the change is not well formed (a version is all or nothing)."""
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
    if action == Action.CREATE:
        if change.status not in CREATE_STATUSES or "title" not in change.names:
            raise VerificationFailed("a create sets a title and starts as draft or submitted")
    elif action in TRANSITIONS:
        if change.status != TRANSITIONS[action][1]:
            raise VerificationFailed(f"a {action.value} step leads to {TRANSITIONS[action][1].value}")
    elif action == Action.SETTLE:
        if change.status is None:
            raise VerificationFailed("a settle step names the status it keeps")
    elif change.status is not None:
        raise VerificationFailed("only status steps carry a status")
    if action in STATUS_ACTIONS and action != Action.CREATE and change.fields:
        raise VerificationFailed("a status step sets no fields")
    try:
        validate_change(change)
    except InvalidInput as exc:
        raise VerificationFailed(f"listing breaks the rules: {exc}") from exc


def verify_version(
    version: Version, registry: Registry, now_ms: int | None = None, max_future_ms: int = MAX_FUTURE_MS
) -> None:
    """Raise VerificationFailed with the reason unless `version` may be accepted.

    Checks, in order: an author signature exists; its key is in the registry
    and belongs to the author site; that site is active; the author may make
    this change (`check_permission`); the change is well formed and keeps the
    listing rules; the stamp is not more than `max_future_ms` ahead of `now_ms`
    (when given); the signature verifies over the exact body bytes.
    """
    authors = [s for s in version.signatures if s.role == AUTHOR]
    if len(authors) != 1:
        raise VerificationFailed(f"expected one author signature, found {len(authors)}")
    sig = authors[0]
    found = registry.key(sig.key_id)
    if found is None:
        raise UnknownKey(f"signing key {sig.key_id} is not in registry version {registry.version}")
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
    if not belongs_to(version.record_id, version.origin, version.record_nonce):
        raise VerificationFailed(f"record id {version.record_id} does not belong to origin {version.origin!r}")
    try:
        check_permission(
            version.change, author=version.author, origin=version.origin, author_is_hub=centre.role == SiteRole.HUB
        )
    except PermissionDenied as exc:
        raise VerificationFailed(str(exc)) from exc
    check_change_shape(version.change, version.parents)
    if now_ms is not None and version.hlc.wall_ms > now_ms + max_future_ms:
        raise StampAhead(
            f"stamped {version.hlc.wall_ms - now_ms} ms ahead of this site's clock (limit {max_future_ms} ms)"
        )
    if not verify(key.public_key, VERSION_DOMAIN, version.body, sig.signature):
        raise VerificationFailed("signature does not verify over the body bytes")
