"""Signatures cover exact bytes, and a second implementation agrees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing
import pytest

from sync.envelope import SignatureValue, read_version, verify_version
from sync.errors import VerificationFailed
from sync.keys import SigningKey, key_id_of
from sync.registry import Centre, CentreStatus, Registry, SiteKey, SiteRole
from sync.signing import VERSION_DOMAIN, verify

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "version_signatures.json").read_text(encoding="utf-8")
)["vectors"]


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: v["version_id"][:12])
def test_vectors_verify_with_cryptography_and_libsodium(vec: dict[str, Any]) -> None:
    body, sig, pub = bytes.fromhex(vec["body"]), bytes.fromhex(vec["signature"]), bytes.fromhex(vec["public_key"])
    assert verify(pub, VERSION_DOMAIN, body, sig)
    nacl.signing.VerifyKey(pub).verify(VERSION_DOMAIN + body, sig)  # raises if bad
    assert key_id_of(pub) == vec["key_id"]
    # Ed25519 is deterministic: libsodium, from the same seed, makes the same signature.
    assert nacl.signing.SigningKey(bytes.fromhex(vec["seed"])).sign(VERSION_DOMAIN + body).signature == sig


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: v["version_id"][:12])
def test_vectors_read_without_reserialising(vec: dict[str, Any]) -> None:
    body = bytes.fromhex(vec["body"])
    v = read_version(body, (SignatureValue(vec["key_id"], bytes.fromhex(vec["signature"])),))
    assert v.version_id == vec["version_id"]
    assert v.body is body
    assert [v.record_id, v.origin, v.author, [v.hlc.wall_ms, v.hlc.counter]] == [
        vec["fields"][k] for k in ("record_id", "origin", "author", "hlc")
    ]
    assert v.change.get("title") == vec["fields"]["title"]


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: v["version_id"][:12])
def test_any_flipped_byte_fails_both_verifiers(vec: dict[str, Any]) -> None:
    body, sig, pub = bytes.fromhex(vec["body"]), bytes.fromhex(vec["signature"]), bytes.fromhex(vec["public_key"])
    for i in range(0, len(body), max(1, len(body) // 16)):
        bad = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        assert not verify(pub, VERSION_DOMAIN, bad, sig)
        with pytest.raises(nacl.exceptions.BadSignatureError):
            nacl.signing.VerifyKey(pub).verify(VERSION_DOMAIN + bad, sig)


def test_domain_separation() -> None:
    vec = VECTORS[0]
    body, sig, pub = bytes.fromhex(vec["body"]), bytes.fromhex(vec["signature"]), bytes.fromhex(vec["public_key"])
    assert not verify(pub, b"techbridge/v1/registry\x00", body, sig)
    assert not verify(pub, b"", body, sig)


def _registry_with(site: str, key: SigningKey, status: CentreStatus = CentreStatus.ACTIVE) -> Registry:
    return Registry(
        version=1,
        issued_at_ms=0,
        root_key_id="root",
        centres=(Centre(site, site, "IL", SiteRole.NODE, status, (SiteKey(key.key_id, key.public_bytes),)),),
    )


def test_who_may_sign_a_listing() -> None:
    vec = VECTORS[0]
    key = SigningKey.generate()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    owner = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vec["seed"])))
    body = bytes.fromhex(vec["body"])
    good = read_version(body, (SignatureValue(owner.key_id, bytes.fromhex(vec["signature"])),))
    verify_version(good, _registry_with("tel-aviv", owner))

    with pytest.raises(VerificationFailed, match="not in registry"):
        verify_version(good, _registry_with("tel-aviv", key))
    with pytest.raises(VerificationFailed, match="belongs to brussels"):
        verify_version(good, _registry_with("brussels", owner))
    with pytest.raises(VerificationFailed, match="suspended"):
        verify_version(good, _registry_with("tel-aviv", owner, CentreStatus.SUSPENDED))
    with pytest.raises(VerificationFailed, match="one author signature"):
        verify_version(read_version(body, ()), _registry_with("tel-aviv", owner))


def test_key_files_are_private(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "k" / "signing.key"
    key.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert SigningKey.load(path).key_id == key.key_id
    with pytest.raises(FileExistsError):
        key.save(path)
