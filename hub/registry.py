"""Issuing registry versions: only the hub's root key signs them."""

from __future__ import annotations

from dataclasses import replace

from sync.codec import encode_registry_body
from sync.errors import FailedPrecondition, NotFound
from sync.keys import SigningKey
from sync.registry import Centre, Registry, SiteKey
from sync.signing import REGISTRY_DOMAIN, sign


def issue_registry(
    root: SigningKey, centres: tuple[Centre, ...], *, previous: Registry | None, now_ms: int
) -> Registry:
    """Sign a registry one version above `previous`."""
    version = (previous.version if previous else 0) + 1
    ordered = tuple(sorted(centres, key=lambda c: c.id))
    body = encode_registry_body(version, now_ms, root.key_id, ordered)
    return Registry(
        version=version,
        issued_at_ms=now_ms,
        root_key_id=root.key_id,
        centres=ordered,
        body=body,
        signature=sign(root, REGISTRY_DOMAIN, body),
    )


def with_rotated_key(held: Registry, site_id: str, new_key: SiteKey, at_ms: int) -> tuple[Centre, ...]:
    """The centres with `site_id`'s current keys retired at `at_ms` and `new_key` valid from then."""
    centre = held.centre(site_id)
    if centre is None:
        raise NotFound(f"no site {site_id} in the registry")
    if held.key(new_key.key_id) is not None:
        raise FailedPrecondition(f"key {new_key.key_id} is already registered")
    kept = (k if k.valid_until_ms or k.revoked_at_ms else replace(k, valid_until_ms=at_ms) for k in centre.keys)
    keys = (*kept, replace(new_key, valid_from_ms=at_ms))
    return tuple(replace(c, keys=keys) if c.id == site_id else c for c in held.centres)


def with_revoked_key(held: Registry, key_id: str, at_ms: int) -> tuple[Centre, ...]:
    found = held.key(key_id)
    if found is None:
        raise NotFound(f"no key {key_id} in the registry")
    centre, key = found
    if key.revoked_at_ms:
        raise FailedPrecondition(f"key {key_id} is already revoked (at {key.revoked_at_ms} ms)")
    keys = tuple(replace(k, revoked_at_ms=at_ms) if k.key_id == key_id else k for k in centre.keys)
    return tuple(replace(c, keys=keys) if c.id == centre.id else c for c in held.centres)
