"""Sync under hostile or unlucky conditions: a node poisoning another's
transactions, a node restored from a backup, a hub behind its node's cursor,
a compromised hub, batches larger than a message, versions that break the
rules of who may say what."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import grpc
import pytest

from sync import auth
from sync.clock import Stamp
from sync.config import DataDir
from sync.envelope import MAX_FUTURE_MS, Version, envelope_to_pb, version_id_of
from sync.errors import Unavailable
from sync.keys import SigningKey
from sync.kinds import Action, Change, create_change
from sync.server import channel
from sync.tls import TlsFiles
from techbridge.v1 import admin_pb2, envelope_pb2, records_pb2, sync_pb2, sync_pb2_grpc
from tests.harness import Hub, Node, make_node, push_raw, push_stream, signed_version, start_existing_node
from transfer.records import ListingStatus, listing_content


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def push(
    hub: Hub, key: SigningKey, site: str, txn: str, envs: list[envelope_pb2.Envelope], tls: TlsFiles | None = None
) -> sync_pb2.PushResponse:
    return push_raw(hub, tls or DataDir(hub.path.parent / site).tls.load(), key, site, txn, envs)


def key_of(node: Node) -> SigningKey:
    return SigningKey.load(DataDir(node.path).signing_key)


def status(site: Node | Hub) -> admin_pb2.GetSyncStatusResponse:
    return site.admin.GetSyncStatus(admin_pb2.GetSyncStatusRequest(), metadata=site.md, timeout=5)


def test_a_node_cannot_claim_another_nodes_transaction(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    br = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    with pytest.raises(grpc.RpcError) as e:
        push(hub, key_of(ta), "tel-aviv", "brussels:1-2:0000000000000000", [])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "txn_id" in (e.value.details() or "")
    ids = {br.add_record("B1"), br.add_record("B2")}
    assert br.sync().pushed == 2
    assert ids <= {v.id for v in hub.listings()}
    ta.stop()
    br.stop()


def test_node_restored_from_backup_still_pushes_what_it_writes_next(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "toledo", "toledo", country="ES")
    token = node.admin_token
    backup = tmp_path / "backup"
    node.stop()
    shutil.copytree(node.path, backup)
    node = start_existing_node(node.path, token)
    first = {node.add_record(f"before restore {i}") for i in range(3)}
    assert node.sync().pushed == 3
    node.stop()
    shutil.rmtree(node.path)
    shutil.copytree(backup, node.path)
    node = start_existing_node(node.path, token)
    second = {node.add_record(f"after restore {i}") for i in range(3)}
    # Same log positions as the lost batch, other content: a new transaction.
    assert node.sync().pushed == 3
    assert first | second == {v.id for v in hub.listings()}
    node.stop()


def test_a_push_whose_acknowledgement_was_lost_is_a_retry_not_a_restore(hub: Hub, tmp_path: Path) -> None:
    from sync.envelope import stored_envelope_to_pb
    from sync.protocol.node_side import push_txn_id

    node = make_node(hub, tmp_path / "toledo", "toledo", country="ES")
    for i in range(3):
        node.add_record(f"acknowledged but not recorded {i}")
    assert node.sync().pushed == 3
    assert node.node is not None and hub.running is not None
    rows, through, _ = node.node.running.site.store.log_after(0, 10, only_local=True)
    # The node was killed after the hub stored its batch, before it recorded the
    # acknowledgement: it sends the same batch again, from the same position.
    txn = push_txn_id("toledo", rows[0].seq, through, [r.version_id for r in rows])
    again = push(hub, key_of(node), "toledo", txn, [stored_envelope_to_pb(r.body, r.signatures) for r in rows])
    assert (again.acked_seq, again.stored) == (3, 0)
    assert not hub.running.site.store.peer_state("toledo").resend_own  # not taken for a restore
    # The same positions with other content are a restore.
    other = signed_version(key_of(node), "toledo", create_change(listing_content(title="other")))
    push(hub, key_of(node), "toledo", push_txn_id("toledo", 1, 1, [other.version_id]), [envelope_to_pb(other)])
    assert hub.running.site.store.peer_state("toledo").resend_own
    node.stop()


def test_a_restored_node_gets_its_own_entries_until_it_confirms_it_stored_them(hub: Hub, tmp_path: Path) -> None:
    """The hub sends a restored node's own entries back until the node pulls from past the
    end of the first resend it was sent in full: a node that read the last batches ahead
    and then stopped before storing them (killed, a deferral) still gets them."""
    from sync.clock import system_now_ms

    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    for i in range(3):
        ta.add_record(f"own {i}")
    ta.sync()
    ta.stop()
    assert hub.running is not None
    store = hub.running.site.store
    key = key_of(ta)

    def pull(after: int, own_head: int) -> list[int]:
        with channel(hub.address, DataDir(ta.path).tls.load(), expect="hq") as ch:
            md = auth.site_metadata(key, "tel-aviv", "Pull", system_now_ms())
            req = sync_pb2.PullRequest(after_seq=after, own_head=own_head, batch_size=500)
            stream = sync_pb2_grpc.SyncServiceStub(ch).Pull(req, metadata=md, timeout=10)
            return [e.seq for m in stream for e in m.entries]

    assert pull(0, own_head=0) == [1, 2, 3]  # restored (holds none of its log): its own come back
    assert store.peer_state("tel-aviv").resend_own and store.peer_state("tel-aviv").resend_until == 3
    # It read that stream to its end but stored only the first entry; its log has grown since.
    assert pull(1, own_head=10) == [2, 3]
    assert pull(3, own_head=10) == []  # from past the resend: it holds them all
    assert not store.peer_state("tel-aviv").resend_own


def test_cursor_past_the_hubs_head_reconciles_instead_of_skipping(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    node.sync()
    with sqlite3.connect(node.path / "store.db") as conn:
        conn.execute("UPDATE peer_state SET pull_cursor = 999 WHERE peer = 'hq'")
    rid = hub.add_record("written at HQ after the node's cursor")
    node.sync()  # the hub refuses the cursor; the node reconciles by what each holds
    assert [v.id for v in node.listings()] == [rid]
    assert hub.running is not None
    (peer,) = status(node).peers
    assert peer.pull_cursor == hub.running.site.store.log_head()
    node.stop()


def test_node_refuses_what_a_compromised_hub_sends(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    key = key_of(ta)
    good = signed_version(key, "tel-aviv", create_change(listing_content(title="Good")))
    evil = signed_version(key, "tel-aviv", create_change(listing_content(title="Evil")))
    tampered = type(evil)(**{**evil.__dict__, "body": evil.body.replace(b"Evil", b"Evi1")})
    forged = type(evil)(**{**tampered.__dict__, "version_id": version_id_of(tampered.body)})
    # The hub's store is written behind its own checks, as an attacker holding the hub could.
    assert hub.running is not None
    hub.running.site.store.apply_batch("tel-aviv", [good, forged], [], through_seq=2, now_ms=now_ms())
    result = dj.sync()
    assert result.pulled == 1 and result.pull_rejected == 1
    assert [v.id for v in dj.listings()] == [good.record_id]
    assert status(dj).rejected == 1
    assert "signature does not verify" in result.rejections[0][1]
    ta.stop()
    dj.stop()


def test_big_listings_travel_in_byte_bounded_batches(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    heavy = "€" * 4000  # 12 kB of UTF-8 per description
    n = 760  # about 9 MiB in all: more than one message may carry
    for i in range(n):
        node.add_record(f"Heavy {i}", description=heavy, summary="€" * 500)
    result = node.sync()
    assert result.pushed == n
    assert len(hub.listings()) == n
    other = make_node(hub, tmp_path / "toledo", "toledo", country="ES")
    assert other.sync().pulled == n
    node.stop()
    other.stop()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda k, now: dict(
                hlc=Stamp(now, 0), change=Change(action=Action.VALIDATE, status=ListingStatus.VALIDATED)
            ),
            "only HQ may validate",
        ),
        (
            lambda k, now: dict(
                hlc=Stamp(now, 0),
                change=create_change(listing_content(title="Self-published", status=ListingStatus.PUBLISHED)),
            ),
            "starts as draft or submitted",
        ),
        (lambda k, now: dict(hlc=Stamp(now, 0), change=create_change(listing_content(title="x" * 300))), "at most 256"),
    ],
    ids=["hub-only-step", "created-published", "too-long-title"],
)
def test_versions_breaking_the_rules_are_refused(hub: Hub, tmp_path: Path, make: object, reason: str) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    key = key_of(node)
    fields = make(key, now_ms())  # type: ignore[operator]
    bad = signed_version(key, "tel-aviv", fields["change"], hlc=fields["hlc"])
    resp = push(hub, key, "tel-aviv", "tel-aviv:1-1:x", [envelope_to_pb(bad)])
    assert resp.stored == 0 and reason in resp.rejected[0].reason
    assert hub.listings() == []
    node.stop()


def test_a_site_whose_clock_runs_an_hour_fast_is_refused_with_the_reason(hub: Hub, tmp_path: Path) -> None:
    fast = make_node(hub, tmp_path / "toledo", "toledo", country="ES", now_ms=lambda: now_ms() + 3600 * 1000)
    slightly = make_node(hub, tmp_path / "brussels", "brussels", country="BE", now_ms=lambda: now_ms() + 60 * 1000)
    fast.add_record("From the future")
    ok = slightly.add_record("A minute ahead is fine")
    # Its calls are refused before any version is looked at, and it is told why.
    with pytest.raises(Unavailable, match="more than 5 minutes from this site's clock"):
        fast.sync()
    (peer,) = status(fast).peers
    assert "UNAUTHENTICATED" in peer.last_error
    assert slightly.sync().pushed == 1
    assert [v.id for v in hub.listings()] == [ok]
    fast.stop()
    slightly.stop()


def now_and_later(key: SigningKey) -> tuple[Version, Version]:
    """Two new listings of Tel Aviv's: one stamped now, one stamped past the hub's limit."""
    first = signed_version(key, "tel-aviv", create_change(listing_content(title="Now")))
    later = Stamp(now_ms() + MAX_FUTURE_MS + 60_000, 0)
    return first, signed_version(key, "tel-aviv", create_change(listing_content(title="Later")), hlc=later)


def test_a_version_stamped_ahead_is_deferred_not_lost(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    key = key_of(node)
    first, future = now_and_later(key)
    after = signed_version(key, "tel-aviv", create_change(listing_content(title="After")))
    resp = push(hub, key, "tel-aviv", "tel-aviv:1-3:x", [envelope_to_pb(v) for v in (first, future, after)])
    # The hub stops before the early version and acknowledges only what came before it.
    assert resp.acked_seq == 1 and resp.stored == 1 and not resp.rejected
    assert [v.id for v in hub.listings()] == [first.record_id]
    node.stop()


def test_a_batch_sent_behind_a_cut_one_is_not_taken(hub: Hub, tmp_path: Path) -> None:
    """A node sends its next batch before the first is acknowledged (`PUSH_WINDOW`). If the
    hub cuts the first before a version stamped ahead, it answers that one and takes
    nothing behind it (the second starts past what the hub holds), and the stream ends
    cleanly: the node sends both again in a later round."""
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    key = key_of(node)
    first, future = now_and_later(key)
    behind = signed_version(key, "tel-aviv", create_change(listing_content(title="Behind")))
    one = sync_pb2.PushRequest(txn_id="tel-aviv:1-2:a", through_seq=2, after_seq=0, remaining=1)
    for seq, v in enumerate((first, future), 1):
        one.entries.add(seq=seq).envelope.CopyFrom(envelope_to_pb(v))
    two = sync_pb2.PushRequest(txn_id="tel-aviv:3-3:b", through_seq=3, after_seq=2)
    two.entries.add(seq=3).envelope.CopyFrom(envelope_to_pb(behind))
    responses = push_stream(hub, DataDir(node.path).tls.load(), key, "tel-aviv", [one, two])
    assert [(r.txn_id, r.acked_seq, r.stored) for r in responses] == [("tel-aviv:1-2:a", 1, 1)]
    assert [v.id for v in hub.listings()] == [first.record_id]
    node.stop()


def test_a_node_defers_what_it_pulls_too_early_and_takes_it_later(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv", now_ms=lambda: now_ms() + 3 * 60 * 1000)
    rid = ta.add_record("Three minutes early")
    edit_id = ta.admin.EditRecord(
        admin_pb2.EditRecordRequest(
            id=rid, fields=["summary"], values=records_pb2.RecordValues(listing=records_pb2.Listing(summary="child"))
        ),
        metadata=ta.md,
        timeout=5,
    ).record.id
    assert edit_id == rid
    assert ta.sync().pushed == 2  # within the hub's 5 minutes

    offset = [0]
    path = tmp_path / "daejeon"
    dj = make_node(hub, path, "daejeon", country="KR", now_ms=lambda: now_ms() + offset[0])
    dj.stop()
    data = DataDir(path)
    data.save(data.load().with_updates(max_future_ms=60_000))  # Daejeon allows one minute
    dj = start_existing_node(path, dj.admin_token, now_ms=lambda: now_ms() + offset[0])
    with pytest.raises(Unavailable, match="stamped ahead of this site's clock"):
        dj.sync()
    assert dj.listings() == [] and status(dj).rejected == 0
    offset[0] = 3 * 60 * 1000  # Daejeon's clock catches up
    assert dj.sync().pulled == 2
    (view,) = dj.listings()
    assert view.id == rid and dj.show(rid).values.listing.summary == "child"
    ta.stop()
    dj.stop()


def test_a_restarted_site_stamps_after_everything_it_holds(hub: Hub, tmp_path: Path) -> None:
    ahead = make_node(hub, tmp_path / "toledo", "toledo", country="ES", now_ms=lambda: now_ms() + 4 * 60 * 1000)
    seen = ahead.add_record("Stamped four minutes ahead")
    ahead.sync()
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    assert ta.sync().pulled == 1
    token = ta.admin_token
    ta.stop()
    ta = start_existing_node(tmp_path / "tel-aviv", token)  # a fresh process: its clock starts from the store
    mine = ta.add_record("Written after a restart")
    theirs, ours = ta.show(seen).provenance, ta.show(mine).provenance
    assert (ours.hlc_wall_ms, ours.hlc_counter) > (theirs.hlc_wall_ms, theirs.hlc_counter)
    ahead.stop()
    ta.stop()


def test_a_hub_restored_from_an_older_backup_loses_nothing(tmp_path: Path) -> None:
    from hub.site import start_hub
    from tests.harness import make_hub

    hub = make_hub(tmp_path / "hq")
    address = hub.address
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    before = ta.add_record("Before the backup")
    ta.sync()
    dj.sync()
    assert hub.running is not None
    hub.running.stop()
    shutil.copytree(tmp_path / "hq", tmp_path / "hq-backup")
    running = start_hub(tmp_path / "hq", listen=address)
    hub.running = running
    after_ta = ta.add_record("After the backup, at Tel Aviv")
    after_hq = hub.add_record("After the backup, at HQ")
    ta.sync()
    dj.sync()  # Daejeon now holds HQ's listing too
    running.stop()
    hub.close_channel()
    shutil.rmtree(tmp_path / "hq")
    shutil.copytree(tmp_path / "hq-backup", tmp_path / "hq")  # the hub comes back from the backup
    hub.running = start_hub(tmp_path / "hq", listen=address)
    # The restored hub's log grows again past the nodes' cursors before they call in.
    regrown = {hub.add_record(f"After the restore {i}") for i in range(4)}
    for _ in range(2):
        ta.sync()
        dj.sync()
    expected = {before, after_ta, after_hq, *regrown}
    for site in (hub, ta, dj):
        assert {v.id for v in site.listings()} == expected
    ta.stop()
    dj.stop()
    hub.stop()


def test_a_node_restored_from_an_older_backup_gets_its_own_writes_back(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    token = ta.admin_token
    first = ta.add_record("Kept in the backup")
    ta.sync()
    ta.stop()
    shutil.copytree(ta.path, tmp_path / "ta-backup")
    ta = start_existing_node(ta.path, token)
    lost = ta.add_record("Written after the backup")
    ta.sync()
    ta.stop()
    shutil.rmtree(ta.path)
    shutil.copytree(tmp_path / "ta-backup", ta.path)
    ta = start_existing_node(ta.path, token)
    assert {v.id for v in ta.listings()} == {first}
    again = ta.add_record("Written before the first round after the restore")
    ta.sync()
    ta.sync()
    assert {v.id for v in ta.listings()} == {first, lost, again}
    assert {v.id for v in hub.listings()} == {first, lost, again}
    ta.stop()


def test_an_interrupted_reconciliation_resumes(hub: Hub, tmp_path: Path) -> None:
    from hub.site import start_hub

    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    ids = {ta.add_record(f"Listing {i}") for i in range(5)}
    ta.sync()
    assert ta.node is not None and hub.running is not None
    store = ta.node.running.site.store
    store.reset_cursors("hq")  # as a reconciliation starts
    address = hub.address
    hub.running.stop()
    with pytest.raises(Unavailable):
        ta.sync()  # cut short: the hub is away
    assert store.peer_state("hq").reconciling
    hub.running = start_hub(hub.path, listen=address)
    hub.close_channel()
    ta.sync()
    assert not store.peer_state("hq").reconciling
    assert {v.id for v in hub.listings()} == ids == {v.id for v in ta.listings()}
    ta.stop()


def test_a_slow_consumer_hits_its_deadline_and_resumes_from_its_cursor(hub: Hub, tmp_path: Path) -> None:
    br = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    for i in range(120):
        br.add_record(f"Listing {i}")
    br.sync()
    path = tmp_path / "daejeon"
    dj = make_node(hub, path, "daejeon", country="KR")
    token = dj.admin_token
    dj.stop()
    data = DataDir(path)
    data.save(data.load().with_updates(pull_batch=10, stream_deadline_s=1.0))
    dj = start_existing_node(path, token)
    assert dj.node is not None
    # A consumer far slower than the hub: 0.3 s per batch of 10, against a 1 s deadline.
    with pytest.raises(Unavailable, match="DEADLINE_EXCEEDED"):
        dj.node.client.run_round(lambda p: time.sleep(0.3) if p.phase == "pull" else None)
    cursor = status(dj).peers[0].pull_cursor
    assert 0 < cursor < 120  # what it took is kept
    assert len(dj.listings()) == cursor
    assert dj.sync().pulled == 120 - cursor  # and it resumes where it stopped
    assert len(dj.listings()) == 120
    br.stop()
    dj.stop()
