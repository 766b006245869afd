"""Record ids that bind a record to the centre that owns it.

A record id is a UUID in the version-7 layout (48-bit Unix milliseconds, so
ids sort by creation time), whose remaining 74 bits are not random but the
first bits of SHA-256("techbridge/v1/record\\0" + origin + "\\0" + ms + nonce).
Every version carries the origin and the 16-byte nonce, so every site checks
on receipt that the record id belongs to the version's origin: another centre
cannot write into a listing by claiming its id under its own name (it would
need a SHA-256 preimage), and cannot claim the owner's name (only the owner's
keys sign for it).
"""

from __future__ import annotations

import hashlib
import os
import uuid

_DOMAIN = b"techbridge/v1/record\x00"


def owned_record_id(origin: str, unix_ms: int, nonce: bytes) -> str:
    digest = hashlib.sha256(_DOMAIN + origin.encode() + b"\x00" + unix_ms.to_bytes(6, "big") + nonce).digest()
    raw = bytearray(unix_ms.to_bytes(6, "big") + digest[:10])
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(raw)))


def new_record_id(origin: str, now_ms: int) -> tuple[str, bytes]:
    nonce = os.urandom(16)
    return owned_record_id(origin, now_ms, nonce), nonce


def belongs_to(record_id: str, origin: str, nonce: bytes) -> bool:
    try:
        raw = uuid.UUID(record_id).bytes
    except ValueError:
        return False
    return len(nonce) == 16 and owned_record_id(origin, int.from_bytes(raw[:6], "big"), nonce) == record_id
