"""Join tokens: the one-time credential a hub gives a new centre.

A token carries the centre id, a random secret, the hub's id, its root key
id, the network's CA certificate and the hub's enrolment port. The hub keeps
only the SHA-256 of the secret; the node checks the hub's TLS certificate
against the CA in the token and the root key it receives against the key id
in the token, so the token also pins the trust root.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from sync.auth import b64, unb64
from sync.errors import FieldViolation, InvalidInput

TOKEN_PREFIX = "tbj1."


@dataclass(frozen=True)
class JoinToken:
    centre_id: str
    secret: str
    hub_id: str
    root_key_id: str
    # The network's CA certificate (DER), to check the hub's TLS certificate at enrolment.
    ca_der: bytes = b""
    # The port of the hub's enrolment listener (0: the hub serves without TLS).
    enrol_port: int = 0

    @classmethod
    def new(cls, centre_id: str, hub_id: str, root_key_id: str, ca_der: bytes = b"", enrol_port: int = 0) -> JoinToken:
        return cls(centre_id, secrets.token_urlsafe(24), hub_id, root_key_id, ca_der, enrol_port)

    def encode(self) -> str:
        doc = {
            "c": self.centre_id,
            "s": self.secret,
            "h": self.hub_id,
            "r": self.root_key_id,
            "a": b64(self.ca_der),
            "e": self.enrol_port,
        }
        return TOKEN_PREFIX + b64(json.dumps(doc, separators=(",", ":")).encode())

    @property
    def secret_hash(self) -> str:
        return hashlib.sha256(self.secret.encode()).hexdigest()

    @staticmethod
    def proof_bytes(token: str, centre_id: str) -> bytes:
        """What a node signs with its new key to prove it holds it."""
        return f"{token}|{centre_id}".encode()

    @classmethod
    def decode(cls, token: str) -> JoinToken:
        bad = InvalidInput([FieldViolation("token", "not a techbridge join token (expected tbj1.…), or damaged")])
        if not token.startswith(TOKEN_PREFIX):
            raise bad
        try:
            doc = json.loads(unb64(token[len(TOKEN_PREFIX) :]))
            return cls(
                str(doc["c"]),
                str(doc["s"]),
                str(doc["h"]),
                str(doc["r"]),
                unb64(str(doc.get("a", ""))),
                int(doc.get("e", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise bad from exc
