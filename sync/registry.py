"""The centre registry: who exists and which keys may sign for whom.

The hub's root key signs each registry version; the version number only goes
up. Every site keeps the newest registry it has verified and refuses one that
is older than what it holds (no rollback) or not signed by the root key it
learned at enrolment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sync.errors import VerificationFailed
from sync.keys import key_id_of
from sync.signing import REGISTRY_DOMAIN, verify


class SiteRole(StrEnum):
    HUB = "hub"
    NODE = "node"


class CentreStatus(StrEnum):
    INVITED = "invited"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    LEFT = "left"


@dataclass(frozen=True)
class SiteKey:
    key_id: str
    public_key: bytes
    valid_from_ms: int = 0
    valid_until_ms: int = 0
    revoked_at_ms: int = 0

    def problem_at(self, stamp_ms: int) -> str | None:
        """Why a signature stamped at `stamp_ms` with this key is not acceptable, or None."""
        if self.revoked_at_ms and stamp_ms >= self.revoked_at_ms:
            return f"key {self.key_id} was revoked at {self.revoked_at_ms} ms"
        if self.valid_from_ms and stamp_ms < self.valid_from_ms:
            return f"key {self.key_id} was not valid before {self.valid_from_ms} ms"
        if self.valid_until_ms and stamp_ms >= self.valid_until_ms:
            return f"key {self.key_id} was retired at {self.valid_until_ms} ms"
        return None


@dataclass(frozen=True)
class Centre:
    id: str
    name: str
    country: str
    role: SiteRole
    status: CentreStatus
    keys: tuple[SiteKey, ...] = ()


@dataclass(frozen=True)
class Registry:
    version: int
    issued_at_ms: int
    root_key_id: str
    centres: tuple[Centre, ...]
    # The exact signed bytes and the root's signature over them.
    body: bytes = b""
    signature: bytes = b""
    _by_key: dict[str, tuple[Centre, SiteKey]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for centre in self.centres:
            for key in centre.keys:
                self._by_key[key.key_id] = (centre, key)

    def centre(self, centre_id: str) -> Centre | None:
        return next((c for c in self.centres if c.id == centre_id), None)

    def key(self, key_id: str) -> tuple[Centre, SiteKey] | None:
        return self._by_key.get(key_id)


def check_registry_signature(body: bytes, key_id: str, signature: bytes, root_public_key: bytes) -> None:
    """Raise VerificationFailed unless the root key signed exactly `body`."""
    if key_id != key_id_of(root_public_key):
        raise VerificationFailed(f"registry signed by key {key_id}, not the root key")
    if not verify(root_public_key, REGISTRY_DOMAIN, body, signature):
        raise VerificationFailed("registry signature does not verify")


def check_not_rollback(new: Registry, held: Registry | None) -> None:
    if held is not None and new.version < held.version:
        raise VerificationFailed(f"registry version {new.version} is older than the held version {held.version}")
