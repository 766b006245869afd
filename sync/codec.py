"""Protobuf at the edge: conversions between wire messages and domain values.

Nothing outside this module and the servicers touches generated classes for
record content. Bodies are parsed from the exact stored bytes and never
re-serialised to be verified or stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from google.protobuf.message import DecodeError, Message

from sync.clock import Stamp
from sync.errors import FieldViolation, InvalidInput, VerificationFailed
from sync.keys import key_id_of
from sync.kinds import Action, Change, Content, FieldValue, Kind, KindSet, make_content
from sync.merge import MergeInput
from sync.registry import Centre, CentreStatus, Registry, SiteKey, SiteRole
from techbridge.v1 import envelope_pb2, records_pb2, registry_pb2

_ACTION_TO_PB = {a: records_pb2.LifecycleAction.Value(f"LIFECYCLE_ACTION_{a.name}") for a in Action}
_ACTION_FROM_PB: dict[int, Action] = {v: k for k, v in _ACTION_TO_PB.items()}

# A kind travels as RECORD_KIND_<NAME> of the envelope's RecordKind enum.
_KIND_PREFIX = "RECORD_KIND_"

_ROLE_TO_PB = {SiteRole.HUB: registry_pb2.SITE_ROLE_HUB, SiteRole.NODE: registry_pb2.SITE_ROLE_NODE}
_ROLE_FROM_PB = {v: k for k, v in _ROLE_TO_PB.items()}
_CSTATUS_TO_PB = {
    CentreStatus.INVITED: registry_pb2.CENTRE_STATUS_INVITED,
    CentreStatus.ACTIVE: registry_pb2.CENTRE_STATUS_ACTIVE,
    CentreStatus.SUSPENDED: registry_pb2.CENTRE_STATUS_SUSPENDED,
    CentreStatus.LEFT: registry_pb2.CENTRE_STATUS_LEFT,
}
_CSTATUS_FROM_PB = {v: k for k, v in _CSTATUS_TO_PB.items()}


def kind_to_pb(kind: str) -> envelope_pb2.RecordKind.ValueType:
    return envelope_pb2.RecordKind.Value(_KIND_PREFIX + kind.upper())


def kind_from_pb(value: int, kinds: KindSet) -> str | None:
    """The name of the kind a wire value stands for, if the set holds it."""
    try:
        name = envelope_pb2.RecordKind.Name(value).removeprefix(_KIND_PREFIX).lower()  # type: ignore[arg-type]
    except ValueError:
        return None
    return name if name in kinds else None


def action_to_pb(action: Action | None) -> records_pb2.LifecycleAction.ValueType:
    return _ACTION_TO_PB[action] if action else records_pb2.LIFECYCLE_ACTION_UNSPECIFIED


def action_from_pb(value: int) -> Action | None:
    return _ACTION_FROM_PB.get(value)


def _set(kind: Kind, msg: Message, name: str, value: FieldValue) -> None:
    parts = kind.composite_fields.get(name)
    if parts is not None:
        assert isinstance(value, tuple)
        for item in value:
            assert isinstance(item, tuple)
            getattr(msg, name).add(**dict(zip(parts, item, strict=True)))
    elif isinstance(value, tuple):
        getattr(msg, name).extend(value)
    else:
        setattr(msg, name, value)


def values_to_pb(kind: Kind, fields: Iterable[tuple[str, FieldValue]]) -> Message:
    """The kind's values message holding `fields` (others left at their defaults)."""
    msg = kind.values_message()
    for name, value in fields:
        _set(kind, msg, name, value)
    return msg


def fill_values(kind: Kind, msg: Message, fields: Iterable[tuple[str, FieldValue]]) -> None:
    """Set `fields` in the kind's values message `msg`, skipping those at the value an unset
    field reads as (on the wire the same message, built with fewer calls)."""
    unset = kind.wire_unset
    for name, value in fields:
        if value != unset[name]:
            _set(kind, msg, name, value)


def values_from_pb(kind: Kind, msg: Message, names: Iterable[str] | None = None) -> tuple[tuple[str, FieldValue], ...]:
    """The named fields of a values message (all of them when `names` is None);
    names the kind does not have are refused, each named."""
    if names is None:
        return _read_all_values(kind, msg)
    return _read_values(kind, msg, tuple(sorted(set(names))))


