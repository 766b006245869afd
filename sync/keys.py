"""Ed25519 signing keys: creation, files, key ids.

Private keys live in PEM (PKCS#8) files readable only by their owner (0600).
They are never logged and never sent. A key id is derived from the public key:
the hex of the first 16 bytes of SHA-256 over the raw 32-byte public key.

Keys, their files and their public halves are `cryptography`'s; signing is libsodium's
(PyNaCl, from the same seed). Ed25519 signatures are deterministic, so both give the same
bytes (a test holds them to it); libsodium signs about twice as fast here and releases the
GIL while it works, which every local write (an intake, an import) pays for.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)
from nacl.signing import SigningKey as SodiumSigningKey

from sync.errors import ConfigError


def key_id_of(public_key: bytes) -> str:
    """The key id of a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).digest()[:16].hex()


@dataclass(frozen=True)
class SigningKey:
    """A private key with its derived public key and id."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def seed(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    @cached_property
    def public_bytes(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @cached_property
    def key_id(self) -> str:
        return key_id_of(self.public_bytes)

    @cached_property
    def _sodium(self) -> SodiumSigningKey:
        return SodiumSigningKey(self.seed)

    def sign(self, data: bytes) -> bytes:
        return self._sodium.sign(data).signature

    def save(self, path: Path) -> None:
        """Write the key to `path` with mode 0600, refusing to overwrite."""
        pem = self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from exc
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} is not an Ed25519 private key")
        return cls(key)


def write_private(path: Path, data: bytes) -> None:
    """Create `path` readable only by its owner (0600) and write `data`; never overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
