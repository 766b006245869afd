"""Join tokens: one use, bound to a centre, expiring, pinning the root key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import pytest

from hub import enrolment
from hub.site import init_hub
from node.site import init_node
from sync.config import DataDir
from sync.errors import FailedPrecondition, InvalidInput, NotFound, VerificationFailed
from sync.keys import SigningKey
from sync.registry import Registry
from sync.signing import ENROL_DOMAIN, sign
from sync.store import Store
from sync.token import JoinToken
from tests.harness import Hub
from transfer.records import KINDS


def test_token_is_single_use(hub: Hub, tmp_path: Path) -> None:
    token = hub.invite("tel-aviv")
    init_node(tmp_path / "a", hub=hub.address, token=token)
    with pytest.raises(grpc.RpcError) as e:
        init_node(tmp_path / "b", hub=hub.address, token=token)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already been used" in (e.value.details() or "")


def test_token_bound_to_its_centre(hub: Hub, tmp_path: Path) -> None:
    token = JoinToken.decode(hub.invite("tel-aviv"))
    forged = dataclasses.replace(token, centre_id="brussels").encode()
    with pytest.raises(grpc.RpcError) as e:
        init_node(tmp_path / "b", hub=hub.address, token=forged)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "token is for 'tel-aviv'" in (e.value.details() or "")
    # the refused attempt did not spend the token
    init_node(tmp_path / "a", hub=hub.address, token=token.encode())


def test_token_pins_the_root_key(hub: Hub, tmp_path: Path) -> None:
    token = JoinToken.decode(hub.invite("tel-aviv"))
    other_root = dataclasses.replace(token, root_key_id="0" * 32).encode()
    with pytest.raises(VerificationFailed, match="root key"):
        init_node(tmp_path / "a", hub=hub.address, token=other_root)
    assert not DataDir(tmp_path / "a").exists()


def test_expired_and_unknown_tokens(tmp_path: Path) -> None:
    init_hub(tmp_path / "hq")
    data = DataDir(tmp_path / "hq")
    store = Store.open(data.load().db_url, KINDS)
    root = SigningKey.load(data.root_key)
    registry = store.registry()
    assert registry is not None
    now = 1_800_000_000_000
    token, expires = enrolment.invite(
        store, registry, "hq", centre_id="toledo", name="Toledo", country="ES", ttl_s=60, now_ms=now
    )
    key = SigningKey.generate()

    def enrol(tok: str, at: int, k: SigningKey = key, proof: bytes | None = None) -> Registry:
        if proof is None:
            proof = sign(k, ENROL_DOMAIN, JoinToken.proof_bytes(tok, "toledo"))
        return enrolment.enrol(
            store, root, token=tok, centre_id="toledo", public_key=k.public_bytes, proof=proof, now_ms=at
        )

    with pytest.raises(FailedPrecondition, match="expired"):
        enrol(token, expires)
    with pytest.raises(NotFound):
        enrol(JoinToken.new("toledo", "hq", root.key_id).encode(), now)
    # Without proof of holding the private key, or with another site's key: refused, token unspent.
    with pytest.raises(InvalidInput, match="proof"):
        enrol(token, now, proof=sign(SigningKey.generate(), ENROL_DOMAIN, JoinToken.proof_bytes(token, "toledo")))
    hq_key = SigningKey.load(data.signing_key)
    with pytest.raises(FailedPrecondition, match="already registered"):
        enrol(token, now, k=hq_key)
    reg = enrol(token, now + 1)
    assert reg.version == registry.version + 1
    assert reg.key(key.key_id) is not None
    store.close()


def test_invite_checks_its_fields(hub: Hub) -> None:
    with pytest.raises(grpc.RpcError) as e:
        hub.invite("Tel Aviv!", country="Israel")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "centre_id" in (e.value.details() or "") and "country" in (e.value.details() or "")


def test_garbage_token_is_refused_locally(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="token"):
        init_node(tmp_path / "a", hub="127.0.0.1:1", token="not-a-token")


def test_hq_is_not_a_centre_id(hub: Hub) -> None:
    with pytest.raises(grpc.RpcError) as e:
        hub.invite("hq")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "audiences" in (e.value.details() or "")
