"""Protobuf at the edge: conversions between wire messages and domain values.

Nothing outside this module and the servicers touches generated classes for
record content. Bodies are parsed from the exact stored bytes and never
re-serialised to be verified or stored.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import DecodeError

from sync.clock import Stamp
from sync.errors import FieldViolation, InvalidInput, VerificationFailed
from sync.keys import key_id_of
from sync.merge import MergeInput
from sync.records import (
    FIELD_DEFAULTS,
    Action,
    FieldValue,
    ListingChange,
    ListingContent,
    ListingStatus,
)
from sync.registry import Centre, CentreStatus, Registry, SiteKey, SiteRole
from techbridge.v1 import envelope_pb2, records_pb2, registry_pb2

_STATUS_TO_PB = {
    ListingStatus.DRAFT: records_pb2.LISTING_STATUS_DRAFT,
    ListingStatus.SUBMITTED: records_pb2.LISTING_STATUS_SUBMITTED,
    ListingStatus.VALIDATED: records_pb2.LISTING_STATUS_VALIDATED,
    ListingStatus.PUBLISHED: records_pb2.LISTING_STATUS_PUBLISHED,
    ListingStatus.EXPIRED: records_pb2.LISTING_STATUS_EXPIRED,
    ListingStatus.WITHDRAWN: records_pb2.LISTING_STATUS_WITHDRAWN,
    ListingStatus.ARCHIVED: records_pb2.LISTING_STATUS_ARCHIVED,
}
_STATUS_FROM_PB: dict[int, ListingStatus] = {v: k for k, v in _STATUS_TO_PB.items()}

_ACTION_TO_PB = {a: records_pb2.LifecycleAction.Value(f"LIFECYCLE_ACTION_{a.name}") for a in Action}
_ACTION_FROM_PB: dict[int, Action] = {v: k for k, v in _ACTION_TO_PB.items()}

_ROLE_TO_PB = {SiteRole.HUB: registry_pb2.SITE_ROLE_HUB, SiteRole.NODE: registry_pb2.SITE_ROLE_NODE}
_ROLE_FROM_PB = {v: k for k, v in _ROLE_TO_PB.items()}
_CSTATUS_TO_PB = {
    CentreStatus.INVITED: registry_pb2.CENTRE_STATUS_INVITED,
    CentreStatus.ACTIVE: registry_pb2.CENTRE_STATUS_ACTIVE,
    CentreStatus.SUSPENDED: registry_pb2.CENTRE_STATUS_SUSPENDED,
    CentreStatus.LEFT: registry_pb2.CENTRE_STATUS_LEFT,
}
_CSTATUS_FROM_PB = {v: k for k, v in _CSTATUS_TO_PB.items()}


def listing_to_pb(listing: ListingContent) -> records_pb2.Listing:
    return records_pb2.Listing(
        title=listing.title,
        summary=listing.summary,
        description=listing.description,
        keywords=list(listing.keywords),
        trl=listing.trl,
        status=_STATUS_TO_PB[listing.status],
        tags=list(listing.tags),
        featured=listing.featured,
    )


def action_to_pb(action: Action | None) -> records_pb2.LifecycleAction.ValueType:
    return _ACTION_TO_PB[action] if action else records_pb2.LIFECYCLE_ACTION_UNSPECIFIED


def action_from_pb(value: int) -> Action | None:
    return _ACTION_FROM_PB.get(value)


def listing_from_pb(msg: records_pb2.Listing, default_status: ListingStatus | None = None) -> ListingContent:
    status = _STATUS_FROM_PB.get(msg.status)
    if status is None:
        if default_status is None:
            raise VerificationFailed(f"listing status {msg.status} is not a known status")
        status = default_status
    return ListingContent(
        title=msg.title,
        summary=msg.summary,
        description=msg.description,
        keywords=tuple(msg.keywords),
        trl=msg.trl,
        status=status,
        tags=tuple(msg.tags),
        featured=msg.featured,
    )


def fields_from_pb(names: Iterable[str], values: records_pb2.Listing) -> tuple[tuple[str, FieldValue], ...]:
    """The named fields of `values`; unknown names are refused, naming each."""
    names = sorted(set(names))
    unknown = [n for n in names if n not in FIELD_DEFAULTS]
    if unknown:
        raise InvalidInput([FieldViolation(n, "not a listing field that can be set") for n in unknown])
    out: list[tuple[str, FieldValue]] = []
    for name in names:
        raw = getattr(values, name)
        out.append((name, raw if isinstance(raw, str | int | bool) else tuple(raw)))
    return tuple(out)


def change_to_pb(change: ListingChange) -> records_pb2.ListingChange:
    base = {**FIELD_DEFAULTS, **dict(change.fields)}
    values = listing_to_pb(ListingContent(**base))  # type: ignore[arg-type]
    values.ClearField("status")
    for name in FIELD_DEFAULTS:
        if name not in change.names:
            values.ClearField(name)  # type: ignore[arg-type]
    return records_pb2.ListingChange(
        fields=list(change.names),
        values=values,
        action=action_to_pb(change.action),
        status=_STATUS_TO_PB[change.status] if change.status else records_pb2.LISTING_STATUS_UNSPECIFIED,
        audience=list(change.audience),
    )


def change_from_pb(msg: records_pb2.ListingChange) -> ListingChange:
    if len(set(msg.fields)) != len(msg.fields) or list(msg.fields) != sorted(msg.fields):
        raise VerificationFailed("change fields must be sorted and distinct")
    try:
        fields = fields_from_pb(msg.fields, msg.values)
    except InvalidInput as exc:
        raise VerificationFailed(str(exc)) from exc
    action = _ACTION_FROM_PB.get(msg.action)
    if msg.action and action is None:
        raise VerificationFailed(f"unknown lifecycle action {msg.action}")
    status = _STATUS_FROM_PB.get(msg.status)
    if msg.status and status is None:
        raise VerificationFailed(f"unknown listing status {msg.status}")
    return ListingChange(fields=fields, action=action, status=status, audience=tuple(msg.audience))


def encode_version_body(
    *,
    record_id: str,
    origin: str,
    author: str,
    hlc: Stamp,
    parents: tuple[str, ...],
    change: ListingChange,
    record_nonce: bytes,
) -> bytes:
    """Serialise a version body once; the result is what gets signed and stored."""
    body = envelope_pb2.VersionBody(
        record_id=record_id,
        kind=envelope_pb2.RECORD_KIND_LISTING,
        origin=origin,
        author=author,
        hlc=envelope_pb2.Hlc(wall_ms=hlc.wall_ms, counter=hlc.counter),
        parents=list(parents),
        record_nonce=record_nonce,
        listing=change_to_pb(change),
    )
    return body.SerializeToString(deterministic=True)


def decode_version_body(body: bytes) -> envelope_pb2.VersionBody:
    msg = envelope_pb2.VersionBody()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise VerificationFailed("body is not a valid VersionBody") from exc
    return msg


def merge_input_of(version_id: str, body: bytes) -> MergeInput:
    """What the merge needs, read from stored body bytes."""
    msg = decode_version_body(body)
    return MergeInput(
        version_id=version_id,
        parents=tuple(msg.parents),
        hlc=Stamp(msg.hlc.wall_ms, msg.hlc.counter),
        author=msg.author,
        change=change_from_pb(msg.listing),
    )


def encode_registry_body(version: int, issued_at_ms: int, root_key_id: str, centres: tuple[Centre, ...]) -> bytes:
    msg = registry_pb2.RegistryBody(version=version, issued_at_ms=issued_at_ms, root_key_id=root_key_id)
    for c in centres:
        msg.centres.append(
            registry_pb2.Centre(
                id=c.id,
                name=c.name,
                country=c.country,
                role=_ROLE_TO_PB[c.role],
                status=_CSTATUS_TO_PB[c.status],
                keys=[
                    registry_pb2.SiteKey(
                        key_id=k.key_id,
                        public_key=k.public_key,
                        valid_from_ms=k.valid_from_ms,
                        valid_until_ms=k.valid_until_ms,
                        revoked_at_ms=k.revoked_at_ms,
                    )
                    for k in c.keys
                ],
            )
        )
    return msg.SerializeToString(deterministic=True)


def decode_registry(body: bytes, signature: bytes) -> Registry:
    msg = registry_pb2.RegistryBody()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise VerificationFailed("registry body is not a valid RegistryBody") from exc
    centres = []
    for c in msg.centres:
        if c.role not in _ROLE_FROM_PB or c.status not in _CSTATUS_FROM_PB:
            raise VerificationFailed(f"registry entry {c.id!r} has an unknown role or status")
        centres.append(
            Centre(
                id=c.id,
                name=c.name,
                country=c.country,
                role=_ROLE_FROM_PB[c.role],
                status=_CSTATUS_FROM_PB[c.status],
                keys=tuple(
                    SiteKey(k.key_id, k.public_key, k.valid_from_ms, k.valid_until_ms, k.revoked_at_ms) for k in c.keys
                ),
            )
        )
    seen: set[str] = set()
    for centre in centres:
        for key in centre.keys:
            if key.key_id in seen:
                raise VerificationFailed(f"registry lists key {key.key_id} more than once")
            if key.key_id != key_id_of(key.public_key):
                raise VerificationFailed(f"registry key id {key.key_id} does not match its public key")
            seen.add(key.key_id)
    return Registry(
        version=msg.version,
        issued_at_ms=msg.issued_at_ms,
        root_key_id=msg.root_key_id,
        centres=tuple(centres),
        body=body,
        signature=signature,
    )


def registry_to_pb(registry: Registry) -> registry_pb2.SignedRegistry:
    return registry_pb2.SignedRegistry(
        body=registry.body,
        signature=envelope_pb2.Signature(key_id=registry.root_key_id, signature=registry.signature),
    )
