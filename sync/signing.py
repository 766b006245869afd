"""Signatures over exact bytes, with domain separation.

Every signature covers `DOMAIN + bytes`, where DOMAIN names what the bytes
are, so a signature made for one purpose can never be replayed as another.
The bytes are the stored, transmitted bytes; nothing is re-serialised to be
verified.

Verification uses libsodium (PyNaCl), which checks the same signatures about
twice as fast as OpenSSL here (see DESIGN.md's numbers; verification bounds
the sync pipeline). Every site runs this same verifier, so no crafted edge-case
signature can be accepted at one site and refused at another; the test vectors
are checked with both libraries. Keys, signing, certificates and TLS stay with
`cryptography`.
"""

from __future__ import annotations

from functools import lru_cache

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from sync.keys import SigningKey

VERSION_DOMAIN = b"techbridge/v1/version\x00"
REGISTRY_DOMAIN = b"techbridge/v1/registry\x00"
CALL_DOMAIN = b"techbridge/v1/call\x00"
ENROL_DOMAIN = b"techbridge/v1/enrol\x00"
ROTATE_DOMAIN = b"techbridge/v1/rotate\x00"


def sign(key: SigningKey, domain: bytes, data: bytes) -> bytes:
    return key.sign(domain + data)


@lru_cache(maxsize=4096)
def _verify_key(public_key: bytes) -> VerifyKey:
    return VerifyKey(public_key)


def verify(public_key: bytes, domain: bytes, data: bytes, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s signature over domain + data."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        _verify_key(public_key).verify(domain + data, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True
