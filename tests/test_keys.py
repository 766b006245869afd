"""Signing keys: rotation without downtime, revocation with quarantine."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest

from node.site import init_node
from sync import auth
from sync.clock import Stamp
from sync.config import DataDir
from sync.envelope import envelope_to_pb
from sync.keys import SigningKey
from sync.kinds import create_change
from sync.server import channel
from sync.signing import ROTATE_DOMAIN, sign
from techbridge.v1 import admin_pb2, admin_pb2_grpc, sync_pb2, sync_pb2_grpc
from tests.harness import Hub, Node, cli, make_node, push_raw, signed_version, start_existing_node
from transfer.records import listing_content


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rotate(site: Hub | Node) -> admin_pb2.RotateOwnKeyResponse:
    return site.admin.RotateKey(admin_pb2.RotateOwnKeyRequest(), metadata=site.md, timeout=10)


def quarantine(site: Hub | Node) -> list[admin_pb2.QuarantineEntry]:
    return list(site.admin.ListQuarantine(admin_pb2.ListQuarantineRequest(), metadata=site.md, timeout=10).entries)


def push(hub: Hub, node: Node, call_key: SigningKey, versions: list[object]) -> sync_pb2.PushResponse:
    envs = [envelope_to_pb(v) for v in versions]  # type: ignore[arg-type]
    return push_raw(hub, node.tls, call_key, node.path.name, f"{node.path.name}:1-{len(versions)}:t", envs)


def test_a_node_rotates_its_key_while_serving(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    old_key = SigningKey.load(DataDir(ta.path).signing_key)
    before = ta.add_record("Signed with the old key")
    ta.sync()
    r = rotate(ta)
    assert r.old_key_id == old_key.key_id and r.new_key_id != old_key.key_id
    after = ta.add_record("Signed with the new key")
    assert ta.sync().pushed == 1  # calls now signed with the new key
    dj.sync()
    for site in (hub, ta, dj):
        assert site.show(before).provenance.key_id == old_key.key_id and site.show(before).provenance.verified
        assert site.show(after).provenance.key_id == r.new_key_id and site.show(after).provenance.verified
    # The old key can no longer sign anything new, nor call.
    late = signed_version(old_key, "tel-aviv", create_change(listing_content(title="Old key, too late")))
    new_key = SigningKey.load(DataDir(ta.path).signing_key)
    resp = push(hub, ta, new_key, [late])
    assert resp.stored == 0 and "retired" in resp.rejected[0].reason
    with pytest.raises(grpc.RpcError) as e:
        push(hub, ta, old_key, [])
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "retired" in (e.value.details() or "")
    ta.stop()
    dj.stop()


def test_the_hub_rotates_its_own_key(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    first = hub.add_record("HQ, old key")
    r = rotate(hub)
    second = hub.add_record("HQ, new key")
    ta.sync()
    assert ta.show(first).provenance.verified and ta.show(second).provenance.verified
    assert ta.show(second).provenance.key_id == r.new_key_id
    ta.stop()


def test_a_rotation_cut_short_by_a_crash_is_finished_at_the_next_round(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    data = DataDir(ta.path)
    old_key = SigningKey.load(data.signing_key)
    token = ta.admin_token
    ta.stop()
    # What a crash leaves behind: the pending key written, the hub told, the switch never made.
    pending = SigningKey.generate()
    pending.save(data.signing_key.with_name("signing.pending.key"))
    at = now_ms()
    with channel(hub.address, data.tls.load()) as ch:
        sync_pb2_grpc.SyncServiceStub(ch).RotateKey(
            sync_pb2.RotateKeyRequest(
                public_key=pending.public_bytes, at_ms=at, proof=sign(pending, ROTATE_DOMAIN, f"tel-aviv|{at}".encode())
            ),
            metadata=auth.site_metadata(old_key, "tel-aviv", "RotateKey", now_ms()),
            timeout=10,
        )
    ta = start_existing_node(ta.path, token)
    ta.sync()
    assert SigningKey.load(data.signing_key).key_id == pending.key_id
    rid = ta.add_record("After the interrupted rotation")
    assert ta.sync().pushed == 1 and hub.show(rid).provenance.key_id == pending.key_id
    ta.stop()


def test_revocation_quarantines_everywhere_and_refuses_what_comes_later(hub: Hub, tmp_path: Path) -> None:
    br = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    br_key = SigningKey.load(DataDir(br.path).signing_key)
    early = br.add_record("Before the compromise")
    time.sleep(0.01)
    since = now_ms()
    time.sleep(0.01)
    late = br.add_record("After the compromise")
    br.sync()
    dj.sync()
    assert {v.id for v in dj.listings()} == {early, late}

    r = admin_pb2_grpc.HubAdminServiceStub(hub.ch).RevokeKey(
        admin_pb2.RevokeKeyRequest(key_id=br_key.key_id, compromised_since_ms=since), metadata=hub.md, timeout=10
    )
    assert r.quarantined == 1
    assert [v.id for v in hub.listings()] == [early]  # quarantined, not deleted
    assert [(q.record_id, q.kind) for q in quarantine(hub)] == [(late, "held")]
    dj.sync()  # the new registry reaches Daejeon, which quarantines too
    assert [v.id for v in dj.listings()] == [early]
    assert [q.record_id for q in quarantine(dj)] == [late]
    # A version the stolen key signs now is refused on receipt and listed.
    forged = signed_version(
        br_key, "brussels", create_change(listing_content(title="Forged later")), hlc=Stamp(now_ms(), 0)
    )
    assert hub.running is not None
    hub.running.site.store.apply_batch("brussels", [forged], [], through_seq=99, now_ms=now_ms())  # a hub fooled
    dj.sync()
    assert any(q.kind == "refused" and "revoked" in q.reason for q in quarantine(dj))
    br.stop()
    dj.stop()


def test_revocation_cli(hub: Hub, tmp_path: Path) -> None:
    br = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    key_id = SigningKey.load(DataDir(br.path).signing_key).key_id
    r = cli("hub", "revoke", "--data", str(hub.path), "--key", key_id, "--compromised-since", "not a time")
    assert r.returncode == 2 and "not a time like" in r.stderr
    r = cli("hub", "revoke", "--data", str(hub.path), "--key", "0" * 32)
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr
    r = cli("hub", "revoke", "--data", str(hub.path), "--key", key_id, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["registry_version"] >= 3
    r = cli("quarantine", "list", "--data", str(hub.path), "--json")
    assert json.loads(r.stdout) == []
    r = cli("keys", "rotate", "--data", str(hub.path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["new_key_id"]
    br.stop()


def test_an_unsettled_rotation_blocks_the_next_and_a_retired_key_signs_nothing(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    data = DataDir(ta.path)
    old_key = SigningKey.load(data.signing_key)
    # The hub registers a new key but the answer is lost: the pending key is left behind.
    pending = SigningKey.generate()
    pending.save(data.signing_key.with_name("signing.pending.key"))
    at = now_ms()
    with channel(hub.address, data.tls.load()) as ch:
        sync_pb2_grpc.SyncServiceStub(ch).RotateKey(
            sync_pb2.RotateKeyRequest(
                public_key=pending.public_bytes, at_ms=at, proof=sign(pending, ROTATE_DOMAIN, f"tel-aviv|{at}".encode())
            ),
            metadata=auth.site_metadata(old_key, "tel-aviv", "RotateKey", now_ms()),
            timeout=10,
        )
    with pytest.raises(grpc.RpcError) as e:
        rotate(ta)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "not settled" in (e.value.details() or "")
    assert (data.signing_key.with_name("signing.pending.key")).exists()  # never thrown away by a retry
    ta.sync()  # settles: the hub's registry names the pending key
    assert SigningKey.load(data.signing_key).key_id == pending.key_id
    assert ta.sync().pushed == 0
    rid = ta.add_record("Signed with the settled key")
    assert ta.sync().pushed == 1 and hub.show(rid).provenance.key_id == pending.key_id
    ta.stop()


def test_a_pending_key_the_hub_never_registered_is_dropped(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    data = DataDir(ta.path)
    old = SigningKey.load(data.signing_key).key_id
    SigningKey.generate().save(data.signing_key.with_name("signing.pending.key"))
    ta.sync()
    assert not data.signing_key.with_name("signing.pending.key").exists()
    assert SigningKey.load(data.signing_key).key_id == old
    assert rotate(ta).old_key_id == old  # and a new rotation works
    ta.stop()


def test_the_hub_settles_its_own_interrupted_rotation(tmp_path: Path) -> None:
    from hub.servicer import rotate_in_registry
    from tests.harness import make_hub

    hub = make_hub(tmp_path / "hq")
    assert hub.running is not None
    site = hub.running.site
    data = DataDir(hub.path)
    pending = SigningKey.generate()
    pending.save(data.signing_key.with_name("signing.pending.key"))
    rotate_in_registry(site, SigningKey.load(data.root_key), "hq", pending.public_bytes, now_ms())
    hub.stop()  # the crash: registry stored, key not switched
    from hub.site import start_hub

    running = start_hub(tmp_path / "hq")
    try:
        assert running.site.key.key_id == pending.key_id
        assert not data.signing_key.with_name("signing.pending.key").exists()
    finally:
        running.stop()


def test_a_revocation_cut_short_is_quarantined_at_the_next_start(tmp_path: Path) -> None:
    from hub.registry import issue_registry, with_revoked_key
    from hub.site import start_hub
    from tests.harness import make_hub

    hub = make_hub(tmp_path / "hq")
    br = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    key = SigningKey.load(DataDir(br.path).signing_key)
    rid = br.add_record("Signed before the revocation is known")
    br.sync()
    assert hub.running is not None
    site = hub.running.site
    root = SigningKey.load(DataDir(hub.path).root_key)
    # The registry is stored, then the process dies before quarantining.
    site.store.update_registry(
        now_ms(),
        lambda held: issue_registry(root, with_revoked_key(held, key.key_id, 1), previous=held, now_ms=now_ms()),  # type: ignore[arg-type]
    )
    br.stop()
    hub.stop()
    running = start_hub(tmp_path / "hq")
    try:
        assert [q[1] for q in running.site.store.quarantined()] == [rid]
    finally:
        running.stop()


def test_a_centre_whose_keys_are_all_revoked_is_enrolled_again(hub: Hub, tmp_path: Path) -> None:
    br = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    old = br.add_record("Before the compromise")
    br.sync()
    with pytest.raises(grpc.RpcError) as e:
        hub.invite("brussels", country="BE")  # still has a valid key
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "all its keys are revoked" in (
        e.value.details() or ""
    )
    br_key = SigningKey.load(DataDir(br.path).signing_key)
    admin_pb2_grpc.HubAdminServiceStub(hub.ch).RevokeKey(
        admin_pb2.RevokeKeyRequest(key_id=br_key.key_id), metadata=hub.md, timeout=10
    )
    br.stop()  # the compromised machine is retired; Brussels starts again on a fresh one
    token = hub.invite("brussels", country="BE")
    cfg = init_node(tmp_path / "brussels-2", hub=hub.address, token=token, listen="127.0.0.1:0")
    br2 = start_existing_node(tmp_path / "brussels-2", cfg.admin_token)
    try:
        br2.sync()
        br2.sync()
        assert br2.show(old).provenance.verified  # its history comes back, still verified
        new = br2.add_record("After re-enrolment")
        br2.sync()
        dj.sync()
        assert dj.show(new).provenance.verified and dj.show(new).provenance.origin == "brussels"
        assert dj.show(old).provenance.verified
        # The old key still signs nothing new.
        late = signed_version(
            br_key, "brussels", create_change(listing_content(title="Forged")), hlc=Stamp(now_ms(), 0)
        )
        with pytest.raises(grpc.RpcError) as e:  # the old key cannot even call
            push_raw(hub, br2.tls, br_key, "brussels", "brussels:late", [envelope_to_pb(late)])
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        new_key = SigningKey.load(DataDir(tmp_path / "brussels-2").signing_key)
        resp = push_raw(hub, br2.tls, new_key, "brussels", "brussels:late", [envelope_to_pb(late)])
        assert resp.stored == 0 and "revoked" in resp.rejected[0].reason
    finally:
        br2.stop()
        dj.stop()
