"""A tampered or forged envelope is refused with its reason; the rest of the batch lands."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import pytest

from sync.clock import Stamp
from sync.config import DataDir
from sync.envelope import SignatureValue, envelope_to_pb
from sync.keys import SigningKey
from sync.kinds import create_change
from sync.tls import TlsFiles
from techbridge.v1 import admin_pb2, envelope_pb2, sync_pb2
from tests.harness import Hub, make_node, push_raw, signed_version
from transfer.records import listing_content


def _push(
    hub: Hub, key: SigningKey, site: str, entries: list[envelope_pb2.Envelope], tls: TlsFiles | None = None
) -> sync_pb2.PushResponse:
    tls = tls or DataDir(hub.path.parent / site).tls.load()
    return push_raw(hub, tls, key, site, f"{site}:1-{len(entries)}", entries)


def _now() -> int:
    import time

    return time.time_ns() // 1_000_000


def test_tampered_and_forged_versions_are_refused_rest_lands(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    make_node(hub, tmp_path / "brussels", "brussels", country="BE").stop()
    key = SigningKey.load(DataDir(node.path).signing_key)

    def listing(n: int, origin: str = "tel-aviv") -> envelope_pb2.Envelope:
        change = create_change(listing_content(title=f"T{n}"))
        v = signed_version(key, origin, change, hlc=Stamp(_now(), n))
        if origin != "tel-aviv":
            # written in brussels' name, signed with tel-aviv's key
            v = dataclasses.replace(v, signatures=(SignatureValue(key.key_id, v.signatures[0].signature),))
        return envelope_to_pb(v)

    good = [listing(1), listing(2), listing(5)]
    tampered = listing(3)
    tampered.body = tampered.body.replace(b"T3", b"T9")
    forged = listing(4, origin="brussels")
    garbage = envelope_pb2.Envelope(body=b"\xff\xff\xff\xff", signatures=good[0].signatures)

    resp = _push(hub, key, "tel-aviv", [good[0], tampered, good[1], forged, garbage, good[2]])
    reasons = sorted(r.reason for r in resp.rejected)
    assert resp.stored == 3
    assert resp.acked_seq == 6
    assert len(reasons) == 3
    assert any("signature does not verify" in r for r in reasons)
    assert any("belongs to tel-aviv" in r for r in reasons)
    assert any("not a valid VersionBody" in r for r in reasons)

    titles = sorted(v.values.listing.title for v in hub.listings())
    assert titles == ["T1", "T2", "T5"]
    status = hub.admin.GetSyncStatus(admin_pb2.GetSyncStatusRequest(), metadata=hub.md, timeout=5)
    assert status.rejected == 3
    node.stop()


def test_push_from_an_unknown_site_is_unauthenticated(hub: Hub) -> None:
    stranger = SigningKey.generate()
    with pytest.raises(grpc.RpcError) as e:
        _push(hub, stranger, "tel-aviv", [], hub.tls)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not registered" in (e.value.details() or "")
    # and the hub keeps serving
    assert hub.listings() == []


def test_a_large_batch_verified_on_every_core_refuses_exactly_the_bad_ones(hub: Hub, tmp_path: Path) -> None:
    """Past `PARALLEL_MIN` signatures a batch is verified at once on a pool of
    threads; a bad signature anywhere in it is refused alone, in place."""
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    key = SigningKey.load(DataDir(node.path).signing_key)
    envs = [
        envelope_to_pb(
            signed_version(key, "tel-aviv", create_change(listing_content(title=f"L{n}")), hlc=Stamp(_now(), n))
        )
        for n in range(120)
    ]
    envs[37].signatures[0].signature = (
        bytes([envs[37].signatures[0].signature[0] ^ 1]) + envs[37].signatures[0].signature[1:]
    )
    envs[101].body = envs[101].body.replace(b"L101", b"L999")
    resp = _push(hub, key, "tel-aviv", envs)
    assert resp.stored == 118
    assert resp.acked_seq == 120
    assert [r.reason for r in resp.rejected] == ["signature does not verify over the body bytes"] * 2
    titles = {v.values.listing.title for v in hub.listings()}
    assert titles == {f"L{n}" for n in range(120)} - {"L37", "L101"}
    node.stop()
