"""Inviting centres and enrolling their nodes.

`invite` makes a one-time join token (sync.token) bound to a centre id; the
hub keeps only the hash of its secret. `enrol` spends the token once, before
it expires, and issues a new registry version that holds the node's signing
key, in one transaction: a refused enrolment leaves the token unspent.
"""

from __future__ import annotations

import dataclasses
import re

from hub.invites import Invite, Invites
from hub.registry import issue_registry
from sync.config import SITE_ID_RE
from sync.errors import FailedPrecondition, FieldViolation, InvalidInput
from sync.keys import SigningKey, key_id_of
from sync.registry import Centre, CentreStatus, Registry, SiteKey, SiteRole
from sync.signing import ENROL_DOMAIN, verify
from sync.store import Store
from sync.token import JoinToken

DEFAULT_TTL_S = 7 * 24 * 3600
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


def invite(
    store: Store,
    registry: Registry,
    hub_id: str,
    *,
    centre_id: str,
    name: str,
    country: str,
    ttl_s: int,
    now_ms: int,
    ca_der: bytes = b"",
    enrol_port: int = 0,
) -> tuple[str, int]:
    problems = []
    if centre_id == "hq":
        problems.append(FieldViolation("centre_id", '"hq" names HQ in audiences and cannot be a centre id'))
    elif not SITE_ID_RE.match(centre_id):
        problems.append(
            FieldViolation("centre_id", "2-63 characters: lower-case letters, digits, '-', starting with a letter")
        )
    if not name.strip() or len(name) > 200:
        problems.append(FieldViolation("name", "required, at most 200 characters"))
    if not COUNTRY_RE.match(country):
        problems.append(FieldViolation("country", "an ISO 3166-1 alpha-2 code such as IL or BE"))
    if ttl_s < 0:
        problems.append(FieldViolation("ttl_seconds", "must not be negative"))
    if problems:
        raise InvalidInput(problems)
    held = registry.centre(centre_id)
    if held is not None and not all_revoked(held):
        raise FailedPrecondition(
            f"centre {centre_id} is already enrolled (a centre is invited again only once all its keys are revoked)"
        )
    token = JoinToken.new(centre_id, hub_id, registry.root_key_id, ca_der, enrol_port)
    expires = now_ms + (ttl_s or DEFAULT_TTL_S) * 1000
    Invites(store).add_invite(token.secret_hash, Invite(centre_id, name.strip(), country, expires), now_ms)
    return token.encode(), expires


def all_revoked(centre: Centre) -> bool:
    """Every signing key of the centre is revoked: it may be enrolled again, with a new key."""
    return bool(centre.keys) and all(k.revoked_at_ms for k in centre.keys)


def enrol(
    store: Store, root: SigningKey, *, token: str, centre_id: str, public_key: bytes, proof: bytes, now_ms: int
) -> Registry:
    parsed = JoinToken.decode(token)
    problems = []
    if parsed.centre_id != centre_id:
        problems.append(FieldViolation("centre_id", f"the token is for {parsed.centre_id!r}, not {centre_id!r}"))
    if len(public_key) != 32:
        problems.append(FieldViolation("public_key", "must be a raw 32-byte Ed25519 public key"))
    elif not verify(public_key, ENROL_DOMAIN, JoinToken.proof_bytes(token, centre_id), proof):
        problems.append(FieldViolation("proof", "is not the enrolling key's signature over the token and centre id"))
    if problems:
        raise InvalidInput(problems)
    new_key_id = key_id_of(public_key)

    def build(inv: Invite, held: Registry | None) -> Registry:
        if inv.centre_id != centre_id:
            raise InvalidInput([FieldViolation("centre_id", f"the token is for {inv.centre_id!r}, not {centre_id!r}")])
        centres = held.centres if held else ()
        if held is not None and held.key(new_key_id) is not None:
            raise FailedPrecondition(f"key {new_key_id} is already registered to another site")
        existing = next((c for c in centres if c.id == inv.centre_id), None)
        if existing is not None:
            if not all_revoked(existing):
                raise FailedPrecondition(f"centre {inv.centre_id} is already enrolled")
            # Re-enrolment after a compromise: the centre keeps its id, history and records; the new
            # key signs from the latest revocation on (nothing it signs can predate the compromise).
            since = max(k.revoked_at_ms for k in existing.keys)
            again = dataclasses.replace(
                existing,
                status=CentreStatus.ACTIVE,
                keys=(*existing.keys, SiteKey(new_key_id, public_key, valid_from_ms=since)),
            )
            return issue_registry(
                root, tuple(again if c.id == inv.centre_id else c for c in centres), previous=held, now_ms=now_ms
            )
        new = Centre(
            id=inv.centre_id,
            name=inv.name,
            country=inv.country,
            role=SiteRole.NODE,
            status=CentreStatus.ACTIVE,
            # Open from the start: the node's clock may run behind the hub's.
            keys=(SiteKey(key_id_of(public_key), public_key),),
        )
        return issue_registry(root, (*centres, new), previous=held, now_ms=now_ms)

    return Invites(store).redeem_invite(parsed.secret_hash, now_ms, build)
