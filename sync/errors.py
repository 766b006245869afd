"""The one small hierarchy of errors the domain raises.

Servicers never build gRPC statuses by hand: `sync.server` maps each class
below to its status code in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One problem with one field of an input."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


# Starts the message of a refusal that tells a node to reconcile with the hub.
CHECKPOINT_MISMATCH = "checkpoint mismatch"


class TechbridgeError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidInput(TechbridgeError):
    """The caller sent something malformed; names every offending field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(str(v) for v in self.violations))


class NotFound(TechbridgeError):
    """The named thing does not exist here."""


class Unauthenticated(TechbridgeError):
    """The caller did not prove who it is."""


class PermissionDenied(TechbridgeError):
    """The caller is known but may not do this."""


class FailedPrecondition(TechbridgeError):
    """The request is well formed but the current state forbids it."""


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