def _read_all_values(kind: Kind, msg: Message) -> tuple[tuple[str, FieldValue], ...]:
    """Every field of the kind: those the message sets read off it (listed by one call),
    the others at their unset value."""
    readers = kind.wire_readers
    unset = kind.wire_unset
    present = {f.name: v for f, v in msg.ListFields()}
    return tuple((n, readers[n](present[n]) if n in present else unset[n]) for n in kind.field_names())


def _read_values(kind: Kind, msg: Message, wanted: Sequence[str]) -> tuple[tuple[str, FieldValue], ...]:
    readers = kind.wire_readers
    unknown = [n for n in wanted if n not in readers]
    if unknown:
        raise InvalidInput([FieldViolation(n, f"not a {kind.name} field that can be set") for n in unknown])
    return tuple((n, readers[n](getattr(msg, n))) for n in wanted)


def content_to_pb(content: Content) -> Message:
    return values_to_pb(content.spec, content.fields)


def content_from_pb(kind: Kind, msg: Message, status: str) -> Content:
    return make_content(kind, dict(values_from_pb(kind, msg)), status)


def change_to_pb(kind: Kind, change: Change) -> records_pb2.Change:
    msg = records_pb2.Change(
        fields=list(change.names),
        action=action_to_pb(change.action),
        status=change.status or "",
        audience=list(change.audience),
    )
    getattr(msg, kind.name).CopyFrom(values_to_pb(kind, change.fields))
    return msg


def change_from_pb(kind: Kind, msg: records_pb2.Change) -> Change:
    names = list(msg.fields)
    if names != sorted(set(names)):
        raise VerificationFailed("change fields must be sorted and distinct")
    slot = msg.WhichOneof("values")
    if slot is not None and slot != kind.name:
        raise VerificationFailed(f"a {kind.name} version carries {slot} values")
    values = getattr(msg, kind.name)
    try:
        fields = _read_values(kind, values, names)
    except InvalidInput as exc:
        raise VerificationFailed(str(exc)) from exc
    action = _ACTION_FROM_PB.get(msg.action)
    if msg.action and action is None:
        raise VerificationFailed(f"unknown lifecycle action {msg.action}")
    if msg.status and msg.status not in kind.statuses:
        raise VerificationFailed(f"{msg.status!r} is not a {kind.name} status")
    return Change(fields=fields, action=action, status=msg.status or None, audience=tuple(msg.audience))


def encode_version_body(
    *,
    record_id: str,
    origin: str,
    author: str,
    hlc: Stamp,
    parents: tuple[str, ...],
    change: Change,
    record_nonce: bytes,
    kind: Kind,
) -> bytes:
    """Serialise a version body once; the result is what gets signed and stored."""
    body = envelope_pb2.VersionBody(
        record_id=record_id,
        kind=kind_to_pb(kind.name),
        origin=origin,
        author=author,
        hlc=envelope_pb2.Hlc(wall_ms=hlc.wall_ms, counter=hlc.counter),
        parents=list(parents),
        record_nonce=record_nonce,
        change=change_to_pb(kind, change),
    )
    return body.SerializeToString(deterministic=True)


def decode_version_body(body: bytes) -> envelope_pb2.VersionBody:
    msg = envelope_pb2.VersionBody()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise VerificationFailed("body is not a valid VersionBody") from exc
    return msg


def body_kind(msg: envelope_pb2.VersionBody, kinds: KindSet) -> Kind:
    name = kind_from_pb(msg.kind, kinds)
    if name is None:
        raise VerificationFailed(f"body carries an unknown record kind ({msg.kind})")
    return kinds[name]


def merge_input_of(version_id: str, body: bytes, kinds: KindSet) -> MergeInput:
    """What the merge needs, read from stored body bytes."""
    msg = decode_version_body(body)
    kind = body_kind(msg, kinds)
    return MergeInput(
        version_id=version_id,
        parents=tuple(msg.parents),
        hlc=Stamp(msg.hlc.wall_ms, msg.hlc.counter),
        author=msg.author,
        change=change_from_pb(kind, msg.change),
        kind=kind.name,
        origin=msg.origin,
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
