"""Issuing registry versions: only the hub's root key signs them."""

from __future__ import annotations

from sync.codec import encode_registry_body
from sync.keys import SigningKey
from sync.registry import Centre, Registry
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
