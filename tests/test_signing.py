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
from sync.signing import VERSION_DOMAIN, sign, verify
from transfer.records import KINDS

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
    v = read_version(body, (SignatureValue(vec["key_id"], bytes.fromhex(vec["signature"])),), KINDS)
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
    good = read_version(body, (SignatureValue(owner.key_id, bytes.fromhex(vec["signature"])),), KINDS)
    verify_version(good, _registry_with("tel-aviv", owner), kinds=KINDS)

    with pytest.raises(VerificationFailed, match="not in registry"):
        verify_version(good, _registry_with("tel-aviv", key), kinds=KINDS)
    with pytest.raises(VerificationFailed, match="belongs to brussels"):
        verify_version(good, _registry_with("brussels", owner), kinds=KINDS)
    with pytest.raises(VerificationFailed, match="suspended"):
        verify_version(good, _registry_with("tel-aviv", owner, CentreStatus.SUSPENDED), kinds=KINDS)
    with pytest.raises(VerificationFailed, match="one author signature"):
        verify_version(read_version(body, (), KINDS), _registry_with("tel-aviv", owner), kinds=KINDS)


def test_key_files_are_private(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "k" / "signing.key"
    key.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert SigningKey.load(path).key_id == key.key_id
    with pytest.raises(FileExistsError):
        key.save(path)


def _owner(vec: dict[str, Any]) -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return SigningKey(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vec["seed"])))


def test_exact_bytes_not_a_reserialisation() -> None:
    """A body whose encoding is not what a re-serialisation would produce still verifies as
    stored, and the re-serialised bytes (same content) do not: nobody re-encodes to verify."""
    from techbridge.v1 import envelope_pb2

    vec = VECTORS[0]
    key = _owner(vec)
    body = bytes.fromhex(vec["body"])
    # Same content, other bytes: the record_id field repeated (protobuf keeps the last).
    msg = envelope_pb2.VersionBody.FromString(body)
    odd = envelope_pb2.VersionBody(record_id="x").SerializeToString() + body
    assert envelope_pb2.VersionBody.FromString(odd) == msg and odd != body
    sig = key.sign(VERSION_DOMAIN + odd)
    v = read_version(odd, (SignatureValue(key.key_id, sig),), KINDS)
    assert v.body == odd and v.version_id != vec["version_id"]
    assert verify(key.public_bytes, VERSION_DOMAIN, odd, sig)
    reserialised = envelope_pb2.VersionBody.FromString(odd).SerializeToString(deterministic=True)
    assert reserialised != odd and not verify(key.public_bytes, VERSION_DOMAIN, reserialised, sig)


def test_a_signature_over_the_hex_of_the_body_is_refused() -> None:
    vec = VECTORS[0]
    key = _owner(vec)
    body = bytes.fromhex(vec["body"])
    wrong = key.sign(VERSION_DOMAIN + body.hex().encode())
    v = read_version(body, (SignatureValue(key.key_id, wrong),), KINDS)
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_version(v, _registry_with("tel-aviv", key), kinds=KINDS)


def test_flipped_bytes_in_signature_and_key_id_are_refused() -> None:
    vec = VECTORS[0]
    key = _owner(vec)
    body, sig = bytes.fromhex(vec["body"]), bytes.fromhex(vec["signature"])
    reg = _registry_with("tel-aviv", key)
    bad_sig = bytes([sig[0] ^ 1]) + sig[1:]
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_version(read_version(body, (SignatureValue(key.key_id, bad_sig),), KINDS), reg, kinds=KINDS)
    bad_id = ("0" if key.key_id[0] != "0" else "1") + key.key_id[1:]
    with pytest.raises(VerificationFailed, match="not in registry"):
        verify_version(read_version(body, (SignatureValue(bad_id, sig),), KINDS), reg, kinds=KINDS)


def test_registry_signed_by_a_node_key_or_older_is_refused() -> None:
    from hub.registry import issue_registry
    from sync.registry import check_not_rollback, check_registry_signature

    root, node = SigningKey.generate(), SigningKey.generate()
    hub = Centre("hq", "HQ", "", SiteRole.HUB, CentreStatus.ACTIVE)
    r1 = issue_registry(root, (hub,), previous=None, now_ms=1)
    r2 = issue_registry(root, (hub,), previous=r1, now_ms=2)
    forged = issue_registry(node, (hub,), previous=r2, now_ms=3)
    check_registry_signature(r2.body, r2.root_key_id, r2.signature, root.public_bytes)
    with pytest.raises(VerificationFailed, match="not the root key"):
        check_registry_signature(forged.body, forged.root_key_id, forged.signature, root.public_bytes)
    with pytest.raises(VerificationFailed, match="does not verify"):
        check_registry_signature(forged.body, root.key_id, forged.signature, root.public_bytes)
    with pytest.raises(VerificationFailed, match="older than the held"):
        check_not_rollback(r1, r2)


def test_verify_many_matches_verify_one_by_one_in_order() -> None:
    from sync.signing import PARALLEL_MIN, verify_many

    keys = [SigningKey.generate() for _ in range(3)]
    items: list[tuple[bytes, bytes, bytes]] = []
    for n in range(PARALLEL_MIN * 3 + 7):
        k = keys[n % 3]
        data = f"body {n}".encode()
        sig = sign(k, VERSION_DOMAIN, data)
        if n % 17 == 5:
            data += b"!"  # tampered after signing
        items.append((k.public_bytes, data, sig))
    expected = [verify(pub, VERSION_DOMAIN, data, sig) for pub, data, sig in items]
    assert False in expected and True in expected
    assert verify_many(VERSION_DOMAIN, items) == expected
    assert verify_many(VERSION_DOMAIN, items[:5]) == expected[:5]  # below the threshold: in the caller's thread
    assert verify_many(VERSION_DOMAIN, []) == []


def test_libsodium_signs_the_bytes_openssl_does() -> None:
    """`SigningKey.sign` signs with libsodium; Ed25519 is deterministic, so OpenSSL's
    signature over the same bytes is the same, and either library verifies it."""
    for i in range(20):
        key = SigningKey.generate()
        data = bytes(range(256)) * i + b"techbridge"
        signature = key.sign(data)
        assert signature == key.private.sign(data)
        key.private.public_key().verify(signature, data)
        assert verify(key.public_bytes, b"", data, signature)
