"""Signatures over exact bytes, with domain separation.

Every signature covers `DOMAIN + bytes`, where DOMAIN names what the bytes
are, so a signature made for one purpose can never be replayed as another.
The bytes are the stored, transmitted bytes; nothing is re-serialised to be
verified.

Verification uses libsodium (PyNaCl), which checks the same signatures about
twice as fast as OpenSSL here (see DESIGN.md's numbers; verification bounds
the sync pipeline). Every site runs this same verifier, so no crafted edge-case
signature can be accepted at one site and refused at another; the test vectors
are checked with both libraries. Signing is libsodium's too (`SigningKey.sign`);
keys, certificates and TLS stay with `cryptography`.

A batch of signatures is verified on every core (`verify_many`): libsodium
releases the GIL while it works, so a small pool of threads (never processes:
gRPC does not survive `fork()`) verifies a batch about twice as fast on two
cores as one thread does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from sync.keys import SigningKey
from sync.metrics import VERIFICATIONS

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
        _FAILED.inc()
        return False
    try:
        _verify_key(public_key).verify(domain + data, signature)
    except (BadSignatureError, ValueError, TypeError):
        _FAILED.inc()
        return False
    _VALID.inc()
    return True


_VALID = VERIFICATIONS.labels(outcome="valid")
_FAILED = VERIFICATIONS.labels(outcome="failed")


# Below this many signatures a batch is verified in the calling thread: handing
# work to the pool costs more than it saves.
PARALLEL_MIN = 64
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _verifiers() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(2, _cores()), thread_name_prefix="verify")
        return _pool


def _verify_chunk(domain: bytes, items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    return [verify(public_key, domain, data, signature) for public_key, data, signature in items]


def verify_many(domain: bytes, items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """`verify` for each (public_key, data, signature), in order, spread over every core."""
    workers = max(2, _cores())
    if len(items) < PARALLEL_MIN:
        return _verify_chunk(domain, items)
    size = -(-len(items) // workers)
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    pool = _verifiers()
    futures = [pool.submit(_verify_chunk, domain, c) for c in chunks[1:]]
    out = _verify_chunk(domain, chunks[0])  # the caller's thread takes a share too
    for f in futures:
        out.extend(f.result())
    return out
