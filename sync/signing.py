"""Signatures over exact bytes, with domain separation.

Every signature covers `DOMAIN + bytes`, where DOMAIN names what the bytes
are, so a signature made for one purpose can never be replayed as another.
The bytes are the stored, transmitted bytes; nothing is re-serialised to be
verified.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature

from sync.keys import SigningKey, public_key_from_bytes

VERSION_DOMAIN = b"techbridge/v1/version\x00"
REGISTRY_DOMAIN = b"techbridge/v1/registry\x00"
CALL_DOMAIN = b"techbridge/v1/call\x00"
ENROL_DOMAIN = b"techbridge/v1/enrol\x00"
ROTATE_DOMAIN = b"techbridge/v1/rotate\x00"


def sign(key: SigningKey, domain: bytes, data: bytes) -> bytes:
    return key.sign(domain + data)


def verify(public_key: bytes, domain: bytes, data: bytes, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s signature over domain + data."""
    try:
        public_key_from_bytes(public_key).verify(signature, domain + data)
    except (InvalidSignature, ValueError):
        return False
    return True
