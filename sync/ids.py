"""Record ids that bind a record to the centre that owns it.

A record id is a UUID in the version-7 layout (48-bit Unix milliseconds, so
ids sort by creation time), whose remaining 74 bits are not random but the
first bits of SHA-256("techbridge/v1/record\\0" + origin + "\\0" + ms + nonce).
Every version carries the origin and the 24-byte nonce, so every site checks
on receipt that the record id belongs to the version's origin: another centre
cannot write into a listing by claiming its id under its own name (it would
need a SHA-256 preimage), and cannot claim the owner's name (only the owner's
keys sign for it).

The nonce is 16 random bytes and 8 bytes that **pin** the record's kind and
fixed fields (`records.pins_of`): a create is accepted only if its fixed
fields give those 8 bytes, so even the owner cannot issue a second create
under the same id with another kind, another firm key, another handler.
"""

from __future__ import annotations

import hashlib
import os

_DOMAIN = b"techbridge/v1/record\x00"


def owned_record_id(origin: str, unix_ms: int, nonce: bytes) -> str:
    digest = hashlib.sha256(_DOMAIN + origin.encode() + b"\x00" + unix_ms.to_bytes(6, "big") + nonce).digest()
    raw = bytearray(unix_ms.to_bytes(6, "big") + digest[:10])
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 9562 variant
    h = raw.hex()  # str(uuid.UUID(bytes=raw)), without building the UUID
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


PINS_BYTES = 8
NONCE_BYTES = 16 + PINS_BYTES


def new_record_id(origin: str, now_ms: int, pins: bytes) -> tuple[str, bytes]:
    """A fresh id for a record `origin` creates now, pinned to `pins` (records.pins_of)."""
    if len(pins) != PINS_BYTES:
        raise ValueError(f"pins are {PINS_BYTES} bytes")
    nonce = os.urandom(16) + pins
    return owned_record_id(origin, now_ms, nonce), nonce


def belongs_to(record_id: str, origin: str, nonce: bytes) -> bool:
    """Whether `record_id`, written as `owned_record_id` writes it, is the id `origin`
    made with `nonce` at the milliseconds it carries."""
    if len(record_id) != 36 or len(nonce) != NONCE_BYTES:
        return False
    try:
        unix_ms = int(record_id[:8] + record_id[9:13], 16)
        return owned_record_id(origin, unix_ms, nonce) == record_id
    except (ValueError, OverflowError):  # not hex, or a sign: no id of ours
        return False
