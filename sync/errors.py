"""The one small hierarchy of errors the domain raises.

Servicers never build gRPC statuses by hand: `sync.server` maps each class
below to its status code in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


@dataclass(frozen=True)
class FieldViolation:
    """One problem with one field of an input."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


# Starts the message of a refusal that tells a node to reconcile with the hub.
class Reason(StrEnum):
    """Protocol signals a peer branches on, carried as a google.rpc.ErrorInfo reason in the
    status details (domain `ERROR_DOMAIN`); the status message is for people only."""

    # The hub's log or cursors disagree with the node's checkpoint: reconcile by what each holds.
    CHECKPOINT_MISMATCH = "CHECKPOINT_MISMATCH"
    # The key that signed the call is not registered to the calling site.
    KEY_NOT_REGISTERED = "KEY_NOT_REGISTERED"


ERROR_DOMAIN = "techbridge.v1"


class TechbridgeError(Exception):
    """Base of every error the domain raises on purpose."""

    # The protocol signal this error carries to the peer, if any.
    reason: ClassVar[Reason | None] = None


class InvalidInput(TechbridgeError):
    """The caller sent something malformed; names every offending field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(str(v) for v in self.violations))


class NotFound(TechbridgeError):
    """The named thing does not exist here."""


class Unauthenticated(TechbridgeError):
    """The caller did not prove who it is."""


class KeyNotRegistered(Unauthenticated):
    """The call is signed with a key the registry does not give to the calling site."""

    reason = Reason.KEY_NOT_REGISTERED


class PermissionDenied(TechbridgeError):
    """The caller is known but may not do this."""


class FailedPrecondition(TechbridgeError):
    """The request is well formed but the current state forbids it."""


class CheckpointMismatch(FailedPrecondition):
    """The hub's log or a cursor disagrees with the node's checkpoint (a restored store)."""

    reason = Reason.CHECKPOINT_MISMATCH


class VerificationFailed(TechbridgeError):
    """A signed document or version did not verify; the message says why."""


class UnknownKey(VerificationFailed):
    """A signature names a key this site's registry does not hold (yet)."""


class Unavailable(TechbridgeError):
    """Another site could not be reached or did not finish; trying again later may work."""


class KeyRevoked(VerificationFailed):
    """Signed with a key after its revocation: refused and quarantined."""


class StampAhead(VerificationFailed):
    """A version is stamped further ahead of this site's clock than allowed; it may be
    accepted later, so it is deferred rather than refused for good."""


class ResourceExhausted(TechbridgeError):
    """A caller asks for more than its share (streams, sizes)."""


class ConfigError(TechbridgeError):
    """A site's data folder or configuration is missing or wrong."""
